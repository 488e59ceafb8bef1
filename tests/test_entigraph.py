"""data.entigraph: corpus chunks, reply parsing, dedup, faults at the endpoint, kill-and-rerun without paying
twice, and the knowledge track end to end against a real llama.cpp server: synthetic JSONL → CPT → SFT on top,
both gated."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

import pytest

from engine.data.entigraph_corpus import CorpusSource, chunk_document, read_corpus, token_spans
from engine.data.entigraph_teacher import OUTCOMES, Reply, parse_entities, parse_qa, parse_text, parse_verdict
from engine.data.near_dup import NearDuplicates
from engine.errors import SpecError
from engine.jobs import dumps_toml, parse_spec
from engine.runner import run_job
from engine.gates.judge_client import request_key
from teacher_proxy import TeacherProxy
from train_fixtures import ROOT, chat_file, of_type, read_events, run_in_process, tiny_model, write_jsonl

EXAM = ("Który polski astronom w dziele wydanym w Norymberdze w 1543 roku przedstawił heliocentryczny model "
        "Układu Słonecznego?")
WISLA = ("Wisła jest najdłuższą rzeką Polski. Wypływa na stokach Baraniej Góry w Beskidzie Śląskim i uchodzi do "
         "Morza Bałtyckiego. Nad Wisłą leżą Kraków, Warszawa, Toruń i Gdańsk, a jej długość wynosi 1047 kilometrów.")
KOPERNIK = ("Mikołaj Kopernik urodził się w Toruniu w 1473 roku i studiował w Krakowie. " + EXAM + " Tak brzmi "
            "pytanie, na które odpowiedzią jest Kopernik, autor dzieła O obrotach sfer niebieskich.")
WAWEL = ("Wawel to wzgórze w Krakowie nad Wisłą. Stoi na nim zamek królewski i katedra, w której koronowano "
         "królów Polski.")


def corpus(tmp: Path) -> list[dict]:
    """A text file, a JSONL row with its own licence and a Wikipedia-export row (licence by default)."""
    (tmp / "texts").mkdir(exist_ok=True)
    (tmp / "texts" / "wisla.txt").write_text(WISLA, encoding="utf-8")
    write_jsonl(tmp / "kopernik.jsonl", [{"id": "kopernik", "text": KOPERNIK, "licence": "CC-BY-4.0"}])
    write_jsonl(tmp / "plwiki.jsonl", [{"title": "Wawel", "text": WAWEL}])
    return [{"path": str(tmp / "texts" / "*.txt"), "licence": "CC0-1.0"}, {"path": str(tmp / "kopernik.jsonl")},
            {"path": str(tmp / "plwiki.jsonl"), "format": "wiki"}]


def exam_file(tmp: Path) -> Path:
    """LLMzSzŁ-shaped exam rows: the guard's test set and the knowledge gate's data."""
    rows = [{"question": EXAM, "answers": ["Kopernik", "Galileusz", "Kepler", "Brahe"], "correct_answer_index": 0,
             "name": "historia"},
            {"question": "Nad jaką rzeką leży Kraków?", "answers": ["Odra", "Wisła", "Warta", "Bug"],
             "correct_answer_index": 1, "name": "geografia"},
            {"question": "Ile kilometrów ma Wisła?", "answers": ["1047", "854", "500", "2000"],
             "correct_answer_index": 0, "name": "geografia"},
            {"question": "Gdzie urodził się Kopernik?", "answers": ["Gdańsk", "Toruń", "Kraków", "Poznań"],
             "correct_answer_index": 1, "name": "historia"}]
    return write_jsonl(tmp / "llmzszl.jsonl", rows)


def entigraph_spec(tmp: Path, url: str, **over) -> dict:
    spec = {"kind": "data.entigraph", "corpus": corpus(tmp), "chunk_tokens": 64, "overlap_tokens": 8,
            "guard_against": [f"llmzszl={exam_file(tmp)}"],
            "teacher": {"url": url, "model": "tiny", "cache_dir": str(tmp / "cache"), "backoff_s": 0.01,
                        "retries": 2, "timeout_s": 20.0, "max_tokens": 48, "max_chars": 40, "concurrency": 4},
            "variants": {"paraphrase": 2, "summary": 1, "qa": 1, "pairs": 1, "triples": 0}}
    for key, value in over.items():
        spec[key] = {**spec[key], **value} if isinstance(value, dict) else value
    return spec


def run_entigraph(run_dir: Path, spec: dict) -> tuple[str, dict, list[dict]]:
    status = run_job(parse_spec(spec, "test spec"), run_dir)
    events = read_events(run_dir)
    if status != "succeeded":
        return status, {}, events
    out = run_dir / "outputs"
    rows = [json.loads(line) for line in (out / "entigraph.jsonl").read_text(encoding="utf-8").splitlines()]
    return status, json.loads((out / "entigraph_report.json").read_text()), rows


def assert_nothing_lost(report: dict) -> None:
    """Every request ended in exactly one counted outcome."""
    for stage, counts in report["stages"].items():
        assert counts.get("asked", 0) == sum(counts.get(o, 0) for o in OUTCOMES), stage


# ---- corpus, parsing, dedup -------------------------------------------------------------------------------------

def test_corpus_chunks_overlap_and_keep_source_and_licence(tmp_path):
    docs = read_corpus([CorpusSource(**e) for e in corpus(tmp_path)])
    assert [(d.id, d.licence) for d in docs] == [("wisla", "CC0-1.0"), ("kopernik", "CC-BY-4.0"),
                                                 ("Wawel", "CC-BY-SA-4.0")]
    spans = token_spans(None)
    chunks = chunk_document(docs[1], spans(docs[1].text), 16, 4)
    assert [c.tokens for c in chunks] == [16, 16, 16, 7] and len(docs[1].text.split()) == 43
    assert all(c.text in docs[1].text for c in chunks)
    assert chunks[0].text.split()[-4:] == chunks[1].text.split()[:4]  # the overlap
    assert chunks[3].source() == {"id": "kopernik", "chunk": 3, "licence": "CC-BY-4.0",
                                  "file": str(tmp_path / "kopernik.jsonl")}
    tok_spans = token_spans(tiny_model())
    by_tokens = chunk_document(docs[0], tok_spans(docs[0].text), 20, 5)
    assert len(by_tokens) > 1 and all(c.tokens <= 20 and c.text in docs[0].text for c in by_tokens)

    with pytest.raises(SpecError, match="needs licence"):
        read_corpus([CorpusSource(path=str(tmp_path / "texts" / "*.txt"))])
    with pytest.raises(SpecError, match="appears twice"):
        read_corpus([CorpusSource(path=str(tmp_path / "kopernik.jsonl"))] * 2)


def test_replies_are_parsed_leniently_and_every_failure_is_named():
    ok = Reply('Oto encje:\n```json\n["Wisła", "wisła", "Kraków", ""]\n```', "stop")
    assert parse_entities(ok, 5) == (["Wisła", "Kraków"], "ok")
    assert parse_entities(Reply('{"entities": ["Toruń"]}', "stop"), 5) == (["Toruń"], "ok")
    assert parse_entities(Reply('["Wisła", "Kra', "length"), 5) == (None, "truncated")
    assert parse_entities(Reply("Wisła, Kraków", "stop"), 5) == (None, "unparseable")
    assert parse_entities(Reply("  ", "stop"), 5) == (None, "empty")
    assert parse_entities(Reply(None, None, failed=True), 5) == (None, "failed")
    assert parse_qa(Reply('[{"question": "Gdzie?", "answer": "Tu.\n"}]', "stop")) == \
        ("Pytanie: Gdzie?\nOdpowiedź: Tu.", "ok")  # a raw newline inside a string is accepted
    assert parse_text(Reply('{"text": "Ala\\u0007 ma kota."}', "stop"), structured=True) == ("Ala ma kota.", "ok")
    assert parse_text(Reply("Ala ma ko", "length"), structured=False) == (None, "truncated")
    assert parse_verdict(Reply("Tak, wierny.", "stop")) == (True, "ok")
    assert parse_verdict(Reply('{"verdict": "no"}', "stop")) == (False, "ok")
    assert parse_verdict(Reply("Trudno powiedzieć", "stop")) == (None, "unparseable")


def test_exact_and_near_duplicates_go_and_different_texts_stay():
    long = " ".join(f"słowo{i}" for i in range(40))
    dups = NearDuplicates(0.8)
    assert dups.check(long) is None
    assert dups.check(long.upper() + "!") == "exact"
    assert dups.check(long + " koniec") == "near"
    assert dups.check(" ".join(f"inne{i}" for i in range(40))) is None
    assert dups.check(" ".join(f"słowo{i}" for i in range(20))) is None  # half the text is not a near copy


# ---- faults at the endpoint, judge, dedup and guard with a scripted teacher -----------------------------------

PARA = {True: "Wisła płynie przez Kraków i Warszawę do Gdańska, mając tysiąc czterdzieści siedem kilometrów "
              "długości, od Baraniej Góry aż po Bałtyk, przez całą Polskę.",
        False: "Kopernik, urodzony w Toruniu, studiował w Krakowie i opisał ruch Ziemi wokół Słońca."}


def scripted(body: dict) -> str:
    """A deterministic teacher and judge, by prompt."""
    prompt = body["messages"][-1]["content"]
    if prompt.startswith("Oceń"):
        return "Nie." if "Pytanie:" in prompt.split("Tekst:")[1] else "Tak, tekst jest wierny."
    wisla = "Wisła" in prompt.split("Fragment:")[1]
    if prompt.startswith("Przeczytaj"):
        return '```json\n["Wisła", "Kraków", "Gdańsk"]\n```' if wisla else "Encje: Kopernik, Toruń"
    if prompt.startswith("Przepisz"):
        first = "encyklopedyczny" in prompt
        if wisla:
            return PARA[True] if first else PARA[True].upper()
        return PARA[False] if first else "Toruński astronom Mikołaj Kopernik uczył się w krakowskiej akademii."
    if prompt.startswith("Streść"):
        return PARA[True].replace("Polskę.", "kraj.") if wisla else "Kopernik był astronomem."
    if prompt.startswith("Ułóż"):
        return '[{"question": "Gdzie leży Kraków?", "answer": "Nad Wisłą."}]'
    return "Związek encji: " + EXAM  # a relation that repeats an exam question word for word


def test_scripted_teacher_faults_are_retried_or_skipped_and_counted_and_a_rerun_asks_only_for_the_rest(tmp_path):
    # The first try of each of these requests (prompt start, Wisła chunk?) gets a fault; the Kopernik summary
    # gets HTTP 500 on every try, so it is skipped past its retries.
    first_try = {("Przeczytaj", True): "500", ("Przepisz fragment własnymi słowami, w stylu: artykuł", True): "hang",
                 ("Ułóż", True): "truncated", ("Na podstawie", True): "empty_body",
                 ("Przepisz fragment własnymi słowami, w stylu: artykuł", False): "not_json",
                 ("Ułóż", False): "empty_content"}
    attempts = Counter()

    def fault(n: int, body: dict) -> str | None:
        prompt = body["messages"][-1]["content"]
        attempts[request_key(body)] += 1
        if prompt.startswith("Oceń"):
            return None
        wisla = "Wisła" in prompt.split("Fragment:")[1]
        if prompt.startswith("Streść") and not wisla:
            return "500"
        found = [f for (head, w), f in first_try.items() if prompt.startswith(head) and w == wisla]
        return found[0] if found and attempts[request_key(body)] == 1 else None

    proxy = TeacherProxy(fault=fault, script=scripted)
    spec = entigraph_spec(tmp_path, proxy.url, teacher={"timeout_s": 1.0}, corpus=corpus(tmp_path)[:2])
    status, report, rows = run_entigraph(tmp_path / "run", spec)
    proxy.close()
    assert status == "succeeded"
    assert_nothing_lost(report)
    teacher, judge = report["teacher"], report["judge"]
    assert teacher["retries"] == 5 + 2 and teacher["failed"] == 1
    assert report["stages"]["summary"]["failed"] == 1 and report["unfinished"]["chunks"] == ["kopernik#0"]
    assert report["stages"]["entities"] == {"asked": 2, "ok": 1, "unparseable": 1}
    assert report["stages"]["relation"]["not_asked"] == 1  # no entities, no relation for kopernik
    assert report["stages"]["qa"]["empty"] == 1
    kinds = report["kinds"]
    assert kinds["paraphrase"]["exact_dup"] == 1 and kinds["summary"]["near_dup"] == 1
    assert kinds["qa"]["judge_no"] == 1 and kinds["relation"]["guard"] == 1 and kinds["source"]["guard"] == 1
    assert sum(k.get("judge_yes", 0) for k in kinds.values()) == 6
    assert Counter(r["kind"] for r in rows) == {"source": 1, "paraphrase": 3}
    assert not any("heliocentryczny" in r["text"] for r in rows)  # no exam question leaks in
    paid = [proxy.bodies[k]["messages"][-1]["content"] for k in proxy.answered()]
    assert teacher["tokens_in"] + judge["tokens_in"] == sum(len(prompt.split()) for prompt in paid)
    events = read_events(tmp_path / "run")
    assert {"data", "data_report", "data_report_markdown", "guard_report"} <= \
        {e["kind"] for e in of_type(events, "artifact")}
    assert of_type(events, "progress")[0]["label"] == "chunks"

    again = TeacherProxy(script=scripted)
    status, report, rows = run_entigraph(tmp_path / "rerun", {**spec, "teacher": {**spec["teacher"], "url": again.url}})
    again.close()
    assert status == "succeeded" and report["unfinished"]["count"] == 0
    assert [scripted(again.bodies[k])[:8] for k, _ in again.seen] == ["Kopernik", "Tak, tek"]  # the summary, judged
    assert report["teacher"]["cache_hits"] == report["teacher"]["requests"] - 1
    assert report["teacher"]["tokens_in_paid"] < report["teacher"]["tokens_in"]
    assert Counter(r["kind"] for r in rows) == {"source": 1, "paraphrase": 3, "summary": 1}


# ---- against a real OpenAI-compatible server ----------------------------------------------------------------------

@pytest.fixture(scope="module")
def llama_url():
    pytest.importorskip("llama_cpp.server")
    from llama_server import llama_server

    with llama_server() as url:
        yield url


def test_killed_job_reruns_without_asking_again_for_what_came_back(tmp_path, llama_url):
    proxy = TeacherProxy(upstream=llama_url)
    spec = entigraph_spec(tmp_path, proxy.url, window=1, teacher={"concurrency": 1, "structured": "json_object"})
    spec_file = tmp_path / "job.toml"
    spec_file.write_text(dumps_toml(spec), encoding="utf-8")
    proc = subprocess.Popen([sys.executable, "-m", "engine", "run", str(spec_file), "--run-dir", str(tmp_path / "a")],
                            cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 60
    while len(proxy.answered()) < 10 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    assert proc.wait() == -signal.SIGKILL, "the job finished before it could be killed"
    proxy.close()
    cached = {p.stem for p in (tmp_path / "cache").rglob("*.json")}
    assert len(cached) >= 9

    again = TeacherProxy(upstream=llama_url)
    status, report, rows = run_entigraph(tmp_path / "b", {**spec, "teacher": {**spec["teacher"], "url": again.url}})
    again.close()
    assert status == "succeeded", rows
    asked = {key for key, _ in again.seen}
    assert asked and not asked & cached  # nothing that came back before the kill is asked for again
    assert report["teacher"]["cache_hits"] + report["judge"]["cache_hits"] == len(cached)
    assert report["teacher"]["calls"] + report["judge"]["calls"] == len(asked)
    assert 0 < report["teacher"]["tokens_in_paid"] < report["teacher"]["tokens_in"]
    assert_nothing_lost(report)


def test_corpus_to_synthetic_data_to_cpt_then_sft_on_top_both_gated(tmp_path, llama_url):
    exams = exam_file(tmp_path)
    spec = entigraph_spec(tmp_path, llama_url, tokenizer=tiny_model(), chunk_tokens=48, max_entities=3,
                          teacher={"structured": "json_object", "max_tokens": 64, "max_chars": 24})
    status, report, rows = run_entigraph(tmp_path / "data", spec)
    assert status == "succeeded"
    assert_nothing_lost(report)
    assert report["corpus"]["documents"] == 3 and report["corpus"]["chunks"] > 3
    assert report["teacher"]["calls"] == report["teacher"]["requests"] > 0 and report["teacher"]["tokens_out"] > 0
    assert report["judge"]["requests"] == sum(report["stages"][k].get("ok", 0) for k in ("relation", "paraphrase",
                                                                                           "summary", "qa"))
    assert report["stages"]["relation"]["asked"] > 0
    assert report["kinds"]["source"]["guard"] == 1 and not any(EXAM in r["text"] for r in rows)
    assert report["total"]["synthetic_tokens"] == sum(k["tokens"] for n, k in report["kinds"].items() if n != "source")
    for row in rows:
        assert row["text"] and row["source"]["licence"] and row["source"]["id"]
        assert row["kind"] in ("source", "relation", "paraphrase", "summary", "qa")
    assert "| paraphrase |" in (tmp_path / "data" / "outputs" / "entigraph_report.md").read_text()

    replay = write_jsonl(tmp_path / "replay.jsonl", [{"text": f"Ogólny tekst numer {i} o kotach."} for i in range(4)])
    status, cpt = run_in_process(tmp_path / "cpt", "train.cpt", model=tiny_model(),
                                 data=str(tmp_path / "data" / "outputs" / "entigraph.jsonl"), replay=str(replay),
                                 replay_share=0.1, training={"max_steps": 2, "save_steps": 2, "max_length": 64})
    assert status == "succeeded", cpt[-1]
    status, sft = run_in_process(tmp_path / "sft", "train.sft", model=tiny_model(),
                                 data=str(chat_file(tmp_path / "chat.jsonl", n=8)),
                                 base_adapter=str(tmp_path / "cpt" / "outputs" / "adapter"),
                                 training={"max_steps": 2, "save_steps": 2})
    assert status == "succeeded", sft[-1]
    assert of_type(sft, "checkpoint")[0]["stack"] == ["cpt", "sft"]

    # Both stages gated like any checkpoint, beside the base, on the knowledge gate (local exam file).
    stages = [of_type(events, "checkpoint")[-1]["subject"] for events in (cpt, sft)]
    subjects = [{"name": "base", "kind": "base", "model": tiny_model()}] + [
        {"name": s["name"], "kind": "checkpoint", "model": s["recipe"]["model"], "adapter": s["recipe"]["adapter"]}
        for s in stages]
    gate = parse_spec({"kind": "gate", "gates": ["llmzszl"], "files": {"llmzszl": str(exams)},
                       "subjects": subjects}, "test spec")
    assert run_job(gate, tmp_path / "gate") == "succeeded"
    results = of_type(read_events(tmp_path / "gate"), "gate_result")
    assert {r["subject"]["id"] for r in results} == {stages[0]["id"], stages[1]["id"], results[0]["subject"]["id"]}
    assert len(results) == 3 and all(r["gate"] == "llmzszl" and r["n"] == 4 for r in results)
