"""`slayer data klej | replay | mix | guard`: build training data and check it for contamination.

Each command validates its options as the matching job kind's config (the same checks and messages
as a job TOML), then calls one engine builder; progress goes to stderr, the summary to stdout.
"""

from __future__ import annotations

import sys
from contextlib import contextmanager
from pathlib import Path

import click

from engine.errors import WorkFailed
from slayer_console.commands.common import FORMAT, print_json, print_table


@click.group()
def data() -> None:
    """Build training data: KLEJ instructions, replay, mixes, contamination guard."""


def _config(kind: str, values: dict):
    from engine.jobs import parse_spec

    return parse_spec({"kind": kind, **{k: v for k, v in values.items() if v is not None}},
                      f"slayer {kind.replace('.', ' ')}").config


def _pairs(values: tuple[str, ...], option: str) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for value in values:
        name, _, file = value.partition("=")
        if not name.strip():
            raise click.UsageError(f"{option} {value!r}: expected NAME or NAME=FILE")
        out[name.strip()] = file.strip() or None
    return out


@contextmanager
def _progress(quiet: bool):
    """A rich progress bar on stderr (a terminal only); yields the builders' progress(done, total, label)."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), disable=quiet or not sys.stderr.isatty(), transient=True) as bar:
        task = bar.add_task("reading", total=None)
        yield lambda done, total, label: bar.update(task, completed=done, total=total, description=label)


def _log(message: str) -> None:
    click.echo(message, err=True)


def _guard_rows(guard: dict) -> list[list]:
    return [[g["name"], g["items"], g["overlap"], g["items_hit"]] for g in guard["gates"]]


def _show_coverage(cov: dict) -> None:
    print_table("replay anchors per gated axis", ["axis", "gates", "replay examples", "from skills"],
                [[a, ", ".join(v["gates"]), v["examples"], " ".join(f"{s}:{n}" for s, n in v["skills"].items())]
                 for a, v in cov["axes"].items()])


def _show_guard(guard: dict) -> None:
    print_table(f"contamination guard: {guard['dropped']} of {guard['checked']} examples dropped",
                ["gate", "test items", "overlap", "items hit"], _guard_rows(guard))


@data.command("klej")
@click.option("--task", "tasks", multiple=True, metavar="NAME[=TRAIN_FILE]",
              help="psc, ppc, dyk, 8tags, polemo2_in (repeat); without a file: the gate's HF train split")
@click.option("--test", "tests", multiple=True, metavar="NAME=TEST_FILE", help="local test split the guard uses")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="output JSONL")
@click.option("--per-task", type=int, default=None, help="examples per task [150]")
@click.option("--per-class-cap", type=int, default=None, help="most examples of one class [per-task / classes]")
@click.option("--min-per-task", type=int, default=None, help="warn below this many per task [120]")
@click.option("--seed", type=int, default=None, help="[0]")
@click.option("--example-format", "example_format", type=click.Choice(["chat", "plain"]), default=None,
              help="chat: messages; plain: prompt/completion, the raw text the KLEJ gates score [chat]")
@click.option("--guard-against", multiple=True, metavar="SUITE_OR_FILE",
              help="also guard against a suite, gate, GATE=FILE or test file (repeat)")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="[OUT stem + _report.json]")
@click.option("--quiet", is_flag=True, help="no progress bar")
@FORMAT
def klej_cmd(tasks, tests, out, per_task, per_class_cap, min_per_task, seed, example_format, guard_against, report,
             quiet, fmt):
    """KLEJ train splits as instructions (chat or plain) with the gates' prompts and labels, balanced and guarded."""
    from engine.data.klej import build_klej

    tables = {}
    for name, file in _pairs(tasks, "--task").items():
        tables[name] = {"train": file}
    for name, file in _pairs(tests, "--test").items():
        if name not in tables:
            raise click.UsageError(f"--test {name}: no --task {name}")
        tables[name]["test"] = file
    config = _config("data.klej", {"tasks": tables or None, "per_task": per_task, "per_class_cap": per_class_cap,
                                   "min_per_task": min_per_task, "seed": seed, "guard_against": list(guard_against),
                                   "format": example_format})
    report_path = Path(report) if report else Path(out).with_name(Path(out).stem + "_report.json")
    with _progress(quiet or fmt == "json") as progress:
        result = build_klej(config, Path(out), report_path, progress, _log)
    if fmt == "json":
        print_json(result)
        return
    rows = [[t, v["gate"], v["rows"], v["overlapping"], v["duplicates"], v["selected"],
             " ".join(f"{c}:{n['selected']}" for c, n in v["classes"].items())] for t, v in result["tasks"].items()]
    print_table(f"{result['total']} examples → {out}", ["task", "gate", "train rows", "overlap", "duplicates",
                                                         "selected", "per class"], rows)
    _show_guard(result["guard"])
    click.echo(f"report: {report_path}")


@data.command("replay")
@click.argument("spec_path", metavar="SPEC.toml", type=click.Path(dir_okay=False))
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="output JSONL")
@click.option("--report", type=click.Path(dir_okay=False), default=None, help="[OUT stem + _report.json]")
@click.option("--quiet", is_flag=True, help="no progress bar")
@FORMAT
def replay_cmd(spec_path, out, report, quiet, fmt):
    """Build the replay set from a data.replay spec (see `slayer jobs example data.replay`)."""
    from engine.data.replay import build_replay
    from engine.errors import SpecError
    from engine.jobs import load_spec

    spec = load_spec(spec_path)
    if spec.kind.name != "data.replay":
        raise SpecError(f"{spec_path}: kind is {spec.kind.name!r}, expected 'data.replay'")
    report_path = Path(report) if report else Path(out).with_name(Path(out).stem + "_report.json")
    with _progress(quiet or fmt == "json") as progress:
        result = build_replay(spec.config, Path(out), report_path, progress, _log)
    if fmt == "json":
        print_json(result)
        return
    rows = [[s, v["quota"], v["available"], v["written"], v["shortfall"]] for s, v in result["skills"].items()]
    print_table(f"{result['total']} examples → {out}", ["skill", "quota", "available", "written", "shortfall"], rows)
    print_table("sources", ["source", "licence", "provenance", "used"],
                [[r["name"], r["licence"], r["provenance"], r["used"]] for r in result["sources"]])
    if result["synthetic_override"]["used_by"]:
        click.echo(f"synthetic override used for: {', '.join(result['synthetic_override']['used_by'])}")
    sr = result["self_replay"]
    click.echo(f"self-replay: {sr['kept']} of {sr['prompts']} answers kept ({sr['hit_limit']} hit max_new_tokens; "
               f"dropped: {', '.join(f'{k} {v}' for k, v in sr['dropped'].items()) or 'none'}); "
               f"closed-model boilerplate: {result['boilerplate']['dropped']} rows dropped")
    _show_coverage(result["coverage"])
    _show_guard(result["guard"])
    click.echo(f"report: {report_path}")


@data.command("mix")
@click.option("--style", required=True, type=click.Path(dir_okay=False), help="the style data (messages JSONL)")
@click.option("--replay", type=click.Path(dir_okay=False), default=None, help="output of `slayer data replay`")
@click.option("--klej", type=click.Path(dir_okay=False), default=None, help="output of `slayer data klej`")
@click.option("--out", required=True, type=click.Path(dir_okay=False), help="output JSONL (train_v2_mix.jsonl)")
@click.option("--report", required=True, type=click.Path(dir_okay=False), help="report JSON (Markdown next to it)")
@click.option("--replay-share", type=float, default=None, help="replay's share of the mix [0.20]")
@click.option("--klej-max-share", type=float, default=None, help="KLEJ's largest share of the mix [0.15]")
@click.option("--seed", type=int, default=None, help="[0]")
@click.option("--tokenizer", default=None, help="tokenizer for token counts [whitespace]")
@click.option("--guard-against", multiple=True, metavar="SUITE_OR_FILE", help="[core] (repeat)")
@click.option("--quiet", is_flag=True, help="no progress bar")
@FORMAT
def mix_cmd(style, replay, klej, out, report, replay_share, klej_max_share, seed, tokenizer, guard_against, quiet,
            fmt):
    """Style data + a replay share + capped KLEJ, guarded and shuffled, with a data report."""
    from engine.data.mix import build_mix

    config = _config("data.mix", {"style": style, "replay": replay, "klej": klej, "replay_share": replay_share,
                                  "klej_max_share": klej_max_share, "seed": seed, "tokenizer": tokenizer,
                                  "guard_against": list(guard_against) or None})
    with _progress(quiet or fmt == "json") as progress:
        result = build_mix(config, Path(out), Path(report), progress, _log)
    if fmt == "json":
        print_json(result)
        return
    for dim in ("by_source", "by_task", "by_skill"):
        if result[dim]:
            print_table(None, [dim[3:], "examples", "share", "tokens", "token share"],
                        [[k, v["examples"], f"{v['share']:.1%}", v["tokens"], f"{v['token_share']:.1%}"]
                         for k, v in result[dim].items()])
    _show_coverage(result["coverage"])
    _show_guard(result["guard"])
    click.echo(f"{result['total']['examples']} examples → {out}; report: {report} "
               f"(+ {Path(report).with_suffix('.md')})")


@data.command("guard")
@click.option("--train", required=True, type=click.Path(dir_okay=False), help="training file to check")
@click.option("--against", multiple=True, required=True, metavar="SUITE_OR_FILE",
              help="a suite, gate, GATE=FILE or test file (repeat)")
@click.option("--report", required=True, type=click.Path(dir_okay=False), help="report JSON")
@click.option("--clean", type=click.Path(dir_okay=False), default=None,
              help="also write the training file without the overlapping examples")
@click.option("--ngram", type=int, default=None, help="n-gram length in words [13]")
@click.option("--fail-on-overlap", is_flag=True, help="exit 1 when any example overlaps")
@click.option("--quiet", is_flag=True, help="no progress bar")
@FORMAT
def guard_cmd(train, against, report, clean, ngram, fail_on_overlap, quiet, fmt):
    """Contamination check: word 13-grams and exact duplicates against gates and test files."""
    from engine.data.against import check_file

    config = _config("data.guard", {"train": train, "against": list(against), "ngram": ngram})
    with _progress(quiet or fmt == "json") as progress:
        result = check_file(config.train, config.against, config.guard_files, config.ngram, Path(report),
                            Path(clean) if clean else None, progress)
    if fmt == "json":
        print_json(result)
    else:
        _show_guard(result)
        click.echo(f"report: {report}")
    if fail_on_overlap and result["dropped"]:
        raise WorkFailed(f"{result['dropped']} of {result['checked']} training examples overlap (--fail-on-overlap)")
