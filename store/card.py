"""The model card: Markdown with Hugging Face `model-index` front matter, rendered only from the store.

Delta tables vs the base and each reference grouped by axis, CIs, verdicts, fingerprints, training
config, data reports, merge recipe, GGUF files and the decision trail — nothing typed by hand.
"""

from __future__ import annotations

import json
import tomllib
from datetime import datetime, timezone
from pathlib import Path

import yaml
from sqlalchemy import select

from engine.errors import SpecError
from engine.vocab import AXES, VERDICTS, axis_order
from store.decisions import decisions_for, find_subject
from store.deltas import DeltaRow, DeltaTable, best, delta_table, get_experiment
from store.experiment_config import ExperimentConfig
from store.models import Artifact, GateResult, Metric, Run, Subject
from store.store import Store



def _f(x, fmt: str = "{:+.1f}") -> str:
    return "—" if x is None else fmt.format(x)


def _md_table(header: list[str], rows: list[list]) -> str:
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


def markdown_delta_table(table: DeltaTable) -> str:
    """Every row of a delta table, one column per gate (Δ pp and verdict mark), plus score and verdict."""
    header = ["subject", "kind"] + [f"{g} ({a})" for g, a in table.gates] + ["style gain", "worst regr.", "score",
                                                                              "verdict", "decision"]
    rows = []
    for r in table.rows:
        cells = [("base" if c.verdict == "BASE" else f"{_f(c.delta_pp)} {VERDICTS[c.verdict].mark}"
                  if c.delta_pp is not None else VERDICTS[c.verdict].label) for c in (r.cells[g] for g, _ in table.gates)]
        rows.append([r.name, r.kind, *cells, _f(r.style_gain_pp), _f(r.worst_regression_pp), _f(r.score, "{:.2f}"),
                     r.verdict, r.decision or ""])
    return _md_table(header, rows)


def _axis_sections(row: DeltaRow, table: DeltaTable) -> list[str]:
    out = []
    for axis in sorted({a for _, a in table.gates}, key=axis_order):
        cells = [row.cells[g] for g, a in table.gates if a == axis]
        heading = AXES[axis].section if axis in AXES else axis
        lines = [[c.gate, c.metric + ("" if c.higher_is_better else " (lower is better)"), _f(c.base_value, "{:.4g}"),
                  _f(c.value, "{:.4g}"), _f(c.delta_pp),
                  f"[{_f(c.ci_low_pp)}, {_f(c.ci_high_pp)}]" if c.ci_low_pp is not None else "—",
                  _f(c.p_value, "{:.3g}"), c.n or "—", _f(c.detectable_pp, "{:.1f}"), f"{c.tolerance_pp:g}",
                  VERDICTS[c.verdict].label + (f" ({c.note})" if c.note else "")] for c in cells]
        out.append(f"#### {heading}\n\n" + _md_table(
            ["gate", "metric", "base", "this", "Δ pp", "95% CI", "p", "n", "detectable drop", "tol.", "verdict"], lines))
    return out


def _comparison(title: str, table: DeltaTable, subject_id: str, names: dict[str, str]) -> str:
    row = table.row(subject_id)
    summary = (f"Against **{names.get(table.base_subject_id, table.base_subject_id)}**: verdict **{row.verdict}**, "
               f"style gain {_f(row.style_gain_pp)} pp, worst general regression {_f(row.worst_regression_pp)} pp, "
               f"score {_f(row.score, '{:.2f}')} = {table.config.formula(table.lam)} (tolerance "
               f"{'per axis/gate' if table.tolerance_pp is None else f'{table.tolerance_pp:g} pp'}).")
    return "\n\n".join([f"### {title}", summary, _axis_verdicts(row), *_axis_sections(row, table)])


def _axis_verdicts(row: DeltaRow) -> str:
    """One line per axis: its gates' paired items pooled, and what that n can see."""
    lines = [[a.axis, ", ".join(a.gates) or "—", a.n or "—", _f(a.gain_pp),
              f"[{_f(a.ci_low_pp)}, {_f(a.ci_high_pp)}]" if a.ci_low_pp is not None else "—",
              _f(a.detectable_pp, "{:.1f}"), f"{a.tolerance_pp:g}",
              VERDICTS[a.verdict].label + (f" ({a.note})" if a.note else "")]
             for a in row.axes.values()]
    return "#### Axis verdicts (each axis's gates pooled)\n\n" + _md_table(
        ["axis", "gates", "n", "gain pp", "95% CI", "detectable drop", "tol.", "verdict"], lines)


def _front_matter(subj: Subject, row: DeltaRow, table: DeltaTable, base_model: str | None) -> dict:
    results = []
    for gate, axis in table.gates:
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


def _training_config(s, subj: Subject) -> str | None:
    """The job.toml of the run that made the subject (its adapter's run for merges and quants)."""
    run = s.get(Run, subj.run_id) if subj.run_id else None
    adapter = (subj.recipe or {}).get("adapter")
    if run is None and adapter:
        for other in s.execute(select(Subject).where(Subject.experiment_id == subj.experiment_id,
                                                     Subject.run_id.is_not(None))).scalars():
            if (other.recipe or {}).get("adapter") == adapter:
                run = s.get(Run, other.run_id)
                break
    if run is None or not run.run_dir:
        return None
    try:
        text = (Path(run.run_dir) / "job.toml").read_text()
        tomllib.loads(text)
    except (OSError, tomllib.TOMLDecodeError):
        return None
    return f"From run `{run.id}` (`{run.kind}`), `job.toml`:\n\n```toml\n{text.strip()}\n```"


def _artifact_path(a: Artifact, run: Run) -> Path:
    p = Path(a.path)
    return p if p.is_absolute() else Path(run.run_dir or ".") / p


def _report(a: Artifact, run: Run) -> str:
    head = f"`{Path(a.path).name}` (run `{run.id}`, sha256 `{(a.sha256 or '')[:12]}`)"
    try:
        data = json.loads(_artifact_path(a, run).read_text())
    except (OSError, ValueError):
        return f"- {head}: file not readable here"
    return f"- {head}:\n\n```json\n{json.dumps(data, indent=2, ensure_ascii=False, sort_keys=True)}\n```"


def _latency(s, subj: Subject, base_pk: int | None) -> str | None:
    rows = []
    for label, pk in (("this", subj.id), ("base", base_pk)):
        if pk is None:
            continue
        q = select(GateResult).where(GateResult.subject_pk == pk, GateResult.elapsed_s.is_not(None)).order_by(
            GateResult.gate, GateResult.created_ms.desc())
        seen = set()
        for r in s.execute(q).scalars():
            if r.gate not in seen and r.elapsed_s:
                seen.add(r.gate)
                rows.append([r.gate, label, f"{r.elapsed_s:.1f}", f"{r.n / r.elapsed_s:.2f}",
                             r.fingerprint.get("backend", "—"), r.fingerprint.get("dtype", "—")])
    cost = [m for m in s.execute(select(Metric.key, Metric.value).where(
        Metric.run_id == subj.run_id, Metric.key.startswith("cost")).order_by(Metric.seq)).all()] if subj.run_id else []
    if not rows and not cost:
        return None
    parts = [_md_table(["gate", "subject", "seconds", "items/s", "backend", "dtype"], sorted(rows))] if rows else []
    if cost:
        parts.append(_md_table(["training cost", "value"], [[k, f"{v:g}"] for k, v in dict(cost).items()]))
    return "\n\n".join(parts)


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


def render_card(store: Store, experiment: str, subject: str | None = None, lam: float | None = None,
                tolerance_pp: float | None = None, config: ExperimentConfig | None = None) -> str:
    """The card of `subject` (default: the latest accepted subject, else the best-scoring one), scored by the
    experiment's config (store.experiment_config; default: the plan's objective)."""
    table = delta_table(store, experiment, lam=lam, tolerance_pp=tolerance_pp, config=config)
    sid = _pick_subject(store, experiment, subject, table)
    row = table.row(sid)
    with store.session() as s:
        exp = get_experiment(s, experiment)
        subjects = list(s.execute(select(Subject).where(Subject.experiment_id == exp.id)
                                  .order_by(Subject.created_ms, Subject.id)).scalars())
        subj = next(x for x in subjects if x.subject_id == sid)
        base = next((x for x in subjects if x.subject_id == table.base_subject_id), None)
        training = _training_config(s, subj)
        latency = _latency(s, subj, base.id if base else None)
        arts = s.execute(select(Artifact, Run).join(Run, Artifact.run_id == Run.id).where(
            Run.experiment_id == exp.id).order_by(Artifact.created_ms, Artifact.id)).all()
    names = {x.subject_id: x.name for x in subjects}
    recipe = subj.recipe or {}
    base_model = (base.recipe or {}).get("model") if base else recipe.get("model")
    fm = yaml.safe_dump(_front_matter(subj, row, table, base_model), sort_keys=False, allow_unicode=True)
    parts = [f"---\n{fm}---", f"# {subj.name}",
             f"Experiment **{experiment}** · subject `{subj.subject_id}` ({subj.kind}"
             + (f", step {subj.step}" if subj.step is not None else "") + ") · base "
             + (f"**{base.name}** (`{base_model}`)" if base else "none") + ".",
             "Rendered from the slayer store: every number below comes from ingested gate results and "
             "artifacts. Deltas are paired over the same items and compared only where fingerprints match; "
             "CIs are 95 % paired-bootstrap intervals, p-values McNemar mid-p (0/1 outcomes) or bootstrap.",
             "## Recipe", "```json\n" + json.dumps(recipe, indent=2, sort_keys=True, default=str) + "\n```"]
    if recipe.get("merge") or recipe.get("scale") not in (None, 1, 1.0):
        parts += ["## Merge recipe", _md_table(["parameter", "value"],
                                               [["adapter scale", recipe.get("scale")]] +
                                               [[k, v] for k, v in sorted((recipe.get("merge") or {}).items())])]
    parts.append("## Deltas")
    if subj.subject_id != table.base_subject_id and table.base_subject_id:
        parts.append(_comparison("vs the base", table, sid, names))
    for ref in (x for x in subjects if x.kind == "reference" and x.subject_id != sid):
        parts.append(_comparison(f"vs {ref.name} (reference)",
                                 delta_table(store, experiment, reference=ref.subject_id, lam=lam,
                                             tolerance_pp=tolerance_pp, config=config), sid, names))
    parts += ["### All subjects vs the base", markdown_delta_table(table)]
    if latency:
        parts += ["## Latency and cost", latency]
    fps = [[g, c.fingerprint_hash or "—", c.verdict] for g, c in row.cells.items()]
    parts += ["## Fingerprints", _md_table(["gate", "fingerprint", "verdict"], fps)]
    with store.session() as s:
        fp_rows = s.execute(select(GateResult.gate, GateResult.fingerprint_hash, GateResult.fingerprint)
                            .where(GateResult.subject_pk == subj.id).order_by(GateResult.gate)).all()
    detail = {h: fp for _, h, fp in fp_rows}
    if detail:
        parts.append("```json\n" + json.dumps(detail, indent=1, sort_keys=True, default=str) + "\n```")
    parts += ["## Training config", training or "No readable job.toml for this subject's run; the recipe above is "
                                                "what the store holds."]
    reports = [_report(a, run) for a, run in arts if a.kind in ("data_report", "guard_report")]
    parts += ["## Data mix and contamination", "\n".join(reports) if reports else "No data or guard reports ingested."]
    ggufs = [[Path(a.path).name, _size(a.bytes), a.extra.get("quant", a.extra.get("type", "—")),
              _f(a.extra.get("kl"), "{:.3g}"), _f(a.extra.get("top1"), "{:.3f}"), (a.sha256 or "")[:12]]
             for a, _ in arts if a.kind == "gguf"]
    parts += ["## GGUF files", _md_table(["file", "size", "quant", "KL vs HF", "top-1 agreement", "sha256"], ggufs)
              if ggufs else "No GGUF files exported."]
    trail = [[_ms(d.created_ms), d.actor, d.name, d.verdict + (" (override)" if d.override else ""), d.reason]
             for d in decisions_for(store, experiment)]
    parts += ["## Decision trail", _md_table(["when", "who", "subject", "decision", "reason"], trail)
              if trail else "No decisions recorded."]
    return "\n\n".join(parts) + "\n"


def front_matter(card: str) -> dict:
    """The YAML front matter of a rendered card, parsed."""
    if not card.startswith("---\n"):
        raise SpecError("card: no YAML front matter")
    return yaml.safe_load(card[4:card.index("\n---", 3)])
