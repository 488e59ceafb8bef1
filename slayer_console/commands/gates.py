"""`slayer gates` (every gate) and `slayer gate run` (score a model, adapter or GGUF file on gates).

`gate run --out DIR` runs a `gate` job with DIR as its run directory and results in DIR/results/:
`slayer ingest DIR` files it in the store later, `--experiment NAME` does so right away.
"""

from __future__ import annotations

import json
import threading
from pathlib import Path

import click

from engine.errors import WorkFailed
from engine.vocab import DEFAULT_TOLERANCE_PP, SUBJECT_KINDS
from slayer_console.commands.common import FORMAT, print_json, print_table, settings


def _dataset(gate) -> str:
    ds = gate.dataset
    if ds.hf:
        return f"{ds.hf}{'/' + ds.config if ds.config else ''}{'/' + ds.hf_file if ds.hf_file else ''}:{ds.split}"
    if ds.user_data:
        return f"your file: files.{ds.user_data_key or gate.name}"
    return f"{ds.file}:{ds.split}"


@click.command()
@FORMAT
@click.option("--power", is_flag=True, help="per gate and per axis: the paired items needed to see a drop of "
                                            "--tolerance (McNemar, α 0.05, 80 % power)")
@click.option("--tolerance", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_TOLERANCE_PP, show_default=True,
              help="with --power: the drop to see, in pp")
@click.option("--discordance", type=click.FloatRange(min=0, max=1, min_open=True), default=0.10, show_default=True,
              help="with --power: share of items whose 0/1 outcome differs between base and candidate (ψ)")
@click.option("--experiment", default=None, help="with --power: measure n and ψ on this experiment's delta table")
def gates(fmt: str, power: bool, tolerance: float, discordance: float, experiment: str | None) -> None:
    """Every gate: name, axis, scorer, primary metric, n (0 = all), dataset, and its shipped fixture (tests and
    the demo only: too few items to certify anything)."""
    from engine.gates import list_gates

    if power:
        _power(list_gates(), tolerance, discordance, experiment, fmt)
        return

    rows = [{"name": g.name, "axis": g.axis, "scorer": g.scorer, "metric": g.primary, "n": g.n,
             "dataset": _dataset(g), "user_data": g.dataset.user_data, "fixture": g.dataset.fixture,
             "chat_template": g.chat_template, "higher_is_better": g.higher_is_better} for g in list_gates()]
    if fmt == "json":
        print_json(rows)
    else:
        print_table(None, ["gate", "axis", "scorer", "metric", "n", "dataset", "fixture (tests/demo only)"],
                    [[r["name"], r["axis"], r["scorer"], r["metric"], r["n"] or "all", r["dataset"],
                      r["fixture"] or ""] for r in rows])
        from engine.gates.sandbox import sandbox_description

        click.echo(f"code gates here run in the sandbox: {sandbox_description()}")


def _power(specs, tolerance: float, discordance: float, experiment: str | None, fmt: str) -> None:
    from store.power import power_rows

    table = None
    if experiment:
        from store.deltas import delta_table

        table = delta_table(settings().store(), experiment, tolerance_pp=tolerance,
                            config=settings().experiment_config(experiment))
    per_gate, per_axis = power_rows(specs, tolerance, discordance, table)
    if fmt == "json":
        print_json({"tolerance_pp": tolerance, "discordance": discordance, "experiment": experiment,
                    "gates": per_gate, "axes": per_axis})
        return

    def enough(r) -> str:
        return {True: "yes", False: "UNDERPOWERED", None: "—"}[r["enough"]]

    def count(x) -> str:
        return "all" if x is None else f"{x:,}"

    print_table(f"items needed to see a {tolerance:g} pp drop, per gate", ["gate", "axis", "n", "needed", "from",
                                                                            "enough"],
                [[r["gate"], r["axis"], count(r["n"]), "—" if r["needed"] is None else f"{r['needed']:,}", r["source"],
                  enough(r)] for r in per_gate])
    print_table("per axis (its gates' paired items pooled; the plan's tolerance is per axis)",
                ["axis", "gates", "n", "needed", "from", "enough"],
                [[r["axis"], len(r["gates"]), count(r["n"]), "—" if r["needed"] is None else f"{r['needed']:,}",
                  r["source"], enough(r)] for r in per_axis])


@click.group()
def gate() -> None:
    """Run gates on a model or adapter."""


def _gate_options(values: tuple[str, ...]) -> tuple[list[str], dict[str, str]]:
    names, files = [], {}
    for value in values:
        name, _, file = value.partition("=")
        if not name.strip():
            raise click.UsageError(f"--gate {value!r}: expected NAME or NAME=LOCAL_FILE")
        names.append(name.strip())
        if file.strip():
            files[name.strip()] = str(Path(file.strip()).resolve())
    return names, files


def _follow(events: Path, stop: threading.Event) -> None:
    """Draw a progress bar on stderr from the run's progress events until `stop` is set."""
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    offset = 0
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  console=Console(stderr=True), transient=True) as bar:
        task = bar.add_task("loading", total=None)
        while not stop.wait(0.2):
            if not events.exists():
                continue
            with open(events, "rb") as f:
                f.seek(offset)
                chunk = f.read()
            complete = chunk[:chunk.rfind(b"\n") + 1]
            offset += len(complete)
            for line in complete.splitlines():
                e = json.loads(line)
                if e["type"] == "progress":
                    bar.update(task, completed=e["done"], total=e["total"], description=e.get("label", ""))


@gate.command("run")
@click.option("--model", required=True, help="base model (HF id or directory); with --backend llama_cpp a .gguf; "
                                             "with --backend endpoint the server's model id")
@click.option("--adapter", default=None, help="PEFT adapter directory (LoRA or DoRA)")
@click.option("--scale", type=float, default=1.0, show_default=True, help="adapter scale")
@click.option("--backend", type=click.Choice(["hf", "llama_cpp", "endpoint"]), default="hf", show_default=True)
@click.option("--url", default=None, help="endpoint backend: the OpenAI-compatible server's API base (…/v1)")
@click.option("--concurrency", type=int, default=8, show_default=True, help="endpoint backend: requests in flight")
@click.option("--dtype", type=click.Choice(["auto", "float32", "bfloat16", "float16"]), default="auto",
              show_default=True)
@click.option("--gate", "gate_values", multiple=True, metavar="NAME[=LOCAL_FILE]", help="a gate (repeatable)")
@click.option("--suite", default=None, help="a suite of gates (core, extended)")
@click.option("--limit", type=int, default=0, help="only the first N items of each gate (smoke run)")
@click.option("--device", default="cpu", show_default=True, help="cpu | cuda | cuda:N")
@click.option("--batch-size", type=int, default=8, show_default=True)
@click.option("--allow-code-exec", is_flag=True, help="let code gates (mbpp, humaneval) run generated programs")
@click.option("--apply-chat-template/--no-chat-template", "chat_template", default=None,
              help="every gate's prompts in (or out of) the subject's chat template (default: each gate's own)")
@click.option("--fixtures", is_flag=True, help="score gates without a file on their tiny shipped fixtures (demo only)")
@click.option("--samples", default=None, type=click.Path(dir_okay=False), help="per-item audit lines (JSONL)")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False), help="run directory")
@click.option("--experiment", default=None, help="ingest the results into the store under this experiment")
@click.option("--name", default=None, help="subject name (default: the model's or adapter's folder name)")
@click.option("--kind", default="base", show_default=True,
              type=click.Choice(SUBJECT_KINDS))
def run_gate(model, adapter, scale, backend, url, concurrency, dtype, gate_values, suite, limit, device, batch_size,
             allow_code_exec, chat_template, fixtures, samples, out_dir, experiment, name, kind) -> None:
    """Score one subject on gates; writes DIR/results/gate_<name>.json."""
    from engine.extras import require
    from engine.gates.run import check_endpoints, check_local_files, prepare_items, resolve_gates
    from engine.jobs import parse_spec
    from engine.runner import run_job
    from remotes.local import new_run_id

    if not gate_values and not suite:
        raise click.UsageError("name at least one --gate or a --suite")
    if backend != "endpoint":  # a served model is scored over HTTP: the light install does that too
        require("slayer gate run", "ml", *(["gguf"] if backend == "llama_cpp" else []))
    if (Path(out_dir) / "events.jsonl").exists():
        raise click.UsageError(f"--out {out_dir}: already holds a run; choose a new folder")
    names, files = _gate_options(gate_values)
    gguf, served = backend == "llama_cpp", backend == "endpoint"
    if served and not url:
        raise click.UsageError("--backend endpoint needs --url (the server's API base, …/v1)")
    subject = {"name": name or Path(adapter or model).name, "kind": kind, "backend": backend, "dtype": dtype,
               "model": None if gguf or served else model, "file": str(Path(model).resolve()) if gguf else None}
    if served:
        subject["endpoint"] = {"url": url, "model": model, "concurrency": concurrency}
    if adapter:
        subject.update(adapter=str(Path(adapter).resolve()), scale=scale)
    out = Path(out_dir).resolve()
    spec = parse_spec({"kind": "gate", "experiment": experiment, "subjects": [subject], "suite": suite,
                       "gates": names, "files": files, "limit": limit, "device": device, "batch_size": batch_size,
                       "allow_code_exec": allow_code_exec, "out": str(out), "chat_template": chat_template,
                       "fixtures": fixtures,
                       "samples": str(Path(samples).resolve()) if samples else None}, "slayer gate run")
    config = spec.config
    check_local_files(config.subjects)  # cheapest first: a missing model path before any data set or server
    gates = resolve_gates(config.suite, config.gates, config.chat_template)
    prepare_items(gates, config.files, None, config.limit, config.allow_code_exec, config.device,
                  fixtures=config.fixtures)  # bad input: exit code 2 here
    check_endpoints(config.subjects, gates)
    stop = threading.Event()
    follower = threading.Thread(target=_follow, args=(out / "events.jsonl", stop), daemon=True)
    follower.start()
    try:
        status = run_job(spec, out, new_run_id("gate"))
    finally:
        stop.set()
        follower.join()
    if experiment:
        from store.ingest import ingest_run_dir

        ingest_run_dir(settings().store(), out, experiment=experiment)
    events = [json.loads(line) for line in (out / "events.jsonl").read_text(encoding="utf-8").splitlines()]
    results = [e for e in events if e["type"] == "gate_result"]
    if results:
        print_table(None, ["gate", "metric", "value", "± se", "n", "items/s"],
                    [[r["gate"], r["primary"], f"{r['metrics'][r['primary']]:.4f}",
                      f"{r['stderr'].get(r['primary'], 0):.4f}", r["n"], r["items_per_s"]] for r in results])
    if status != "succeeded":
        raise WorkFailed(f"{status}: {events[-1].get('error', '')}")
    click.echo(f"results: {out / 'results'}", err=True)
