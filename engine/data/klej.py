"""KLEJ-family train splits as instructions: the gate's own prompt, the gate's own label string.

`format = "chat"` writes `messages` (the prompt as the user turn, the label as the answer: trained in the
chat template); `format = "plain"` writes `prompt` and `completion` (delimiter + label, as the gate scores
the continuation: trained as raw text, which is how the leaderboard's KLEJ gates score, without a template).

Per task: every train row is checked (columns, labels) and guarded against the task's test split and
the named gates; duplicates go; then each class gets an equal share of the task's quota (capped per
class), drawn by seed. Classes short of rows stay short — balance is never bought with repeats.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, model_validator

from engine.data.against import GuardedConfig, guard
from engine.data.examples import jsonl, report_json, rng, write_outputs
from engine.data.wordhash import normalise
from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.jobs import JobConfig

# short task name → the multiple-choice gate whose template and labels the data uses
TASKS = {"psc": "polish_psc", "ppc": "polish_ppc", "dyk": "polish_dyk", "8tags": "polish_8tags",
         "polemo2_in": "polemo2_in"}


class KlejTask(JobConfig):
    train: str | None = Field(None, description="local train file (jsonl/json/csv/tsv/parquet); "
                                                "none: the gate's Hugging Face dataset, split train")
    test: str | None = Field(None, description="local copy of the test split the guard checks; none: the gate's own")
    gate: str | None = Field(None, description="gate whose template and labels to use (default: the task's "
                                               "multiple-choice gate; a _regex variant works too)")


class KlejConfig(GuardedConfig):
    tasks: dict[str, KlejTask] = Field(default_factory=lambda: {t: KlejTask() for t in TASKS},
                                       description="task name (psc, ppc, dyk, 8tags, polemo2_in) → its sources")
    per_task: int = Field(150, ge=1, description="examples per task (the quota, split equally over classes)")
    min_per_task: int = Field(120, ge=0, description="warn when a task yields fewer examples than this")
    per_class_cap: int = Field(0, ge=0, description="most examples of one class of one task (0: per_task / classes)")
    format: Literal["chat", "plain"] = Field(
        "chat", description="chat: `messages` rows (trained in the chat template); plain: `prompt`/`completion` rows, "
                            "the text the gates score without a chat template")
    seed: int = Field(0, description="same seed, same inputs: byte-identical output")
    guard_against: list[str] = Field(default_factory=list, description="also guard against these suites, gates, "
                                                                       "GATE=FILE or test files")

    @model_validator(mode="after")
    def _known(self):
        if not self.tasks:
            raise ValueError("name at least one task")
        for name, task in self.tasks.items():
            if name not in TASKS and task.gate is None:
                raise ValueError(f"unknown task {name!r} (known: {', '.join(TASKS)}; or set its gate)")
        return self

    def gate_name(self, task: str) -> str:
        return self.tasks[task].gate or TASKS[task]


def _train_rows(gate, file: str | None) -> tuple[list[dict], list[int], str]:
    """Every row of the task's train split (rows, their indices, where from), checked by the gate's own
    rules: columns, labels, template."""
    from engine.gates.data import check_rows, load_items

    if file is None:
        train = gate.model_copy(update={"n": 0, "fewshot": gate.fewshot.model_copy(update={"k": 0}),
                                        "dataset": gate.dataset.model_copy(update={"split": "train", "file": None})})
        items = load_items(train, None)
        return items.rows, items.indices, items.source
    rows = read_rows(file)
    needed = gate.required_columns()
    for number, row in enumerate(rows, 1):
        missing = sorted(needed - set(row))
        if missing:
            raise SpecError(f"{file}: row {number}: missing column {missing[0]!r} (gate {gate.name} reads "
                            f"{', '.join(sorted(needed))})")
    check_rows(gate, rows, list(range(len(rows))), str(file))
    return rows, list(range(len(rows))), str(file)


def example_fields(fmt: str, gate, prompt: str, label: str) -> dict:
    """One example in `fmt`: chat messages, or the prompt and the continuation the gate scores after it."""
    if fmt == "plain":
        return {"prompt": prompt, "completion": gate.target_delimiter + label}
    return {"messages": [{"role": "user", "content": prompt}, {"role": "assistant", "content": label}]}


def _class_quotas(per_task: int, cap: int, classes: int, seed: int, task: str) -> list[int]:
    base, extra = divmod(per_task, classes)
    lucky = set(rng(seed, task, "remainder").sample(range(classes), extra))
    return [min(cap, base + (c in lucky)) for c in range(classes)]


def build_klej(config: KlejConfig, out: Path, report_path: Path,
               progress: Callable[[int, int, str], None] | None = None,
               log: Callable[[str], None] = lambda message: None) -> dict:
    """Write the instructions to `out` and the report (with the guard's) to `report_path`; return the report."""
    from engine.gates.spec import load_gate

    say = progress or (lambda done, total, label: None)
    gates, loaded, candidates = {}, {}, []
    for number, task in enumerate(config.tasks):
        say(number, len(config.tasks), f"reading {task}")
        gate = gates[task] = load_gate(config.gate_name(task))
        rows, indices, source = _train_rows(gate, config.tasks[task].train)
        loaded[task] = {"source": source, "rows": len(rows)}
        for index, row in zip(indices, rows):
            candidates.append((task, index, gate.render(row), gate.label_text(row), gate.gold_index(row)))
    files = {**config.guard_files,
             **{gates[t].name: config.tasks[t].test for t in config.tasks if config.tasks[t].test}}
    keep, guard_report = guard([[c[2]] for c in candidates],
                               [{"task": c[0], "split": "train", "row": c[1]} for c in candidates],
                               [gates[t].name for t in config.tasks] + config.guard_against, files, config.ngram,
                               lambda done, total: say(done, total, "guard"))
    pools: dict[str, dict[int, list]] = {t: {} for t in config.tasks}
    seen, stats = set(), {t: {"duplicates": 0, "overlapping": 0} for t in config.tasks}
    for ok, cand in zip(keep, candidates):
        task = cand[0]
        if not ok:
            stats[task]["overlapping"] += 1
            continue
        key = normalise(cand[2])
        if key in seen:  # the same prompt twice teaches nothing and may carry two labels
            stats[task]["duplicates"] += 1
            continue
        seen.add(key)
        pools[task].setdefault(cand[4], []).append(cand)
    examples, tasks_report, warnings = [], {}, []
    for task in config.tasks:
        gate = gates[task]
        choices = gate.choices or []
        classes = max(len(choices), 1)
        cap = config.per_class_cap or math.ceil(config.per_task / classes)
        quotas = _class_quotas(config.per_task, cap, classes, config.seed, task)
        by_class = {}
        for c in range(classes):
            pool = pools[task].get(c, [])
            rng(config.seed, task, c).shuffle(pool)
            chosen = pool[:quotas[c]]
            examples += chosen
            by_class[choices[c] if choices else str(c)] = {"available": len(pool), "selected": len(chosen)}
        selected = sum(v["selected"] for v in by_class.values())
        if selected < config.min_per_task:
            warnings.append(f"{task}: {selected} examples, fewer than min_per_task = {config.min_per_task}")
        tasks_report[task] = {"gate": gate.name, **loaded[task],
                              **stats[task], "selected": selected, "classes": by_class}
    rng(config.seed, "order").shuffle(examples)
    rows = [{**example_fields(config.format, gates[task], prompt, label),
             "source": {"kind": "klej", "task": task, "gate": gates[task].name, "split": "train", "row": index}}
            for task, index, prompt, label, _ in examples]
    for w in warnings:
        log(f"warning: {w}")
    report = {"builder": "klej", "output": Path(out).name, "format": config.format, "seed": config.seed,
              "per_task": config.per_task,
              "per_class_cap": config.per_class_cap, "total": len(rows), "tasks": tasks_report,
              "warnings": warnings, "guard": guard_report}
    write_outputs({Path(out): jsonl(rows), Path(report_path): report_json(report)})
    say(len(config.tasks), len(config.tasks), "written")
    return report
