"""Peak memory and disk of a training job, term by term (bytes), from the model's shape and the job's settings.

Weights: NF4 is 4 bits plus double-quantised block scales (QLoRA, Dettmers et al. 2023: 4.127 bits/param); the
embeddings and the head stay in 16-bit, norms in float32. Adapter: LoRA's A and B (and DoRA's magnitude
vector) in float32 with gradients and AdamW's two moments: 16 bytes/param. Activations: what autograd keeps
per token and layer (after Korthikanti et al. 2022, "Reducing Activation Recomputation", without the
attention-score term: SDPA keeps no score matrix); gradient checkpointing keeps one hidden state per layer and
recomputes one layer at a time, after the loss, so its peak is the larger of the logits' and one layer's.
The vocabulary-sized tensors of the loss (logits, TRL's fused log-probabilities, entropy and accuracy, their
gradients) cost 32 bytes per token and vocabulary entry: about eight float32 copies. The constants were
measured on CPU miniatures with glibc's mmap threshold fixed, so resident memory follows live memory
(engine.plan.measure; tests/test_plan.py keeps them within ±25 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from engine.plan.machine import GIB, Machine
from engine.plan.shape import ModelShape

NF4_BYTES = 4.127 / 8
ADAPTER_STATE_BYTES = 16  # float32 weight + gradient + AdamW m and v
LOSS_BYTES_PER_LOGIT = 32  # per token and vocabulary entry, measured
TRAINER_OVERHEAD = 64 * 2**20  # the Trainer, its data collator and optimizer bookkeeping, measured
CUDA_CONTEXT = 0.75 * GIB  # CUDA context, cuBLAS workspaces and the caching allocator's slack, per process
PYTHON_RUNTIME = 0.6 * GIB  # python, torch, transformers, peft and trl imported, on a CPU box
GATE_CONTEXT_TOKENS = 1024  # a long gate item (a passage and its question)
GATE_CHOICES = 4


def dtype_bytes(name: str) -> int:
    return {"float32": 4, "bfloat16": 2, "float16": 2}[name]


def weight_bytes(shape: ModelShape, quantization: str, dtype: str) -> float:
    if quantization == "4bit":
        return shape.linear_params * NF4_BYTES + shape.embed_params * 2 + shape.other_params * 4
    return shape.params * dtype_bytes(dtype)


def adapter_params(shape: ModelShape, rank: int, dora: bool) -> int:
    return sum(n * (rank * (i + o) + (o if dora else 0)) for i, o, n in shape.linear_shapes())


def layer_activation_elems(shape: ModelShape, linear: bool) -> float:
    """Elements autograd keeps per token for one decoder layer with every linear layer adapted (each adapter
    keeps its own dropout output)."""
    h, i = shape.hidden, shape.intermediate
    if linear:
        width = 2 * shape.linear_k_heads * shape.linear_k_dim + 2 * shape.linear_v_heads * shape.linear_v_dim
    else:
        width = (3 if shape.gated_attention else 2) * shape.heads * shape.head_dim \
            + 2 * shape.kv_heads * shape.head_dim
    return 8 * h + 2 * width + 6 * i


def activation_bytes(shape: ModelShape, tokens: int, compute_bytes: int, checkpointing: bool) -> float:
    per_layer = [layer_activation_elems(shape, True)] * shape.linear_layers \
        + [layer_activation_elems(shape, False)] * shape.full_layers
    loss = shape.vocab * LOSS_BYTES_PER_LOGIT
    if checkpointing:
        per_token = shape.layers * shape.hidden * compute_bytes + max(loss, max(per_layer) * compute_bytes)
    else:
        per_token = sum(per_layer) * compute_bytes + loss
    return tokens * per_token


def gate_inference_bytes(shape: ModelShape, batch: int, compute_bytes: int) -> float:
    """One batch of gate items: the cache of the contexts, copied per continuation, and the continuation logits."""
    tokens = batch * GATE_CONTEXT_TOKENS
    kv = shape.full_layers * 2 * shape.kv_heads * shape.head_dim * tokens * compute_bytes
    state = shape.linear_layers * shape.linear_v_heads * shape.linear_k_dim * shape.linear_v_dim * 4 * batch
    hidden = tokens * shape.hidden * compute_bytes * 4
    logits = batch * GATE_CHOICES * 64 * shape.vocab * 4
    return (kv + state) * (1 + GATE_CHOICES / 2) + hidden + logits


@dataclass
class TrainMemory:
    """Bytes per training process (on its GPU, or in RAM on a CPU box), and on disk."""

    weights: float
    adapter: float
    activations: float
    activations_other: float  # the same batch with gradient checkpointing flipped, for comparison
    runtime: float  # the process itself: python and the imports (CPU), the CUDA context (GPU)
    trainer: float
    gate_extra: dict[str, float]  # gating mode → memory the gates add on this machine
    disk: dict[str, float] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def need(self, mode: str) -> float:
        """Peak bytes with the gates in `mode`. In process, gating runs between optimiser steps, when the
        step's activations are freed; a gate process runs beside training, so both count."""
        fixed = self.weights + self.adapter + self.runtime + self.trainer
        extra = self.gate_extra.get(mode, 0.0)
        return fixed + (max(self.activations, extra) if mode == "in_process" else self.activations + extra)


def gate_job_bytes(gates, shape: ModelShape, machine: Machine) -> float:
    """A checkpoint's gate job (`[gates]` settings) on `machine`, per device: its own copy of the base (bf16 on a
    GPU, float32 on a CPU; NF4 with quantization = "4bit"; spread over the GPUs with device_map = "auto"), one gate
    batch, and the process's runtime."""
    cuda = machine.gpu_count > 0
    copy = weight_bytes(shape, gates.quantization, "bfloat16" if cuda else "float32")
    if gates.device_map == "auto" and machine.gpu_count > 1:
        copy /= machine.gpu_count
    return copy + gate_inference_bytes(shape, gates.batch_size, 2 if cuda else 4) + \
        (CUDA_CONTEXT if cuda else PYTHON_RUNTIME)


def train_memory(cfg, shape: ModelShape, machine: Machine, rows: int | None) -> TrainMemory:
    """`cfg` is a TrainJobConfig; `rows` the number of training examples when the data file is at hand."""
    t, a = cfg.training, cfg.adapter
    cuda = machine.gpu_count > 0
    dtype = "bfloat16" if cuda and cfg.dtype == "auto" else ("float32" if cfg.dtype == "auto" else cfg.dtype)
    compute = 2 if cuda else dtype_bytes(dtype)
    procs = cfg.num_processes if cfg.launcher == "accelerate" else 1
    shards = procs if cfg.distributed == "fsdp" and procs > 1 else 1
    weights = weight_bytes(shape, cfg.quantization, dtype)
    biggest = max(i * o for i, o, _ in shape.linear_shapes())
    if shards > 1:  # FSDP keeps a shard and gathers one layer at a time
        weights = weights / shards + weights / shape.layers
    n_adapter = adapter_params(shape, a.rank, a.method == "dora")
    adapter = n_adapter * ADAPTER_STATE_BYTES / shards
    if a.method == "dora":  # the adapted weight W + BA of one layer, to take its column norms
        adapter += biggest * 4 * 2
    tokens = t.batch_size * t.max_length * (2 if hasattr(cfg, "beta") else 1)  # DPO: chosen and rejected
    act = activation_bytes(shape, tokens, compute, t.gradient_checkpointing)
    other = activation_bytes(shape, tokens, compute, not t.gradient_checkpointing)
    runtime = CUDA_CONTEXT if cuda else PYTHON_RUNTIME
    g = cfg.gates
    gate_extra: dict[str, float] = {}
    if g:
        gate_extra["in_process"] = gate_inference_bytes(shape, g.batch_size, compute) + n_adapter * 4
        gate_extra["process"] = gate_job_bytes(g, shape, machine)
        if g.boxes:
            gate_extra["fanout"] = 0.0  # the gates run on other boxes
    steps = t.max_steps or (math.ceil(rows * t.epochs / (t.batch_size * t.grad_accum * procs)) if rows else 0)
    saves = (steps // t.save_steps + math.ceil(t.epochs)) if steps else 10
    disk = {"checkpoints": saves * n_adapter * (4 + 8) + n_adapter * 4}
    notes = [] if steps else ["the data file is not here: 10 checkpoints assumed"]
    if cfg.base_adapter:
        disk["stacked base"] = shape.params * 2
    return TrainMemory(weights, adapter, act, other, runtime, TRAINER_OVERHEAD, gate_extra, disk, notes)
