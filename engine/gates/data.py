"""A gate's items: rows from a local file or the Hugging Face hub, checked, subset drawn, prompts built.

The subset: with `n` set below the number of rows, `random.Random(seed).sample(range(rows), n)`,
then kept in dataset order; with `n = 0` (or n ≥ rows) every row. `limit` then keeps the first
`limit` of those (a smoke run; its fingerprint records the smaller n).
"""

from __future__ import annotations

import hashlib
import json
import random
from dataclasses import dataclass, field
from pathlib import Path

from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.gates.spec import Gate, LabelError
from engine.gates.template import MissingField, TemplateError


def select_indices(total: int, n: int, seed: int) -> list[int]:
    """Row indices of the subset, in dataset order (see the module docstring)."""
    if n <= 0 or n >= total:
        return list(range(total))
    return sorted(random.Random(seed).sample(range(total), n))


@dataclass
class GateItems:
    gate: Gate
    rows: list[dict]  # the selected rows, dataset order
    indices: list[int]  # their row numbers (0-based) in the source
    source: str  # the file, or hf:<id>[/<config>]:<split>
    total: int  # rows in the source
    content_hash: str
    fewshot_pool: list[dict] = field(default_factory=list)
    fewshot_same_source: bool = False  # examples come from the items' own split: never show an item itself
    fixture: bool = False  # the items are the gate's shipped fixture (tests, demos): they certify nothing

    def shots(self) -> list[list[dict]]:
        """Each item's few-shot example rows: the first k, or lm-eval's draw (one seeded stream, never the item)."""
        gate, k = self.gate, self.gate.fewshot.k
        if k == 0:
            return [[] for _ in self.rows]
        if gate.fewshot.sampler == "first_n":
            return [self.fewshot_pool[:k] for _ in self.rows]
        rnd = random.Random(gate.fewshot.seed)
        draw = k + 1 if self.fewshot_same_source else k
        return [[s for s in rnd.sample(self.fewshot_pool, draw) if s != row][:k] for row in self.rows]

    def prompts(self) -> list[str]:
        """Each item's full prompt: few-shot examples (prompt, delimiter, answer, blank line), then the item."""
        gate = self.gate
        return ["".join(gate.render(s) + gate.target_delimiter + gate.label_text(s) + "\n\n" for s in shots)
                + gate.render(row) for shots, row in zip(self.shots(), self.rows)]

    def chats(self) -> list[list[dict]]:
        """Each item as chat messages, as lm-eval's --apply_chat_template builds them: `options.system` as a system
        turn, then the full prompt as one user turn, or (fewshot_as_multiturn) each example as a user turn and its
        answer as an assistant turn before the item's own user turn."""
        gate = self.gate
        system = gate.options.get("system")
        head = [{"role": "system", "content": system}] if system else []
        if not gate.fewshot_as_multiturn:
            return [head + [{"role": "user", "content": p}] for p in self.prompts()]
        out = []
        for shots, row in zip(self.shots(), self.rows):
            turns = [t for s in shots for t in ({"role": "user", "content": gate.render(s)},
                                                {"role": "assistant", "content": gate.label_text(s)})]
            out.append(head + turns + [{"role": "user", "content": gate.render(row)}])
        return out

    def golds(self) -> list[int] | None:
        return [self.gate.gold_index(r) for r in self.rows] if self.gate.has_choices else None


def _offline_advice(gate: Gate) -> str:
    return (f"on an offline box copy it to a local file (jsonl/json/csv/tsv/parquet, same columns) and name it in the "
            f"run's `files` table ({gate.name} = \"FILE\"; CLI: --gate {gate.name}=FILE)")


def _hf_rows(gate: Gate, split: str) -> tuple[list[dict], str]:
    """The split from the hub: through `datasets`, or (`hf_file`) one file of the dataset's repository."""
    ds = gate.dataset
    name = f"hf:{ds.hf}{'/' + ds.config if ds.config else ''}{'/' + ds.hf_file if ds.hf_file else ''}:{split}"
    try:
        if ds.hf_file:
            from huggingface_hub import hf_hub_download

            return read_rows(hf_hub_download(ds.hf, ds.hf_file, repo_type="dataset")), name
        import datasets

        data = datasets.load_dataset(ds.hf, ds.config, split=split)
    except SpecError:
        raise
    except Exception as e:  # offline boxes, unknown ids, missing splits: all need the same advice
        raise SpecError(f"gate {gate.name}: cannot load {name} ({e.__class__.__name__}: {str(e)[:160]}); "
                        f"{_offline_advice(gate)}") from None
    return data.to_list(), name


def _resolve(path: str, gate: Gate, from_gate_toml: bool) -> Path:
    p = Path(path).expanduser()
    if from_gate_toml and not p.is_absolute() and gate.source is not None:
        p = gate.source.parent / p
    return p


def _read_source(gate: Gate, file: str | None, gate_file: str | None, split: str,
                 fixture: bool = False) -> tuple[list[dict], str]:
    """Rows from the run's file, else the gate's own file, else (asked for) its shipped fixture, else the hub."""
    ds = gate.dataset
    if file:
        path = _resolve(file, gate, False)
    elif gate_file:
        path = _resolve(gate_file, gate, True)
    elif fixture and ds.fixture:
        path = _resolve(ds.fixture, gate, True)
    elif ds.hf:
        return _hf_rows(gate, split)
    elif ds.user_data:
        raise SpecError(f"gate {gate.name} scores your own data ({ds.user_data}): name the file in the run's `files` "
                        f"table ({ds.user_data_key or gate.name} = \"FILE\"; CLI: --gate {gate.name}=FILE); "
                        f"columns: {', '.join(sorted(gate.required_columns()))}")
    else:
        raise SpecError(f"{gate.source}: gate {gate.name}: no dataset.hf and no local file; "
                        f"name one in the run's `files` table ({gate.name} = \"FILE\")")
    return read_rows(path), str(path)


def row_place(source: str, index: int) -> str:
    """Where row `index` (0-based) is: its line in a JSONL file (blank lines skipped as read_rows skips them),
    else its row number."""
    path = Path(source)
    if path.suffix.lower() == ".jsonl" and path.is_file():
        lines = [n for n, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1) if line.strip()]
        if index < len(lines):
            return f"line {lines[index]}"
    return f"row {index + 1}"


def check_rows(gate: Gate, rows: list[dict], indices: list[int], source: str) -> None:
    """Every needed column present, every label inside the label set, every prompt renderable."""
    from engine.gates.scoring import get_scorer

    needed = gate.required_columns() | set(get_scorer(gate.scorer, str(gate.source)).columns)
    for i, row in zip(indices, rows):
        missing = sorted(needed - set(row))
        if missing:
            raise SpecError(f"{source}: {row_place(source, i)}: gate {gate.name}: missing column {missing[0]!r} "
                            f"(the row has: {', '.join(sorted(row))}; the gate reads: {', '.join(sorted(needed))})")
    for i, row in zip(indices, rows):
        try:
            gate.render(row)
            if gate.has_choices:
                gate.gold_index(row)
        except MissingField as e:
            raise SpecError(f"{source}: gate {gate.name}: row {i + 1}: missing field {e.args[0]!r}") from None
        except LabelError as e:
            raise SpecError(f"{source}: gate {gate.name}: row {i + 1}: {e}") from None
        except (TemplateError, TypeError, ValueError) as e:
            raise SpecError(f"{source}: gate {gate.name}: row {i + 1}: {e}") from None


def content_hash(gate: Gate, rows: list[dict]) -> str:
    """Hash of the columns the gate reads, over the selected rows in order: the same items give the same
    hash whether they came from the hub, a parquet copy with extra columns, or a CSV (values as text)."""
    cols = sorted(gate.required_columns())
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps([str(row.get(c)) for c in cols], ensure_ascii=False).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]


def load_items(gate: Gate, file: str | None = None, limit: int = 0, fewshot_file: str | None = None,
               fixture: bool = False) -> GateItems:
    """The gate's items from `file` (else the gate's own file, else with `fixture` its shipped fixture, else the
    hub), checked and subset-drawn."""
    rows, source = _read_source(gate, file, gate.dataset.file, gate.dataset.split, fixture)
    indices = select_indices(len(rows), gate.n, gate.seed)
    if limit:
        indices = indices[:limit]
    chosen = [rows[i] for i in indices]
    check_rows(gate, chosen, indices, source)
    pool: list[dict] = []
    if gate.fewshot.k:
        pool, pool_source = _read_source(gate, fewshot_file, gate.dataset.fewshot_file, gate.dataset.fewshot_split)
        check_rows(gate, pool, list(range(len(pool))), pool_source)
        if len(pool) < gate.fewshot.k + 1:
            raise SpecError(f"{pool_source}: gate {gate.name}: {len(pool)} few-shot rows, needs {gate.fewshot.k + 1}")
        same = pool_source == source
    else:
        same = False
    used_fixture = bool(fixture and not file and not gate.dataset.file and gate.dataset.fixture)
    return GateItems(gate, chosen, indices, source, len(rows), content_hash(gate, chosen + pool), pool, same,
                     used_fixture)
