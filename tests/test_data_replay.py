"""data.replay's shipped grid, open-set loaders, content provenance, self-replay through hf and an endpoint,
coverage per gated axis (replay and mix), and bad input."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest

from engine.data.sources import GRID, LANGUAGES, SKILLS
from engine.errors import SpecError
from engine.jobs import dumps_toml, parse_spec
from gate_fixtures import Quiet, send, serve
from test_data_klej import DATA, lines, run_cli
from test_data_mix import PASSAGE_ROW, PSC_TEST, write_jsonl

TELL = "As an AI language model, I cannot have favourite colours."


@pytest.fixture
def open_files(tmp_path) -> dict[str, str]:
    """Local files shaped like Aya, Dolly-15k, OASST and OpenMathInstruct-2 on the hub."""
    aya = [{"inputs": f"Wie heißt die Hauptstadt von Land {i}?", "targets": f"Sie heißt Stadt {i}.",
            "language": "German", "language_code": "deu", "annotation_type": "original-annotations",
            "user_id": "u"} for i in range(4)]
    aya += [{"inputs": "Jaki jest twój ulubiony kolor?", "targets": "Niebieski.", "language": "Polish",
             "language_code": "pol", "annotation_type": "original-annotations", "user_id": "u"},
            {"inputs": "Яке твоє улюблене місто?", "targets": "Львів.", "language": "Ukrainian",
             "language_code": "ukr", "annotation_type": "original-annotations", "user_id": "u"},
            {"inputs": "What is your favourite colour?", "targets": TELL, "language": "English",
             "language_code": "eng", "annotation_type": "original-annotations", "user_id": "u"}]
    categories = ["open_qa", "general_qa", "classification", "brainstorming", "information_extraction",
                  "creative_writing", "summarization"]
    dolly = [{"instruction": f"Name a {c} thing number {i}.", "context": "", "response": f"Thing {i}.",
              "category": c} for i, c in enumerate(categories)]
    dolly.append({"instruction": "Summarise the passage.", "context": PASSAGE_ROW["extract_text"],
                  "response": "Short.", "category": "closed_qa"})  # a psc test passage: the guard drops it

    def msg(mid, parent, role, text, tree, lang="en", rank=None, **extra):
        return {"message_id": mid, "parent_id": parent, "role": role, "text": text, "message_tree_id": tree,
                "lang": lang, "rank": rank, "deleted": False, "review_result": True, "synthetic": False, **extra}

    oasst = [msg("a", None, "prompter", "How do tides work?", "t1"),
             msg("a1", "a", "assistant", "Second-best answer about tides.", "t1", rank=1),
             msg("a2", "a", "assistant", "The Moon's gravity pulls the oceans.", "t1", rank=0),
             msg("a3", "a", "assistant", "A deleted answer.", "t1", rank=2, deleted=True),
             msg("a21", "a2", "prompter", "And why two tides a day?", "t1"),
             msg("a211", "a21", "assistant", "The Earth rotates through two bulges.", "t1"),
             msg("b", None, "prompter", "Wie backe ich Brot?", "t2", lang="de"),
             msg("b1", "b", "assistant", "Mehl, Wasser, Salz und Hefe mischen.", "t2", lang="de"),
             msg("c", None, "prompter", "Jak upiec chleb?", "t3", lang="pl"),
             msg("c1", "c", "assistant", "Wymieszaj mąkę i wodę.", "t3", lang="pl")]
    math = [{"problem": f"What is {i} + {i}?", "generated_solution": f"{i} + {i} = \\boxed{{{2 * i}}}",
             "expected_answer": str(2 * i), "problem_source": "augmented_gsm8k"} for i in range(5)]
    math.append(dict(math[0], generated_solution="Another solution of the same problem."))
    return {name: write_jsonl(tmp_path / f"{name}.jsonl", rows)
            for name, rows in (("aya", aya), ("dolly", dolly), ("oasst", oasst), ("openmath", math))}


def open_sources(files) -> list[dict]:
    return [{"name": name, "file": path} for name, path in files.items()]


def test_shipped_grid_follows_the_plan_and_overlaps_no_shipped_gate():
    from engine.data.against import build_index, plan
    from engine.data.replay import shipped_prompts
    from engine.datafiles import read_rows
    from engine.gates.spec import GATES_DIR, load_gate, suites

    rows = read_rows(shipped_prompts())
    assert Counter(r["skill"] for r in rows) == Counter(GRID)
    assert len({r["prompt"] for r in rows}) == len(rows) == len({r["id"] for r in rows})
    assert {r["difficulty"] for r in rows} == {"easy", "medium", "hard"}
    assert {r["length"] for r in rows} == {"short", "medium", "long"}
    assert Counter(r["language"] for r in rows if r["skill"] == "multilingual") == {lang: 10 for lang in LANGUAGES}
    assert all(r["domain"] and len(r["prompt"].split()) >= 4 for r in rows)
    # The grid alone anchors every general axis the shipped suites gate (a new axis needs a skill mapped to it).
    from engine.data.coverage import coverage

    assert coverage(Counter(r["skill"] for r in rows), ["extended"])["unanchored"] == []
    # Every shipped gate whose test data is here: its shipped fixture, or the tests' local copy of its hub split.
    local = {"polish_psc": DATA / "psc_test.jsonl", "polish_ppc": DATA / "ppc_test.tsv",
             "polish_dyk": DATA / "dyk_test.jsonl", "polish_8tags": DATA / "8tags_test.parquet",
             "polemo2_in": DATA / "polemo2_in_test.json",
             "polish_belebele": DATA.parent / "gates" / "belebele.jsonl"}
    local |= {n: GATES_DIR / load_gate(n).dataset.fixture for n in plan(["extended"]) if load_gate(n).dataset.fixture}
    gates = [n for n in plan(["extended"]) if n in local]
    assert {"en_chat", "ifeval", "xstest", "polish_psc", "pl_grammar"} <= set(gates)
    index = build_index([f"{g}={local[g]}" if g in local else g for g in gates])
    result = index.check([[r["prompt"]] for r in rows])
    report = result.report([{"row": i} for i in range(len(rows))])
    assert report["dropped"] == 0 and all(g["overlap"] == 0 for g in report["gates"]), report["summary"]
    assert set(suites()) and GATES_DIR.is_dir()


def test_open_sets_load_by_shape_with_licence_provenance_languages_and_boilerplate_dropped(open_files, tmp_path):
    from engine.data.replay import build_replay

    quotas = {s: 10 for s in SKILLS}
    config = parse_spec({"kind": "data.replay", "quotas": quotas, "guard_against": [PSC_TEST],
                         "sources": open_sources(open_files)}, "test").config
    report = build_replay(config, tmp_path / "r.jsonl", tmp_path / "r.json")
    rows = lines(tmp_path / "r.jsonl")
    sources = {s["name"]: s for s in report["sources"]}
    assert {n: (s["loader"], s["licence"]) for n, s in sources.items()} == {
        "aya": ("aya", "apache-2.0"), "dolly": ("dolly", "CC-BY-SA-3.0"), "oasst": ("oasst", "apache-2.0"),
        "openmath": ("openmath", "CC-BY-4.0")}
    assert "Databricks employees" in sources["dolly"]["provenance"]
    assert "Llama-3.1-405B-Instruct" in sources["openmath"]["provenance"]
    # Aya: German and Ukrainian kept, Polish left out, the English row with the closed-model opener dropped.
    assert sources["aya"]["languages"] == {"de": 4, "uk": 1} and sources["aya"]["used"] == 5
    assert report["boilerplate"] == {"dropped": 1, "by_source": {"aya": 1},
                                     "by_pattern": {"as_an_ai_language_model": 1}}
    assert TELL not in (tmp_path / "r.json").read_text() and TELL not in (tmp_path / "r.jsonl").read_text()
    # OASST: the best-ranked path of each tree (en → chat, de → multilingual), the Polish tree left out.
    tides = next(r for r in rows if r["messages"][0]["content"] == "How do tides work?")
    assert [m["content"] for m in tides["messages"]] == [
        "How do tides work?", "The Moon's gravity pulls the oceans.", "And why two tides a day?",
        "The Earth rotates through two bulges."]
    assert tides["source"] == {"kind": "replay", "skill": "chat", "language": "en", "name": "oasst", "row": 0}
    assert sources["oasst"]["languages"] == {"de": 1, "en": 1}
    # Dolly: categories → skills; the closed_qa row quoting a psc test passage is guarded out.
    dolly = Counter(r["source"]["skill"] for r in rows if r["source"]["name"] == "dolly")
    assert dolly == {"en_knowledge": 1, "chat": 3, "instruction": 1, "structured_output": 1, "summarisation": 1}
    assert report["guard"]["gates"][0]["overlap"] == 1
    # OpenMathInstruct-2: one solution per problem.
    assert report["skills"]["math"]["written"] == 5
    cov = report["coverage"]["axes"]
    assert cov["math"] == {"gates": ["gsm8k"], "examples": 5, "skills": {"math": 5}, "anchored_by": ["math"]}
    assert cov["instruction"]["examples"] == 1 + 1 + 1 + 4 and "code" in report["coverage"]["unanchored"]
    assert any(w.startswith("gated axis code (mbpp) has no replay example") for w in report["warnings"])


def test_self_replay_answers_the_shipped_grid_and_drops_unfinished_answers(open_files, tmp_path, capsys):
    """The tiny random base never stops within 4 tokens: every answer hits the limit, is dropped, and the open
    sets fill what they can."""
    from engine.tiny.build import tiny_model_dir

    spec = {"kind": "data.replay", "quotas": {"code": 2, "multilingual": 3, "safety": 1}, "seed": 3,
            "guard_against": [PSC_TEST], "sources": open_sources(open_files)[:1],
            "self_replay": {"model": str(tiny_model_dir("qwen3")), "licence": "apache-2.0", "max_new_tokens": 4}}
    path = tmp_path / "replay.toml"
    path.write_text(dumps_toml(spec), encoding="utf-8")
    code, stdout, err = run_cli(["data", "replay", str(path), "--out", str(tmp_path / "r.jsonl"), "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "r_report.json").read_text())
    assert report["self_replay"] == {"prompts": 6, "kept": 0, "hit_limit": 6, "dropped": {"truncated": 6}}
    assert report["skills"]["multilingual"] == {"quota": 3, "available": 55, "selected": 3, "self_replay": 0,
                                                "written": 3, "shortfall": 0}  # 50 grid prompts + 5 Aya rows
    assert report["skills"]["code"]["shortfall"] == 2
    record = report["sources"][0]
    assert record["name"] == "self-replay" and "the shipped prompt grid (CC0-1.0" in record["provenance"]
    assert "0 of 6 answers kept (6 hit max_new_tokens; dropped: truncated 6)" in stdout
    assert "replay anchors per gated axis" in stdout


class ScriptedChat:
    """An OpenAI-compatible chat server answering by the prompt's first word: a finished answer, one that hit
    the limit, one that thinks first, one with a closed model's opener. Keeps the request bodies."""

    REPLIES = {"Finish": ("A complete answer.", "stop"), "Cut": ("An answer that goes on and", "length"),
               "Think": ("<think>Let me see.</think>\n\nThought-through answer.", "stop"),
               "Tell": (TELL, "stop")}

    def __init__(self):
        self.bodies = []
        chat = self

        class Handler(Quiet):
            def do_GET(self):  # /v1/models
                send(self, 200, json.dumps({"data": [{"id": "qwen3.5-27b", "owned_by": "test"}]}).encode())

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))))
                chat.bodies.append(body)
                text, finish = chat.REPLIES[body["messages"][-1]["content"].split()[0]]
                send(self, 200, json.dumps({"model": body["model"], "choices": [
                    {"message": {"role": "assistant", "content": text}, "finish_reason": finish}]}).encode())

        self.server = serve(Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"


def test_endpoint_self_replay_sends_thinking_off_and_drops_cut_and_closed_model_answers(tmp_path):
    from engine.data.replay import build_replay

    chat = ScriptedChat()
    prompts = write_jsonl(tmp_path / "p.jsonl", [{"prompt": f"{w} please, item {i}.", "skill": "chat"}
                                                 for i, w in enumerate(ScriptedChat.REPLIES)])
    spec = {"kind": "data.replay", "quotas": {"chat": 4}, "guard_against": [PSC_TEST], "gated": ["ifeval"],
            "self_replay": {"model": "Qwen/Qwen3.5-27B", "prompts": prompts, "licence": "apache-2.0",
                            "endpoint": {"url": chat.url}, "max_new_tokens": 64}}
    try:
        report = build_replay(parse_spec(spec, "test").config, tmp_path / "r.jsonl", tmp_path / "r.json")
    finally:
        chat.server.shutdown()
    assert {(b["model"], b["max_tokens"], b["temperature"]) for b in chat.bodies} == {("qwen3.5-27b", 64, 0.0)}
    assert all(b["chat_template_kwargs"] == {"enable_thinking": False} for b in chat.bodies)
    answers = sorted(r["messages"][1]["content"] for r in lines(tmp_path / "r.jsonl"))
    assert answers == ["A complete answer.", "Thought-through answer."]
    assert report["self_replay"] == {"prompts": 4, "kept": 2, "hit_limit": 1, "dropped": {"truncated": 1}}
    assert report["boilerplate"]["by_source"] == {"self-replay": 1}
    assert "endpoint http://127.0.0.1" in report["sources"][0]["provenance"]
    assert report["coverage"]["axes"]["instruction"]["examples"] == 2 and not report["coverage"]["unanchored"]


def test_endpoint_self_replay_through_a_real_llama_server(tmp_path):
    from engine.data.replay import build_replay
    from llama_server import llama_server

    with llama_server() as url:
        spec = {"kind": "data.replay", "quotas": {"math": 3, "chat": 2}, "guard_against": [PSC_TEST],
                "self_replay": {"model": "tiny", "licence": "apache-2.0", "max_new_tokens": 8,
                                "endpoint": {"url": url, "concurrency": 4}}}
        report = build_replay(parse_spec(spec, "test").config, tmp_path / "r.jsonl", tmp_path / "r.json")
        spec["self_replay"]["chat_template"] = False  # raw prompts through /completions
        raw = build_replay(parse_spec(spec, "test").config, tmp_path / "raw.jsonl", tmp_path / "raw.json")
    for rep in (report, raw):
        sr = rep["self_replay"]
        assert sr["prompts"] == 5 and sr["kept"] + sum(sr["dropped"].values()) + rep["boilerplate"]["dropped"] == 5
        assert sr["hit_limit"] >= sr["dropped"].get("truncated", 0) > 0  # noise from a random model runs on
    assert "chat template on, thinking off" in report["sources"][0]["provenance"]
    assert "chat template off" in raw["sources"][0]["provenance"]


def test_mix_shows_anchors_per_gated_axis_and_refuses_without_them_under_policy(open_files, tmp_path, capsys):
    from engine.data.mix import build_mix
    from engine.data.replay import build_replay

    config = parse_spec({"kind": "data.replay", "quotas": {s: 10 for s in SKILLS}, "guard_against": [PSC_TEST],
                         "sources": open_sources(open_files)}, "test").config
    build_replay(config, tmp_path / "replay.jsonl", tmp_path / "rr.json")
    style = write_jsonl(tmp_path / "style.jsonl", [{"messages": [
        {"role": "user", "content": f"Napisz zdanie {i}."}, {"role": "assistant", "content": f"Zdanie {i}."}]}
        for i in range(40)])
    out = tmp_path / "mix.jsonl"
    code, stdout, err = run_cli(["data", "mix", "--style", style, "--replay", str(tmp_path / "replay.jsonl"),
                                 "--out", str(out), "--report", str(tmp_path / "mix.json"), "--guard-against",
                                 PSC_TEST, "--quiet"], capsys)
    assert code == 0, err
    report = json.loads((tmp_path / "mix.json").read_text())
    replay_skills = Counter(r["source"]["skill"] for r in lines(out) if r["source"]["kind"] == "replay")
    assert report["coverage"]["axes"]["math"]["examples"] == replay_skills["math"] > 0
    assert report["coverage"]["unanchored"] == ["reasoning", "code"]
    assert "gated axis reasoning (arc_challenge, hellaswag) has no replay example anchoring it" in err
    assert "| gated axis | gates | replay examples | from skills |" in (tmp_path / "mix.md").read_text()
    strict = parse_spec({"kind": "data.mix", "style": style, "replay": str(tmp_path / "replay.jsonl"),
                         "guard_against": [PSC_TEST], "require_anchor_coverage": True}, "test").config
    with pytest.raises(SpecError, match=r"replay.jsonl: gated axis reasoning .*; require_anchor_coverage is on \(2 gated axes"):
        build_mix(strict, tmp_path / "strict.jsonl", tmp_path / "strict.json")
    assert not (tmp_path / "strict.jsonl").exists() and not (tmp_path / "strict.json").exists()


@pytest.mark.parametrize("case", ["offline_id", "no_loader", "quota_skill", "prompt_skill"])
def test_bad_input_is_one_line_exit_2_and_nothing_written(case, open_files, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"title": "a", "body": "b"}])
    poetry = write_jsonl(tmp_path / "p.jsonl", [{"prompt": "Write a sonnet.", "skill": "poetry"}])
    spec = {"kind": "data.replay", "quotas": {"chat": 2}, "guard_against": [PSC_TEST],
            "sources": [{"name": "dolly", "file": open_files["dolly"]}]}
    expected = {"offline_id": r"hf:slayer-offline/no-such-set:train: source 'x': cannot load .* set `file`",
                "no_loader": r"odd.jsonl: source 'x': columns body, title fit no loader \(expected messages",
                "quota_skill": r"unknown skill 'poetry' in quotas",
                "prompt_skill": r"p.jsonl: row 1: unknown skill 'poetry'"}[case]
    if case == "offline_id":
        spec["sources"].append({"name": "x", "hf": "slayer-offline/no-such-set", "licence": "x", "provenance": "y"})
    elif case == "no_loader":
        spec["sources"].append({"name": "x", "file": odd, "licence": "x", "provenance": "y"})
    elif case == "quota_skill":
        spec["quotas"]["poetry"] = 3
    else:
        spec["self_replay"] = {"model": "m", "prompts": poetry, "licence": "x"}
    path = tmp_path / "replay.toml"
    path.write_text(dumps_toml(spec), encoding="utf-8")
    out = tmp_path / "out" / "r.jsonl"
    code, _, err = run_cli(["data", "replay", str(path), "--out", str(out)], capsys)
    assert code == 2 and err.count("\n") == 1, err
    import re

    assert re.search(expected, err), err
    assert not out.parent.exists()
