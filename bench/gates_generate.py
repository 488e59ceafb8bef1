"""Generation gate throughput: the hf backend vs the endpoint backend on llama.cpp's llama-server, same run.

    python bench/gates_generate.py [--items 64] [--slots 4] [--max-new-tokens 128] [--hidden 256] [--layers 4]
                                   [--batch-size 8] [--llama-server PATH]

The gate is the shipped gsm8k gate (5-shot from the first five rows, greedy, stop strings, strict and flexible
answer extraction) on tests/data/gates/gsm8k.jsonl (80 GSM8K-shaped problems) with --max-new-tokens. The model
is a random tiny Qwen3 (engine.tiny, --hidden/--layers) in HF format for the hf backend (float32, batches of
--batch-size) and the same weights as an f32 GGUF for llama-server (--slots parallel slots, continuous batching,
the endpoint backend sending --slots requests at once). Both get the same threads (2). Items/s are the gate's
own (scoring time, not model loading). Agreement: the share of items whose extracted answers (strict and
flexible) are identical, and of items whose whole completion is identical.

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
from engine.jobs import dumps_toml  # noqa: E402
from llama_server import tiny_gguf  # noqa: E402

DATA = ROOT / "tests" / "data" / "gates" / "gsm8k.jsonl"


def gate_file(folder: Path, max_new_tokens: int) -> str:
    """The shipped gsm8k gate with shorter answers (a random model never writes "Question:" to stop)."""
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


def completions(subject: SubjectSpec, gate: str, items: int) -> list[str]:
    """The raw completions, for the stricter comparison (the gate keeps only extracted answers)."""
    from engine.gates.answers import completions as complete
    from engine.gates.backend import open_backend
    from engine.gates.data import load_items
    from engine.gates.scoring import ScoreSettings

    backend = open_backend(subject)
    try:
        loaded = load_items(load_gate(gate), str(DATA), items, str(DATA))
        return complete(loaded, backend, ScoreSettings(batch_size=8))
    finally:
        backend.close()


def start_server(binary: str, gguf: Path, slots: int, log: Path) -> tuple[subprocess.Popen, str]:
    from conftest import free_port

    port = free_port()
    proc = subprocess.Popen([binary, "-m", str(gguf), "--host", "127.0.0.1", "--port", str(port), "-np", str(slots),
                             "-c", str(2048 * slots), "-t", "2", "-tb", "2", "--no-webui"],
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
    parser.add_argument("--llama-server", default=os.environ.get("SLAYER_LLAMA_SERVER") or shutil.which("llama-server"))
    args = parser.parse_args()
    if not args.llama_server:
        raise SystemExit("no llama-server: pass --llama-server PATH (see this script's docstring to build one)")
    import torch

    torch.set_num_threads(2)
    print(f"load average at start: {os.getloadavg()}", flush=True)
    from engine.tiny.build import tiny_model_dir

    model = tiny_model_dir("qwen3", 0, hidden_size=args.hidden, intermediate_size=4 * args.hidden,
                           num_layers=args.layers)
    gguf = tiny_gguf(model, "f32")
    work = Path(tempfile.mkdtemp(prefix="bench-gates-generate-"))
    gate = gate_file(work, args.max_new_tokens)
    hf = SubjectSpec(name="hf", model=str(model), dtype="float32")
    hf_result, hf_samples = score(hf, gate, work / "hf", args.items, args.batch_size)
    server, url = start_server(args.llama_server, gguf, args.slots, work / "llama-server.log")
    try:
        served = SubjectSpec(name="endpoint", backend="endpoint", endpoint={"url": url, "concurrency": args.slots})
        ep_result, ep_samples = score(served, gate, work / "endpoint", args.items, args.batch_size)
        ep_texts = completions(served, gate, args.items)
    finally:
        server.terminate()
        server.wait(10)
    hf_texts = completions(hf, gate, args.items)
    same = [a["answers"] == b["answers"] for a, b in zip(hf_samples, ep_samples)]
    summary = {
        "items": args.items, "max_new_tokens": args.max_new_tokens, "model": f"qwen3 hidden {args.hidden}, "
        f"{args.layers} layers", "slots": args.slots, "hf_batch_size": args.batch_size,
        "hf_items_per_s": hf_result["items_per_s"], "endpoint_items_per_s": ep_result["items_per_s"],
        "speedup": round(ep_result["items_per_s"] / hf_result["items_per_s"], 2),
        "identical_extracted_answers": round(sum(same) / len(same), 4),
        "identical_completions": round(sum(a == b for a, b in zip(hf_texts, ep_texts)) / len(hf_texts), 4),
        "hf_metrics": hf_result["metrics"], "endpoint_metrics": ep_result["metrics"],
        "server_model": ep_result["fingerprint"]["server_model"],
    }
    print(json.dumps(summary, indent=1))
    print(f"load average at end: {os.getloadavg()}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
