"""`slayer demo`: the whole anti-forgetting campaign on tiny models, into the store, step by step.

Every step is an ordinary job spec (written under $SLAYER_HOME/<experiment>/specs/) launched and
followed exactly as `slayer run` does; the numbers printed at the end are what the models scored.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import click

from engine.errors import WorkFailed
from engine.jobs import dumps_toml, parse_spec
from engine.vocab import ADAPTER_KINDS

# n = 40–81 items per demo gate cannot resolve a 0.5 pp change (one item is 1.2–2.5 pp), so the demo judges
# at a tolerance its gates can see; real suites keep each gate's own (0.5 pp).
DEMO_TOLERANCE_PP = 5.0
DEMO_GATES = ["polish_psc", "polish_8tags", "polemo2_in", "polish_dyk", "arc_easy", "arc_challenge", "style_pref"]


@dataclass
class Demo:
    settings: object
    experiment: str
    step_no: int = 0

    @property
    def dir(self) -> Path:
        return self.settings.home / self.experiment

    def run(self, title: str, spec: dict) -> Path:
        """Write the spec, launch it locally, follow it with a progress bar, fail loudly if it fails."""
        return self.wait(self.launch(title, spec))

    def run_all(self, *steps: tuple[str, dict]) -> list[Path]:
        """Launch every (title, spec) at once, then wait for each in turn; their outputs in order."""
        started = [self.launch(title, spec) for title, spec in steps]
        return [self.wait(run) for run in started]

    def launch(self, title: str, spec: dict):
        """Write the spec and start it as `slayer run` would; returns (title, step, run handle)."""
        import asyncio
        import tomllib

        self.step_no += 1
        click.secho(f"[{self.step_no}] {title}", bold=True)
        path = self.dir / "specs" / f"{self.step_no:02d}-{spec['kind'].replace('.', '-')}.toml"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(dumps_toml({**spec, "experiment": self.experiment}), encoding="utf-8")
        job = parse_spec(tomllib.loads(path.read_text()), str(path))
        handle = asyncio.run(self.driver.launch(job, path, experiment=self.experiment))
        return title, self.step_no, handle

    @property
    def driver(self):
        from remotes.drivers import driver_for

        return driver_for(self.settings.home, self.settings.store(), "local")

    def wait(self, started) -> Path:
        from slayer_console.commands.runs import last_log_line
        from slayer_console.progress import follow_with_bar
        from store.queries import get_run

        title, step, handle = started
        status = follow_with_bar(self.driver, handle.run_id)
        run_dir = Path(handle.run_dir)
        if status != "succeeded":
            error = get_run(self.settings.store(), handle.run_id).error or last_log_line(run_dir)
            raise WorkFailed(f"demo step {step} ({title}) {status}: {error} (log: {run_dir / 'log.txt'})")
        return run_dir / "outputs"


def next_experiment(settings, name: str = "demo") -> str:
    """`demo`, or `demo-2`, `demo-3`… when earlier demos are in the store: a rerun never mixes with them."""
    from store.queries import list_experiments

    taken = set(list_experiments(settings.store()))
    if name not in taken:
        return name
    i = 2
    while f"{name}-{i}" in taken:
        i += 1
    return f"{name}-{i}"


def _gates(world: dict, base: bool = True) -> dict:
    return {"gates": DEMO_GATES, "base": base, "device": "cpu", "batch_size": 64, "files": {
        "polish_psc": world["psc_test"], "polish_8tags": world["8tags_test"], "polemo2_in": world["polemo2_in_test"],
        "polish_dyk": world["dyk_test"], "arc_easy": world["facts_test"], "arc_challenge": world["sums_test"],
        "style_pref": world["style_pairs"]}}


def _guard(world: dict) -> list[str]:
    """Every demo gate's test file, as GATE=FILE entries for the contamination guard."""
    return [f"{gate}={path}" for gate, path in _gates(world)["files"].items()]


def _sft(name: str, model: str, data: str, world: dict, steps: int, save: int, lr: float, base_gated: bool) -> dict:
    return {"kind": "train.sft", "name": name, "model": model, "data": data,
            "adapter": {"method": "dora", "rank": 16, "alpha": 32.0, "dropout": 0.0, "use_rslora": True},
            "training": {"learning_rate": lr, "max_steps": steps, "epochs": 10.0, "batch_size": 8, "max_length": 128,
                         "warmup": 0.1, "lr_scheduler": "constant_with_warmup", "save_steps": save,
                         "logging_steps": 5, "seed": 0, "gradient_checkpointing": False, "drift_steps": save},
            # in process: a tiny model scores in a fraction of a second, a gate process would take seconds to start
            "gates": {**_gates(world, base=base_gated), "mode": "in_process"}}


def run_demo(settings, fast: bool = False, seed: int = 0) -> str:
    import os

    # Tiny models: one thread per job is fastest, and the demo runs several jobs at once on small boxes.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    demo = Demo(settings, next_experiment(settings))
    click.echo(f"experiment {demo.experiment!r} in {settings.home}")
    world_out = demo.run("generate the demo world (general skills, Polish tasks, style data)",
                         {"kind": "demo.world", "seed": seed})
    world = json.loads((world_out / "world" / "files.json").read_text())
    # The tokenizer learns the world's text too: the KLEJ prompts take half the tokens, so every step is cheaper.
    tiny = demo.run("build a tiny Qwen3 base model", {"kind": "model.tiny", "name": "tiny-base", "seed": seed,
                                                      "corpus": world["pretrain"]})
    pre = demo.run("pre-train the base: general facts, arithmetic, code and some KLEJ-shaped Polish examples",
                   {"kind": "demo.pretrain", "model": str(tiny / "model"), "text": world["pretrain"],
                    "steps": 400, "batch_size": 64, "max_length": 128, "seed": seed})
    base = str(pre / "model")
    # Steps that do not need each other's outputs run side by side (each job is a process of its own; on a small
    # box one's start-up overlaps the other's work).
    base_export = demo.launch("GGUF export of the base, to serve beside the accepted candidate",
                              {"kind": "export.gguf", "name": "gguf-base", "model": base, "quants": ["Q8_0"],
                               "verify": False, "file_stem": "base"})
    tasks = {t: {"train": world[f"{t}_train"], "test": world[f"{t}_test"]} for t in ("psc", "dyk", "8tags", "polemo2_in")}
    klej, replay = demo.run_all(
        ("KLEJ train splits as instructions, guarded against the test splits",
         {"kind": "data.klej", "per_task": 60 if fast else 120, "min_per_task": 8, "seed": seed,
          "format": "plain", "tasks": tasks}),  # plain: learned as the KLEJ gates score it, no chat template
        ("replay set: self-replay from the base + a local general set",
         {"kind": "data.replay", "seed": seed, "guard_against": _guard(world), "quotas": {"en_knowledge": 100, "math": 80},
          "self_replay": {"model": base, "prompts": world["replay_prompts"], "licence": "demo",
                          "device": "cpu", "max_new_tokens": 8, "batch_size": 16, "chat_template": False,
                          "drop_unfinished": False},  # short answers; the base never stops
          "sources": [{"name": "demo-general", "file": world["general_sft"], "licence": "CC0-1.0",
                       "provenance": "generated by slayer demo from its fact tables",
                       "skill": "en_knowledge"}]}))
    mixes = demo.run_all(*[
        (f"training mix {label} (replay share {share:.0%})",
         {"kind": "data.mix", "style": world["style_sft"], "klej": str(klej / "klej.jsonl"),
          "replay_share": share, "klej_max_share": 0.5, "seed": seed, "guard_against": _guard(world),
          **({"replay": str(replay / "replay.jsonl")} if share else {})})
        for label, share in (("no-replay", 0.0), ("replay", 0.25))])
    mixes = {label: str(out / "train_v2_mix.jsonl") for label, out in zip(("no-replay", "replay"), mixes)}
    steps, save = (24, 8) if fast else (90, 15)
    # The two adapters train side by side, each gating its checkpoints in its own process as they are saved.
    demo.run_all(*[(f"DoRA adapter {label}: {steps} steps, every checkpoint gated",
                    _sft(f"sft-{label}", base, mixes[label], world, steps, save, 1e-3, base_gated=(i == 0)))
                   for i, label in enumerate(("no-replay", "replay"))])
    parent = pareto_pick(demo, "deltas, verdicts and Pareto selection of the checkpoints")
    gate = {k: v for k, v in _gates(world).items() if k != "base"}
    demo.run(f"merge rescue: scale sweep{'' if fast else ' and TIES'} of {parent.name}",
             {"kind": "merge.sweep", "name": "merge-sweep", "model": base, "adapter": parent.recipe["adapter"],
              "scales": [0.3, 0.5] if fast else [0.2, 0.3, 0.5], "variants": [] if fast else
              [{"method": "ties", "density": 0.5, "scale": 1.0}], "gate": {**gate, "suite": ""}})
    chosen = accept_best(demo)
    recipe = chosen.recipe  # the accepted candidate as it was gated: its scale or merge goes into the file
    shipped = demo.run(f"GGUF export of {chosen.name} with verification",
                       {"kind": "export.gguf", "name": "gguf-accepted", "model": base, "adapter": recipe["adapter"],
                        "scale": recipe.get("scale") or 1.0, **({"merge": recipe["merge"]} if recipe.get("merge") else {}),
                        "quants": ["Q8_0"], "verify": True, "file_stem": "slayer"})
    base_gguf = demo.wait(base_export)
    demo.run("serving latency and throughput: shipped Q8_0 vs the base's, same llama-server settings",
             {"kind": "bench.serve", "name": "serve-bench", "concurrency": [1, 4], "max_tokens": 16, "warmup": 1,
              "server": {"binary": "llama_cpp.server", "ctx_size": 512, "gpu_layers": 0, "threads": 1},
              "subjects": [{"name": f"{chosen.name} Q8_0", "kind": "quant",
                            "file": str(shipped / "gguf" / "slayer-Q8_0.gguf")},
                           {"name": "base Q8_0", "kind": "base", "file": str(base_gguf / "gguf" / "base-Q8_0.gguf")}]})
    write_card(demo)
    return demo.experiment


@dataclass
class Pick:
    subject_id: str
    name: str
    verdict: str
    recipe: dict


def pareto_pick(demo: Demo, title: str) -> Pick:
    """The Pareto-best subject under the experiment's objective: the best without a FAIL, else the best score."""
    from store.decisions import find_subject
    from store.deltas import best, delta_table

    demo.step_no += 1
    click.secho(f"[{demo.step_no}] {title}", bold=True)
    store = demo.settings.store()
    config = demo.settings.experiment_config(demo.experiment)  # the v2.1 objective unless the home says otherwise
    table = delta_table(store, demo.experiment, tolerance_pp=DEMO_TOLERANCE_PP, config=config)
    scored = [r for r in table.rows if r.kind in ADAPTER_KINDS and r.score is not None]
    row = best(table) or max(scored, key=lambda r: r.score)
    click.echo(f"Pareto-best {row.name}: score {row.score:.2f} = {config.formula(table.lam)}, verdict {row.verdict}")
    return Pick(row.subject_id, row.name, row.verdict, find_subject(store, row.subject_id, demo.experiment)[1].recipe)


def accept_best(demo: Demo) -> Pick:
    """Checkpoints and merge candidates together → Pareto-best → accepted, as an operator would (recorded as the
    demo). An override only when every candidate has a significant regression, and then it says so."""
    from store.decisions import decide

    pick = pareto_pick(demo, "deltas over checkpoints and merge candidates: Pareto selection and acceptance")
    override = pick.verdict == "FAIL"
    reason = "demo: Pareto-best" + (" (override: every candidate has a significant regression)" if override else "")
    decide(demo.settings.store(), pick.subject_id, "accept", reason, actor="slayer demo", override=override,
           tolerance=DEMO_TOLERANCE_PP, experiment=demo.experiment, config_for=demo.settings.experiment_config)
    click.echo(f"accepted {pick.name} — {reason}")
    return pick


def write_card(demo: Demo) -> Path:
    from store.card import write_card_files

    demo.step_no += 1
    click.secho(f"[{demo.step_no}] model card", bold=True)
    path, appendix = write_card_files(demo.settings.store(), demo.experiment, demo.dir / "MODEL_CARD.md",
                                      tolerance_pp=DEMO_TOLERANCE_PP,
                                      config=demo.settings.experiment_config(demo.experiment))
    click.echo(f"wrote {path} (appendix: {appendix.name})")
    return path


def outcome(settings, experiment: str) -> dict:
    """The demo's claim, read from the store at the demo's tolerance: does the no-replay adapter FAIL a general
    axis, and does the accepted candidate PASS every general axis with a style gain and a KLEJ gain?"""
    from engine.vocab import GENERAL_AXES
    from store.deltas import delta_table

    table = delta_table(settings.store(), experiment, tolerance_pp=DEMO_TOLERANCE_PP,
                        config=settings.experiment_config(experiment))
    no_replay = [r for r in table.rows if r.kind == "checkpoint" and r.name.startswith("sft-no-replay-")]
    failed = sorted({a for r in no_replay for a, c in r.axes.items() if a in GENERAL_AXES and c.verdict == "FAIL"})
    worst = max(no_replay, key=lambda r: r.worst_regression_pp or 0.0, default=None)
    pick = next((r for r in table.rows if r.decision == "accept"), None)
    general = {a: c.verdict for a, c in (pick.axes if pick else {}).items() if a in GENERAL_AXES}
    style, klej = (pick.axis_gains_pp.get("pl_style"), pick.axis_gains_pp.get("pl_nlu")) if pick else (None, None)
    return {"no_replay_failed_axes": failed,
            "no_replay_worst_drop_pp": -(worst.worst_regression_pp or 0.0) if worst else None,
            "pick": pick.name if pick else None, "pick_verdict": pick.verdict if pick else None,
            "pick_general": general, "pick_worst_drop_pp": -(pick.worst_regression_pp or 0.0) if pick else None,
            "style_gain_pp": style, "klej_gain_pp": klej,
            "shown": bool(failed) and bool(general) and set(general.values()) == {"PASS"}
            and (style or 0) > 0 and (klej or 0) > 0}


def story(settings, experiment: str) -> str:
    """What the numbers say: the no-replay adapter's general-axis FAILs, the accepted candidate's general verdicts
    and gains, and whether that is the plan's story (told as measured, whatever it says)."""
    o = outcome(settings, experiment)
    general = ", ".join(f"{a} {v}" for a, v in sorted(o["pick_general"].items())) or "none"
    gains = " ".join(f"{k} {'—' if o[f'{k}_gain_pp'] is None else format(o[f'{k}_gain_pp'], '+.1f')} pp"
                     for k in ("style", "klej"))
    return (f"no-replay: general axes FAILed {', '.join(o['no_replay_failed_axes']) or 'none'} "
            f"(worst drop {o['no_replay_worst_drop_pp'] or 0:+.1f} pp)\n"
            f"accepted {o['pick']}: general axes {general} (worst drop {o['pick_worst_drop_pp'] or 0:+.1f} pp); "
            f"gains {gains}\n"
            + ("the protocol's pick PASSes every general axis with a style and a KLEJ gain" if o["shown"] else
               f"not shown at tolerance {DEMO_TOLERANCE_PP:g} pp: the pick does not PASS every general axis with "
               "both gains (numbers above)"))
