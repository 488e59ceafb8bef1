"""The contamination guard: what counts as an overlap, and `slayer data guard` on files."""

from __future__ import annotations

import json
from pathlib import Path

from engine.data.guard import GuardIndex, GuardItem, GuardSet
from engine.data.wordhash import hash_texts, normalise, words
from test_data_klej import DATA, lines, run_cli

PASSAGE = ("Wisła jest najdłuższą rzeką Polski, płynie przez Kraków i Warszawę, a uchodzi do Morza Bałtyckiego "
           "w pobliżu Gdańska, tworząc rozległą deltę.")
TITLE = "Nowy model samochodu elektrycznego już w salonach"


def check(items: list[GuardItem], examples: list[list[str]]) -> list[bool]:
    """Which examples overlap (True) the one set made of `items`."""
    result = GuardIndex([GuardSet("gate", "test", items)]).check(examples)
    return [not keep for keep in result.keep()]


def test_normalisation_ignores_case_punctuation_spacing_and_unicode_forms():
    assert normalise("  Ａla   MA\u00a0kota!!! —  ﬁnał, (2024)") == "ala ma kota finał 2024"


def test_vectorised_word_hashes_follow_the_plain_word_rule():
    texts = ["  Ａla   MA\u00a0kota!!! —  ﬁnał, (2024)", "a_b „cytat” ½ x\x00y 😀 é\u2028z\x1cq İstanbul",
             "", "...", "Źdźbło\tżółwia\n\ndef f(x):  return x*2  # dwa"]
    hashes, counts = hash_texts(texts)
    assert counts.tolist() == [len(words(t)) for t in texts]
    again, _ = hash_texts([" ".join(words(t)) for t in texts])
    assert hashes.tolist() == again.tolist()
    single = [hash_texts([w])[0][0] for t in texts for w in words(t)]
    assert hashes.tolist() == single  # a word's hash does not depend on its text or position


def test_a_shared_13_gram_overlaps_whatever_surrounds_it():
    item = GuardItem([f'Tekst: "{PASSAGE}"'], [PASSAGE])
    words = PASSAGE.split()
    thirteen = " ".join(words[3:16]).upper().replace(",", " ;")
    twelve = " ".join(words[3:15])
    found = check([item], [[f"Zupełnie inny wstęp. {thirteen} i dalszy ciąg."], [f"Wstęp {twelve} koniec."],
                           ["Coś innego.", f"odpowiedź: {PASSAGE}"]])
    assert found == [True, False, True]


def test_exact_duplicate_prompts_overlap_even_when_short():
    item = GuardItem(["Pytanie: ile to dwa plus dwa?"], ["ile to dwa plus dwa"])
    assert check([item], [["pytanie ILE to dwa, plus dwa?"], ["Pytanie: ile to dwa plus trzy?"]]) == [True, False]


def test_short_items_overlap_only_when_every_field_appears_verbatim():
    short = GuardItem([], ["Kto napisał Pana Tadeusza?", "Adam Mickiewicz"])
    title = GuardItem([], [TITLE])
    tiny = GuardItem([], ["Tak"])  # under min_words: only an exact duplicate of its prompt would count
    found = check([short, title, tiny], [
        ["Pytanie: kto napisał Pana Tadeusza? Odpowiedź: Adam Mickiewicz."],
        ["Kto napisał Pana Tadeusza? Juliusz Słowacki."],
        [f'Tytuł: "{TITLE}"\nKategoria:'],
        ["Tytuł: Nowy model samochodu już w salonach"],
        ["Tak"],
    ])
    assert found == [True, False, True, False, False]


def test_report_counts_per_gate_and_lists_dropped_examples_without_test_text():
    sets = [GuardSet("a", "a.jsonl", [GuardItem([], [PASSAGE])]), GuardSet("b", "b.jsonl", [GuardItem([], [TITLE])])]
    result = GuardIndex(sets).check([[PASSAGE], ["czyste zdanie"], [PASSAGE + " " + TITLE]])
    report = result.report([{"row": 0}, {"row": 1}, {"row": 2}])
    assert [(g["name"], g["overlap"], g["items_hit"]) for g in report["gates"]] == [("a", 2, 1), ("b", 1, 1)]
    assert report["checked"] == 3 and report["dropped"] == 2
    assert report["dropped_examples"][1] == {"example": 2, "source": {"row": 2}, "gates": ["a", "b"]}
    assert PASSAGE not in json.dumps(report, ensure_ascii=False)


def test_cli_guard_reports_overlap_writes_a_clean_file_and_can_fail(tmp_path, capsys):
    report, clean = tmp_path / "guard.json", tmp_path / "clean.jsonl"
    args = ["data", "guard", "--train", str(DATA / "psc_train.csv"), "--against",
            f"polish_psc={DATA / 'psc_test.jsonl'}", "--against", str(DATA / "dyk_test.jsonl"),
            "--report", str(report), "--clean", str(clean), "--quiet"]
    code, out, err = run_cli(args + ["--fail-on-overlap"], capsys)
    assert code == 1, err
    data = json.loads(report.read_text())
    assert {g["name"]: g["overlap"] for g in data["gates"]} == {"polish_psc": 1, str(DATA / "dyk_test.jsonl"): 0}
    assert len(lines(clean)) == 40  # 41 rows, the planted one gone
    code, out, _ = run_cli(args + ["--format", "json"], capsys)
    assert code == 0 and json.loads(out)["dropped"] == 1


def test_cli_guard_unknown_gate_is_one_line(tmp_path, capsys):
    code, _, err = run_cli(["data", "guard", "--train", str(DATA / "dyk_train.jsonl"), "--against", "no_such_gate",
                            "--report", str(tmp_path / "r.json")], capsys)
    assert code == 2 and "unknown gate 'no_such_gate'" in err and err.count("\n") == 1
    assert not Path(tmp_path / "r.json").exists()
