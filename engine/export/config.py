"""The typed config of the `export.gguf` job: which subject to export, how to convert, quantise and verify."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.export.quantize import QUANT_TYPES
from engine.jobs import JobConfig
from engine.merge.config import MergeParams


class ExportConfig(JobConfig):
    model: str = Field(description="base model: a local HF-format directory with safetensors weights")
    adapter: str | None = Field(None, description="PEFT LoRA / DoRA adapter merged into the base before export")
    scale: float = Field(1.0, description="adapter scale: W + scale·(W_adapted − W)")
    merge: MergeParams | None = Field(None, description="TIES / DARE parameters of the merge ([merge] table)")
    file_stem: str | None = Field(None, description="GGUF file names start with this (default: the model folder)")
    converter: str | None = Field(None, description="a llama.cpp checkout; default: the converters of the "
                                                    "installed llama-cpp-python's sdist, fetched once and cached")
    converter_args: list[str] = Field(default_factory=list, description="extra convert_hf_to_gguf.py arguments "
                                                                        "(MTP is handled without any)")
    pre_tokenizer: str | None = Field(
        None, description="llama.cpp pre-tokenizer (e.g. qwen35) for a BPE tokenizer whose hash the converter does "
                          "not know; default: the one the model folder declares (model.tiny's published layout "
                          "declares qwen35). verify's tokenizer_match shows whether it tokenizes as HF does")
    outtype: Literal["f16", "bf16", "f32"] = Field("f16", description="the converted file, and the quants' source")
    quants: list[Literal[QUANT_TYPES]] = Field(default_factory=lambda: ["Q8_0", "Q4_K_M"],
                                               description="llama.cpp quantisations made from the converted file")
    verify: bool = Field(True, description="compare every file with the HF model on the probe set")
    probes: str | None = Field(None, description="probe file, one text per line (default: assets/export/probes.txt)")
    probe_tokens: int = Field(64, ge=2, description="each probe is cut to this many tokens")
    device: str = Field("cpu", description="where the HF reference runs: cpu | cuda | cuda:N")
    threads: int = Field(0, ge=0, description="llama.cpp threads (0: its default)")
    lora_gguf: bool = Field(False, description="also write the adapter as a llama.cpp LoRA GGUF (plain LoRA only)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.merge is not None and not self.adapter:
            raise ValueError("`merge` needs an `adapter` to merge")
        if self.lora_gguf and not self.adapter:
            raise ValueError("`lora_gguf` needs an `adapter`")
        if self.lora_gguf and self.merge is not None:
            raise ValueError("`lora_gguf` exports the adapter as trained; a TIES / DARE merge exists only merged "
                             "(drop `merge` or `lora_gguf`)")
        if len(set(self.quants)) != len(self.quants):
            raise ValueError("quants repeat a type")
        return self
