"""One training run, whatever the kind: checks, stacking, resume, the trainer, checkpoints → subjects → gates.

`prepare` runs once per job (before any launcher); `train` runs in every training process. The kind
modules (sft, cpt, dpo) only build their dataset and TRL trainer.
"""

from __future__ import annotations

import importlib
import json
import os
import re
import shutil
import tomllib
from dataclasses import dataclass
from pathlib import Path

from engine.errors import SpecError
from engine.subjects import Recipe, make_subject
from engine.train import adapter as adapters
from engine.train import stack
from engine.train.config import TrainJobConfig
from engine.train.gating import (BaseResults, CheckpointGater, FanoutRequests, check_gates, format_mismatch,
                                 read_events)

ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors", stack.META_FILE)


@dataclass(frozen=True)
class Plan:
    kind: str  # cpt | sft | dpo
    base_model: str  # the original base (absolute path or HF id)
    model_path: str  # what the adapter is trained on: the base, or the base with earlier stages merged in
    stack: tuple[str, ...]  # training kinds, oldest first, this one last
    base_adapter: str | None
    source: str  # the spec file named in errors


def spec_source(ctx) -> str:
    return str(ctx.run_dir / "job.toml")


def checkpoints_dir(ctx) -> Path:
    return ctx.outputs / "checkpoints"


def complete_checkpoints(folder: Path) -> dict[int, Path]:
    """step → checkpoint dir, for checkpoints written whole (the Trainer writes trainer_state.json last)."""
    found = {}
    for p in folder.glob("checkpoint-*") if folder.is_dir() else []:
        m = re.fullmatch(r"checkpoint-(\d+)", p.name)
        if m and (p / "trainer_state.json").is_file():
            found[int(m.group(1))] = p
    return dict(sorted(found.items()))


def prepare(kind: str, cfg: TrainJobConfig, ctx) -> Plan:
    """Refuse what cannot work (with one line), and merge a base adapter into the base when stacking."""
    source = spec_source(ctx)
    adapters.check_quantization(cfg, source)
    if cfg.launcher == "accelerate" and cfg.distributed == "fsdp" and not adapters.has_cuda():
        raise SpecError(f'{source}: distributed = "fsdp" needs GPUs (accelerate shards over CUDA devices); '
                        'use distributed = "ddp" on CPU')
    if cfg.gates:
        check_gates(cfg.gates, source)
    if not Path(cfg.data).expanduser().exists():
        raise SpecError(f"{source}: data file {cfg.data!r} does not exist")
    if cfg.gates and kind == "sft":
        mismatch = format_mismatch(cfg.data, cfg.gates)
        if mismatch:
            ctx.log(mismatch, level="warning")
    if complete_checkpoints(checkpoints_dir(ctx)) and not cfg.resume:
        raise SpecError(f"{source}: {checkpoints_dir(ctx)} already holds checkpoints; set resume = true to "
                        "continue them, or use a new run directory")
    base = adapters.model_ref(cfg.model)
    if not cfg.base_adapter:
        return Plan(kind, base, base, (kind,), None, source)
    meta = stack.check_stack(kind, cfg.base_adapter, base, source)
    below = stack.build_stack_base(cfg.base_adapter, meta, ctx.outputs / "stack_base")
    return Plan(kind, base, str(below.resolve()), (*meta["stack"], kind), str(Path(cfg.base_adapter).resolve()),
                source)


def _head(ctx) -> dict:
    return tomllib.loads((ctx.run_dir / "job.toml").read_text(encoding="utf-8"))


def run_name(ctx) -> str:
    return _head(ctx).get("name") or ctx.run_id


def checkpoint_subject(name: str, step: int, plan: Plan, path: Path, training: dict | None = None) -> dict:
    """`training`: objective settings that change what the adapter is (SFT's kl_to_base), part of its recipe."""
    return make_subject(f"{name}-ckpt-{step}", "checkpoint",
                        Recipe.hf(plan.model_path, str(path.resolve()), training=training))


class Checkpoints:
    """What happens to every saved checkpoint (process zero only): metadata, the event, and its gates."""

    def __init__(self, cfg: TrainJobConfig, ctx, plan: Plan, summary: dict, extra_meta: dict, is_main: bool = True):
        from engine.train.gating import choose_mode, gate_loading

        self.cfg, self.ctx, self.plan, self.summary, self.extra_meta = cfg, ctx, plan, summary, extra_meta
        self.stopped: dict = {}  # why training stopped early (the drift meter's max_drift), on the next checkpoint
        self.training = {k: v for k, v in extra_meta.items() if k == "kl_to_base"}  # in each checkpoint's recipe
        self.name = run_name(ctx)
        events = read_events(ctx.run_dir / "events.jsonl")
        self.emitted = {e["step"]: e for e in events if e["type"] == "checkpoint"}
        done = {(e["subject"]["id"], e["gate"]) for e in events if e["type"] == "gate_result"}
        self.gater, self.mode = None, None
        self.base_pending = bool(cfg.gates and cfg.gates.base and is_main)
        if not (cfg.gates and is_main):
            return
        self.mode = choose_mode(cfg, plan.source)
        dtype, loading = gate_loading(cfg, self.mode)
        head = _head(ctx)
        self.base_results = BaseResults(ctx.run_dir.parent / ".base_gates", head.get("experiment") or "",
                                        cfg.gates, {"dtype": dtype, **loading})
        if self.mode == "in_process":
            from engine.train.inprocess import InProcessGater

            self.gater = InProcessGater(cfg.gates, ctx, done, self._result, loading, dtype)
        elif self.mode == "fanout":
            self.gater = FanoutRequests(ctx, self.name, head)
            ctx.log(f"gating: fanout to {', '.join(cfg.gates.boxes)} (started by whoever follows this run)")
            return
        else:
            self.gater = CheckpointGater(cfg.gates, ctx, self.name, done, plan.source, self._result)
        ctx.log(f"gating: {self.mode} ({dtype}{', ' + ', '.join(loading.values()) if loading else ''})")

    def attach(self, model, tokenizer) -> None:
        """The model training holds, for in-process gating."""
        if hasattr(self.gater, "attach"):
            self.gater.attach(model, tokenizer)

    def _result(self, result: dict) -> None:
        self.ctx.gate_result(result)
        if result["subject"]["kind"] == "base":
            self.base_results.put(result)

    def saved(self, step: int, epoch: float | None, path: str | Path) -> None:
        path = Path(path)
        subject = checkpoint_subject(self.name, step, self.plan, path, self.training)
        if self.mode == "fanout":  # the gate request is on disk before the event its follower acts on
            self._gate(step, subject)
        if step not in self.emitted:
            meta = {**self.extra_meta, **self.stopped}
            stack.write_meta(path, {"training": self.plan.kind, "stack": list(self.plan.stack),
                                    "base_model": self.plan.base_model, "model": self.plan.model_path,
                                    "base_adapter": self.plan.base_adapter, "run": self.ctx.run_id, "step": step,
                                    "subject": subject["name"],
                                    "adapter": self.summary, **meta})
            self.ctx.checkpoint(step, path.resolve(), subject, epoch=epoch, adapter=self.summary,
                                training=self.plan.kind, stack=list(self.plan.stack), **meta)
            self.emitted[step] = {"step": step, "subject": subject}
        if self.mode != "fanout":
            self._gate(step, subject)

    def _gate(self, step: int, subject: dict) -> None:
        if self.gater is None:
            return
        g = self.cfg.gates
        loading = {"dtype": g.dtype, "quantization": g.quantization, "device_map": g.device_map}
        pairs = [(subject, {"name": subject["name"], "kind": "checkpoint", "model": self.plan.model_path,
                            "adapter": subject["recipe"]["adapter"], "scale": 1.0, "backend": "hf", **loading})]
        if self.base_pending:
            self.base_pending = False
            base = make_subject("base", "base", Recipe.hf(self.plan.base_model))
            if not self._reuse_base(base):
                pairs.insert(0, (base, {"name": "base", "kind": "base", "model": self.plan.base_model,
                                        "backend": "hf", **loading}))
        self.gater.submit(step, pairs)

    def _reuse_base(self, base: dict) -> bool:
        """The experiment's base results from an earlier run, when every gate has one (never for pairwise gates,
        which need the base's answers in the same process)."""
        from engine.gates.run import resolve_gates
        from engine.gates.scoring import get_scorer

        g = self.cfg.gates
        gates = resolve_gates(g.suite, g.gates, g.chat_template)
        if any(get_scorer(gate.scorer).pairwise for gate in gates):
            return False
        cached = [self.base_results.get(base, gate.name) for gate in gates]
        if any(c is None for c in cached):
            return False
        for result in cached:
            if (base["id"], result["gate"]) not in self.gater.done:
                self.gater.done.add((base["id"], result["gate"]))
                self.ctx.gate_result(result)
        self.ctx.log("gating: the base's results come from an earlier run of this experiment (same settings)")
        return True

    def catch_up(self, checkpoints: dict[int, Path]) -> None:
        """A resumed run: register checkpoints saved before the kill but never announced, gate what lacks results."""
        for step, path in checkpoints.items():
            self.saved(step, self.emitted.get(step, {}).get("epoch") or _epoch_of(path), path)

    def finish(self, interrupted: bool) -> None:
        """Wait for the gate jobs; a failed or cancelled training stops them instead."""
        if self.gater is not None:
            self.gater.cancel() if interrupted else self.gater.close()


def _epoch_of(path: Path) -> float | None:
    return json.loads((path / "trainer_state.json").read_text()).get("epoch")


def trainer_arguments(cfg: TrainJobConfig, ctx) -> dict:
    """TrainingArguments shared by every kind (the kind picks the TRL config class). Every checkpoint is kept:
    each is a subject. FSDP comes from the launcher's environment (`accelerate launch --use_fsdp`)."""

    t = cfg.training
    cuda = adapters.has_cuda()
    bf16 = adapters.trains_bf16(cfg)
    return dict(
        output_dir=str(checkpoints_dir(ctx)), learning_rate=t.learning_rate, num_train_epochs=t.epochs,
        max_steps=t.max_steps or -1, per_device_train_batch_size=t.batch_size,
        gradient_accumulation_steps=t.grad_accum, warmup_steps=t.warmup, lr_scheduler_type=t.lr_scheduler,
        weight_decay=t.weight_decay, max_grad_norm=t.max_grad_norm, save_strategy="steps", save_steps=t.save_steps,
        logging_strategy="steps", logging_steps=t.logging_steps, seed=t.seed, data_seed=t.seed,
        gradient_checkpointing=t.gradient_checkpointing, bf16=bf16, use_cpu=not cuda, report_to="none",
        include_num_input_tokens_seen="non_padding", disable_tqdm=True, dataloader_num_workers=0,
        ddp_find_unused_parameters=False, max_length=t.max_length)


def train(kind: str, cfg: TrainJobConfig, ctx, plan: Plan, is_main: bool = True) -> None:
    """Train in this process (one of several under a launcher: only the main one emits and gates)."""
    from transformers import AutoTokenizer

    from engine.train.callbacks import events_callback

    builder = importlib.import_module(f"engine.train.{kind}")
    tok = AutoTokenizer.from_pretrained(plan.model_path)
    model = adapters.load_base(plan.model_path, cfg)
    peft_config = adapters.lora_config(model, cfg.adapter, plan.source)
    summary = adapters.adapter_summary(cfg, sorted(peft_config.target_modules))
    ckpts = Checkpoints(cfg, ctx, plan, summary, builder.metadata(cfg), is_main)
    existing = complete_checkpoints(checkpoints_dir(ctx))
    resume_from = str(existing[max(existing)]) if existing and cfg.resume else None
    trainer = builder.build_trainer(cfg, ctx, model, tok, peft_config, trainer_arguments(cfg, ctx),
                                    [events_callback(ctx, ckpts.saved)], plan.source)
    ckpts.attach(trainer.model, tok)
    t = cfg.training
    if t.drift_steps:
        from engine.train.drift import DriftMeter, drift_callback, read_probes

        meter = DriftMeter(tok, read_probes(t.drift_probes, t.drift_probe_count, plan.source))
        trainer.add_callback(drift_callback(ctx, meter, t.drift_steps, t.max_drift, ckpts.stopped))
    if is_main:
        ctx.log(f"training {kind} on {trainer.args.world_size} process(es), device {trainer.args.device}, "
                f"{len(trainer.train_dataset)} sequences, adapter {summary['method']} r={summary['rank']}")
    interrupted = True
    try:
        if is_main and existing:
            ckpts.catch_up(existing)
            ctx.log(f"resuming from {resume_from}")
        trainer.train(resume_from_checkpoint=resume_from)
        interrupted = False
    finally:
        if is_main:
            ckpts.finish(interrupted)
    if is_main:
        final = complete_checkpoints(checkpoints_dir(ctx))
        if final:
            publish_adapter(final[max(final)], ctx.outputs / "adapter")
            ctx.artifact(ctx.outputs / "adapter", "adapter", training=kind, stack=list(plan.stack))


def publish_adapter(checkpoint: Path, out: Path) -> None:
    """The last checkpoint's adapter (no optimiser state) as outputs/adapter, the path to stack or merge."""
    tmp = out.with_name(out.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    for name in ADAPTER_FILES:
        if (checkpoint / name).is_file():
            shutil.copy2(checkpoint / name, tmp / name)
    shutil.rmtree(out, ignore_errors=True)
    os.replace(tmp, out)
