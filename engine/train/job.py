"""The job kinds train.sft, train.cpt and train.dpo: a PEFT adapter on a frozen base, every checkpoint gated."""

from __future__ import annotations

from engine.jobs import job_kind
from engine.train.config import CPTJobConfig, DPOJobConfig, SFTJobConfig, TrainJobConfig

COMMON = '''
# base_adapter = "runs/cpt/outputs/adapter"  # train on top of an earlier stage (CPT → SFT → DPO, never backwards)
resume = false                # true: continue from the last checkpoint in outputs/ (after a crash or kill -9)
quantization = "none"         # "4bit": QLoRA (bitsandbytes NF4, double quant, bf16 compute) — needs CUDA
dtype = "auto"                # bfloat16 on CUDA, float32 on CPU
launcher = "local"            # "accelerate": accelerate launch with num_processes workers (DDP; gloo on CPU)
num_processes = 1
distributed = "ddp"           # or "fsdp" (full shard), under launcher = "accelerate"

[adapter]
method = "dora"               # lora | dora
rank = 16
alpha = 32.0                  # the update is scaled by alpha/rank (alpha/sqrt(rank) with rsLoRA)
dropout = 0.05
use_rslora = true
include = []                  # empty: every linear layer (embed_tokens and lm_head are always left out)
exclude = []                  # e.g. ["visual"] to leave a vision tower alone

[training]
learning_rate = 5e-5
epochs = 1.0
max_steps = 4                 # a quick look; 0: run all epochs
batch_size = 4
grad_accum = 1
max_length = 256
warmup = 0.03                 # < 1: a fraction of all steps
lr_scheduler = "cosine"
save_steps = 2                # a checkpoint every 2 steps, and one at the end of every epoch
logging_steps = 1
seed = 0
gradient_checkpointing = false
drift_steps = 2               # every N steps: drift_kl, mean KL(base ‖ adapted) on the probe prompts (0: off)
drift_probes = "assets:replay/prompts.jsonl"   # JSONL with a 'prompt' or 'messages' per line
drift_probe_count = 32
# max_drift = 0.5             # when drift_kl passes this: save a checkpoint and stop

[gates]                       # gate every checkpoint as soon as it is saved (drop the table: no gating)
gates = ["polish_psc"]        # or: suite = "core"
limit = 8                     # first 8 items per gate: a quick look while training goes on
base = true                   # score the base too (once per experiment), so each checkpoint gets a delta row
mode = "in_process"           # score with the model training holds (no second copy; training pauses);
                              # process: a gate job beside training (a second copy of the base);
                              # fanout: a gate job per checkpoint on one of `boxes`, run by `slayer run`'s follower;
                              # auto: what `slayer plan` picks for the box (process when a second copy fits)
# boxes = ["simp"]            # fanout: gate boxes from `slayer boxes` (one job per box at a time)
quantization = "none"         # process: "4bit" loads the gated base in NF4 (CUDA)
device_map = "none"           # process: "auto" spreads it over every GPU (CUDA)
device = "auto"
max_parallel = 1

[gates.files]                 # offline: gate name -> local file with the gate's columns (here: shipped rows)
polish_psc = "assets:examples/psc.jsonl"
'''

SFT_EXAMPLE = '''# train.sft: a DoRA adapter on chat data (data.* jobs write it); loss on the assistant turns only.
# Every checkpoint becomes a subject and is gated while training goes on.
kind = "train.sft"
name = "sft-pl-style"
experiment = "slayer-v2"
model = "tiny:qwen3"          # a local HF directory, a Hugging Face id, or tiny:qwen3 (the embedded tiny model)
data = "assets:examples/chat.jsonl"   # {"messages": [{"role": "user", ...}, {"role": "assistant", ...}]} lines
                                      # (data.* jobs write them; assets: is a file shipped with slayer)
kl_to_base = 0.0              # β > 0: the loss adds β·KL(base ‖ adapted) on the assistant tokens (anti-drift)
''' + COMMON

CPT_EXAMPLE = '''# train.cpt: a knowledge adapter — next-token loss on plain text, with general replay against
# forgetting.
kind = "train.cpt"
name = "cpt-knowledge"
experiment = "slayer-v2"
model = "tiny:qwen3"          # a local HF directory, a Hugging Face id, or tiny:qwen3 (the embedded tiny model)
data = "assets:examples/knowledge.txt"   # {"text": ...} lines, or a .txt (documents split by blank lines)
replay = "assets:examples/replay.txt"    # general text mixed in
replay_share = 0.1               # 10 % of the training tokens come from replay
''' + COMMON

DPO_EXAMPLE = '''# train.dpo: preference pairs; the reference is the base with the adapter disabled (the anchor
# against drift).
kind = "train.dpo"
name = "dpo-anchor"
experiment = "slayer-v2"
model = "tiny:qwen3"          # a local HF directory, a Hugging Face id, or tiny:qwen3 (the embedded tiny model)
data = "assets:examples/pairs.jsonl"   # {"prompt": ..., "chosen": ..., "rejected": ...} lines (or message lists)
objective = "dpo"             # or "orpo": reference-free (recorded as such)
beta = 0.1
''' + COMMON


def run_training(kind: str, cfg: TrainJobConfig, ctx) -> None:
    from engine.train.run import prepare, train

    plan = prepare(kind, cfg, ctx)
    if plan.base_adapter:
        ctx.log(f"stacking {kind} on the {'→'.join(plan.stack[:-1])} adapter {plan.base_adapter}, merged into "
                f"{plan.model_path}")
    if cfg.launcher == "accelerate":
        from engine.train.launch import launch

        launch(cfg, ctx)
    else:
        train(kind, cfg, ctx, plan)


@job_kind("train.sft", SFTJobConfig, "SFT adapter (LoRA/DoRA, QLoRA) on chat data; every checkpoint gated",
          SFT_EXAMPLE)
def run_sft(cfg: SFTJobConfig, ctx) -> None:
    run_training("sft", cfg, ctx)


@job_kind("train.cpt", CPTJobConfig, "knowledge adapter: next-token loss on text with replay; checkpoints gated",
          CPT_EXAMPLE)
def run_cpt(cfg: CPTJobConfig, ctx) -> None:
    run_training("cpt", cfg, ctx)


@job_kind("train.dpo", DPOJobConfig, "DPO (reference = base, adapter disabled) or ORPO adapter on preference pairs",
          DPO_EXAMPLE)
def run_dpo(cfg: DPOJobConfig, ctx) -> None:
    run_training("dpo", cfg, ctx)
