"""The model card: Markdown with Hugging Face `model-index` front matter, rendered only from the store.

The card is what people read (about a page): the verdict, the shipped files, the lineage from data to GGUF,
deltas vs the base and every reference by axis, serving latency and cost, the contamination statement.
Everything a reviewer needs to check it (CIs per gate, fingerprints, job configs, full data and guard
reports, cost per run) is in an appendix file the card links — nothing typed by hand in either.
"""

from __future__ import annotations

import json
import os
import tomllib
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import yaml
from sqlalchemy import select

from engine.errors import SpecError
from engine.vocab import AXES, VERDICTS, axis_order
from store.cost import CostTotal, ServingCost, experiment_costs, lineage_costs, serving_costs
from store.decisions import decisions_for, find_subject
from store.deltas import DeltaRow, DeltaTable, best, delta_table, get_experiment
from store.experiment_config import ExperimentConfig
from store.models import Artifact, GateResult, Run, Subject
from store.store import Store

SERVE_AXIS = "latency"  # bench.serve's results: shown as latency and cost, not as quality deltas


def _f(x, fmt: str = "{:+.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def md_table(header: list[str], rows: list[list]) -> str:
    def esc(v) -> str:
        return str(v).replace("|", "\\|").replace("\n", " ")
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(esc(v) for v in r) + " |" for r in rows]
    return "\n".join(lines)


def _ms(ms: int) -> str:
    return datetime.fromtimestamp(ms / 1000, timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


def _size(n: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024


def _money(x: float | None) -> str:
    return "—" if x is None else f"{x:,.4f}" if x < 1 else f"{x:,.2f}"


def markdown_delta_table(table: DeltaTable) -> str:
    """Every row of a delta table, one column per gate (Δ pp and verdict mark), plus score and verdict."""
    header = ["subject", "kind"] + [f"{g} ({a})" for g, a in table.gates] + ["style gain", "worst regr.", "score",
                                                                              "verdict", "decision"]
    rows = []
    for r in table.rows:
        cells = [_cell_mark(c) for c in (r.cells[g] for g, _ in table.gates)]
        rows.append([r.name, r.kind, *cells, _f(r.style_gain_pp), _f(r.worst_regression_pp), _f(r.score, "{:.2f}"),
                     r.verdict, r.decision or ""])
    return md_table(header, rows)


def _cell_mark(c) -> str:
    """A delta with its verdict's mark (`+1.2 ✓`), or the verdict's label where nothing was compared."""
    if c.verdict == "BASE":
        return "base"
    return f"{_f(c.delta_pp)} {VERDICTS[c.verdict].mark}" if c.delta_pp is not None else VERDICTS[c.verdict].label


def _quality_gates(table: DeltaTable) -> list[tuple[str, str]]:
    return [(g, a) for g, a in table.gates if a != SERVE_AXIS]


def _axes(table: DeltaTable) -> list[tuple[str, str]]:
    """(card heading, axis) of every quality axis the table has, in the vocabulary's order."""
    present = sorted({a for _, a in _quality_gates(table)}, key=axis_order)
    return [(AXES[a].section if a in AXES else a, a) for a in present]


def _axis_cell(row: DeltaRow, axis: str) -> str:
    """The axis' gates pooled (+ = better) with its verdict, and how many gates and items it rests on."""
    a = row.axes.get(axis)
    if a is None or a.gain_pp is None:
        return VERDICTS["MISMATCH"].label if a is not None and a.verdict == "MISMATCH" else "—"
    return f"{a.gain_pp:+.1f} {VERDICTS[a.verdict].label} ({len(a.gates)} gate{'s' * (len(a.gates) > 1)}, n={a.n})"


def _axis_verdicts(row: DeltaRow) -> str:
    """One line per axis: its gates' paired items pooled, and what that n can see."""
    lines = [[a.axis, ", ".join(a.gates) or "—", a.n or "—", _f(a.gain_pp),
              f"[{_f(a.ci_low_pp)}, {_f(a.ci_high_pp)}]" if a.ci_low_pp is not None else "—",
              _f(a.detectable_pp, "{:.1f}"), f"{a.tolerance_pp:g}",
              VERDICTS[a.verdict].label + (f" ({a.note})" if a.note else "")]
             for a in row.axes.values()]
    return "#### Axis verdicts (each axis's gates pooled)\n\n" + md_table(
        ["axis", "gates", "n", "gain pp", "95% CI", "detectable drop", "tol.", "verdict"], lines)


def _axis_sections(row: DeltaRow, table: DeltaTable) -> list[str]:
    """Appendix: per gate with base value, CI, p, n, detectable drop, tolerance and verdict, grouped by axis."""
    out = []
    for heading, axis in _axes(table):
        cells = [row.cells[g] for g, a in table.gates if a == axis]
        lines = [[c.gate, c.metric + ("" if c.higher_is_better else " (lower is better)"), _f(c.base_value, "{:.4g}"),
                  _f(c.value, "{:.4g}"), _f(c.delta_pp),
                  f"[{_f(c.ci_low_pp)}, {_f(c.ci_high_pp)}]" if c.ci_low_pp is not None else "—",
                  _f(c.p_value, "{:.3g}"), c.n or "—", _f(c.detectable_pp, "{:.1f}"), f"{c.tolerance_pp:g}",
                  VERDICTS[c.verdict].label + (f" ({c.note})" if c.note else "")] for c in cells]
        out.append(f"#### {heading}\n\n" + md_table(
            ["gate", "metric", "base", "this", "Δ pp", "95% CI", "p", "n", "detectable drop", "tol.", "verdict"], lines))
    return out


def _summary_line(table: DeltaTable, row: DeltaRow, names: dict[str, str]) -> str:
    return (f"vs **{names.get(table.base_subject_id, table.base_subject_id)}**: **{row.verdict}** — style gain "
            f"{_f(row.style_gain_pp)} pp, worst general regression {_f(row.worst_regression_pp)} pp, score "
            f"{_f(row.score, '{:.2f}')} = {table.config.formula(table.lam)}")


def _front_matter(subj: Subject, row: DeltaRow, table: DeltaTable, base_model: str | None) -> dict:
    results = []
    for gate, axis in _quality_gates(table):
        c = row.cells[gate]
        if c.value is None:
            continue
        results.append({"task": {"type": "text-generation", "name": axis},
                        "dataset": {"name": gate, "type": gate},
                        "metrics": [{"type": c.metric, "name": c.metric, "value": round(float(c.value), 6),
                                     "verified": False}]})
    fm = {"language": ["pl", "en"], "tags": ["slayer", "peft", "polish"],
          "model-index": [{"name": subj.name, "results": results}]}
    if base_model:
        fm["base_model"] = base_model
    return fm


def _job_toml(run: Run | None) -> dict | None:
    if run is None or not run.run_dir:
        return None
    try:
        return tomllib.loads((Path(run.run_dir) / "job.toml").read_text())
    except (OSError, tomllib.TOMLDecodeError):
        return None


def _training_run(s, subj: Subject) -> Run | None:
    """The run that made the subject (its adapter's training run for merges and quants)."""
    run = s.get(Run, subj.run_id) if subj.run_id else None
    adapter = (subj.recipe or {}).get("adapter")
    if run is None and adapter:
        for other in s.execute(select(Subject).where(Subject.experiment_id == subj.experiment_id,
                                                     Subject.run_id.is_not(None))).scalars():
            if (other.recipe or {}).get("adapter") == adapter:
                return s.get(Run, other.run_id)
    return run


def _artifact_path(a: Artifact, run: Run) -> Path:
    p = Path(a.path)
    return p if p.is_absolute() else Path(run.run_dir or ".") / p


def _read_json(a: Artifact, run: Run) -> dict | None:
    try:
        data = json.loads(_artifact_path(a, run).read_text())
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _report(a: Artifact, run: Run) -> str:
    head = f"`{Path(a.path).name}` (run `{run.id}`, sha256 `{(a.sha256 or '')[:12]}`)"
    data = _read_json(a, run)
    if data is None:
        return f"- {head}: file not readable here"
    return f"- {head}:\n\n```json\n{json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)}\n```"


def _pick_subject(store: Store, experiment: str, subject: str | None, table: DeltaTable) -> str:
    if subject:
        return find_subject(store, subject, experiment)[1].subject_id
    accepted = [d for d in decisions_for(store, experiment) if d.verdict == "accept"]
    if accepted:
        return accepted[-1].subject_id
    top = best(table)
    if top is None:
        raise SpecError(f"experiment {experiment!r}: no accepted or passing subject to describe; name one with --subject")
    return top.subject_id


@dataclass
class _Facts:
    """Everything the card reads from the store, gathered in one session."""

    subj: Subject
    base: Subject | None
    subjects: list[Subject]
    arts: list[tuple[Artifact, Run]]
    train_run: Run | None
    lineage: list = field(default_factory=list)
    all_costs: list = field(default_factory=list)
    serving: list[ServingCost] = field(default_factory=list)
    fingerprints: dict = field(default_factory=dict)


def _gather(store: Store, experiment: str, sid: str, base_sid: str | None) -> _Facts:
    with store.session() as s:
        exp = get_experiment(s, experiment)
        subjects = list(s.execute(select(Subject).where(Subject.experiment_id == exp.id)
                                  .order_by(Subject.created_ms, Subject.id)).scalars())
        subj = next(x for x in subjects if x.subject_id == sid)
        arts = s.execute(select(Artifact, Run).join(Run, Artifact.run_id == Run.id).where(
            Run.experiment_id == exp.id).order_by(Artifact.created_ms, Artifact.id)).all()
        fp_rows = s.execute(select(GateResult.gate, GateResult.fingerprint_hash, GateResult.fingerprint)
                            .where(GateResult.subject_pk == subj.id).order_by(GateResult.gate)).all()
        facts = _Facts(subj, next((x for x in subjects if x.subject_id == base_sid), None), subjects, list(arts),
                       _training_run(s, subj), lineage_costs(s, subj), experiment_costs(s, exp.id),
                       serving_costs(s, subjects), {h: fp for _, h, fp in fp_rows})
        s.expunge_all()
    return facts


def _shipped(f: _Facts) -> list[tuple[Artifact, Run]]:
    """GGUF files of the subject: exported from it, or the file it is."""
    recipe = f.subj.recipe or {}
    out = []
    for a, run in f.arts:
        if a.kind not in ("gguf", "gguf_lora"):
            continue
        source = a.extra.get("source") or {}
        same = ((a.extra.get("subject") or {}).get("id") == f.subj.subject_id
                or (recipe.get("adapter") and source.get("adapter") == recipe.get("adapter")
                    and source.get("scale") == recipe.get("scale"))
                or (recipe.get("file") and Path(recipe["file"]).name == Path(a.path).name))
        if same:
            out.append((a, run))
    return out


def _files_table(files: list[tuple[Artifact, Run]]) -> str:
    rows = [[Path(a.path).name, a.extra.get("quant", "—"), _size(a.bytes), f"`{a.sha256 or '—'}`",
             _f(a.extra.get("kl"), "{:.3g}"), _f(a.extra.get("top1"), "{:.3f}")] for a, _ in files]
    return md_table(["file", "quant", "size", "sha256", "KL vs HF", "top-1 agreement"], rows)


def _lineage(f: _Facts, files: list[tuple[Artifact, Run]]) -> list[str]:
    steps = []
    job = _job_toml(f.train_run) or {}
    data_path = job.get("data")
    mix = next(((a, run) for a, run in f.arts if a.kind == "data" and data_path
                and os.path.realpath(_artifact_path(a, run)) == os.path.realpath(data_path)), None)
    if mix:
        report = next((_read_json(a, run) for a, run in f.arts if run.id == mix[1].id and a.kind == "data_report"),
                      None) or {}
        ratios = ", ".join(f"{k} {v:.0%}" for k, v in (report.get("ratios") or {}).items() if v)
        steps.append(f"**Data mix** `{Path(mix[0].path).name}` (run `{mix[1].id}`, sha256 "
                     f"`{(mix[0].sha256 or '')[:12]}`)" + (f": {ratios}" if ratios else ""))
    elif data_path:
        steps.append(f"**Data** `{data_path}` (no ingested run wrote it)")
    if f.train_run:
        adapter = job.get("adapter") or {}
        training = job.get("training") or {}
        detail = ", ".join(f"{k} {v}" for k, v in (("method", adapter.get("method")), ("rank", adapter.get("rank")),
                                                   ("lr", training.get("learning_rate")),
                                                   ("steps", training.get("max_steps"))) if v is not None)
        steps.append(f"**Training** run `{f.train_run.id}` (`{f.train_run.kind}`)" + (f": {detail}" if detail else ""))
    recipe = f.subj.recipe or {}
    if recipe.get("adapter"):
        steps.append(f"**Checkpoint** `{recipe['adapter']}`" + (f" (step {f.subj.step})" if f.subj.step is not None
                                                                 else ""))
    if recipe.get("merge") or recipe.get("scale") not in (None, 1, 1.0):
        merge = recipe.get("merge") or {}
        steps.append(f"**Merge** scale {recipe.get('scale')}" + (f", {merge.get('method')} density "
                                                                  f"{merge.get('density')}" if merge else ""))
    if files:
        runs = sorted({run.id for _, run in files})
        steps.append(f"**GGUF** {', '.join(Path(a.path).name for a, _ in files)} "
                     f"(run {', '.join(f'`{r}`' for r in runs)})")
    return [f"{i}. {s}" for i, s in enumerate(steps, 1)] or ["No lineage runs ingested for this subject."]


def _serving(f: _Facts, files: list[tuple[Artifact, Run]]) -> tuple[list[ServingCost], list[ServingCost]]:
    """(measurements of this subject or its shipped files, every measurement made like-for-like with them)."""
    ids = {f.subj.subject_id} | {(a.extra.get("subject") or {}).get("id") for a, _ in files}
    mine = [c for c in f.serving if c.subject_id in ids]
    fps = {c.fingerprint_hash for c in mine}
    return mine, [c for c in f.serving if c.fingerprint_hash in fps]


def _serving_table(rows: list[ServingCost]) -> str:
    return md_table(["subject", "kind", "concurrency", "TTFT p50 ms", "TTFT p95 ms", "decode tok/s", "output tok/s",
                     "req/s", "box", "per 1M output tokens"],
                    [[c.subject, c.kind, c.concurrency, _f(c.metrics.get("ttft_p50_ms"), "{:.0f}"),
                      _f(c.metrics.get("ttft_p95_ms"), "{:.0f}"), _f(c.metrics.get("decode_tok_s"), "{:.1f}"),
                      _f(c.metrics.get("output_tok_s"), "{:.1f}"), _f(c.metrics.get("req_s"), "{:.2f}"), c.box,
                      _money(c.per_million_tokens)] for c in rows])


def _latency_cells(mine: list[ServingCost], shared: list[ServingCost], comparators: list[Subject]
                   ) -> tuple[list[str], list[str]]:
    """Latency and cost cells of the axis table: this subject's file vs each comparator measured in the same
    bench (for the base: any base-kind subject there, e.g. the base's own GGUF), at the highest concurrency."""
    lat, cost = [], []
    for comp in comparators:
        pairs = [(me, other) for me in sorted(mine, key=lambda c: -c.concurrency) for other in shared
                 if other.fingerprint_hash == me.fingerprint_hash and other not in mine
                 and (other.subject_id == comp.subject_id or (comp.kind == "base" and other.kind == "base"))]
        if not pairs:
            lat.append("—")
            cost.append("—")
            continue
        me, other = pairs[0]
        ratio = (me.metrics.get("output_tok_s") or 0) / (other.metrics.get("output_tok_s") or float("inf"))
        lat.append(f"{(ratio - 1) * 100:+.0f} % output tok/s at c={me.concurrency}")
        a, b = me.per_million_tokens, other.per_million_tokens
        cost.append(f"{_money(a)} vs {_money(b)} per 1M tokens" if a is not None and b is not None else "no box price")
    return lat, cost


def _cost_lines(f: _Facts) -> list[str]:
    lineage, total = CostTotal.of(f.lineage), CostTotal.of(f.all_costs)

    def say(t: CostTotal) -> str:
        money = _money(t.money) if t.money is not None else "no box price recorded"
        unpriced = f" ({t.unpriced} runs without a price)" if t.unpriced and t.money is not None else ""
        return f"{t.runs} runs, {t.hours:.2f} wall hours, {t.gpu_hours:.2f} GPU-hours, money {money}{unpriced}"

    return [f"- Training lineage (data, training, merge, export): {say(lineage)}",
            f"- Whole experiment (with every gate and bench run): {say(total)}"]


def _contamination(f: _Facts) -> str:
    reports = [(a, run, _read_json(a, run)) for a, run in f.arts if a.kind == "guard_report"]
    if not reports:
        return "No contamination guard report was ingested: the training data was **not** checked against the gates."
    lines = []
    for a, run, data in reports:
        if data is None:
            lines.append(f"- `{Path(a.path).name}` (run `{run.id}`): not readable here")
            continue
        gates = [g.get("name") for g in data.get("gates") or []]
        lines.append(f"- `{Path(a.path).name}` (run `{run.id}`, {run.kind}): {data.get('checked', '?')} training "
                     f"examples checked against {len(gates)} gates' test items, {data.get('dropped', '?')} dropped")
    return ("Training data was checked for n-gram overlap with every gate's test items before training; overlapping "
            "examples were dropped. Full reports, per gate, in the appendix.\n\n" + "\n".join(lines))


def _appendix(f: _Facts, experiment: str, table: DeltaTable, refs: list[tuple[Subject, DeltaTable]],
              decisions: list) -> str:
    """What a reviewer checks the card against: CIs per gate, fingerprints, configs, reports, cost per run."""
    subj, sid = f.subj, f.subj.subject_id
    names = {x.subject_id: x.name for x in f.subjects}
    row = table.row(sid)
    recipe = subj.recipe or {}
    appendix = [f"# {subj.name} — appendix to the model card", f"Experiment **{experiment}**, subject "
                f"`{subj.subject_id}`. Generated with the card from the same store.",
                "## Recipe", "```json\n" + json.dumps(recipe, indent=2, sort_keys=True, default=str) + "\n```"]
    for title, t in ([("vs the base", table)] if subj.subject_id != table.base_subject_id and table.base_subject_id
                     else []) + [(f"vs {r.name} (reference)", t) for r, t in refs]:
        appendix += [f"## Deltas {title}", _summary_line(t, t.row(sid), names) + ".", _axis_verdicts(t.row(sid)),
                     *_axis_sections(t.row(sid), t)]
    appendix += ["## All subjects vs the base", markdown_delta_table(table)]
    fps = [[g, c.fingerprint_hash or "—", c.verdict] for g, c in row.cells.items()]
    appendix += ["## Fingerprints", md_table(["gate", "fingerprint", "verdict"], fps)]
    if f.fingerprints:
        appendix.append("```json\n" + json.dumps(f.fingerprints, indent=1, sort_keys=True, default=str) + "\n```")
    job_text = None
    if f.train_run and _job_toml(f.train_run) is not None:
        job_text = (Path(f.train_run.run_dir) / "job.toml").read_text().strip()
    appendix += ["## Training config", f"From run `{f.train_run.id}` (`{f.train_run.kind}`), `job.toml`:\n\n```toml\n"
                 f"{job_text}\n```" if job_text else "No readable job.toml for this subject's run; the recipe above "
                                                    "is what the store holds."]
    reports = [_report(a, run) for a, run in f.arts if a.kind in ("data_report", "guard_report", "gguf_report")]
    appendix += ["## Data mix, contamination and GGUF verification reports",
                 "\n".join(reports) if reports else "No reports ingested."]
    appendix += ["## Cost per run", md_table(
        ["run", "kind", "box", "wall h", "GPUs", "price/h", "money", "lineage"],
        [[c.run_id, c.kind, c.box, _f(c.hours, "{:.3f}"), c.gpus, _money(c.price_per_hour), _money(c.money),
          "yes" if c in f.lineage else ""] for c in f.all_costs])]
    trail = [[_ms(d.created_ms), d.actor, d.name, d.verdict + (" (override)" if d.override else ""), d.reason]
             for d in decisions]
    appendix += ["## Decision trail", md_table(["when", "who", "subject", "decision", "reason"], trail)
                 if trail else "No decisions recorded."]
    return "\n\n".join(appendix) + "\n"


def render_card_files(store: Store, experiment: str, subject: str | None = None, lam: float | None = None,
                      tolerance_pp: float | None = None, config: ExperimentConfig | None = None,
                      appendix_name: str = "MODEL_CARD.appendix.md") -> tuple[str, str]:
    """(card, appendix) of `subject` (default: the latest accepted subject, else the best-scoring one), scored by
    the experiment's config (store.experiment_config; default: the plan's objective)."""
    table = delta_table(store, experiment, lam=lam, tolerance_pp=tolerance_pp, config=config)
    sid = _pick_subject(store, experiment, subject, table)
    row = table.row(sid)
    f = _gather(store, experiment, sid, table.base_subject_id)
    subj, base = f.subj, f.base
    names = {x.subject_id: x.name for x in f.subjects}
    refs = [x for x in f.subjects if x.kind == "reference" and x.subject_id != sid]
    ref_tables = [delta_table(store, experiment, reference=r.subject_id, lam=lam, tolerance_pp=tolerance_pp,
                              config=config) for r in refs]
    recipe = subj.recipe or {}
    base_model = (base.recipe or {}).get("model") if base else recipe.get("model")
    fm = yaml.safe_dump(_front_matter(subj, row, table, base_model), sort_keys=False, allow_unicode=True)
    files = _shipped(f)
    decisions = decisions_for(store, experiment)
    my_decisions = [d for d in decisions if d.subject_id == sid]

    summary = []
    if subj.subject_id != table.base_subject_id and table.base_subject_id:
        summary.append("- " + _summary_line(table, row, names))
    summary += ["- " + _summary_line(t, t.row(sid), names) for t in ref_tables]
    if my_decisions:
        d = my_decisions[-1]
        summary.append(f"- Decision: **{d.verdict}**{' (override)' if d.override else ''} by {d.actor}, "
                       f"{_ms(d.created_ms)}: {d.reason}")
    mine, shared = _serving(f, files)
    lineage_total = CostTotal.of(f.lineage)
    top = max(mine, key=lambda c: (c.concurrency, c.metrics.get("output_tok_s") or 0), default=None)
    summary.append(f"- Cost: training lineage {lineage_total.gpu_hours:.2f} GPU-hours"
                   + (f", {_money(lineage_total.money)}" if lineage_total.money is not None
                      else " (no box price: set cost_per_hour, or watts and price_per_kwh, in boxes.toml)")
                   + (f"; serving {_money(top.per_million_tokens)} per 1M output tokens at concurrency "
                      f"{top.concurrency} on {top.box} ({top.subject})" if top and top.per_million_tokens is not None
                      else ""))

    comparators = ([base] if base and base.subject_id != sid else []) + refs
    header = ["axis"] + [f"vs {c.name}" for c in comparators]
    tables = ([table] if base and base.subject_id != sid else []) + ref_tables
    axis_rows = [[h] + [_axis_cell(t.row(sid), axis) for t in tables] for h, axis in _axes(table)]
    lat, cost = _latency_cells(mine, shared, comparators)
    if comparators:
        axis_rows += [["Latency"] + lat, ["Serving cost"] + cost]
    gate_rows = []
    for g, a in _quality_gates(table):
        c = row.cells[g]
        vs_base = _cell_mark(c)
        gate_rows.append([g, a, _f(c.base_value, "{:.3f}"), _f(c.value, "{:.3f}"), vs_base]
                         + [_f(t.row(sid).cells[g].delta_pp) for t in ref_tables])

    card = [f"---\n{fm}---", f"# {subj.name}",
            f"Experiment **{experiment}** · subject `{subj.subject_id}` ({subj.kind}"
            + (f", step {subj.step}" if subj.step is not None else "") + ") · base "
            + (f"**{base.name}** (`{base_model}`)" if base else "none") + ". Rendered from the slayer store; "
            f"CIs, fingerprints, configs and full reports: [appendix]({appendix_name}).",
            "## Summary", "\n".join(summary),
            "## Shipped files", _files_table(files) if files else "No GGUF files exported for this subject.",
            "## Lineage", "\n".join(_lineage(f, files)),
            "## Deltas by axis",
            "Each axis' gates pooled over their paired items, sign turned so that + is better (pp for proportions), "
            "with the axis verdict (tolerance "
            f"{'per axis/gate' if table.tolerance_pp is None else f'{table.tolerance_pp:g} pp'}). Only results "
            "with matching fingerprints are compared.",
            md_table(header, axis_rows) if comparators else "No base or reference to compare with.",
            "### Per gate", md_table(["gate", "axis", "base", "this", "Δ vs base"]
                                      + [f"Δ vs {r.name}" for r in refs], gate_rows),
            "## Latency and cost", _serving_table(shared) if shared else "No bench.serve measurement of this subject.",
            "\n".join(_cost_lines(f)),
            "## Contamination", _contamination(f)]
    overrides = sorted((config.policy.override if config else {}).items())
    card += ["## Policy overrides", md_table(["rule", "reason"], [[r, why] for r, why in overrides]) + "\n\nJobs of "
             f"this experiment may break these of the plan's locked rules ({config.source})." if overrides else
             "None recorded in the experiment's [policy] (engine.policy)."]

    return "\n\n".join(card) + "\n", _appendix(f, experiment, table, list(zip(refs, ref_tables)), decisions)



def render_card(store: Store, experiment: str, subject: str | None = None, lam: float | None = None,
                tolerance_pp: float | None = None, config: ExperimentConfig | None = None) -> str:
    """The card (without its appendix)."""
    return render_card_files(store, experiment, subject, lam, tolerance_pp, config)[0]


def appendix_path(card: Path) -> Path:
    return card.with_name(f"{card.stem}.appendix.md")


def write_card_files(store: Store, experiment: str, out: str | os.PathLike, subject: str | None = None,
                     lam: float | None = None, tolerance_pp: float | None = None,
                     config: ExperimentConfig | None = None) -> tuple[Path, Path]:
    """Render and write FILE.md and FILE.appendix.md beside it, each atomically (temp file + rename)."""
    path = Path(out)
    extra = appendix_path(path)
    card, appendix = render_card_files(store, experiment, subject, lam, tolerance_pp, config, appendix_name=extra.name)
    path.parent.mkdir(parents=True, exist_ok=True)
    for target, text in ((extra, appendix), (path, card)):
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            tmp.write_text(text, encoding="utf-8")
            os.replace(tmp, target)
        finally:
            tmp.unlink(missing_ok=True)
    return path, extra


def front_matter(card: str) -> dict:
    """The YAML front matter of a rendered card, parsed."""
    if not card.startswith("---\n"):
        raise SpecError("card: no YAML front matter")
    return yaml.safe_load(card[4:card.index("\n---", 3)])
