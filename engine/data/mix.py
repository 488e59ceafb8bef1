"""The training mix: all of the operator's style data, a replay share (default 20 %), KLEJ as a capped
minority; guarded, shuffled by seed, with a report of counts, tokens and ratios (JSON and Markdown).

Sizes: with S style examples, replay share r and KLEJ cap c, the mix has T = (S + K) / (1 − r)
examples when all K KLEJ examples fit under the cap, else T = S / (1 − r − c) with K = ⌊c·T⌋; replay
is round(r·T), drawn in proportion to its skills, KLEJ in proportion to its task/class groups.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from pathlib import Path
from typing import Callable

from pydantic import Field, model_validator

from engine.data.against import GuardedConfig, guard
from engine.data.coverage import coverage, markdown_rows, unanchored_lines
from engine.data.examples import allocate, example_texts, is_plain, jsonl, report_json, rng, to_messages, write_outputs
from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.events import sha256_file

PARTS = ("style", "replay", "klej")


class MixConfig(GuardedConfig):
    style: str = Field(description="the operator's style data: messages (or prompt/response) rows")
    replay: str | None = Field(None, description="output of data.replay")
    klej: str | None = Field(None, description="output of data.klej")
    replay_share: float = Field(0.20, ge=0, le=0.5, description="replay's share of all examples (15-30 % is the "
                                                                "tested range; 0 builds a no-replay ablation)")
    klej_max_share: float = Field(0.15, ge=0, le=0.5, description="the most KLEJ may take of all examples")
    seed: int = 0
    tokenizer: str | None = Field(None, description="tokenizer (HF id or directory) for token counts; "
                                                    "none: whitespace tokens")
    gated: list[str] = Field(default_factory=lambda: ["core"],
                             description="suites or gates the checkpoints are gated on: each of their general axes "
                                         "needs replay examples anchoring it (a warning when one has none)")
    require_anchor_coverage: bool = Field(False, description="refuse (write nothing) when a gated axis has no "
                                                             "replay example anchoring it")

    @model_validator(mode="after")
    def _valid(self):
        if self.replay_share > 0 and not self.replay:
            raise ValueError("replay_share > 0 needs a replay file")
        if self.replay_share + self.klej_max_share >= 1:
            raise ValueError("replay_share + klej_max_share must stay below 1")
        return self


def _read(path: str, part: str) -> list[dict]:
    """Rows of one input as {messages, source}, or {prompt, completion, source} for a plain KLEJ row (data.klej
    format = "plain": kept plain, so the adapter learns it as its gate scores it); replay rows need source.skill,
    KLEJ rows source.task."""
    out = []
    need = {"replay": "skill", "klej": "task"}.get(part)
    for i, row in enumerate(read_rows(path)):
        where = f"{path}: row {i + 1}"
        source = row.get("source") if isinstance(row.get("source"), dict) else {}
        if need and need not in source:
            raise SpecError(f"{where}: no source.{need} (build this file with data.{part})")
        tag = {**source, "kind": part} if need else {"kind": "style", "row": i}
        example = ({"prompt": row["prompt"], "completion": row["completion"]} if part == "klej" and is_plain(row)
                   else {"messages": to_messages(row, where)})
        out.append({**example, "source": tag})
    return out


def _sizes(style: int, replay: int, klej: int, config: MixConfig) -> tuple[int, int]:
    """How many replay and KLEJ examples the mix takes (see the module docstring)."""
    r, c = config.replay_share, config.klej_max_share
    total = (style + klej) / (1 - r)
    k = klej
    if klej > c * total:
        total = style / (1 - r - c)
        k = math.floor(c * total)
    need = round(r * total)
    if need > replay:
        raise SpecError(f"{config.replay}: {replay} clean replay examples; a {r:.0%} replay share of this mix "
                        f"needs {need} (build more replay or lower replay_share)")
    return need, k


def _draw(rows: list[dict], count: int, key: Callable[[dict], str], seed: int, part: str) -> list[dict]:
    groups: dict[str, list[dict]] = defaultdict(list)
    for row in rows:
        groups[key(row)].append(row)
    out = []
    for name, n in sorted(allocate(count, {k: len(v) for k, v in groups.items()}).items()):
        pool = groups[name]
        rng(seed, part, name).shuffle(pool)
        out += pool[:n]
    return out


def _counter(tokenizer: str | None) -> Callable[[str], int]:
    if tokenizer is None:
        return lambda text: len(text.split())
    from transformers import AutoTokenizer

    try:
        tok = AutoTokenizer.from_pretrained(tokenizer)
    except OSError as e:
        raise SpecError(f"{tokenizer}: cannot load the tokenizer ({str(e)[:200]})") from None
    return lambda text: len(tok.encode(text, add_special_tokens=False))


def _label(row: dict) -> str:
    if "completion" in row:
        return row["completion"].strip()
    return next(m["content"] for m in reversed(row["messages"]) if m["role"] == "assistant")


def _table(rows: list[dict], count: Callable[[str], int]) -> dict:
    """Counts and token counts by source, task, class and skill, with shares of the whole mix."""
    tokens = [sum(count(text) for text in example_texts(r)) for r in rows]
    total_n, total_t = len(rows), sum(tokens)
    dims = {"by_source": lambda r: r["source"]["kind"],
            "by_task": lambda r: r["source"].get("task") if r["source"]["kind"] == "klej" else None,
            "by_class": lambda r: f"{r['source']['task']}/{_label(r)}" if r["source"]["kind"] == "klej" else None,
            "by_skill": lambda r: r["source"].get("skill") if r["source"]["kind"] == "replay" else None}
    out = {"total": {"examples": total_n, "tokens": total_t}}
    for dim, key in dims.items():
        n, t = Counter(), Counter()
        for row, k in zip(rows, tokens):
            name = key(row)
            if name is not None:
                n[name] += 1
                t[name] += k
        out[dim] = {name: {"examples": n[name], "tokens": t[name], "share": round(n[name] / max(total_n, 1), 4),
                           "token_share": round(t[name] / max(total_t, 1), 4)} for name in sorted(n)}
    return out


def markdown(report: dict) -> str:
    """The report's tables as Markdown (what the model card and a reviewer read)."""
    lines = [f"# Training mix `{report['output']}`", "",
             f"{report['total']['examples']} examples, {report['total']['tokens']} tokens "
             f"({report['tokens']}); seed {report['seed']}; target replay share "
             f"{report['target']['replay_share']:.0%}, KLEJ cap {report['target']['klej_max_share']:.0%}.", ""]
    for dim, title in (("by_source", "source"), ("by_task", "KLEJ task"), ("by_class", "KLEJ class"),
                       ("by_skill", "replay skill")):
        if not report[dim]:
            continue
        lines += [f"| {title} | examples | share | tokens | token share |", "|---|---:|---:|---:|---:|"]
        lines += [f"| {name} | {v['examples']} | {v['share']:.1%} | {v['tokens']} | {v['token_share']:.1%} |"
                  for name, v in report[dim].items()]
        lines.append("")
    lines += ["## Replay anchors per gated axis", "", *markdown_rows(report["coverage"]), ""]
    lines += ["## Contamination guard", "", *[f"- {s}" for s in report["guard"]["summary"]],
              f"- dropped {report['guard']['dropped']} of {report['guard']['checked']} examples", ""]
    if report["warnings"]:
        lines += ["## Warnings", "", *[f"- {w}" for w in report["warnings"]], ""]
    return "\n".join(lines)


def build_mix(config: MixConfig, out: Path, report_path: Path,
              progress: Callable[[int, int, str], None] | None = None,
              log: Callable[[str], None] = lambda message: None) -> dict:
    """Write the mix to `out`, the report to `report_path` and its Markdown next to it; return the report."""
    say = progress or (lambda done, total, label: None)
    inputs = {"style": config.style, "replay": config.replay, "klej": config.klej}
    parts = {p: _read(path, p) if path else [] for p, path in inputs.items()}
    if not parts["style"]:
        raise SpecError(f"{config.style}: no style examples")
    everything = [row for p in PARTS for row in parts[p]]
    keep, guard_report = guard([example_texts(r) for r in everything], [r["source"] for r in everything],
                               config.guard_against, config.guard_files, config.ngram,
                               lambda done, total: say(done, total, "guard"))
    flags = iter(keep)
    clean = {p: [row for row in parts[p] if next(flags)] for p in PARTS}
    n_replay, n_klej = _sizes(len(clean["style"]), len(clean["replay"]), len(clean["klej"]), config)
    chosen = clean["style"] + _draw(clean["replay"], n_replay, lambda r: r["source"]["skill"], config.seed, "replay")
    chosen += _draw(clean["klej"], n_klej, lambda r: f"{r['source']['task']}/{_label(r)}", config.seed, "klej")
    rng(config.seed, "order").shuffle(chosen)
    say(0, 1, "counting tokens")
    table = _table(chosen, _counter(config.tokenizer))
    shares = {p: table["by_source"].get(p, {}).get("share", 0.0) for p in PARTS}
    warnings = []
    if config.replay_share and not 0.15 <= shares["replay"] <= 0.30:
        warnings.append(f"replay is {shares['replay']:.1%} of the mix, outside the tested 15-30 % range")
    if shares["klej"] >= shares["style"]:
        warnings.append("KLEJ is not a minority of the mix")
    cov = coverage(Counter(r["source"]["skill"] for r in chosen if r["source"]["kind"] == "replay"), config.gated)
    missing = unanchored_lines(cov)
    if missing and config.require_anchor_coverage:
        raise SpecError(f"{config.replay or config.style}: {missing[0]}; require_anchor_coverage is on "
                        f"({len(missing)} gated axes without an anchor)")
    warnings += missing
    for w in warnings:
        log(f"warning: {w}")
    report = {"builder": "mix", "output": Path(out).name, "seed": config.seed, "inputs": inputs,
              "input_sha256": {p: sha256_file(path) for p, path in inputs.items() if path},
              "available": {p: len(clean[p]) for p in PARTS},
              "target": {"replay_share": config.replay_share, "klej_max_share": config.klej_max_share},
              "ratios": shares, "tokens": config.tokenizer or "whitespace", **table, "coverage": cov,
              "warnings": warnings,
              "guard": guard_report}
    rows = [{k: r[k] for k in ("messages", "prompt", "completion", "source") if k in r} for r in chosen]
    write_outputs({Path(out): jsonl(rows), Path(report_path): report_json(report),
                   Path(report_path).with_suffix(".md"): markdown(report)})
    say(1, 1, "written")
    return report
