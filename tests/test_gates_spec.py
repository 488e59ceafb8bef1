"""Gate definitions: prompts, label mapping of every Polish gate, suites, and one-line errors for bad data."""

import json

import pytest

from engine.errors import SpecError
from engine.gates import list_gates, load_gate, load_suite
from engine.gates.data import load_items, select_indices

# (gate, row, the label string the gate must score as gold)
POLISH_LABELS = [
    ("polish_psc", {"extract_text": "t", "summary_text": "s", "label": 1}, "Tak"),
    ("polish_psc", {"extract_text": "t", "summary_text": "s", "label": 0}, "Nie"),
    ("polish_ppc", {"sentence_A": "a", "sentence_B": "b", "label": 1}, "A"),
    ("polish_ppc", {"sentence_A": "a", "sentence_B": "b", "label": 3}, "C"),
    ("polemo2_in", {"sentence": "s", "target": "__label__meta_zero"}, "Neutralny"),
    ("polemo2_in", {"sentence": "s", "target": "__label__meta_minus_m"}, "Negatywny"),
    ("polemo2_in", {"sentence": "s", "target": "__label__meta_plus_m"}, "Pozytywny"),
    ("polemo2_in", {"sentence": "s", "target": "__label__meta_amb"}, "Niejednoznaczny"),
    ("polish_8tags", {"sentence": "s", "label": 0}, "Film"),
    ("polish_8tags", {"sentence": "s", "label": 4}, "Motoryzacja"),
    ("polish_8tags", {"sentence": "s", "label": 7}, "Technologie"),
    ("polish_dyk", {"question": "q", "answer": "a", "target": 1}, "Tak"),
    ("polish_dyk", {"question": "q", "answer": "a", "target": 0}, "Nie"),
    ("polish_belebele", {"flores_passage": "p", "question": "q", "mc_answer1": "w", "mc_answer2": "x",
                         "mc_answer3": "y", "mc_answer4": "z", "correct_answer_num": "1"}, "A"),
    ("polish_belebele", {"flores_passage": "p", "question": "q", "mc_answer1": "w", "mc_answer2": "x",
                         "mc_answer3": "y", "mc_answer4": "z", "correct_answer_num": "4"}, "D"),
    ("polish_psc_regex", {"extract_text": "t", "summary_text": "s", "label": 1}, "B"),
    ("polish_psc_regex", {"extract_text": "t", "summary_text": "s", "label": 0}, "C"),
    ("polish_ppc_regex", {"sentence_A": "a", "sentence_B": "b", "label": 2}, "B"),
    ("polemo2_in_regex", {"sentence": "s", "target": "__label__meta_amb"}, "D"),
    ("polemo2_in_regex", {"sentence": "s", "target": "__label__meta_zero"}, "A"),
    ("polish_8tags_regex", {"sentence": "s", "label": 7}, "H"),
    ("polish_dyk_regex", {"question": "q", "answer": "a", "target": 1}, "A"),
    ("polish_belebele_regex", {"flores_passage": "p", "question": "q", "mc_answer1": "w", "mc_answer2": "x",
                               "mc_answer3": "y", "mc_answer4": "z", "correct_answer_num": "2"}, "B"),
    ("llmzszl", {"question": "q", "answers": ["x", "y", "z"], "correct_answer_index": 2, "name": "e"}, "C"),
]

OUTSIDE = [
    ("polish_psc", {"extract_text": "t", "summary_text": "s", "label": 2}),
    ("polish_ppc", {"sentence_A": "a", "sentence_B": "b", "label": 0}),
    ("polish_ppc", {"sentence_A": "a", "sentence_B": "b", "label": 4}),
    ("polemo2_in", {"sentence": "s", "target": "__label__z_plus_m"}),
    ("polish_8tags", {"sentence": "s", "label": 8}),
    ("polish_belebele", {"flores_passage": "p", "question": "q", "mc_answer1": "w", "mc_answer2": "x",
                         "mc_answer3": "y", "mc_answer4": "z", "correct_answer_num": "5"}),
]


@pytest.mark.parametrize("gate,row,label", POLISH_LABELS)
def test_polish_label_strings(gate, row, label):
    g = load_gate(gate)
    assert g.label_text(row) == label
    assert g.choices_for(row)[g.gold_index(row)] == label


@pytest.mark.parametrize("gate,row", OUTSIDE)
def test_label_outside_the_label_set_is_an_error_naming_gate_file_and_row(tmp_path, gate, row):
    path = tmp_path / "items.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_items(load_gate(gate), str(path))
    message = str(err.value)
    assert "\n" not in message
    assert str(path) in message and gate in message and "row 1" in message and "label" in message


def test_psc_prompt_is_the_leaderboard_string():
    row = {"extract_text": "Ala ma kota.", "summary_text": "Kot Ali.", "label": 1}
    assert load_gate("polish_psc").render(row) == (
        'Tekst: "Ala ma kota."\nPodsumowanie: "Kot Ali."\nPytanie: Czy podsumowanie dla podanego tekstu jest '
        'poprawne?\nOdpowiedz krótko "Tak" lub "Nie". Prawidłowa odpowiedź:')


def test_belebele_and_llmzszl_prompts():
    row = {"flores_passage": "P", "question": "Q", "mc_answer1": "w", "mc_answer2": "x", "mc_answer3": "y",
           "mc_answer4": "z", "correct_answer_num": "3"}
    assert load_gate("polish_belebele").render(row) == (
        'Fragment: "P"\nPytanie: "Q"\nMożliwe odpowiedzi:\nA - w\nB - x\nC - y\nD - z\nPrawidłowa odpowiedź:')
    exam = {"question": " Ile to 2+2? ", "answers": ["3", "4"], "correct_answer_index": 1, "name": "matura"}
    assert load_gate("llmzszl").render(exam) == "Ile to 2+2?\nA. 3\nB. 4\nOdpowiedź:"


def test_hellaswag_preprocessing():
    row = {"activity_label": "Baking", "ctx_a": "A man mixes flour.", "ctx_b": "then he",
           "endings": ["bakes [title] it.", "eats  it."], "label": "0"}
    gate = load_gate("hellaswag")
    assert gate.render(row) == "Baking: A man mixes flour. Then he"
    assert gate.choices_for(row) == ["bakes. it.", "eats it."]
    assert gate.gold_index(row) == 0


def test_arc_gold_found_among_the_row_labels():
    row = {"question": "Q?", "choices": {"text": ["x", "y", "z"], "label": ["1", "2", "3"]}, "answerKey": "3"}
    gate = load_gate("arc_easy")
    assert gate.render(row) == "Question: Q?\nAnswer:"
    assert gate.label_text(row) == "z"


def test_every_shipped_gate_loads_and_suites_name_existing_gates():
    gates = list_gates()
    names = {g.name for g in gates}
    assert {"polish_psc", "polish_ppc", "polemo2_in", "polish_8tags", "polish_dyk", "polish_belebele", "llmzszl",
            "mmlu", "arc_easy", "arc_challenge", "hellaswag", "gsm8k", "mbpp", "humaneval"} <= names
    assert {g.name.removesuffix("_regex") for g in gates if g.name.endswith("_regex")} == {
        "polish_psc", "polish_ppc", "polemo2_in", "polish_8tags", "polish_dyk", "polish_belebele"}
    core = load_suite("core")
    assert {g.axis for g in core} >= {"pl_nlu", "en_knowledge", "reasoning", "math", "code"}
    assert {g.name for g in load_suite("extended")} == names


def test_unknown_gate_and_suite_are_one_line_errors():
    with pytest.raises(SpecError, match="unknown gate 'polish_nope'"):
        load_gate("polish_nope")
    with pytest.raises(SpecError, match="unknown suite 'nightly'"):
        load_suite("nightly")


def test_missing_column_names_gate_file_and_column(tmp_path):
    path = tmp_path / "psc.csv"
    path.write_text("extract_text,label\nTekst,1\n", encoding="utf-8")
    with pytest.raises(SpecError) as err:
        load_items(load_gate("polish_psc"), str(path))
    assert str(path) in str(err.value) and "polish_psc" in str(err.value) and "'summary_text'" in str(err.value)


def test_gate_toml_problems_name_the_file(tmp_path):
    good = (load_gate("polish_psc").source).read_text(encoding="utf-8")
    bad = tmp_path / "bad.toml"
    bad.write_text(good.replace('primary = "f1"', 'primary = "f2"'), encoding="utf-8")
    with pytest.raises(SpecError, match="bad.toml.*primary metric 'f2'"):
        load_gate(str(bad))
    bad.write_text(good.replace('scorer = "likelihood"', 'scorer = "vibes"'), encoding="utf-8")
    with pytest.raises(SpecError, match="unknown scorer 'vibes'"):
        load_gate(str(bad))
    bad.write_text("surprise = 1\n" + good, encoding="utf-8")
    with pytest.raises(SpecError, match="unknown key 'surprise'"):
        load_gate(str(bad))
    bad.write_text(good.replace("{{summary_text}}", "{{summary_text.upper()}}"), encoding="utf-8")
    with pytest.raises(SpecError, match="unsupported template expression"):
        load_gate(str(bad))


def test_subset_is_a_seeded_sample_kept_in_dataset_order(tmp_path):
    picked = select_indices(100, 10, 1234)
    assert picked == sorted(picked) and len(set(picked)) == 10
    assert picked == select_indices(100, 10, 1234) != select_indices(100, 10, 1)
    assert select_indices(5, 10, 1234) == [0, 1, 2, 3, 4]
    rows = [{"sentence": f"tytuł {i}", "label": i % 8} for i in range(50)]
    path = tmp_path / "8tags.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    gate = load_gate("polish_8tags").model_copy(update={"n": 10})
    items = load_items(gate, str(path), limit=4)
    assert items.indices == select_indices(50, 10, 1234)[:4]
    assert items.rows == [rows[i] for i in items.indices]


def test_content_hash_ignores_columns_the_gate_does_not_read(tmp_path):
    rows = [{"sentence": "Nowy film", "label": 0}, {"sentence": "Mecz", "label": 6}]
    a, b = tmp_path / "a.jsonl", tmp_path / "b.csv"
    a.write_text("".join(json.dumps({**r, "id": i}) + "\n" for i, r in enumerate(rows)), encoding="utf-8")
    b.write_text("sentence,label\nNowy film,0\nMecz,6\n", encoding="utf-8")
    gate = load_gate("polish_8tags")
    assert load_items(gate, str(a)).content_hash == load_items(gate, str(b)).content_hash
