"""`slayer deltas`, `select`, `decide`, `card`: delta tables, Pareto selection, decisions, model cards."""

from __future__ import annotations

import click

from engine.vocab import DECISIONS, VERDICTS
from slayer_console.commands.common import print_json, print_table, settings

LAMBDA = click.option("--lambda", "lam", type=click.FloatRange(min=0), default=None,
                      help="weight of the worst general regression in score = Σ weight·mean axis gain − "
                           "λ·max(0, regression) (default: the experiment config's, else 1)")
TOLERANCE = click.option("--tolerance", type=click.FloatRange(min=0), default=None,
                         help="tolerance in pp for every gate and axis (default: the experiment config's per axis, else "
                              "each gate's own)")


def _pp(x: float | None, fmt: str = "{:+.1f}") -> str:
    return "" if x is None else fmt.format(x)


def _flag(verdict: str) -> str:
    """The verdict's mark where it needs one (a PASS number needs none)."""
    return VERDICTS[verdict].mark if VERDICTS[verdict].flag else ""


def _cell_text(c) -> str:
    if c.verdict == "BASE":
        return _pp(c.value, "{:.3g}")
    return _pp(c.delta_pp) + _flag(c.verdict) if c.delta_pp is not None else VERDICTS[c.verdict].mark


@click.command(help="Every subject vs the base per gate: paired Δ pp, CI, verdict ("
               + ", ".join(v.label for v in VERDICTS.values() if v.flag) + ").")
@click.argument("experiment")
@click.option("--base", default=None, help="compare against this subject (id, prefix or name) instead of the base")
@click.option("--vs", "vs", default=None, help="a baseline table: every subject's scores beside this reference's "
                                               "(id, prefix or name), with the paired Δ")
@click.option("--axis", "only_axes", multiple=True, help="with --vs: only gates of this axis (repeatable, e.g. pl_nlu)")
@click.option("--format", "fmt", type=click.Choice(["table", "json", "markdown"]), default="table", show_default=True)
@LAMBDA
@TOLERANCE
def deltas(experiment: str, base: str | None, vs: str | None, only_axes: tuple[str, ...], fmt: str,
           lam: float | None, tolerance: float | None) -> None:
    from store.deltas import delta_table

    if vs:
        return _baseline(experiment, vs, only_axes, fmt)

    config = settings().experiment_config(experiment)
    table = delta_table(settings().store(), experiment, base=base, lam=lam, tolerance_pp=tolerance, config=config)
    if fmt == "json":
        print_json(table.as_dict())
        return
    if fmt == "markdown":
        from store.card import markdown_delta_table

        click.echo(markdown_delta_table(table))
        return
    axes = list(dict.fromkeys(a for _, a in table.gates))
    rows = [[r.name, r.kind, *[_cell_text(r.cells[g]) for g, _ in table.gates],
             *[_cell_text(r.axes[a]) if a in r.axes else "" for a in axes], _pp(r.score, "{:.2f}"), r.verdict, r.decision or ""]
            for r in table.rows]
    print_table(f"{experiment}: Δ pp vs {table.row(table.base_subject_id).name if table.base_subject_id else 'no base'}"
                f" · score = {config.formula(table.lam)} · {VERDICTS['UNDERPOWERED'].label} (n cannot see a drop of "
                "the tolerance)",
                ["subject", "kind", *[f"{g}\n{a}" for g, a in table.gates], *[f"{a}\npooled" for a in axes],
                 "score", "verdict", "decision"], rows)


def _baseline(experiment: str, reference: str, axes: tuple[str, ...], fmt: str) -> None:
    """`deltas --vs`: scores per gate (×100 for proportions) with Δ pp vs the reference, and the average."""
    from store.baseline import baseline_table

    t = baseline_table(settings().store(), experiment, reference, axes)
    if fmt == "json":
        print_json(t.as_dict())
        return
    header = ["subject", "kind", *[f"{g} ({m})" for g, _, m in t.gates], "average"]
    rows = [[name, kind, *[_pp(c.value, "{:.1f}") + ("" if c.delta is None else f" ({c.delta:+.1f}{_flag(c.verdict)})")
                           for c in (cells[g] for g, _, _ in t.gates)], _pp(avg, "{:.1f}")]
            for name, kind, cells, avg in t.rows]
    if fmt == "markdown":
        from store.card import md_table

        click.echo(md_table(header, rows))
        return
    print_table(f"{experiment}: scores, (Δ pp vs {t.reference})", header, rows)


@click.command()
@click.argument("experiment")
@LAMBDA
@TOLERANCE
@click.option("--format", "fmt", type=click.Choice(["table", "json"]), default="table", show_default=True)
def select(experiment: str, lam: float, tolerance: float | None, fmt: str) -> None:
    """Rank subjects by score and list the Pareto frontier (style gain vs worst general regression)."""
    from store.deltas import best, delta_table, pareto_frontier, ranked

    config = settings().experiment_config(experiment)
    table = delta_table(settings().store(), experiment, lam=lam, tolerance_pp=tolerance, config=config)
    top, front = best(table), {r.subject_id for r in pareto_frontier(table)}
    ranking = ranked(table)
    if fmt == "json":
        print_json({"experiment": experiment, "base_subject_id": table.base_subject_id, "lambda": table.lam,
                    "weights": config.weights, "tolerance_pp": tolerance, "best": top.subject_id if top else None,
                    "frontier": [r.subject_id for r in pareto_frontier(table)],
                    "ranked": [{"subject_id": r.subject_id, "name": r.name, "kind": r.kind, "step": r.step,
                                "style_gain_pp": r.style_gain_pp, "axis_gains_pp": r.axis_gains_pp,
                                "gain_pp": r.gain_pp, "worst_regression_pp": r.worst_regression_pp,
                                "score": r.score, "verdict": r.verdict, "pareto": r.subject_id in front,
                                "decision": r.decision} for r in ranking]})
        return
    weighted = [a for a, w in config.weights.items() if w]
    rows = [[("★ " if top and r.subject_id == top.subject_id else "") + r.name, r.kind,
             *[_pp(r.axis_gains_pp.get(a)) for a in weighted], _pp(r.worst_regression_pp), _pp(r.score, "{:.2f}"),
             r.verdict, "yes" if r.subject_id in front else "", r.decision or ""] for r in ranking]
    print_table(f"{experiment}: score = {config.formula(table.lam)} · tolerance "
                f"{'per axis/gate' if tolerance is None else f'{tolerance:g} pp'}",
                ["subject", "kind", *[f"{a} gain" for a in weighted], "worst regr.", "score", "verdict", "pareto",
                 "decision"], rows)


@click.command()
@click.argument("subject")
@click.argument("verdict", type=click.Choice(list(DECISIONS)))
@click.option("--reason", required=True, help="why (stored with who and when)")
@click.option("--override", is_flag=True, help="accept despite a FAIL verdict (the reason must say 'override')")
@click.option("--experiment", default=None, help="the subject's experiment (needed when its name is in several)")
@LAMBDA
@TOLERANCE
def decide(subject: str, verdict: str, reason: str, override: bool, experiment: str | None, lam: float,
           tolerance: float | None) -> None:
    """Accept or reject a subject; the delta row it was judged on is stored with the decision."""
    from store.decisions import decide as record

    d = record(settings().store(), subject, verdict, reason, override=override, lam=lam, tolerance=tolerance,
               experiment=experiment, config_for=settings().experiment_config)
    click.echo(f"{d.verdict}ed {d.name} ({d.subject_id}) in {d.experiment} by {d.actor}"
               + (" (override)" if d.override else ""))


@click.command()
@click.argument("experiment")
@click.option("--subject", default=None, help="default: the latest accepted subject, else the best-scoring one")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False), help="FILE.md to write")
@LAMBDA
@TOLERANCE
def card(experiment: str, subject: str | None, out: str, lam: float, tolerance: float | None) -> None:
    """Render the experiment's model card (Markdown + HF model-index front matter) and its appendix
    (FILE.appendix.md: CIs, fingerprints, configs, reports) from the store."""
    from store.card import write_card_files

    card_path, appendix = write_card_files(settings().store(), experiment, out, subject, lam=lam,
                                           tolerance_pp=tolerance, config=settings().experiment_config(experiment))
    click.echo(f"wrote {card_path} and {appendix}")
