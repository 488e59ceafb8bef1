"""Generation gate throughput: the hf backend vs the endpoint backend on llama.cpp's llama-server, same run.

    python bench/gates_generate.py [--items 64] [--slots 4] [--max-new-tokens 128] [--hidden 256] [--layers 4]
                                   [--train-steps 200] [--batch-size 8] [--threads 1] [--llama-server PATH]

The gate is the shipped gsm8k gate (5-shot from the first five rows, greedy, stop strings, strict and flexible
answer extraction) on tests/data/gates/gsm8k.jsonl (80 GSM8K-shaped problems) with --max-new-tokens. The model
is the tiny Qwen3 (engine.tiny, --hidden/--layers) fine-tuned for --train-steps on those same problems (see
`trained`; a throughput and agreement benchmark, not an accuracy one), in HF format for the hf backend
(float32, batches of --batch-size) and the same weights as an f32 GGUF for llama-server (--slots parallel
slots, continuous batching, the endpoint backend sending --slots requests at once). Both get the same --threads (torch's intra-op threads,
llama-server's -t/-tb). Items/s are the gate's own (scoring time, not model loading). Agreement: the share of
items whose extracted answers (strict and flexible) are identical, beside the share of items where the flexible
extractor found a number at all, so the agreement is not only "both found nothing".

llama-server comes from --llama-server, $SLAYER_LLAMA_SERVER or PATH. To build it from the llama.cpp that
llama-cpp-python ships (no download beyond pip):
    V=$(python -c 'import llama_cpp; print(llama_cpp.__version__)')
    pip download --no-deps --no-binary :all: "llama-cpp-python==$V"
    tar xzf llama_cpp_python-*.tar.gz && cd llama_cpp_python-*/vendor/llama.cpp
    cmake -B build -DLLAMA_CURL=OFF -DLLAMA_BUILD_SERVER=ON && cmake --build build --target llama-server -j2
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import tomllib
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from engine.gates import load_gate, run_gates  # noqa: E402
from engine.gates.backend import SubjectSpec  # noqa: E402
from engine.gates.data import load_items  # noqa: E402
from engine.jobs import dumps_toml  # noqa: E402
from llama_server import tiny_gguf  # noqa: E402

DATA = ROOT / "tests" / "data" / "gates" / "gsm8k.jsonl"


def trained(base: Path, gate: str, items: int, steps: int, seed: int = 0) -> Path:
    """The tiny model after `steps` of full fine-tuning on the gate's own prompts (5-shot, as scored) followed by
    the worked answer and the next "Question:", cached beside it: a random model's flat next-token distributions
    turn every rounding difference between two runtimes into a different greedy answer; a trained one is peaked,
    writes worked solutions ending in "#### N" and stops at "Question:", as a real model does."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    out = base.with_name(f"{base.name}-gsm8k-{items}-{steps}-{seed}")
    if (out / "config.json").is_file():
        return out
    torch.manual_seed(seed)
    tok = AutoTokenizer.from_pretrained(base)
    model = AutoModelForCausalLM.from_pretrained(base, dtype=torch.float32)
    loaded = load_items(load_gate(gate), str(DATA), items, str(DATA))
    texts = [p + " " + row["answer"] + "\n\nQuestion:" for p, row in zip(loaded.prompts(), loaded.rows)]
    optimiser = torch.optim.AdamW(model.parameters(), lr=1e-3)
    model.train()
    for step in range(steps):
        batch = [texts[(step * 4 + i) % len(texts)] for i in range(4)]
        enc = tok(batch, return_tensors="pt", padding=True, add_special_tokens=False)
        labels = enc["input_ids"].masked_fill(enc["attention_mask"] == 0, -100)
        loss = model(**enc, labels=labels).loss
        loss.backward()
        optimiser.step()
        optimiser.zero_grad()
    print(f"fine-tuned {steps} steps, last loss {loss.item():.3f}", flush=True)
    tmp = out.with_name(f".{out.name}.{os.getpid()}")
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    for extra in base.iterdir():  # the SentencePiece model and recipe the GGUF converter reads
        if not (tmp / extra.name).exists() and extra.is_file():
            shutil.copy(extra, tmp / extra.name)
    os.replace(tmp, out)
    return out


def gate_file(folder: Path, max_new_tokens: int) -> str:
    """The shipped gsm8k gate with --max-new-tokens."""
    path = ROOT / "assets" / "gates" / "gsm8k.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["generate"]["max_new_tokens"] = max_new_tokens
    out = folder / "gsm8k.toml"
    out.write_text(dumps_toml(data), encoding="utf-8")
    return str(out)


def score(subject: SubjectSpec, gate: str, out: Path, items: int, batch_size: int) -> tuple[dict, list[dict]]:
    samples = out / "samples.jsonl"
    result = run_gates([subject], [load_gate(gate)], out, files={"gsm8k": str(DATA)},
                       fewshot_files={"gsm8k": str(DATA)}, limit=items, batch_size=batch_size,
                       samples_path=samples)[0]
    return result, [json.loads(line) for line in samples.read_text().splitlines()]


def start_server(binary: str, gguf: Path, slots: int, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    from conftest import free_port

    port = free_port()
    proc = subprocess.Popen([binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
                             "-c", str(2048 * slots), "-t", str(threads), "-tb", str(threads), "--no-webui"],
                            stdout=open(log, "w"), stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=2) as r:
                if r.status == 200:
                    return proc, f"{url}/v1"
        except OSError:
            if proc.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"llama-server did not start (see {log})") from None
            time.sleep(0.3)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=64)
    parser.add_argument("--slots", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=128)
    parser.add_argument("--hidden", type=int, default=256)
    parser.add_argument("--layers", type=int, default=4)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--train-steps", type=int, default=200)
    parser.add_argument("--llama-server", default=os.environ.get("SLAYER_LLAMA_SERVER") or shutil.which("llama-server"))
    args = parser.parse_args()
    if not args.llama_server:
        raise SystemExit("no llama-server: pass --llama-server PATH (see this script's docstring to build one)")
    import torch

    torch.set_num_threads(args.threads)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    from engine.tiny.build import tiny_model_dir

    work = Path(tempfile.mkdtemp(prefix="bench-gates-generate-"))
    gate = gate_file(work, args.max_new_tokens)
    model = trained(tiny_model_dir("qwen3", 0, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                                   num_layers=args.layers), gate, args.items, args.train_steps)
    gguf = tiny_gguf(model, "f32")
    hf = SubjectSpec(name="hf", model=str(model), dtype="float32")
    hf_result, hf_samples = score(hf, gate, work / "hf", args.items, args.batch_size)
    server, url = start_server(args.llama_server, gguf, args.slots, args.threads, work / "llama-server.log")
    try:
        # with the tokenizer, prompts go as token ids: no BOS, as the hf backend encodes them (gsm8k: bos = false)
        served = SubjectSpec(name="endpoint", backend="endpoint",
                             endpoint={"url": url, "concurrency": args.slots, "tokenizer": str(model)})
        ep_result, ep_samples = score(served, gate, work / "endpoint", args.items, args.batch_size)
    finally:
        server.terminate()
        server.wait(10)
    same = [a["answers"] == b["answers"] for a, b in zip(hf_samples, ep_samples)]
    found = [bool(a["answers"]["exact_match_flexible"]) for a in hf_samples]
    summary = {
        "items": args.items, "max_new_tokens": args.max_new_tokens,
        "model": f"qwen3 hidden {args.hidden}, {args.layers} layers, {args.train_steps} fine-tuning steps",
        "slots": args.slots, "hf_batch_size": args.batch_size, "threads": args.threads,
        "hf_items_per_s": hf_result["items_per_s"], "endpoint_items_per_s": ep_result["items_per_s"],
        "speedup": round(ep_result["items_per_s"] / hf_result["items_per_s"], 2),
        "identical_extracted_answers": round(sum(same) / len(same), 4),
        "hf_items_with_a_flexible_answer": round(sum(found) / len(found), 4),
        "hf_metrics": hf_result["metrics"], "endpoint_metrics": ep_result["metrics"],
        "server_model": ep_result["fingerprint"]["server_model"],
    }
    print(json.dumps(summary, indent=1))
    print(f"load average at end: {os.getloadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
