"""What the guard checks against: suites, gates (their whole test split), GATE=FILE pairs, plain test files."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field

from engine.data.examples import example_texts, jsonl, report_json, write_outputs
from engine.data.guard import NGRAM, GuardIndex, GuardItem, GuardSet
from engine.datafiles import FORMATS, read_rows
from engine.errors import SpecError
from engine.jobs import JobConfig


class GuardedConfig(JobConfig):
    """The guard settings every builder shares."""

    guard_against: list[str] = Field(default_factory=lambda: ["core"],
                                     description="suites, gates, GATE=FILE or test files the guard checks")
    guard_files: dict[str, str] = Field(default_factory=dict, description="gate name → local test file")
    ngram: int = Field(NGRAM, ge=4, description="guard n-gram length in words")


def _flatten(value) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, (list, tuple)):
        return [s for v in value for s in _flatten(v)]
    if isinstance(value, dict):
        return [s for v in value.values() for s in _flatten(v)]
    return []


def gate_set(gate, file: str | None = None) -> GuardSet:
    """Every row of the gate's test split (not just its scored subset): its prompt and its content fields."""
    from engine.gates.data import load_items
    from engine.gates.template import fields

    whole = gate.model_copy(update={"n": 0, "fewshot": gate.fewshot.model_copy(update={"k": 0})})
    items = load_items(whole, file)
    names = sorted(fields(gate.template))
    guard_items = []
    for row in items.rows:
        prepared = gate.prepare(row)
        guard_items.append(GuardItem([gate.render(row)], [s for f in names for s in _flatten(prepared.get(f))]))
    return GuardSet(gate.name, items.source, guard_items)


def file_set(path: str) -> GuardSet:
    """A plain test file: each row's texts count both as prompts and as content fields."""
    items = []
    for row in read_rows(path):
        texts = example_texts(row)
        items.append(GuardItem(texts, texts))
    return GuardSet(str(path), str(path), items)


def plan(against: list[str], files: dict[str, str] | None = None) -> dict[str, tuple[str, str | None]]:
    """name → ("gate" | "file", local file or None), in order, each name once.

    An entry is a suite, a gate name, GATE=FILE, a gate .toml, or a data file. A gate named with a
    file (here or in `files`) uses that file wherever else it is named.
    """
    from engine.gates.spec import load_gate, suites

    files = dict(files or {})
    names: list[tuple[str, str]] = []
    for entry in against:
        if "=" in entry:
            name, file = entry.split("=", 1)
            files[name.strip()] = file.strip()
            names.append(("gate", name.strip()))
        elif entry.endswith(".toml"):
            names.append(("gate", entry))
        elif Path(entry).suffix.lower() in FORMATS:
            names.append(("file", entry))
        elif entry in suites():
            names += [("gate", g) for g in suites()[entry]]
        else:
            load_gate(entry)  # an unknown name fails here, listing the known gates
            names.append(("gate", entry))
    out: dict[str, tuple[str, str | None]] = {}
    for kind, name in names:
        out.setdefault(name, (kind, files.get(name) if kind == "gate" else name))
    return out


def resolve(against: list[str], files: dict[str, str] | None = None) -> list[GuardSet]:
    """The guard sets of `against` (see `plan`)."""
    from engine.gates.spec import load_gate

    sets = []
    for name, (kind, file) in plan(against, files).items():
        if kind == "file":
            sets.append(file_set(name))
        else:
            sets.append(gate_set(load_gate(name), file))
    if not sets:
        raise SpecError("guard: nothing to check against (name a suite, a gate, GATE=FILE or a test file)")
    return sets


def build_index(against: list[str], files: dict[str, str] | None = None, ngram: int = NGRAM) -> GuardIndex:
    return GuardIndex(resolve(against, files), n=ngram)


def guard(texts: list[list[str]], tags: list[dict], against: list[str], files: dict[str, str] | None = None,
          ngram: int = NGRAM, progress=None) -> tuple[list[bool], dict]:
    """Check every example (its list of texts) against `against`: which to keep, and the guard report."""
    result = build_index(against, files, ngram).check(texts, progress)
    return result.keep(), result.report(tags)


def check_file(train: str, against: list[str], files: dict[str, str] | None, ngram: int, report_path: Path,
               clean_path: Path | None = None, progress=None) -> dict:
    """Guard a training file: write the report (and, if asked, the file without overlapping examples)."""
    rows = read_rows(train)
    tags = [row["source"] if isinstance(row.get("source"), dict) else {"row": i} for i, row in enumerate(rows)]
    keep, report = guard([example_texts(r) for r in rows], tags, against, files, ngram,
                         (lambda done, total: progress(done, total, "guard")) if progress else None)
    report = {"train": str(train), **report}
    outputs = {Path(report_path): report_json(report)}
    if clean_path is not None:
        outputs[Path(clean_path)] = jsonl([r for r, ok in zip(rows, keep) if ok])
    write_outputs(outputs)
    return report
