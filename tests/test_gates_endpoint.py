"""The endpoint backend against a real llama.cpp server on loopback (llama-cpp-python's, serving the tiny model
as GGUF): the same answers as the in-process llama_cpp backend on the same file, requests in flight at once,
the server in the fingerprint, chats through the server's template, and a one-line refusal of likelihood gates
(llama.cpp's servers echo no prompt log-probabilities, or misaligned ones). The likelihood path itself is checked
against a loopback server that echoes them as vLLM does, computed by the in-process backend."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from engine.gates import run_gates
from engine.gates.backend import SubjectSpec
from engine.gates.endpoint import EndpointSettings, complete_chats
from engine.gates.run import resolve_gates
from engine.gates.spec import GATES_DIR
from engine.jobs import parse_spec
from engine.runner import run_job
from gate_fixtures import Quiet, counted_llama_server, send, serve, short_gate
from llama_server import tiny_gguf

DATA = Path(__file__).parent / "data" / "gates"
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def server():
    with counted_llama_server(2048) as proxy:
        yield proxy


def scored(tmp_path, subject: SubjectSpec, gate: str, file: str, limit: int,
           chat_template: bool | None = None) -> tuple[dict, list[dict]]:
    out = tmp_path / subject.name
    result = run_gates([subject], resolve_gates(None, [gate], chat_template), out, files={gate: file}, limit=limit,
                       batch_size=4, samples_path=out / "samples.jsonl")[0]
    return result, [json.loads(line) for line in (out / "samples.jsonl").read_text().splitlines()]


def test_same_answers_as_the_gguf_in_process(server, tmp_path):
    server.reset(delay_s=0.05)
    served = SubjectSpec(name="served", backend="endpoint", endpoint={"url": server.url, "concurrency": 3})
    local = SubjectSpec(name="local", backend="llama_cpp", file=str(tiny_gguf()))
    result, answers_served = scored(tmp_path, served, "polish_belebele_regex", str(DATA / "belebele.jsonl"), 6)
    _, answers_local = scored(tmp_path, local, "polish_belebele_regex", str(DATA / "belebele.jsonl"), 6)
    assert [a["answers"] for a in answers_served] == [a["answers"] for a in answers_local]
    assert server.max_in_flight == 3  # the server got the items concurrently
    assert result["fingerprint"]["backend"] == "endpoint"
    assert result["fingerprint"]["server_model"] == str(tiny_gguf())  # llama-cpp-python names it by its path


class EchoingServer:
    """/v1/completions with `echo` as vLLM answers it: every prompt token with its log-probability (the first
    None) and its character offset, then the generated token; computed by the in-process llama_cpp backend on the
    tiny GGUF (offsets from the HF tokenizer, which tokenises identically)."""

    def __init__(self):
        from transformers import AutoTokenizer

        from engine.gates.gguf_backend import LlamaCppBackend, log_softmax
        from engine.tiny.build import tiny_model_dir

        backend, lock = LlamaCppBackend(str(tiny_gguf()), "cpu"), threading.Lock()
        hf = AutoTokenizer.from_pretrained(tiny_model_dir("qwen3", 0))

        def reply(body: dict) -> dict:
            prompt = body["prompt"]
            with lock:
                ids = backend.encode(prompt, False)
                backend.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
                logp = log_softmax(backend._decode(ids, 0, True))
                following = int(logp[-1].argmax())
                tokens = [backend.llm.detokenize([t]).decode("utf-8", "ignore") for t in ids + [following]]
            enc = hf(prompt, add_special_tokens=False, return_offsets_mapping=True)
            assert enc["input_ids"] == ids
            values = [None] + [float(logp[i - 1, t]) for i, t in enumerate(ids) if i] + [float(logp[-1, following])]
            offsets = [start for start, _ in enc["offset_mapping"]] + [len(prompt)]
            return {"choices": [{"text": prompt + tokens[-1], "finish_reason": "length",
                                 "logprobs": {"tokens": tokens, "token_logprobs": values, "text_offset": offsets}}],
                    "usage": {"prompt_tokens": len(ids), "completion_tokens": 1}}

        class Handler(Quiet):
            def do_GET(self):
                send(self, 200, json.dumps({"data": [{"id": "tiny-echo", "owned_by": "test"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                send(self, 200, json.dumps(reply(body)).encode())

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


@pytest.mark.parametrize("gate, file, limit, choices", [
    ("polish_8tags", DATA / "8tags.jsonl", 4, 32),  # multi-token choices
    ("style_pref", GATES_DIR / "data" / "style_pairs_pl.jsonl", 3, 6),  # whole Polish sentences: ą, ł, ż, …
])
def test_likelihoods_from_echoed_prompt_logprobs_match_the_gguf_in_process(tmp_path, gate, file, limit, choices):
    pytest.importorskip("llama_cpp")
    echoing = EchoingServer()
    try:
        served = SubjectSpec(name="served", backend="endpoint", endpoint={"url": echoing.url, "concurrency": 2})
        result, lls_served = scored(tmp_path, served, gate, str(file), limit, chat_template=False)
    finally:
        echoing.server.shutdown()
    local = SubjectSpec(name="local", backend="llama_cpp", file=str(tiny_gguf()))
    _, lls_local = scored(tmp_path, local, gate, str(file), limit, chat_template=False)
    pairs = [(x, y) for s, t in zip(lls_served, lls_local) for x, y in zip(s["loglikelihoods"], t["loglikelihoods"])]
    assert len(pairs) == choices and max(abs(x - y) for x, y in pairs) < 1e-4
    assert result["fingerprint"]["server_model"] == "tiny-echo"


def test_chat_gates_go_through_the_servers_template_and_the_python_api(server, tmp_path):
    server.reset()
    settings = EndpointSettings(url=server.url, concurrency=2)
    done = complete_chats(settings, [[{"role": "user", "content": "Cześć!"}], [{"role": "user", "content": "Hi"}]],
                          max_tokens=3)
    assert [c.finish_reason for c in done] == ["length", "length"] and all(c.prompt_tokens > 0 for c in done)
    spec = parse_spec({"kind": "gate", "gates": [short_gate("xstest", tmp_path, 8)], "limit": 4,
                       "subjects": [{"name": "served", "backend": "endpoint", "endpoint": {"url": server.url}}]},
                      "test")
    server.reset()
    assert run_job(spec, tmp_path / "run") == "succeeded"
    assert len(server.bodies) == 4
    assert all(b["messages"][-1]["role"] == "user" and b["max_tokens"] == 8 for b in server.bodies)


def test_llama_cpp_servers_are_refused_for_likelihood_gates_in_one_line(server, tmp_path):
    spec = parse_spec({"kind": "gate", "gates": ["polish_psc"], "files": {"polish_psc": str(DATA / "psc.jsonl")},
                       "limit": 2, "subjects": [{"name": "s", "backend": "endpoint", "endpoint": {"url": server.url}}]},
                      "test")
    assert run_job(spec, tmp_path / "run") == "failed"
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    error = events[-1]["error"]
    assert "does not return prompt log-probabilities" in error and "do not line up" in error and "\n" not in error
    assert not (tmp_path / "run" / "outputs" / "results").exists()
    argv = ["slayer", "gate", "run", "--backend", "endpoint", "--url", server.url, "--model", str(tiny_gguf()),
            "--gate", f"polish_psc={DATA / 'psc.jsonl'}", "--out", str(tmp_path / "cli")]
    cli = subprocess.run([sys.executable, "-c", f"import sys; sys.argv = {argv!r}; from slayer_console.cli import "
                          "main; main()"], capture_output=True, text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert cli.returncode == 2 and len(cli.stderr.strip().splitlines()) == 1 and "do not line up" in cli.stderr
    assert not (tmp_path / "cli").exists()
