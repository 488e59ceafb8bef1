"""Export wall time: `export.gguf` against running llama.cpp's converter + quantiser by hand on the same model.

    python bench/export_time.py [--layers 12] [--hidden 1024] [--repeat 2]

Builds a random Qwen3 (the tiny model's SentencePiece tokenizer, bigger weights) and, optionally, a LoRA
adapter. By hand = `convert_hf_to_gguf.py --outtype f16` then `llama_model_quantize` for Q8_0 and Q4_K_M
(and, with the adapter, PEFT's merge_and_unload + save_pretrained first). The job runs as an operator runs
it (`python -m engine run`), verification off; a last run with verification on reports its cost separately.
Best of `--repeat` runs each.
"""

from __future__ import annotations

import argparse
import json
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

QUANTS = ["Q8_0", "Q4_K_M"]
QUANTISE = """
import ctypes, sys, llama_cpp
for quant in sys.argv[2:]:
    p = llama_cpp.llama_model_quantize_default_params()
    p.ftype = getattr(llama_cpp, "LLAMA_FTYPE_MOSTLY_" + quant)
    assert llama_cpp.llama_model_quantize(sys.argv[1].encode(), sys.argv[1].replace("f16", quant).encode(),
                                          ctypes.byref(p)) == 0
"""
PEFT_MERGE = """
import sys
from peft import PeftModel
from transformers import AutoModelForCausalLM
model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(sys.argv[1]), sys.argv[2])
model.merge_and_unload().save_pretrained(sys.argv[3])
"""


def build(root: Path, layers: int, hidden: int) -> tuple[Path, Path]:
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoConfig, AutoModelForCausalLM

    from engine.tiny.build import tiny_model_dir

    tiny = tiny_model_dir("qwen3", 0)
    config = AutoConfig.from_pretrained(tiny)
    config.update({"hidden_size": hidden, "intermediate_size": hidden * 11 // 4, "num_hidden_layers": layers,
                   "num_attention_heads": hidden // 64, "num_key_value_heads": hidden // 256, "head_dim": 64,
                   "layer_types": ["full_attention"] * layers})
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_config(config)
    base = root / "base"
    model.save_pretrained(base)
    for f in tiny.iterdir():
        if f.suffix != ".safetensors" and f.name not in ("config.json", "model.safetensors.index.json"):
            shutil.copy(f, base / f.name)
    adapter = root / "adapter"
    get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear",
                                     init_lora_weights=False)).save_pretrained(adapter)
    return base, adapter


def timed(cmd: list[str], **kw) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True, **kw)
    return time.perf_counter() - t


def by_hand(llama: Path, model: Path, work: Path, adapter: Path | None) -> float:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    total = 0.0
    if adapter:
        total += timed([sys.executable, "-c", PEFT_MERGE, str(model), str(adapter), str(work / "merged")])
        for f in model.iterdir():
            if f.suffix != ".safetensors" and not (work / "merged" / f.name).exists():
                shutil.copy(f, work / "merged" / f.name)
        model = work / "merged"
    env = {"PYTHONPATH": str(llama / "gguf-py"), "PATH": "/usr/bin:/bin"}
    total += timed([sys.executable, str(llama / "convert_hf_to_gguf.py"), str(model), "--outtype", "f16",
                    "--outfile", str(work / "m-f16.gguf")], env=env)
    total += timed([sys.executable, "-c", QUANTISE, str(work / "m-f16.gguf"), *QUANTS])
    return total


def job(model: Path, adapter: Path | None, work: Path, verify: bool) -> tuple[float, dict]:
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir()
    spec = {"kind": "export.gguf", "model": str(model), "quants": QUANTS, "verify": verify}
    if adapter:
        spec["adapter"] = str(adapter)
    lines = [f"{k} = {json.dumps(v)}" for k, v in spec.items()]
    (work / "job.toml").write_text("\n".join(lines) + "\n")
    wall = timed([sys.executable, "-m", "engine", "run", str(work / "job.toml"), "--run-dir", str(work / "run")],
                 cwd=ROOT)
    events = [json.loads(x) for x in (work / "run" / "events.jsonl").read_text().splitlines()]
    assert events[-1].get("status") == "succeeded", events[-1]
    return wall, {e["key"]: e["value"] for e in events if e["type"] == "metric"}


def main() -> None:
    from engine.export.converter import fetch_converters

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--layers", type=int, default=12)
    ap.add_argument("--hidden", type=int, default=1024)
    ap.add_argument("--repeat", type=int, default=2)
    args = ap.parse_args()
    llama = fetch_converters()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        base, adapter = build(root, args.layers, args.hidden)
        size = sum(p.stat().st_size for p in base.glob("*.safetensors"))
        print(f"random Qwen3: {args.layers} layers × {args.hidden}, {size / 2**20:.0f} MiB float32 safetensors")
        for label, a in (("base", None), ("base + LoRA", adapter)):
            hand = min(by_hand(llama, base, root / "hand", a) for _ in range(args.repeat))
            runs = [job(base, a, root / "job", verify=False) for _ in range(args.repeat)]
            wall, stages = min(runs, key=lambda r: r[0])
            parts = ", ".join(f"{key.split('/')[-1]} {value:.1f}" for key, value in stages.items())
            print(f"{label:12s} by hand {hand:6.1f} s | export.gguf {wall:6.1f} s ({wall / hand:.2f}×); "
                  f"job stages: {parts}")
        wall, stages = job(base, adapter, root / "job", verify=True)
        print(f"verification (base + LoRA, {len(QUANTS) + 1} files, 16 probes): {stages['export/verify_s']:.1f} s "
              f"of a {wall:.1f} s export")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
