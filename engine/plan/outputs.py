"""Disk and memory of the jobs that write models: `merge.sweep` and `export.gguf`.

Disk: a merged model is the base's checkpoint rewritten tensor for tensor (same dtype, same size); a GGUF file
holds every weight at its type's bits per weight (llama.cpp's block formats: the scales are in the figure),
the 1-D weights (norms) in float32, plus the tokenizer and metadata. The converted file (f16 / bf16 / f32) is the
quants' source and stays beside them. Memory: merging streams one tensor at a time (peak ≈ 1.3 × the largest
shard + the adapter: bench/merge_memory.py); verification reads the largest GGUF whole in llama.cpp (it touches
every weight per token) beside one float32 block of the HF reference; a sweep's gates load one candidate whole.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.plan.machine import GIB, Machine
from engine.plan.memory import adapter_params
from engine.plan.shape import ModelShape, model_shape

# Bits per weight of llama.cpp's types as it quantises a Qwen-shaped model: a type's block format (scales
# included), and for the _M / _L / Q2_K mixes the share of tensors they keep at a higher type (llama.cpp's
# `llama_tensor_get_type`: attention V, FFN down and the output head one or two steps up).
GGUF_BITS = {"F32": 32.0, "F16": 16.0, "BF16": 16.0, "Q8_0": 8.5, "Q6_K": 6.5625, "Q5_K_M": 5.69, "Q5_K_S": 5.54,
             "Q5_1": 6.0, "Q5_0": 5.5, "Q4_K_M": 4.89, "Q4_K_S": 4.58, "Q4_1": 5.0, "Q4_0": 4.5, "Q3_K_L": 4.27,
             "Q3_K_M": 3.91, "Q3_K_S": 3.5, "Q2_K": 3.35, "IQ4_XS": 4.25, "IQ4_NL": 4.5}
GGUF_META_PER_TOKEN = 48  # tokenizer in the GGUF header: the token string, score and type, plus the merges
MERGE_SHARD_FACTOR = 1.3  # streamed merge peak ÷ (largest shard + adapter), measured (docs/benchmarks.md)
DEFAULT_SHARD = 5 * 10**9  # save_pretrained's default shard size, when the shards are not here to measure
TIGHT_ABOVE = 0.85


@dataclass
class OutputPlan:
    machine: Machine
    shape: ModelShape
    disk: dict[str, float]  # what the job writes, bytes
    memory: dict[str, float]  # the peak of each stage, bytes (they run one after the other)
    memory_where: str  # "RAM" or "GPU"
    verdict: str = ""
    reasons: list[str] = field(default_factory=list)
    change: str | None = None
    notes: list[str] = field(default_factory=list)

    @property
    def disk_gib(self) -> float:
        return sum(self.disk.values()) / GIB

    @property
    def need_gib(self) -> float:
        return max(self.memory.values(), default=0.0) / GIB

    @property
    def capacity_gib(self) -> float:
        return self.machine.device_gib if self.memory_where == "GPU" else self.machine.ram_gib

    def lines(self) -> list[str]:
        rows = [f"machine: {self.machine.describe()}",
                f"model: {self.shape.name} ({self.shape.params / 1e9:.3g} B parameters"
                f"{f', {self.shape.disk_bytes / GIB:.2f} GiB on disk' if self.shape.disk_bytes else ''})"]
        rows += [f"disk, {what}: {b / GIB:.2f} GiB" for what, b in self.disk.items()]
        rows += [f"{self.memory_where}, {what}: {b / GIB:.2f} GiB" for what, b in self.memory.items()]
        rows += self.notes
        rows.append(f"{self.verdict}: {self.disk_gib:.1f} GiB of {self.machine.disk_free_gib:.0f} GiB disk, peak "
                    f"{self.need_gib:.1f} GiB of {self.capacity_gib:.1f} GiB {self.memory_where}")
        rows += self.reasons
        if self.change:
            rows.append(f"cheapest change that fits: {self.change}")
        return rows


def gguf_bytes(shape: ModelShape, quant: str) -> float:
    """One GGUF file of the model: its MTP layer included (about half of `extra_params`: 0.42 of 0.88 B on
    Qwen3.5-27B), the vision tower not (llama.cpp writes that as a separate mmproj file)."""
    weights = shape.params + shape.extra_params / 2 - shape.other_params
    return weights * GGUF_BITS[quant.upper()] / 8 + shape.other_params * 4 + shape.vocab * GGUF_META_PER_TOKEN


def merged_bytes(shape: ModelShape) -> float:
    return shape.disk_bytes or (shape.params + shape.extra_params) * 2


def _adapter_bytes(adapter: str | None, shape: ModelShape) -> float:
    path = Path(adapter).expanduser() / "adapter_model.safetensors" if adapter else None
    if path is not None and path.is_file():
        return path.stat().st_size
    return adapter_params(shape, 16, True) * 4  # a DoRA r=16 adapter in float32, the campaign's


def _merge_peak(shape: ModelShape, adapter: str | None) -> float:
    return MERGE_SHARD_FACTOR * ((shape.largest_shard or DEFAULT_SHARD) + _adapter_bytes(adapter, shape))


def _verdict(plan: OutputPlan) -> str:
    disk_cap, mem_cap = plan.machine.disk_free_gib, plan.capacity_gib
    if plan.disk_gib > disk_cap:
        plan.reasons.append(f"writes {plan.disk_gib:.1f} GiB, {disk_cap:.1f} GiB of disk free")
    if plan.need_gib > mem_cap:
        plan.reasons.append(f"peaks at {plan.need_gib:.1f} GiB, {mem_cap:.1f} GiB of {plan.memory_where}")
    if plan.reasons:
        return "DOES NOT FIT"
    tight = plan.disk_gib > TIGHT_ABOVE * disk_cap or plan.need_gib > TIGHT_ABOVE * mem_cap
    return "TIGHT" if tight else "FITS"


def plan_export(cfg, machine: Machine, shape: ModelShape | None = None) -> OutputPlan:
    """`cfg`: an export.gguf ExportConfig."""
    return _planned(cfg, machine, shape, _export, _export_changes)


def plan_sweep(cfg, machine: Machine, shape: ModelShape | None = None) -> OutputPlan:
    """`cfg`: a merge.sweep MergeSweepConfig."""
    return _planned(cfg, machine, shape, _sweep, _sweep_changes)


def _planned(cfg, machine: Machine, shape: ModelShape | None, estimate, changes) -> OutputPlan:
    """The estimate, and for a job that does not fit the cheapest set of changes that does."""
    shape = shape or model_shape(cfg.model)
    plan = estimate(cfg, machine, shape)
    if plan.verdict == "DOES NOT FIT":
        done = []
        for what, changed in changes(cfg):
            done.append(what)
            trial = estimate(changed, machine, shape)
            if trial.verdict != "DOES NOT FIT":
                plan.change = "; ".join(done) + f" → {trial.verdict} at {trial.disk_gib:.1f} GiB disk, " \
                                                f"{trial.need_gib:.1f} GiB"
                break
        else:
            plan.change = "a box with more disk or memory"
    return plan


def _export(cfg, machine: Machine, shape: ModelShape) -> OutputPlan:
    disk, memory = {}, {}
    if cfg.adapter:
        disk["merged model (outputs/merged)"] = merged_bytes(shape)
        memory["merge (streamed)"] = _merge_peak(shape, cfg.adapter)
    files = [cfg.outtype, *cfg.quants]
    for quant in files:
        disk[f"GGUF {quant.upper()}" + (" (converted; the quants' source)" if quant == cfg.outtype else "")] = \
            gguf_bytes(shape, quant)
    if cfg.lora_gguf:
        disk[f"GGUF {cfg.outtype.upper()} of the base (for the LoRA GGUF)"] = gguf_bytes(shape, cfg.outtype)
    memory["convert (one tensor at a time)"] = _merge_peak(shape, None) / MERGE_SHARD_FACTOR
    if cfg.verify:
        memory["verify (largest GGUF read whole + one float32 block)"] = \
            max(gguf_bytes(shape, q) for q in files) + shape.params / shape.layers * 4
    plan = OutputPlan(machine, shape, disk, memory, "RAM")
    plan.verdict = _verdict(plan)
    return plan


def _export_changes(cfg):
    """(description, changed config), cumulative, cheapest first: drop the biggest quants, then verification."""
    quants = sorted(cfg.quants, key=lambda q: GGUF_BITS[q.upper()])
    while quants:
        dropped = quants.pop()
        cfg = cfg.model_copy(update={"quants": [q for q in cfg.quants if q in quants]})
        yield f"drop {dropped} from quants", cfg
    if cfg.verify:
        cfg = cfg.model_copy(update={"verify": False})
        yield "verify = false (check the files later with a gate job)", cfg


def _sweep(cfg, machine: Machine, shape: ModelShape) -> OutputPlan:
    written = len(cfg.variants) + (len(cfg.scales) if cfg.materialize_scales else 0)
    disk = {f"merged candidates ({written} × {merged_bytes(shape) / GIB:.2f} GiB, all written before gating)":
            written * merged_bytes(shape)} if written else {}
    memory = {"merge (streamed)": _merge_peak(shape, cfg.adapter)} if written else {}
    device = cfg.gate.device
    on_gpu = device.startswith("cuda") and machine.gpu_count > 0
    if not cfg.skip_gates and (cfg.gate.suite or cfg.gate.gates):
        memory["gates (one candidate loaded whole)"] = shape.params * (2 if on_gpu else 4)
    plan = OutputPlan(machine, shape, disk, memory, "GPU" if on_gpu and not written else "RAM")
    if on_gpu and written:  # merging is on the CPU, gating on the GPU: plan each where it runs
        gpu = shape.params * 2
        plan.memory.pop("gates (one candidate loaded whole)", None)
        plan.notes.append(f"GPU, gates (one candidate loaded whole): {gpu / GIB:.2f} GiB of "
                          f"{machine.device_gib:.1f} GiB")
        if gpu > machine.device_gib * GIB:
            plan.reasons.append(f"a candidate needs {gpu / GIB:.1f} GiB of GPU memory, {machine.device_gib:.1f} there")
    plan.verdict = _verdict(plan)
    return plan


def _sweep_changes(cfg):
    if cfg.materialize_scales:
        cfg = cfg.model_copy(update={"materialize_scales": False})
        yield "materialize_scales = false (scales are applied on load)", cfg
    variants = list(cfg.variants)
    while len(variants) > 1:
        variants.pop()
        cfg = cfg.model_copy(update={"variants": list(variants)})
        yield f"{len(variants)} variant(s) per sweep (run the rest in another)", cfg
