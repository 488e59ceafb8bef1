"""A training job against a machine: FITS / TIGHT / DOES NOT FIT, the gating mode to use, and the cheapest change
that would make a job fit (tried in order of what it costs the run: speed first, then quality)."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from engine.plan.machine import GIB, Machine
from engine.plan.memory import TrainMemory, gate_job_bytes, train_memory
from engine.plan.shape import ModelShape, model_shape

FITS, TIGHT, NO_FIT = "FITS", "TIGHT", "DOES NOT FIT"
TIGHT_ABOVE = 0.85  # of the device's memory: fragmentation and spikes live in the rest


@dataclass
class JobPlan:
    machine: Machine
    shape: ModelShape
    memory: TrainMemory
    gating: str  # the mode the estimate assumes (the job's, or the default for `auto`)
    gating_default: str  # what `auto` picks on this machine
    verdict: str
    need_gib: float
    capacity_gib: float
    disk_gib: float
    reasons: list[str] = field(default_factory=list)
    change: str | None = None  # the cheapest change that fits, for a job that does not
    gate_boxes: list[str] = field(default_factory=list)  # fan-out: a gate job on each gate box

    def lines(self) -> list[str]:
        m, gib = self.memory, lambda b: f"{b / GIB:.2f} GiB"  # noqa: E731
        ckpt = "with" if self.memory.activations < self.memory.activations_other else "without"
        rows = [f"machine: {self.machine.describe()}",
                f"model: {self.shape.name} ({_count(self.shape.params)} parameters, {self.shape.layers} layers, "
                f"hidden {self.shape.hidden}, vocabulary {self.shape.vocab})",
                f"weights: {gib(m.weights)}", f"adapter + optimizer states: {gib(m.adapter)}",
                f"activations: {gib(m.activations)} ({ckpt} gradient checkpointing; "
                f"{gib(m.activations_other)} the other way)",
                f"trainer: {gib(m.trainer)}", f"runtime: {gib(m.runtime)}"]
        rows += [f"gates, {mode}: +{gib(extra)}" + (" ← this job" if mode == self.gating else "")
                 for mode, extra in m.gate_extra.items()]
        rows += [f"disk, {what}: {gib(b)}" for what, b in m.disk.items()]
        rows += self.gate_boxes
        rows += m.notes
        rows.append(f"{self.verdict}: {self.need_gib:.1f} GiB of {self.capacity_gib:.1f} GiB per process, "
                    f"{self.disk_gib:.1f} GiB of {self.machine.disk_free_gib:.0f} GiB disk")
        rows += self.reasons
        if self.change:
            rows.append(f"cheapest change that fits: {self.change}")
        return rows


def _count(n: int) -> str:
    return f"{n / 1e9:.3g} B" if n >= 1e9 else f"{n / 1e6:.3g} M"


def _rows(data: str) -> int | None:
    from engine.refs import ASSET, resolve_ref

    path = Path(resolve_ref(data) if data.startswith(ASSET) else data).expanduser()
    if not path.is_file():
        return None
    with open(path, "rb") as f:
        return sum(1 for line in f if line.strip())


def _in_process_allowed(cfg) -> bool:
    return not (cfg.launcher == "accelerate" and cfg.distributed == "fsdp" and cfg.num_processes > 1)


def estimate_job(cfg, shape: ModelShape, machine: Machine) -> JobPlan:
    """The plan of a training job (TrainJobConfig) on `machine`."""
    memory = train_memory(cfg, shape, machine, _rows(cfg.data))
    capacity = machine.device_gib * GIB
    default = "none"
    if cfg.gates:  # a gate process when a second copy fits; else other boxes when there are any; else in process
        if memory.need("process") <= TIGHT_ABOVE * capacity:
            default = "process"
        elif cfg.gates.boxes:
            default = "fanout"
        else:
            default = "in_process" if _in_process_allowed(cfg) else "process"
    mode = (cfg.gates.mode if cfg.gates.mode != "auto" else default) if cfg.gates else "none"
    need = memory.need(mode)
    disk = sum(memory.disk.values())
    reasons = []
    if machine.gpu_count == 0 and cfg.quantization == "4bit":
        reasons.append(f'{machine.name} has no CUDA GPU, which quantization = "4bit" needs')
    procs = cfg.num_processes if cfg.launcher == "accelerate" else 1
    if machine.gpu_count and procs > machine.gpu_count:
        reasons.append(f"{procs} processes but {machine.name} has {machine.gpu_count} GPU(s)")
    if disk > machine.disk_free_gib * GIB:
        reasons.append(f"checkpoints need {disk / GIB:.1f} GiB of disk, {machine.disk_free_gib:.1f} GiB free")
    if reasons or need > capacity:
        verdict = NO_FIT
    else:
        verdict = TIGHT if need > TIGHT_ABOVE * capacity else FITS
    return JobPlan(machine, shape, memory, mode, default, verdict, need / GIB, capacity / GIB, disk / GIB, reasons)


def _changes(cfg, machine: Machine):
    """(description, changed config), cumulative, cheapest first."""
    t = cfg.training
    if not t.gradient_checkpointing:
        t = t.model_copy(update={"gradient_checkpointing": True})
        cfg = cfg.model_copy(update={"training": t})
        yield "training.gradient_checkpointing = true", cfg
    if cfg.gates and cfg.gates.mode in ("process", "auto"):
        if cfg.gates.boxes:
            cfg = cfg.model_copy(update={"gates": cfg.gates.model_copy(update={"mode": "fanout"})})
            yield f'[gates] mode = "fanout" (gates on {", ".join(cfg.gates.boxes)})', cfg
        elif _in_process_allowed(cfg):
            cfg = cfg.model_copy(update={"gates": cfg.gates.model_copy(update={"mode": "in_process"})})
            yield '[gates] mode = "in_process"', cfg
    while t.batch_size > 1:
        t = t.model_copy(update={"batch_size": t.batch_size // 2, "grad_accum": t.grad_accum * 2})
        cfg = cfg.model_copy(update={"training": t})
        yield f"training.batch_size = {t.batch_size}, grad_accum = {t.grad_accum} (same effective batch)", cfg
    if cfg.quantization == "none" and machine.gpu_count:
        cfg = cfg.model_copy(update={"quantization": "4bit"})
        yield 'quantization = "4bit" (QLoRA)', cfg
    while t.max_length > 512:
        t = t.model_copy(update={"max_length": t.max_length // 2})
        cfg = cfg.model_copy(update={"training": t})
        yield f"training.max_length = {t.max_length} (longer examples are cut)", cfg


def plan_training(cfg, machine: Machine, shape: ModelShape | None = None) -> JobPlan:
    """Estimate, and for a job that does not fit, find the cheapest set of changes that does."""
    shape = shape or model_shape(cfg.model)
    plan = estimate_job(cfg, shape, machine)
    if plan.verdict == NO_FIT and not plan.reasons:
        done = []
        for what, changed in _changes(cfg, machine):
            done.append(what)
            trial = estimate_job(changed, shape, machine)
            if trial.verdict != NO_FIT:
                plan.change = "; ".join(done) + f" → {trial.verdict} at {trial.need_gib:.1f} GiB"
                break
        else:
            plan.change = "none of gradient checkpointing, gating elsewhere, batch 1, 4-bit or shorter sequences " \
                          "is enough: a box with more memory (or more GPUs under FSDP)"
    return plan


def plan_gate_boxes(plan: JobPlan, cfg, machines: dict[str, Machine]) -> JobPlan:
    """Fan-out: does a checkpoint's gate job fit each gate box (as its last `boxes check` saw it)? One that does
    not makes the job not fit, with the change that would."""
    for name, machine in machines.items():
        need, capacity = gate_job_bytes(cfg.gates, plan.shape, machine) / GIB, machine.device_gib
        plan.gate_boxes.append(f"gate box {name}: a gate job needs {need:.2f} GiB of {capacity:.1f} GiB")
        if need > capacity:
            fix = ' (set [gates] quantization = "4bit")' if machine.gpu_count and cfg.gates.quantization == "none" \
                else ""
            plan.reasons.append(f"gate box {name} cannot hold a gate job: {need:.1f} GiB, {capacity:.1f} GiB "
                                f"there{fix}")
            plan.verdict = NO_FIT
    return plan
