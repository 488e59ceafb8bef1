"""A real OpenAI-compatible endpoint for tests: llama-cpp-python's server on 127.0.0.1 serving the tiny Qwen3
converted to GGUF (its replies are noise; the protocol is real). Shared by the teacher and judge tests."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

from conftest import free_port


def tiny_gguf(model: Path | None = None, outtype: str = "f16") -> Path:
    """A tiny model (default: the tiny Qwen3 of engine.tiny) as a GGUF, converted once with llama.cpp's converter
    and cached beside it."""
    from engine.export.converter import HF_SCRIPT, converter_dir, run_converter
    from engine.tiny.build import tiny_model_dir

    model = model or tiny_model_dir(arch="qwen3", seed=0)
    gguf = model.with_name(f"{model.name}.gguf" if outtype == "f16" else f"{model.name}-{outtype}.gguf")
    if not gguf.is_file():
        tmp = gguf.with_name(f".{gguf.name}.{os.getpid()}.tmp")
        run_converter(converter_dir(None), HF_SCRIPT, [str(model), "--outfile", str(tmp), "--outtype", outtype],
                      gguf.with_suffix(".log"))
        os.replace(tmp, gguf)
    return gguf


@contextmanager
def llama_server(gguf: Path | None = None, n_ctx: int = 2048, binary: str | None = None, parallel: int = 1,
                 threads: int = 1):
    """Start `python -m llama_cpp.server` on a free loopback port; yields the API base URL (…/v1). With `binary`,
    llama.cpp's own `llama-server` instead, with `parallel` slots of n_ctx tokens each (continuous batching) on
    `threads` threads (its spinning threads crawl on a loaded box: 2 threads on a busy 2-core VM ran 100× slower)."""
    port = free_port()
    log = open(Path(os.environ.get("TMPDIR", "/tmp")) / f"llama_server_{port}.log", "w")
    where = ["--host", "127.0.0.1", "--port", str(port)]
    if binary:
        command = [binary, "-m", str(gguf or tiny_gguf()), *where, "-c", str(n_ctx * parallel), "--parallel",
                   str(parallel), "--cont-batching", "--jinja", "-t", str(threads), "-tb", str(threads)]
    else:
        command = [sys.executable, "-m", "llama_cpp.server", "--model", str(gguf or tiny_gguf()), *where,
                   "--n_ctx", str(n_ctx)]
    proc = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(f"{url}/models", timeout=2) as r:
                    if json.loads(r.read())["data"]:
                        break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"llama_cpp.server did not start (see {log.name})") from None
                time.sleep(0.3)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(10)
        except subprocess.TimeoutExpired:
            proc.kill()
        log.close()
