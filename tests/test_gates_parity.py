"""The native likelihood scorer against lm-evaluation-harness (`hf` model, no BOS, the leaderboard's templates
written as lm-eval task YAMLs over the same local files): identical per-item predictions and metrics."""

import json
import textwrap
from pathlib import Path

import pytest

from engine.gates import load_gate, run_gates
from engine.gates.backend import SubjectSpec
from engine.tiny.build import tiny_model_dir

DATA = Path(__file__).parent / "data" / "gates"

# The fork's task definitions (speakleash lm-eval, polish4_shuf), pointed at local files.
TASKS = {
    "polish_psc": ("psc.jsonl", """
        doc_to_text: "Tekst: \\"{{extract_text}}\\"\\nPodsumowanie: \\"{{summary_text}}\\"\\nPytanie: Czy podsumowanie dla podanego tekstu jest poprawne?\\nOdpowiedz krótko \\"Tak\\" lub \\"Nie\\". Prawidłowa odpowiedź:"
        doc_to_choice: ["Nie", "Tak"]
        doc_to_target: label
        metric_list: [{metric: acc}, {metric: acc_norm}, {metric: f1}]
        """),
    "polish_8tags": ("8tags.jsonl", """
        doc_to_text: "Tytuł: \\"{{sentence}}\\"\\nDo podanego tytułu przyporządkuj jedną najlepiej pasującą kategorię z podanych: Film, Historia, Jedzenie, Medycyna, Motoryzacja, Praca, Sport, Technologie.\\nKategoria:"
        doc_to_choice: ["Film", "Historia", "Jedzenie", "Medycyna", "Motoryzacja", "Praca", "Sport", "Technologie"]
        doc_to_target: label
        metric_list: [{metric: acc}, {metric: acc_norm}]
        """),
    "polish_belebele": ("belebele.jsonl", """
        doc_to_text: "Fragment: \\"{{flores_passage}}\\"\\nPytanie: \\"{{question}}\\"\\nMożliwe odpowiedzi:\\nA - {{mc_answer1}}\\nB - {{mc_answer2}}\\nC - {{mc_answer3}}\\nD - {{mc_answer4}}\\nPrawidłowa odpowiedź:"
        doc_to_choice: ["A", "B", "C", "D"]
        doc_to_target: "{{['1', '2', '3', '4'].index(correct_answer_num)}}"
        metric_list: [{metric: acc}, {metric: acc_norm}]
        """),
}


def write_tasks(folder: Path) -> None:
    for gate, (file, body) in TASKS.items():
        head = f"""
            task: ref_{gate}
            dataset_path: json
            dataset_kwargs:
              data_files:
                test: {DATA / file}
            test_split: test
            output_type: multiple_choice
            """
        (folder / f"{gate}.yaml").write_text(textwrap.dedent(head) + textwrap.dedent(body), encoding="utf-8")


def lm_eval_predictions(model: Path, folder: Path) -> dict:
    import lm_eval
    from lm_eval.tasks import TaskManager

    out = lm_eval.simple_evaluate(
        model="hf", model_args={"pretrained": str(model), "add_bos_token": False, "dtype": "float32"},
        tasks=[f"ref_{g}" for g in TASKS], task_manager=TaskManager(include_path=str(folder)), batch_size=4,
        device="cpu", log_samples=True, bootstrap_iters=0)
    preds = {}
    for gate in TASKS:
        samples = sorted(out["samples"][f"ref_{gate}"], key=lambda s: s["doc_id"])
        lls = [[float(r[0]) for r in s["filtered_resps"]] for s in samples]
        norm_correct = [float(s["acc_norm"]) for s in samples]
        metrics = {k.split(",")[0]: float(v) for k, v in out["results"][f"ref_{gate}"].items()
                   if k.split(",")[0] in ("acc", "acc_norm", "f1")}
        preds[gate] = (lls, norm_correct, metrics)
    return preds


@pytest.mark.slow
def test_predictions_identical_to_lm_eval(tmp_path, monkeypatch):
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    model = tiny_model_dir("qwen3", 0)
    write_tasks(tmp_path)
    reference = lm_eval_predictions(model, tmp_path)

    gates = [load_gate(g) for g in TASKS]
    files = {g: str(DATA / file) for g, (file, _) in TASKS.items()}
    results = run_gates([SubjectSpec(name="tiny", model=str(model), dtype="float32")], gates, tmp_path / "out",
                        files=files, batch_size=4, samples_path=tmp_path / "samples.jsonl")
    samples = [json.loads(line) for line in (tmp_path / "samples.jsonl").read_text().splitlines()]
    for result in results:
        gate = result["gate"]
        ref_lls, ref_norm_correct, ref_metrics = reference[gate]
        ref_preds = [max(range(len(ll)), key=lambda i: (ll[i], -i)) for ll in ref_lls]
        assert result["preds"] == ref_preds, gate
        mine = [s for s in samples if s["gate"] == gate]
        assert [float(s["pred_norm"] == s["gold"]) for s in mine] == ref_norm_correct, gate
        ours = [s["loglikelihoods"] for s in mine]
        worst = max(abs(a - b) for x, y in zip(ours, ref_lls) for a, b in zip(x, y))
        assert worst < 1e-4, (gate, worst)
        for metric in ("acc", "acc_norm", "f1"):
            ours_value = result["metrics"].get(metric)
            if ours_value is not None:
                assert ours_value == pytest.approx(ref_metrics[metric], abs=1e-12), (gate, metric)
    assert {r["gate"] for r in results} == set(TASKS)
