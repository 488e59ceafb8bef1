"""How well does the drift meter predict the gated general-axis regression? Every checkpoint of a demo, its drift
from the base against its pooled general-axis drop, and Spearman's rank correlation with a permutation p-value.

    python bench/drift_vs_gates.py HOME [HOME …] [--experiment demo]
    python bench/drift_vs_gates.py --seeds 0 1 2        # runs `slayer demo --fast --seed N` into fresh homes first

Per checkpoint subject in the store (both adapters, replay and no-replay): the drop is −gain of its worst pooled
general axis (the demo has one, reasoning: arc_easy + arc_challenge) against the base, in pp, as the delta table
computes it at the demo's tolerance; the drift is engine.train.drift.DriftMeter on the live meter's default probes
(TrainingSettings's drift_probes and drift_probe_count) applied to the checkpoint's adapter over its base — the same
code and the same weights the live meter measures at that step (eval mode both times). Where the run recorded a
live `drift_kl` at the checkpoint's step it is printed beside, as a check.

ρ > 0: the more a checkpoint drifted, the more it lost. p: two-sided, permuting drifts within each home (exact
when a home has ≤ 8 checkpoints and it is alone, else 20 000 random permutations); pooled homes keep their own
blocks, since each seed has its own base and world.
"""

from __future__ import annotations

import argparse
import itertools
import math
import os
import random
import shutil
import subprocess
import tempfile
from pathlib import Path


def ranks(xs: list[float]) -> list[float]:
    """1-based ranks, ties averaged."""
    order = sorted(range(len(xs)), key=xs.__getitem__)
    out = [0.0] * len(xs)
    i = 0
    while i < len(order):
        j = i
        while j + 1 < len(order) and xs[order[j + 1]] == xs[order[i]]:
            j += 1
        for k in range(i, j + 1):
            out[order[k]] = (i + j) / 2 + 1
        i = j + 1
    return out


def pearson(x: list[float], y: list[float]) -> float:
    mx, my = sum(x) / len(x), sum(y) / len(y)
    sxy = sum((a - mx) * (b - my) for a, b in zip(x, y))
    sxx, syy = sum((a - mx) ** 2 for a in x), sum((b - my) ** 2 for b in y)
    return sxy / math.sqrt(sxx * syy) if sxx and syy else float("nan")


def spearman(blocks: list[list[tuple[float, float]]], draws: int = 20_000, seed: int = 0) -> tuple[float, float]:
    """(ρ over every pair, two-sided permutation p) — drifts permuted within each block."""
    pairs = [p for b in blocks for p in b]
    drop_ranks = ranks([d for _, d in pairs])

    def rho(drifts: list[float]) -> float:
        return pearson(ranks(drifts), drop_ranks)

    observed = rho([x for x, _ in pairs])
    if len(blocks) == 1 and len(pairs) <= 8:
        shuffles = [list(p) for p in itertools.permutations([x for x, _ in pairs])]
    else:
        rng = random.Random(seed)
        shuffles = []
        for _ in range(draws):
            drawn = []
            for b in blocks:
                xs = [x for x, _ in b]
                rng.shuffle(xs)
                drawn += xs
            shuffles.append(drawn)
    extreme = sum(abs(rho(s)) >= abs(observed) - 1e-12 for s in shuffles)
    return observed, extreme / len(shuffles)


def live_drift(store, run_id: str | None, step: int | None) -> float | None:
    from sqlmodel import select

    from store.models import Metric

    if run_id is None or step is None:
        return None
    with store.session() as s:
        row = s.exec(select(Metric.value).where(Metric.run_id == run_id, Metric.key == "drift_kl",
                                                Metric.step == step)).first()
    return row


def checkpoints(home: Path, experiment: str) -> list[dict]:
    """Each gated checkpoint: name, step, worst pooled general-axis drop (pp), its base and adapter, live drift."""
    from engine.vocab import GENERAL_AXES
    from slayer_console.context import Settings
    from slayer_console.demo import DEMO_TOLERANCE_PP
    from store.decisions import find_subject
    from store.deltas import delta_table

    settings = Settings.create(str(home))
    store = settings.store()
    table = delta_table(store, experiment, tolerance_pp=DEMO_TOLERANCE_PP,
                        config=settings.experiment_config(experiment))
    out = []
    for row in table.rows:
        gains = [c.gain_pp for a, c in row.axes.items() if a in GENERAL_AXES and c.gain_pp is not None]
        if row.kind != "checkpoint" or not gains:
            continue
        subject = find_subject(store, row.subject_id, experiment)[1]
        out.append({"name": row.name, "step": row.step, "drop_pp": -min(gains), "model": subject.recipe["model"],
                    "adapter": subject.recipe["adapter"], "live": live_drift(store, subject.run_id, row.step)})
    if not out:
        raise SystemExit(f"{home}: experiment {experiment!r} has no gated checkpoint with a general axis")
    return out


def measure(rows: list[dict]) -> None:
    """Adds `drift` to each row: the live meter's code and default probes on the checkpoint's adapter."""
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from engine.train.config import TrainingSettings
    from engine.train.drift import DriftMeter, read_probes

    fields = TrainingSettings.model_fields
    probes = read_probes(fields["drift_probes"].default, fields["drift_probe_count"].default, "drift_vs_gates")
    meters = {}
    for row in rows:
        if row["model"] not in meters:
            meters[row["model"]] = DriftMeter(AutoTokenizer.from_pretrained(row["model"]), probes)
        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(row["model"]), row["adapter"])
        row["drift"] = meters[row["model"]].measure(model)


def run_demo(seed: int) -> Path:
    home = Path(tempfile.mkdtemp(prefix=f"drift-demo-{seed}-"))
    print(f"seed {seed}: slayer demo --fast into {home}", flush=True)
    subprocess.run([shutil.which("slayer") or "slayer", "demo", "--fast", "--seed", str(seed)], check=True,
                   env={**os.environ, "SLAYER_HOME": str(home)}, stdout=subprocess.DEVNULL)
    return home


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("homes", nargs="*", type=Path, help="SLAYER_HOME of a finished demo")
    p.add_argument("--seeds", nargs="*", type=int, default=[], help="run `slayer demo --fast --seed N` first")
    p.add_argument("--experiment", default="demo")
    a = p.parse_args()
    import torch
    from transformers.utils import logging

    torch.set_num_threads(1)
    logging.set_verbosity_error()
    logging.disable_progress_bar()
    homes = list(a.homes) + [run_demo(s) for s in a.seeds]
    if not homes:
        p.error("give demo homes or --seeds")
    blocks = []
    print(f"{'home':28} {'checkpoint':24} {'drop pp':>8} {'drift_kl':>9} {'live':>9}")
    for home in homes:
        rows = checkpoints(home, a.experiment)
        measure(rows)
        for r in rows:
            live = "" if r["live"] is None else f"{r['live']:9.4g}"
            print(f"{home.name[-28:]:28} {r['name']:24} {r['drop_pp']:8.1f} {r['drift']:9.4g} {live:>9}")
        block = [(r["drift"], r["drop_pp"]) for r in rows]
        rho, pv = spearman([block])
        print(f"{'':28} Spearman ρ = {rho:+.2f}, n = {len(block)}, permutation p = {pv:.3f}")
        blocks.append(block)
    if len(blocks) > 1:
        rho, pv = spearman(blocks)
        print(f"pooled over {len(blocks)} homes: Spearman ρ = {rho:+.2f}, n = {sum(map(len, blocks))}, "
              f"permutation p (within home) = {pv:.3f}")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
