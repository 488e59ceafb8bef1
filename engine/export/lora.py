"""Plain-LoRA adapters as llama.cpp LoRA GGUF files (convert_lora_to_gguf.py); DoRA is refused with the reason."""

from __future__ import annotations

from pathlib import Path

from engine.errors import SpecError
from engine.export.converter import LORA_SCRIPT, run_converter
from engine.merge.adapter import read_adapter_config


def check_lora_exportable(adapter: str | Path) -> None:
    """Refuse adapters llama.cpp cannot apply at load time, naming the merged export as the way out."""
    config = read_adapter_config(adapter)
    if config.get("use_dora"):
        raise SpecError(f"{adapter}: a DoRA adapter cannot be a llama.cpp LoRA GGUF: llama.cpp applies adapters as "
                        "W + s·B·A and has no DoRA magnitude rescaling. Export the merged model instead "
                        "(lora_gguf = false): its GGUF carries the adapter exactly")
    if config.get("modules_to_save"):
        raise SpecError(f"{adapter}: modules_to_save ({', '.join(config['modules_to_save'])}) are full weights, "
                        "which a llama.cpp LoRA GGUF cannot carry; export the merged model instead (lora_gguf = false)")


def export_lora(llama_cpp: Path, base: str | Path, adapter: str | Path, out_file: Path, outtype: str) -> Path:
    """Write the adapter as a LoRA GGUF for `base` (only the base's config is read)."""
    tmp = out_file.with_name(out_file.name + ".tmp")
    run_converter(llama_cpp, LORA_SCRIPT, ["--base", str(base), "--outtype", outtype, "--outfile", str(tmp),
                                           str(adapter)], out_file.with_suffix(".log"))
    tmp.replace(out_file)
    return out_file
