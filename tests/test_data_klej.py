"""data.klej end to end on fixture files: guard, label strings, balance, malformed inputs, determinism."""

from __future__ import annotations

import json
import shutil
import sys
from pathlib import Path

import pytest

from engine.datafiles import read_rows
from engine.gates.extract import choice_index, extract
from engine.gates.spec import load_gate

DATA = Path(__file__).resolve().parent / "data" / "klej"
FILES = {"psc": ("psc_train.csv", "psc_test.jsonl"), "ppc": ("ppc_train.tsv", "ppc_test.tsv"),
         "dyk": ("dyk_train.jsonl", "dyk_test.jsonl"), "8tags": ("8tags_train.parquet", "8tags_test.parquet"),
         "polemo2_in": ("polemo2_in_train.json", "polemo2_in_test.json")}
PLANTED_ROW = 17  # psc_train.csv row 17 (0-based) is a copy of psc_test.jsonl's fourth item


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """`slayer ARGS` in this process, as the console script runs it (SpecError → one line, exit 2)."""
    from slayer_console.cli import main

    old = sys.argv
    sys.argv = ["slayer", *args]
    try:
        main()
        code = 0
    except SystemExit as e:
        code = e.code or 0
    finally:
        sys.argv = old
    out = capsys.readouterr()
    return code, out.out, out.err


def klej_args(out: Path, tasks=FILES, data=DATA, extra=()) -> list[str]:
    args = ["data", "klej", "--out", str(out), "--per-task", "12", "--quiet", *extra]
    for task, (train, test) in tasks.items():
        args += ["--task", f"{task}={data / train}", "--test", f"{task}={data / test}"]
    return args


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    """One build of all five tasks (per task 12), and its report."""
    from engine.data.klej import KlejConfig, KlejTask, build_klej

    out = tmp_path_factory.mktemp("klej") / "klej.jsonl"
    config = KlejConfig(tasks={t: KlejTask(train=str(DATA / a), test=str(DATA / b)) for t, (a, b) in FILES.items()},
                        per_task=12)
    report = build_klej(config, out, out.with_name("report.json"))
    return out, report


def test_planted_test_item_is_excluded_and_counted_once(built):
    out, report = built
    overlaps = {g["name"]: g["overlap"] for g in report["guard"]["gates"]}
    assert overlaps == {"polish_psc": 1, "polish_ppc": 0, "polish_dyk": 0, "polish_8tags": 0, "polemo2_in": 0}
    assert report["guard"]["dropped_examples"][0]["source"] == {"task": "psc", "split": "train", "row": PLANTED_ROW}
    assert "polish_psc: 1 overlap" in report["guard"]["summary"][0]
    psc = load_gate("polish_psc")
    planted_prompt = psc.render(read_rows(DATA / "psc_test.jsonl")[3])
    rows = lines(out)
    assert all(r["messages"][0]["content"] != planted_prompt for r in rows)
    assert not any(r["source"]["task"] == "psc" and r["source"]["row"] == PLANTED_ROW for r in rows)
    assert report["tasks"]["psc"]["overlapping"] == 1


@pytest.mark.parametrize("variant", ["", "_regex"])
def test_label_strings_are_what_the_gate_scorers_accept(tmp_path, variant):
    from engine.data.klej import TASKS, KlejConfig, KlejTask, build_klej

    tasks = {t: KlejTask(train=str(DATA / a), test=str(DATA / b), gate=TASKS[t] + variant)
             for t, (a, b) in FILES.items()}
    out = tmp_path / "klej.jsonl"
    build_klej(KlejConfig(tasks=tasks, per_task=12), out, tmp_path / "report.json")
    rows = lines(out)
    assert {r["source"]["task"] for r in rows} == set(FILES)
    for r in rows:
        gate = load_gate(r["source"]["gate"])
        assert gate.name == TASKS[r["source"]["task"]] + variant
        train = read_rows(DATA / FILES[r["source"]["task"]][0])[r["source"]["row"]]
        user, assistant = r["messages"]
        assert (user["role"], assistant["role"]) == ("user", "assistant")
        assert user["content"] == gate.render(train)
        assert assistant["content"] == assistant["content"].strip() and assistant["content"] in gate.choices
        # What the gate's own parser makes of the answer is the row's gold choice.
        answer = assistant["content"]
        if gate.scorer == "generate":
            answer = extract(answer, gate.generate.extract[0].regex, gate.generate.extract[0].take)
        assert choice_index(answer, gate.choices_for(train)) == gate.gold_index(train)


def test_classes_are_balanced_and_capped(built):
    out, report = built
    rows = lines(out)
    per_class = {}
    for r in rows:
        key = (r["source"]["task"], r["messages"][1]["content"])
        per_class[key] = per_class.get(key, 0) + 1
    assert per_class[("psc", "Tak")] == per_class[("psc", "Nie")] == 6  # psc's train split is 3:1 Nie
    assert {per_class[("ppc", c)] for c in "ABC"} == {4}
    tags = [n for (task, _), n in per_class.items() if task == "8tags"]
    assert len(tags) == 8 and max(tags) <= 2  # 26 Film rows available, still at most ceil(12 / 8)
    assert sum(tags) == 12 and report["tasks"]["8tags"]["classes"]["Film"]["available"] == 26
    assert len(rows) == report["total"] == 60


def test_same_seed_same_bytes_other_seed_other_draw(tmp_path, capsys):
    outs = []
    for name, seed in (("a", "3"), ("b", "3"), ("c", "4")):
        out = tmp_path / f"{name}.jsonl"
        code, _, err = run_cli(klej_args(out, extra=["--seed", seed]), capsys)
        assert code == 0, err
        outs.append(out.read_bytes())
    assert outs[0] == outs[1]
    assert outs[0] != outs[2]
    reports = [json.loads((tmp_path / f"{n}_report.json").read_text()) for n in "ab"]
    assert reports[0].pop("output") == "a.jsonl" and reports[1].pop("output") == "b.jsonl"
    assert reports[0] == reports[1]


def _broken(tmp_path: Path, task: str, name: str, text: str) -> tuple[dict, Path]:
    data = tmp_path / "data"
    shutil.copytree(DATA, data, dirs_exist_ok=True)
    (data / name).write_text(text, encoding="utf-8")
    train, test = FILES[task]
    return {task: (name, test)}, data


@pytest.mark.parametrize("task, name, text, expect", [
    ("psc", "psc_bad.csv", "extract_text,label\n\"Jakiś tekst\",1\n", ["row 1", "missing column", "summary_text"]),
    ("polemo2_in", "polemo_bad.jsonl",
     '{"sentence": "Dobre.", "target": "__label__meta_zero"}\n{"sentence": "Złe.", "target": "__label__meta_bad"}\n',
     ["row 2", "__label__meta_bad"]),
    ("psc", "psc_quote.csv", 'extract_text,summary_text,label\n"a","b",1\n"otwarty cudzysłów,"c,0\n',
     ["line 3", "malformed CSV"]),
    ("dyk", "dyk_empty.jsonl", "", ["empty file"]),
])
def test_malformed_input_fails_in_one_line_and_writes_nothing(tmp_path, capsys, task, name, text, expect):
    tasks, data = _broken(tmp_path, task, name, text)
    out = tmp_path / "out" / "klej.jsonl"
    code, stdout, err = run_cli(klej_args(out, tasks, data), capsys)
    assert code == 2
    message = err.strip()
    assert "\n" not in message and message.startswith("error: ") and str(data / name) in message
    for word in expect:
        assert word in message
    assert not out.exists() and not out.with_name("klej_report.json").exists()
    assert not any(out.parent.glob("*")) if out.parent.exists() else True


def test_unknown_task_is_a_usage_error(tmp_path, capsys):
    code, _, err = run_cli(["data", "klej", "--task", f"sst2={DATA / 'psc_train.csv'}", "--out",
                            str(tmp_path / "k.jsonl")], capsys)
    assert code == 2 and "unknown task 'sst2'" in err and err.count("\n") == 1
