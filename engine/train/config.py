"""Typed configs of the training jobs: the adapter, quantisation, hyperparameters, checkpoint gating, launcher."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from engine.gates.settings import GateSettings
from engine.jobs import JobConfig


class AdapterConfig(JobConfig):
    """The PEFT adapter: the base stays frozen, only these low-rank weights train."""

    method: Literal["lora", "dora"] = Field(
        "dora", description="lora, or dora (weight-decomposed LoRA: a learned magnitude per output row)")
    rank: int = Field(16, ge=1, description="rank r of the low-rank update")
    alpha: float | None = Field(
        None, gt=0, description="scaling numerator: the update is scaled by alpha/r (alpha/sqrt(r) with rsLoRA); "
                                "default 2 × rank")
    dropout: float = Field(0.05, ge=0, lt=1, description="dropout on the adapter's input")
    use_rslora: bool = Field(False, description="rank-stabilised scaling alpha/sqrt(r) (Kalajdzievski 2023)")
    include: list[str] = Field(
        default_factory=list,
        description="train only linear layers matching these names (a name, a dotted suffix like "
                    "'self_attn.q_proj', or a parent like 'mlp'); empty: every linear layer")
    exclude: list[str] = Field(
        default_factory=list,
        description="leave out linear layers matching these names; embed_tokens and lm_head are always left out")

    @property
    def scaling_alpha(self) -> float:
        return self.alpha if self.alpha is not None else 2.0 * self.rank


class TrainingSettings(JobConfig):
    """Optimiser, schedule, batch and checkpoint cadence."""

    learning_rate: float = Field(5e-5, gt=0, description="peak learning rate (low on purpose: less forgetting)")
    epochs: float = Field(1.0, gt=0, description="passes over the data")
    max_steps: int = Field(0, ge=0, description="stop after this many optimiser steps (0: run all epochs)")
    batch_size: int = Field(4, ge=1, description="sequences per device per step")
    grad_accum: int = Field(1, ge=1, description="gradient accumulation steps")
    max_length: int = Field(2048, ge=8, description="longest sequence in tokens (CPT: the packed block size)")
    warmup: float = Field(0.03, ge=0, description="warm-up: a fraction of all steps if < 1, else a step count")
    lr_scheduler: Literal["cosine", "linear", "constant", "constant_with_warmup"] = Field(
        "cosine", description="learning-rate schedule after warm-up")
    weight_decay: float = Field(0.0, ge=0, description="AdamW weight decay on the adapter weights")
    max_grad_norm: float = Field(1.0, ge=0, description="gradient clipping (0: off)")
    save_steps: int = Field(100, ge=1, description="save a checkpoint every N optimiser steps (and every epoch)")
    logging_steps: int = Field(10, ge=1, description="emit loss / lr / grad-norm metrics every N steps")
    seed: int = Field(0, description="seed of data order, dropout and adapter initialisation")
    gradient_checkpointing: bool = Field(True, description="recompute activations: less memory, ~20 % slower")
    # The drift meter: forgetting between two gated checkpoints, as the mean KL(base ‖ adapted) of the next-token
    # distributions over fixed probe prompts, the base being the same model with the adapter disabled.
    drift_steps: int = Field(0, ge=0, description="measure drift every N optimiser steps (0: off): a drift_kl metric")
    drift_probes: str = Field("assets:replay/prompts.jsonl",
                              description="probe prompts: JSONL, a 'prompt' or 'messages' per line (default: the "
                                          "replay prompts)")
    drift_probe_count: int = Field(32, ge=1, description="the first N probes")
    max_drift: float | None = Field(None, gt=0, description="when drift_kl passes this, save a checkpoint and stop "
                                                            "(recorded as such)")

    @model_validator(mode="after")
    def _max_drift_needs_meter(self):
        if self.max_drift is not None and not self.drift_steps:
            raise ValueError("max_drift needs drift_steps > 0 (how often drift is measured)")
        return self


GATING_MODES = ("auto", "in_process", "process", "fanout")


class CheckpointGating(GateSettings):
    """Gate every checkpoint as soon as it is saved: in the training process itself, as a `gate` job beside it,
    or on other boxes."""

    mode: Literal[GATING_MODES] = Field(
        "auto", description="in_process: the training process scores each saved checkpoint with the model it holds "
                            "(no second copy; training pauses meanwhile); process: a gate job per checkpoint beside "
                            "training (a second copy of the base); fanout: a gate job per checkpoint on one of "
                            "`boxes`, started by whoever follows the run (`slayer run`, `slayer runs attach`); "
                            "auto: process when a second copy fits this machine, else fanout when `boxes` are set, "
                            "else in_process")
    boxes: list[str] = Field(default_factory=list,
                             description="fanout: the boxes that gate checkpoints (from `slayer boxes`), one job "
                                         "per box at a time")
    quantization: Literal["none", "4bit"] = Field(
        "none", description="process: 4bit loads the gated base in NF4 (CUDA); in_process scores the "
                            "model as training holds it")
    device_map: Literal["none", "auto"] = Field(
        "none", description="process: auto spreads the gated model over every visible GPU (CUDA)")
    device: str = Field("auto", description="auto (cuda when there is one), cpu, cuda or cuda:N")
    base: bool = Field(True, description="also score the base model once per experiment (with the first checkpoint; "
                                         "later runs reuse it), so every checkpoint has a delta row")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = Field(
        "auto", description="dtype the gates load subjects in")
    max_parallel: int = Field(1, ge=1, description="gate jobs running at once; later checkpoints wait in line")

    empty_hint: ClassVar[str | None] = " (or drop the [gates] table)"

    @model_validator(mode="after")
    def _fanout_needs_boxes(self):
        if self.mode == "fanout" and not self.boxes:
            raise ValueError('mode = "fanout" needs boxes = ["NAME", …] (gate boxes from `slayer boxes`)')
        return self


class TrainJobConfig(JobConfig):
    """What every training kind shares: base model, data, adapter, quantisation, launcher, gating, resume."""

    model: str = Field(description="base model: a local HF-format directory or a Hugging Face id")
    data: str = Field(description="training data file")
    base_adapter: str | None = Field(
        None, description="train on top of this adapter (merged into the base first): knowledge (CPT) first, "
                          "behaviour (SFT) on top, preferences (DPO) last; the reverse order is refused")
    resume: bool = Field(False, description="continue from the last checkpoint in outputs/ (after a crash or kill)")
    quantization: Literal["none", "4bit"] = Field(
        "none", description="4bit: QLoRA (bitsandbytes NF4, double quantisation, bf16 compute; needs CUDA)")
    dtype: Literal["auto", "float32", "bfloat16"] = Field(
        "auto", description="weights dtype: auto = bfloat16 on CUDA, float32 on CPU")
    launcher: Literal["local", "accelerate"] = Field(
        "local", description="local: this process; accelerate: `accelerate launch` with num_processes workers")
    num_processes: int = Field(1, ge=1, description="accelerate: processes (one per GPU; gloo on CPU)")
    distributed: Literal["ddp", "fsdp"] = Field("ddp", description="accelerate: DDP or FSDP (full shard)")
    adapter: AdapterConfig = Field(default_factory=AdapterConfig)
    training: TrainingSettings = Field(default_factory=TrainingSettings)
    gates: CheckpointGating | None = Field(None, description="gate every checkpoint ([gates] table); none: no gating")

    @model_validator(mode="after")
    def _processes_need_launcher(self):
        if self.num_processes > 1 and self.launcher != "accelerate":
            raise ValueError('num_processes > 1 needs launcher = "accelerate"')
        return self


class SFTJobConfig(TrainJobConfig):
    """train.sft: chat JSONL, loss on the assistant turns only."""

    kl_to_base: float = Field(0.0, ge=0, description="β: the loss adds β · KL(base ‖ adapted) over the assistant "
                                                     "tokens, the base being this model with the adapter disabled "
                                                     "(one extra forward without gradients); 0: plain SFT")


class CPTJobConfig(TrainJobConfig):
    """train.cpt: next-token loss on plain text, mixed with a share of replay text against forgetting."""

    replay: str | None = Field(None, description="general text mixed in (same formats as data)")
    replay_share: float = Field(0.1, ge=0, lt=1, description="share of the mixed tokens that come from replay")

    @model_validator(mode="after")
    def _replay_needs_file(self):
        if self.replay is None and self.replay_share > 0 and "replay_share" in self.model_fields_set:
            raise ValueError("replay_share is set but there is no replay file")
        return self


class DPOJobConfig(TrainJobConfig):
    """train.dpo: preference pairs; the frozen reference is the base (the adapter disabled)."""

    objective: Literal["dpo", "orpo"] = Field(
        "dpo", description="dpo (reference = base with the adapter disabled) or orpo (reference-free)")
    beta: float = Field(0.1, gt=0, description="DPO: strength of the pull towards the reference; ORPO: λ")
