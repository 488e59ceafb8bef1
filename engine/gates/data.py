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

    def prompts(self) -> list[str]:
        """Each item's full prompt: few-shot examples (prompt, delimiter, answer, blank line), then the item."""
        gate, k = self.gate, self.gate.fewshot.k
        if k == 0:
            return [gate.render(row) for row in self.rows]
        rnd = random.Random(gate.fewshot.seed)
        out = []
        for row in self.rows:
            if gate.fewshot.sampler == "first_n":
                shots = self.fewshot_pool[:k]
            else:  # lm-eval's sampler: one draw per item from one seeded stream
                draw = k + 1 if self.fewshot_same_source else k
                shots = [s for s in rnd.sample(self.fewshot_pool, draw) if s != row][:k]
            prefix = "".join(gate.render(s) + gate.target_delimiter + gate.label_text(s) + "\n\n" for s in shots)
            out.append(prefix + gate.render(row))
        return out

    def golds(self) -> list[int] | None:
        return [self.gate.gold_index(r) for r in self.rows] if self.gate.has_choices else None


def _hf_rows(gate: Gate, split: str) -> tuple[list[dict], str]:
    ds = gate.dataset
    name = f"hf:{ds.hf}{'/' + ds.config if ds.config else ''}:{split}"
    if not ds.hf:
        raise SpecError(f"{gate.source}: gate {gate.name}: no dataset.hf and no local file (pass NAME=FILE)")
    try:
        import datasets

        data = datasets.load_dataset(ds.hf, ds.config, split=split)
    except Exception as e:  # offline boxes, unknown ids, missing splits: all need the same advice
        raise SpecError(f"{name}: gate {gate.name}: cannot load ({e.__class__.__name__}: {str(e)[:200]}); "
                        f"pass a local file instead ({gate.name}=FILE)") from None
    return data.to_list(), name


def _resolve(path: str, gate: Gate, from_gate_toml: bool) -> Path:
    p = Path(path).expanduser()
    if from_gate_toml and not p.is_absolute() and gate.source is not None:
        p = gate.source.parent / p
    return p


def _read_source(gate: Gate, file: str | None, gate_file: str | None, split: str) -> tuple[list[dict], str]:
    if file:
        path = _resolve(file, gate, False)
    elif gate_file:
        path = _resolve(gate_file, gate, True)
    else:
        return _hf_rows(gate, split)
    return read_rows(path), str(path)


def check_rows(gate: Gate, rows: list[dict], indices: list[int], source: str) -> None:
    """Every needed column present, every label inside the label set, every prompt renderable."""
    needed = gate.required_columns()
    missing = sorted(needed - set(rows[0]))
    if missing:
        raise SpecError(f"{source}: gate {gate.name}: missing column {missing[0]!r} "
                        f"(the file has: {', '.join(sorted(rows[0]))})")
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


def load_items(gate: Gate, file: str | None = None, limit: int = 0, fewshot_file: str | None = None) -> GateItems:
    """The gate's items from `file` (else the gate's own file, else the hub), checked and subset-drawn."""
    rows, source = _read_source(gate, file, gate.dataset.file, gate.dataset.split)
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
    return GateItems(gate, chosen, indices, source, len(rows), content_hash(gate, chosen + pool), pool, same)
