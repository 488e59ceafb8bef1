"""The `merge.sweep` job kind: adapter scales and TIES / DARE merges as subjects, each gated on a suite.

Scale candidates are evaluated as base + adapter at that scale (the hf backend folds the adapter in on
load), so nothing is written; TIES / DARE candidates are written as merged HF directories and evaluated
from there, but recorded under their recipe (base, adapter, λ and merge parameters), so the same merge is
the same subject wherever it was written.
"""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path

from pydantic import Field

from engine.gates.backend import SubjectSpec
from engine.jobs import job_kind
from engine.merge.config import MergeSweepConfig
from engine.subjects import Recipe

EXAMPLE = '''# merge.sweep: candidates made from one adapter, each gated so it joins the delta / Pareto table.
# Scale candidates: W + s·(W_adapted − W) (for DoRA the whole merged weight is interpolated, magnitude
# included). TIES / DARE candidates are written to outputs/merges/<candidate>/ (same shard layout as the base).
kind = "merge.sweep"
name = "sweep-ckpt-800"

model = "Qwen/Qwen3-0.6B"            # base: a local HF directory with safetensors weights (or a cached HF id)
adapter = "runs/sft/outputs/checkpoint-800"   # PEFT LoRA / DoRA adapter directory
scales = [0.3, 0.4, 0.5, 0.6, 0.7]   # adapter scales; [] for none
materialize_scales = false           # true: write scale candidates to disk too
keep_merged = true                   # false: delete the merged directories once gated (saves disk)
gate_base = false                    # true: gate the base in this run too (deltas need a base result;
                                     # pairwise judged gates need the base in the same run)
skip_gates = false                   # true: only build the candidates

[[variants]]                         # a TIES merge of the adapter's task vector
method = "ties"                      # ties | dare_ties | dare_linear | task_arithmetic
density = 0.5                        # fraction of entries kept (ties: the largest; dare: random, rescaled)
scale = 1.0                          # λ: W + λ·τ

[[variants]]
method = "dare_linear"
density = 0.7
seed = 1                             # DARE's random drop (per tensor, hashed with the tensor name)

[gate]                               # how every candidate is gated (the `gate` job's settings)
suite = "core"                       # a suite from assets/gates/suites.toml ("" for none: list `gates`)
limit = 0                            # first N items of each gate (0: all)
device = "cpu"                       # cuda on a GPU box
batch_size = 8
'''


class RecordedSubject(SubjectSpec):
    """A candidate evaluated from wherever it was written, recorded under the recipe that made it."""

    recorded_as: Recipe = Field(description="the recipe that made it (base, adapter, λ, merge parameters)")


@dataclass
class Candidate:
    spec: SubjectSpec  # what is evaluated (hf backend: model + adapter at a scale)
    folder: str  # its folder name under outputs/merges
    merge: dict | None = None  # merge_model arguments when it is written to disk first


def parent_name(adapter: str) -> str:
    """The subject a candidate is made from, by the name its training gave it (`sft-replay-ckpt-30`), so
    `sft-replay-ckpt-30 ×0.5` says which checkpoint it scales; the folder name for adapters from elsewhere."""
    from engine.train.stack import read_meta

    return (read_meta(adapter) or {}).get("subject") or Path(adapter).name


def _candidates(config: MergeSweepConfig) -> list[Candidate]:
    label = parent_name(config.adapter)
    out: list[Candidate] = []
    if config.gate_base:
        out.append(Candidate(SubjectSpec(name=Path(config.model).name, kind="base", model=config.model), "base"))
    for s in config.scales:
        spec = SubjectSpec(name=f"{label} ×{s:g}", kind="merge", model=config.model, adapter=config.adapter, scale=s)
        out.append(Candidate(spec, f"scale-{s:g}",
                             {"method": "task_arithmetic", "scale": s} if config.materialize_scales else None))
    for v in config.variants:
        seed = f" seed {v.seed}" if v.method.startswith("dare") else ""
        what = f"{v.method} d{v.density:g}{seed}" + (f" ×{v.scale:g}" if v.scale != 1.0 else "")
        spec = RecordedSubject(name=f"{label} {what}", kind="merge", model=config.model,
                               recorded_as=Recipe.hf(config.model, config.adapter, v.scale, merge=v))
        out.append(Candidate(spec, what.replace(" ", "-").replace("×", "x"), {"method": v.method, "scale": v.scale,
                                                            "density": v.density, "seed": v.seed}))
    return out


@job_kind("merge.sweep", MergeSweepConfig, "Adapter scale sweep and TIES / DARE merges as subjects, each gated",
          EXAMPLE)
def run_sweep(config: MergeSweepConfig, ctx) -> None:
    from engine.gates.run import resolve_gates, run_gates, write_json
    from engine.merge.adapter import load_adapter
    from engine.merge.stream import merge_model

    adapter = load_adapter(config.adapter)
    gates = None if config.skip_gates else resolve_gates(config.gate.suite, config.gate.gates,
                                                         config.gate.chat_template)
    plans, specs, listing = _candidates(config), [], []
    for c in plans:
        spec, subject, path = c.spec, c.spec.subject(), None
        if c.merge is not None:
            path = ctx.outputs / "merges" / c.folder
            merge_model(config.model, adapter, path, **c.merge,
                        on_shard=lambda done, total, shard: ctx.progress(done, total, "shards", f"merging {c.folder}"))
            # evaluated from the written folder, recorded under the candidate's own recipe
            spec = RecordedSubject(name=spec.name, kind=spec.kind, model=str(path), recorded_as=spec.recipe())
            ctx.artifact(path, "hf_model", subject=subject)
        specs.append(spec)
        listing.append({"subject": subject, "path": str(path) if path else None})
        ctx.log(f"candidate {len(specs)}/{len(plans)}: {subject['name']} ({subject['id']})")
    if gates:
        # one call for all candidates: gate data is loaded once, and pairwise gates see the base first
        run_gates(specs, gates, ctx.outputs, **config.gate.run_settings(),
                  progress=lambda done, total, label: ctx.progress(done, total, "items", label),
                  on_result=ctx.gate_result, log=ctx.log)
    if not config.keep_merged:
        for entry in listing:
            if entry["path"]:
                shutil.rmtree(entry["path"])
                entry["path"] = None
    write_json(ctx.outputs / "candidates.json", listing)
    ctx.artifact(ctx.outputs / "candidates.json", "merge_candidates")
