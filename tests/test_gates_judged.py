"""Judged gates (style_judge, en_chat, xstest's judge classifier) against a real OpenAI-compatible server.

llama-cpp-python's server answers as a tiny random model: its verdicts are noise, so these tests check the
protocol: both orders sent, verdicts parsed or counted as unparseable, the concurrency limit, retries,
refusals, and that a killed run resumes from the on-disk cache without asking again.
"""

import json
import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.gates.judge_client import JudgeClient, JudgeError, JudgeSettings
from engine.jobs import parse_spec
from engine.runner import run_job
from engine.tiny.build import tiny_model_dir
from gate_fixtures import counted_llama_server, short_gate

DATA = Path(__file__).resolve().parents[1] / "assets" / "gates" / "data"


@pytest.fixture(scope="module")
def judge():
    with counted_llama_server(4096) as proxy:
        yield proxy


def gate_job(judge_url: str, cache: Path, gates: list[str], limit: int, **judge_settings):
    """Two tiny models (the base listed last: the harness must score it first), the judge behind the proxy."""
    settings = {"url": judge_url, "model": "tiny-judge", "cache_dir": str(cache), "max_tokens": 48,
                "structured": "json_object", "backoff_s": 0.01, **judge_settings}
    gates = [short_gate(g, cache.parent) for g in gates]
    return parse_spec({"kind": "gate", "gates": gates, "limit": limit, "batch_size": 4, "judge": settings,
                       "subjects": [{"name": "ckpt", "kind": "checkpoint", "model": str(tiny_model_dir("qwen3", 1))},
                                    {"name": "base", "kind": "base", "model": str(tiny_model_dir("qwen3", 0))}]},
                      "test")


def results(run_dir: Path) -> dict[tuple[str, str], dict]:
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    assert events[-1]["status"] == "succeeded", events[-1]
    return {(e["subject"]["name"], e["gate"]): e for e in events if e["type"] == "gate_result"}


def stored(run_dir: Path, result: dict) -> dict:
    return json.loads((run_dir / "outputs" / "results" / result["subject"]["id"] / f"gate_{result['gate']}.json")
                      .read_text())


def answers_of(body: dict) -> tuple[str, str]:
    text = body["messages"][-1]["content"]
    a = re.search(r"\[Answer A\]\n(.*)\n\[End of answer A\]", text, re.S).group(1)
    b = re.search(r"\[Answer B\]\n(.*)\n\[End of answer B\]", text, re.S).group(1)
    return a, b


def test_judged_gates_end_to_end(judge, tmp_path):
    judge.reset(delay_s=0.05)
    run = tmp_path / "run"
    assert run_job(gate_job(judge.url, tmp_path / "cache", ["style_judge", "en_chat", "xstest"], 4, concurrency=2),
                   run) == "succeeded"
    got = results(run)
    assert list(got)[:3] == [("base", "style_judge"), ("base", "en_chat"), ("base", "xstest")]  # base first
    assert len(judge.keys) == 4 * 2 + 4 * 2 + 2 * 4  # two orders per item for each pairwise gate; xstest: 1 each
    assert 1 < judge.max_in_flight <= 2
    for gate in ("style_judge", "en_chat"):
        base, ckpt = got[("base", gate)], got[("ckpt", gate)]
        assert base["metrics"]["win_rate"] == 0.5 and base["outcomes"] == [0.5] * 4  # self-comparison: no calls
        assert base["fingerprint"] == ckpt["fingerprint"]  # comparable in a delta table
        assert ckpt["fingerprint"]["versus"] == base["subject"]["id"]
        assert ckpt["fingerprint"]["judge_model"] == "tiny-judge" and ckpt["fingerprint"]["judge_prompt_hash"]
        info = stored(run, ckpt)["stats"]
        assert info["unparseable"] == 0 and info["judge_requests"] == 8
        assert sum(info["verdicts"]["subject_as_A"].values()) == sum(info["verdicts"]["subject_as_B"].values()) == 4
        assert all(0 <= o <= 1 for o in ckpt["outcomes"]) and ckpt["n"] == 4
    style = [b for b in judge.bodies if "natural Polish" in b["messages"][-1]["content"]]
    assert len(style) == 8
    by_question: dict[str, list[tuple[str, str]]] = {}
    for body in style:
        question = body["messages"][-1]["content"].split("\n\n[Answer A]")[0]
        by_question.setdefault(question, []).append(answers_of(body))
    assert len(by_question) == 4
    for pair in by_question.values():  # the same two answers, once in each order
        assert sorted(pair) == sorted([pair[0], pair[0][::-1]])
    safety = got[("ckpt", "xstest")]
    assert safety["fingerprint"]["classifier"] == "judge" and safety["fingerprint"]["judge_model"] == "tiny-judge"
    assert safety["metrics"]["unparseable_rate"] == 0.0
    written = (run / "events.jsonl").read_text() + "".join(p.read_text() for p in (run / "outputs").rglob("*.json"))
    files = ("prompts_pl.jsonl", "en_chat_prompts.jsonl", "xstest_prompts.jsonl")
    prompts = [r.get("prompt") or r["instruction"] for f in files for r in read_rows(DATA / f)]
    assert not [p for p in prompts if p in written]  # no item text in results


def test_unparseable_replies_are_counted_not_fatal(judge, tmp_path):
    # Every other reply of the real server is rewritten to prose without a verdict, the rest to a tie.
    judge.reset(rewrite=lambda n: "Both answers have merit." if n % 2 else '{"verdict": "tie"}')
    run = tmp_path / "run"
    assert run_job(gate_job(judge.url, tmp_path / "cache", ["style_judge"], 3, structured="off"), run) == "succeeded"
    ckpt = results(run)[("ckpt", "style_judge")]
    assert stored(run, ckpt)["stats"]["unparseable"] == 3
    assert ckpt["metrics"]["unparseable_rate"] == pytest.approx(3 / 6)
    assert len(judge.keys) == 6


def test_retries_transient_errors_and_refuses_in_one_line(judge, tmp_path):
    settings = JudgeSettings(url=judge.url, model="tiny-judge", cache_dir=str(tmp_path / "c"), max_tokens=8,
                             backoff_s=0.01, retries=2)
    body = lambda text: JudgeClient(settings).body([{"role": "user", "content": text}])  # noqa: E731
    judge.reset(fail_first=2, fail_code=503)
    client = JudgeClient(settings)
    assert isinstance(client.complete_all([body("one")])[0], str)
    assert client.counts == {"requests": 1, "cache_hits": 0, "calls": 1, "retries": 2}
    judge.reset(fail_first=3, fail_code=502)
    with pytest.raises(JudgeError, match="no reply after 3 tries; last: HTTP 502"):
        JudgeClient(settings).complete_all([body("two")])
    judge.reset(fail_first=1, fail_code=401)
    with pytest.raises(SpecError, match="the judge refused the request: HTTP 401"):
        JudgeClient(settings).complete_all([body("three")])
    judge.reset()
    again = JudgeClient(settings)
    again.complete_all([body("one")])
    assert again.counts["cache_hits"] == 1 and judge.keys == []  # answered from the cache


def test_killed_run_resumes_without_repeating_finished_calls(judge, tmp_path):
    judge.reset(delay_s=0.3)
    cache = tmp_path / "cache"
    spec = gate_job(judge.url, cache, ["style_judge"], 4, concurrency=1)
    job = tmp_path / "job.toml"
    job.write_text(spec.to_toml(), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(job), "--run-dir", str(tmp_path / "first")],
                            cwd=Path(__file__).resolve().parents[1])
    deadline = time.time() + 240
    while len(list(cache.rglob("*.json"))) < 3 and time.time() < deadline and proc.poll() is None:
        time.sleep(0.05)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    finished = {p.stem for p in cache.rglob("*.json")}
    assert 3 <= len(finished) < 8
    judge.wait_idle()
    judge.reset()
    second = tmp_path / "second"
    assert run_job(spec, second) == "succeeded"
    assert not set(judge.keys) & finished  # nothing that had come back was asked again
    assert len(judge.keys) == 8 - len(finished)
    info = stored(second, results(second)[("ckpt", "style_judge")])["stats"]
    assert info["judge_cache_hits"] == len(finished) and info["judge_calls"] == 8 - len(finished)
