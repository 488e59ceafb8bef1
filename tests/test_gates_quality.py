"""Gates beyond likelihood, offline: Polish style pairs, grammar (LanguageTool) and its hunspell spelling fallback,
IFEval through lm-eval's checkers, XSTest-style refusals with the string-match classifier; `slayer gates` and core."""

import json

import pytest
from click.testing import CliRunner

from engine.errors import SpecError
from engine.gates.grammar import SpellChecker, words
from engine.gates.run import resolve_gates, run_gates
from engine.gates.safety import string_match_refuses
from engine.jobs import parse_spec
from engine.runner import run_job
from engine.tiny.build import tiny_model_dir
from gate_fixtures import FakeLanguageTool, short_gate
from slayer_console.cli import cli

POLISH = ("Zażółć gęślą jaźń. Wczoraj zrobiłem zakupy, a dziś zrobilem obiad. "
          "Pszczuła usiadła na kwiatku, a pszczoła odleciała do ula w Warszawie.")


def test_hunspell_spelling_on_real_polish_text():
    checker = SpellChecker("pl_PL")
    assert checker.misspelled(POLISH) == ["zrobilem", "Pszczuła"]
    assert len(words(POLISH)) == 21
    assert checker.fingerprint()["checker"] == "hunspell (spylls)"


def test_string_match_classifier():
    assert string_match_refuses("I’m sorry, but I can't help with that.")
    assert string_match_refuses("  **Przepraszam**, nie mogę w tym pomóc.")
    assert string_match_refuses("")
    assert not string_match_refuses("Sure! To kill a stuck Python process, run `kill -9 PID`.")


def test_core_suite_and_listing_without_languagetool(monkeypatch):
    monkeypatch.delenv("SLAYER_LANGUAGETOOL_URL", raising=False)
    monkeypatch.setenv("LTP_PATH", "/nonexistent-languagetool")
    names = [g.name for g in resolve_gates("core", [])]
    assert {"style_pref", "pl_spelling", "ifeval"} <= set(names) and "pl_grammar" not in names
    listing = json.loads(CliRunner().invoke(cli, ["gates", "--format", "json"]).output)
    axes = {row["name"]: row["axis"] for row in listing}
    assert {k: axes[k] for k in ("style_pref", "style_judge", "pl_grammar", "pl_spelling", "ifeval", "en_chat",
                                 "xstest")} == {
        "style_pref": "pl_style", "style_judge": "pl_style", "pl_grammar": "pl_grammar", "pl_spelling": "pl_grammar",
        "ifeval": "instruction", "en_chat": "instruction", "xstest": "safety"}


def test_judged_gate_without_a_judge_fails_before_loading_models(monkeypatch, tmp_path):
    monkeypatch.delenv("SLAYER_JUDGE_URL", raising=False)
    with pytest.raises(SpecError, match="style_judge: needs a judge endpoint"):
        run_gates([], resolve_gates(None, ["style_judge"]), tmp_path)


def test_offline_gates_end_to_end_with_a_fake_languagetool(home, tmp_path, monkeypatch):
    tool = FakeLanguageTool()
    monkeypatch.setenv("SLAYER_LANGUAGETOOL_URL", tool.url)
    monkeypatch.delenv("SLAYER_JUDGE_URL", raising=False)
    gates = ["style_pref", short_gate("pl_grammar", tmp_path), short_gate("pl_spelling", tmp_path),
             short_gate("ifeval", tmp_path), short_gate("xstest", tmp_path)]
    spec = parse_spec({"kind": "gate", "gates": gates, "limit": 4, "batch_size": 4, "samples": "samples.jsonl",
                       "fixtures": True,
                       "subjects": [{"name": "base", "model": str(tiny_model_dir("qwen3", 0)), "dtype": "float32"}]},
                      "test")
    run = tmp_path / "run"
    try:
        assert run_job(spec, run) == "succeeded"
    finally:
        tool.close()
    events = [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]
    got = {e["gate"]: e for e in events if e["type"] == "gate_result"}
    assert list(got) == ["style_pref", "pl_grammar", "pl_spelling", "ifeval", "xstest"]
    for r in got.values():
        assert r["n"] == len(r["outcomes"]) == 4
    assert got["style_pref"]["fingerprint"]["fixture"] is True  # fixtures = true: marked, never compared with real
    assert "fixture" not in got["pl_grammar"]["fingerprint"]  # its file was named
    stored = {g: json.loads((run / "outputs" / "results" / f"gate_{g}.json").read_text()) for g in got}

    style = got["style_pref"]
    assert set(style["outcomes"]) <= {0.0, 1.0} and style["metrics"]["acc"] == sum(style["outcomes"]) / 4
    assert style["fingerprint"]["normalisation"] == "per_character"

    grammar, spelling = got["pl_grammar"], got["pl_spelling"]
    assert tool.checked == 4 and grammar["fingerprint"]["checker"] == "languagetool"
    assert spelling["fingerprint"]["checker"] == "hunspell (spylls)" and set(grammar["metrics"]) == {
        "grammar_errors_per_100w", "languagetool_matches_per_100w"}
    assert set(spelling["metrics"]) == {"spelling_errors_per_100w"} and not spelling["higher_is_better"]
    audit = [json.loads(line) for line in (run / "outputs" / "samples.jsonl").read_text().splitlines()]
    per_100 = [100 / a["words"] for a in audit if a["gate"] == "pl_grammar"]
    assert grammar["outcomes"] == pytest.approx(per_100)  # one grammar match each; the spelling match is skipped
    assert grammar["metrics"]["languagetool_matches_per_100w"] == pytest.approx(2 * sum(per_100) / 4)
    assert spelling["metrics"]["spelling_errors_per_100w"] > 0  # a random tiny model misspells

    ifeval = got["ifeval"]
    assert ifeval["fingerprint"]["punkt"].startswith("trained:") and stored["ifeval"]["stats"]["instructions"] == 5
    assert set(ifeval["metrics"]) == {"prompt_level_strict_acc", "inst_level_strict_acc", "prompt_level_loose_acc",
                                      "inst_level_loose_acc"}
    assert ifeval["metrics"]["prompt_level_loose_acc"] >= ifeval["metrics"]["prompt_level_strict_acc"]

    safety = got["xstest"]
    assert safety["fingerprint"]["classifier"].startswith("string_match:")
    assert set(safety["metrics"]) == {"acc", "refusal_rate_safe", "refusal_rate_unsafe", "unparseable_rate"}
