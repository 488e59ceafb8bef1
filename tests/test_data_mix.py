"""data.replay (self-replay on a tiny model, licensed sources, the synthetic refusal) and data.mix (ratios,
report, determinism), also as jobs through the runner with their report artifacts."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from engine.data.sources import SKILLS
from engine.errors import SpecError
from engine.jobs import parse_spec
from engine.runner import run_job
from test_data_klej import DATA, lines, run_cli

PSC_TEST = f"polish_psc={DATA / 'psc_test.jsonl'}"
PASSAGE_ROW = json.loads((DATA / "psc_test.jsonl").read_text(encoding="utf-8").splitlines()[0])


def write_jsonl(path: Path, rows: list[dict]) -> str:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.fixture
def files(tmp_path) -> dict[str, str]:
    """Style data, a human set (one row leaks a psc test passage), a GPT-4-derived set, self-replay prompts."""
    style = [{"messages": [{"role": "user", "content": f"Napisz zdanie numer {i} o Krakowie."},
                           {"role": "assistant", "content": f"Kraków jest piękny po raz {i}. " * 3}]}
             for i in range(60)]
    human = [{"instruction": f"Policz {i} plus {i}.", "response": f"Wynik to {2 * i}.", "skill": "math"}
             for i in range(20)]
    human += [{"prompt": f"Say hello number {i} in English.", "response": f"Hello {i}!"} for i in range(20)]
    human.append({"prompt": "Streść: " + PASSAGE_ROW["extract_text"], "response": "Krótko.", "skill": "summarisation"})
    prompts = [{"prompt": f"Napisz funkcję numer {i} w Pythonie.", "skill": "code"} for i in range(4)]
    return {"style": write_jsonl(tmp_path / "style.jsonl", style),
            "human": write_jsonl(tmp_path / "human.jsonl", human),
            "gpt4": write_jsonl(tmp_path / "gpt4.jsonl", human[:5]),
            "prompts": write_jsonl(tmp_path / "prompts.jsonl", prompts), "dir": str(tmp_path)}


def replay_config(files, **extra) -> dict:
    quotas = {s: 0 for s in SKILLS} | {"math": 10, "chat": 10, "summarisation": 5, "code": 3}
    return {"kind": "data.replay", "quotas": quotas, "seed": 1, "guard_against": [PSC_TEST],
            "sources": [{"name": "human-pl", "file": files["human"], "licence": "CC-BY-4.0",
                         "provenance": "written by the team", "skill": "chat"}], **extra}


def test_replay_fills_skill_quotas_guards_and_records_sources(files, tmp_path):
    from engine.tiny.build import tiny_model_dir

    # A tiny random base never stops by itself: keep its cut answers (test_data_replay covers dropping them).
    self_replay = {"model": str(tiny_model_dir("qwen3")), "prompts": files["prompts"], "licence": "apache-2.0",
                   "max_new_tokens": 6, "batch_size": 4, "drop_unfinished": False}
    config = parse_spec(replay_config(files, self_replay=self_replay), "test").config
    from engine.data.replay import build_replay

    report = build_replay(config, tmp_path / "replay.jsonl", tmp_path / "replay_report.json")
    rows = lines(tmp_path / "replay.jsonl")
    by_skill = {s: sum(r["source"]["skill"] == s for r in rows) for s in SKILLS}
    assert by_skill["math"] == 10 and by_skill["chat"] == 10 and by_skill["code"] == 3
    assert by_skill["summarisation"] == 0 and report["skills"]["summarisation"]["shortfall"] == 5  # the leak went
    assert report["guard"]["gates"][0]["overlap"] == 1
    code = [r for r in rows if r["source"]["skill"] == "code"]
    assert all(r["source"]["name"] == "self-replay" and r["messages"][1]["content"] for r in code)
    sources = {s["name"]: s for s in report["sources"]}
    assert sources["human-pl"]["licence"] == "CC-BY-4.0" and sources["human-pl"]["used"] == 20
    assert sources["self-replay"]["licence"] == "apache-2.0" and "greedy, hf backend" in sources["self-replay"][
        "provenance"]
    assert report["synthetic_override"] == {"allowed": False, "used_by": []}


def test_synthetic_sources_are_refused_unless_overridden_and_then_recorded(files, tmp_path):
    from engine.data.replay import build_replay

    gpt = {"name": "alpaca-gpt4-pl", "file": files["gpt4"], "licence": "CC-BY-NC-4.0",
           "provenance": "translated", "skill": "instruction"}
    spec = replay_config(files)
    spec["sources"].append(gpt)
    with pytest.raises(SpecError, match=r"gpt4.jsonl: source 'alpaca-gpt4-pl' looks derived from OpenAI/Anthropic"):
        build_replay(parse_spec(spec, "test").config, tmp_path / "r.jsonl", tmp_path / "r.json")
    assert not (tmp_path / "r.jsonl").exists()
    spec["allow_synthetic_override"] = True
    report = build_replay(parse_spec(spec, "test").config, tmp_path / "r.jsonl", tmp_path / "r.json")
    assert report["synthetic_override"] == {"allowed": True, "used_by": ["alpaca-gpt4-pl"]}
    assert json.loads((tmp_path / "r.json").read_text())["synthetic_override"]["used_by"] == ["alpaca-gpt4-pl"]


def test_own_sources_must_declare_licence_and_provenance(files, tmp_path):
    from engine.data.replay import build_replay

    spec = replay_config(files)
    del spec["sources"][0]["licence"]
    with pytest.raises(SpecError, match=r"human.jsonl: source 'human-pl': a set of your own needs `licence`"):
        build_replay(parse_spec(spec, "test").config, tmp_path / "r.jsonl", tmp_path / "r.json")


@pytest.fixture
def inputs(files, tmp_path) -> dict[str, str]:
    """A replay file (from data.replay) and a KLEJ file (from data.klej) next to the style data."""
    from engine.data.klej import KlejConfig, KlejTask, build_klej
    from engine.data.replay import build_replay

    build_replay(parse_spec(replay_config(files), "test").config, tmp_path / "replay.jsonl", tmp_path / "rr.json")
    build_klej(KlejConfig(tasks={"psc": KlejTask(train=str(DATA / "psc_train.csv"),
                                                 test=str(DATA / "psc_test.jsonl")),
                                 "8tags": KlejTask(train=str(DATA / "8tags_train.parquet"),
                                                   test=str(DATA / "8tags_test.parquet"))}, per_task=16),
               tmp_path / "klej.jsonl", tmp_path / "kr.json")
    return {**files, "replay": str(tmp_path / "replay.jsonl"), "klej": str(tmp_path / "klej.jsonl")}


def mix_args(inputs, out: Path, *extra) -> list[str]:
    return ["data", "mix", "--style", inputs["style"], "--replay", inputs["replay"], "--klej", inputs["klej"],
            "--out", str(out), "--report", str(out.with_suffix(".json")), "--guard-against", PSC_TEST, "--quiet",
            *extra]


def test_mix_ratios_report_and_same_bytes_for_the_same_seed(inputs, tmp_path, capsys):
    out = tmp_path / "train_v2_mix.jsonl"
    code, stdout, err = run_cli(mix_args(inputs, out), capsys)
    assert code == 0, err
    report = json.loads(out.with_suffix(".json").read_text())
    rows = lines(out)
    kinds = {k: sum(r["source"]["kind"] == k for r in rows) for k in ("style", "replay", "klej")}
    # 60 style; KLEJ capped at 15 %: T = 60 / (1 - 0.2 - 0.15) = 92.3 → 13 KLEJ, round(0.2 T) = 18 replay
    assert kinds == {"style": 60, "replay": 18, "klej": 13}
    assert report["by_source"]["replay"]["examples"] == 18 and report["ratios"]["klej"] <= 0.15
    assert 0.19 <= report["ratios"]["replay"] <= 0.21
    assert report["total"]["tokens"] == sum(len(m["content"].split()) for r in rows for m in r["messages"])
    assert sum(v["examples"] for v in report["by_class"].values()) == 13
    assert set(report["by_task"]) == {"psc", "8tags"} and set(report["by_skill"]) <= set(SKILLS)
    markdown = out.with_suffix(".md").read_text()
    assert "| source | examples | share | tokens | token share |" in markdown and "polish_psc: 0 overlap" in markdown
    again = tmp_path / "again.jsonl"
    assert run_cli(mix_args(inputs, again), capsys)[0] == 0
    assert again.read_bytes() == out.read_bytes()
    other = tmp_path / "other.jsonl"
    assert run_cli(mix_args(inputs, other, "--seed", "5"), capsys)[0] == 0
    assert other.read_bytes() != out.read_bytes()


def test_mix_refuses_too_little_replay_and_writes_nothing(inputs, tmp_path, capsys):
    out = tmp_path / "mix.jsonl"
    code, _, err = run_cli(mix_args(inputs, out, "--replay-share", "0.45"), capsys)
    assert code == 2 and "a 45% replay share of this mix needs" in err and err.count("\n") == 1
    assert not out.exists() and not out.with_suffix(".json").exists()


def test_mix_job_emits_data_and_guard_report_artifacts(inputs, tmp_path):
    spec = parse_spec({"kind": "data.mix", "style": inputs["style"], "replay": inputs["replay"],
                       "klej": inputs["klej"], "guard_against": [PSC_TEST]}, "test")
    assert run_job(spec, tmp_path / "run") == "succeeded"
    events = [json.loads(line) for line in (tmp_path / "run" / "events.jsonl").read_text().splitlines()]
    artifacts = {e["kind"]: e["path"] for e in events if e["type"] == "artifact"}
    assert artifacts["data"] == "outputs/train_v2_mix.jsonl"
    assert artifacts["data_report"] == "outputs/mix_report.json"
    assert artifacts["guard_report"] == "outputs/mix_report_guard.json"
    guard = json.loads((tmp_path / "run" / artifacts["guard_report"]).read_text())
    assert guard["summary"][0].startswith("polish_psc: 0 overlap")


def test_cli_replay_runs_a_spec_and_refuses_other_kinds(files, tmp_path, capsys):
    from engine.jobs import dumps_toml

    spec = tmp_path / "replay.toml"
    spec.write_text(dumps_toml(replay_config(files)), encoding="utf-8")
    out = tmp_path / "replay.jsonl"
    code, stdout, err = run_cli(["data", "replay", str(spec), "--out", str(out), "--quiet"], capsys)
    assert code == 0, err
    assert len(lines(out)) == 20 and "human-pl" in stdout and "CC-BY-4.0" in stdout
    assert json.loads((tmp_path / "replay_report.json").read_text())["guard"]["gates"][0]["overlap"] == 1
    other = tmp_path / "mix.toml"
    other.write_text('kind = "data.mix"\nstyle = "s.jsonl"\nreplay = "r.jsonl"\n', encoding="utf-8")
    code, _, err = run_cli(["data", "replay", str(other), "--out", str(out)], capsys)
    assert code == 2 and "expected 'data.replay'" in err
