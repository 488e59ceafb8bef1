"""Scoring on hand-made items: GSM8K extraction, the _regex letter parser, F1's positive class, code gates.

The generative scorers run end to end through `score_gate` with a backend that answers canned
completions, so what is tested is extraction, comparison and bookkeeping, not a model.
"""

import json
import random

import pytest

from engine.gates import load_gate
from engine.gates.data import load_items
from engine.gates.extract import extract, normalize
from engine.gates.hf_backend import cut_at_stop
from engine.gates.metrics import binary_f1
from engine.gates.run import score_gate

SUBJECT = {"id": "s-test", "name": "canned", "kind": "base", "recipe": {}}


class CannedBackend:
    """Answers each prompt with the completion listed for its item (prompts end with the item's own text)."""

    name, dtype, max_length = "canned", "none", 4096

    def __init__(self, completions: dict[str, str]):
        self.completions = completions
        self.tokens_computed = self.tokens_padded = 0

    def generate(self, prompts, stop, max_new_tokens, special, batch_size, on_batch):
        out = [cut_at_stop(next(c for key, c in self.completions.items() if p.endswith(key)), stop)
               for p in prompts]
        on_batch(len(prompts))
        return out


def write_rows(tmp_path, name, rows):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return str(path)


GSM8K = [  # (completion, gold answer's final number, strict correct, flexible correct)
    ("She sold 48 + 24 = 72 clips.\n#### 72", "72", 1, 1),
    ("The total is $1,200.", "1200", 0, 1),
    ("I think 3 or maybe 4", "4", 0, 1),
    ("#### -3.5\n", "-3.5", 1, 1),
    ("#### 1,000,000", "1000000", 1, 1),
    ("no idea", "5", 0, 0),
    ("#### 7\nQuestion: next one #### 8", "7", 1, 1),  # cut at the stop string "Question:"
    ("It is 10. Or 12.", "10", 0, 0),
]


def test_gsm8k_strict_and_flexible(tmp_path):
    shots = [{"question": f"Ile to {i}+{i}?", "answer": f"{i}+{i}={2 * i}\n#### {2 * i}"} for i in range(6)]
    tests = [{"question": f"Pytanie {i}?", "answer": f"Praca.\n#### {gold}"} for i, (_, gold, _, _) in enumerate(GSM8K)]
    gate = load_gate("gsm8k")
    items = load_items(gate, write_rows(tmp_path, "test.jsonl", tests), fewshot_file=write_rows(tmp_path, "t.jsonl", shots))
    backend = CannedBackend({f"Pytanie {i}?\nAnswer:": c for i, (c, _, _, _) in enumerate(GSM8K)})
    result, samples = score_gate(items, backend, SUBJECT, 4, False, lambda d, t: None)
    assert [int(s["correct"]["exact_match_strict"]) for s in samples] == [g[2] for g in GSM8K]
    assert [int(s["correct"]["exact_match_flexible"]) for s in samples] == [g[3] for g in GSM8K]
    assert result["primary"] == "exact_match_strict"
    assert result["outcomes"] == [float(g[2]) for g in GSM8K]
    # 5-shot from the first train rows, each "prompt answer\n\n", then the item
    prompt = items.prompts()[0]
    assert prompt.startswith("Question: Ile to 0+0?\nAnswer: 0+0=0\n#### 0\n\nQuestion: Ile to 1+1?")
    assert prompt.count("\n\n") == 5 and "Ile to 5+5" not in prompt


def test_extraction_agrees_with_lm_eval_filters():
    from lm_eval.api.metrics import exact_match_hf_evaluate
    from lm_eval.filters.extraction import RegexFilter

    spec = load_gate("gsm8k").generate
    texts = [c for c, _, _, _ in GSM8K] + ["#### 12.", "$5 and $6.50", "-7", "a 1.2.3 b", "####  4"]
    for extractor in spec.extract:
        group = 0 if extractor.take == "first" else -1
        theirs = RegexFilter(extractor.regex, group_select=group).apply([[t] for t in texts], [{}] * len(texts))
        assert [extract(t, extractor.regex, extractor.take) for t in texts] == [x[0] for x in theirs]
        for t, (answer,) in zip(texts, theirs):
            same = exact_match_hf_evaluate([answer], ["x #### 12"], spec.ignore, spec.ignore_case)["exact_match"]
            assert (normalize(answer, spec.ignore, spec.ignore_case)
                    == normalize("x #### 12", spec.ignore, spec.ignore_case)) == bool(same)


def test_regex_variants_take_the_first_standalone_letter(tmp_path):
    passage = {"flores_passage": "P", "mc_answer1": "w", "mc_answer2": "x", "mc_answer3": "y", "mc_answer4": "z"}
    answers = [  # (completion, gold number, expected pred index)
        (" B - to jest to", "2", 1),
        (" Odpowiedź: C", "3", 2),
        ("żadna z nich", "1", -1),
        (" BC albo AD", "1", -1),
        (" E albo D", "4", 3),
        (" A, bo tak", "2", 0),
    ]
    rows = [{**passage, "question": f"Q{i}", "correct_answer_num": gold} for i, (_, gold, _) in enumerate(answers)]
    items = load_items(load_gate("polish_belebele_regex"), write_rows(tmp_path, "b.jsonl", rows))
    backend = CannedBackend({f'"Q{i}"\nMożliwe odpowiedzi:\nA - w\nB - x\nC - y\nD - z\nPrawidłowa odpowiedź:': c
                             for i, (c, _, _) in enumerate(answers)})
    result, _ = score_gate(items, backend, SUBJECT, 8, False, lambda d, t: None)
    assert result["preds"] == [p for _, _, p in answers]
    assert result["golds"] == [int(g) - 1 for _, g, _ in answers]
    assert result["outcomes"] == [1.0, 1.0, 0.0, 0.0, 1.0, 0.0]
    assert extract(" H", load_gate("polish_8tags_regex").generate.extract[0].regex) == "H"


def test_f1_positive_class_is_label_one():
    from sklearn.metrics import f1_score

    golds, preds = [1, 1, 1, 0, 0, 0], [1, 0, 0, 0, 0, 0]
    assert binary_f1(golds, preds) == pytest.approx(0.5)
    assert binary_f1([1 - g for g in golds], [1 - p for p in preds]) == pytest.approx(f1_score(
        [1 - g for g in golds], [1 - p for p in preds]))
    assert binary_f1([0, 0], [0, 0]) == 0.0
    rnd = random.Random(3)
    for _ in range(50):
        g = [rnd.randrange(2) for _ in range(20)]
        p = [rnd.randrange(2) for _ in range(20)]
        assert binary_f1(g, p) == pytest.approx(f1_score(g, p, zero_division=0.0))


HOSTILE = {
    "good": "def add(a, b):\n    return a + b\n",
    "loop": "def add(a, b):\n    while True:\n        pass\n",
    "parent": "import os\nos.kill(os.getppid(), 9)\ndef add(a, b):\n    return a + b\n",
    "wrong": "def add(a, b):\n    return a - b\n",
}


def test_code_gate_scores_in_the_sandbox_and_survives_hostile_completions(tmp_path):
    rows = [{"text": f"Task {name}", "code": "def add(a, b): return a + b", "test_setup_code": "",
             "test_list": ["assert add(1, 2) == 3", "assert add(0, 0) == 0", "assert add(-1, 1) == 0"]}
            for name in HOSTILE]
    shots = [dict(rows[0], text=f"Shot {i}") for i in range(4)]
    gate = load_gate("mbpp").model_copy(update={"code": load_gate("mbpp").code.model_copy(update={"timeout_s": 2.0})})
    items = load_items(gate, write_rows(tmp_path, "m.jsonl", rows), fewshot_file=write_rows(tmp_path, "p.jsonl", shots))
    backend = CannedBackend({f"Task {name} Your code should pass these tests:\n\nassert add(1, 2) == 3\n"
                             f"assert add(0, 0) == 0\nassert add(-1, 1) == 0\n[BEGIN]\n": code + "[DONE]"
                             for name, code in HOSTILE.items()})
    with pytest.raises(Exception, match="allow-code-exec"):
        score_gate(items, backend, SUBJECT, 4, False, lambda d, t: None)
    result, samples = score_gate(items, backend, SUBJECT, 4, True, lambda d, t: None)
    assert result["outcomes"] == [1.0, 0.0, 0.0, 0.0]
    assert result["metrics"]["pass@1"] == 0.25
    assert samples[1]["status"] == "timeout"
