"""Demo job kinds: `demo.world` (write the generated world) and `demo.pretrain` (give a tiny base general
skills worth protecting: full-parameter next-token training on the world's general text)."""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

from pydantic import Field

from engine.errors import SpecError
from engine.jobs import JobConfig, job_kind


class WorldConfig(JobConfig):
    seed: int = Field(0, description="seed of every generated item")
    n_test: int = Field(80, ge=4, description="test items per KLEJ-shaped task (gate files)")
    n_train: int = Field(160, ge=4, description="train items per KLEJ-shaped task")
    n_pretrain: int = Field(20, ge=0, description="items per KLEJ-shaped task in the base's pre-training text")
    pretrain_repeats: int = Field(8, ge=1, description="passes of the general facts in the pre-training text")


WORLD_EXAMPLE = '''# demo.world: the demo's generated world (general facts + arithmetic, KLEJ-shaped Polish tasks, style data).
kind = "demo.world"
seed = 0
n_test = 80          # test items per KLEJ-shaped task: the demo's gate files
n_train = 160        # train items per KLEJ-shaped task
n_pretrain = 20      # items per KLEJ-shaped task in the base's pre-training text
pretrain_repeats = 8 # passes of the facts in the general pre-training text
'''


@job_kind("demo.world", WorldConfig, "write the demo's generated world: general skills and Polish tasks",
          WORLD_EXAMPLE, needs_ml=False)
def run_world(cfg: WorldConfig, ctx) -> None:
    from engine.demo.world import write_world

    files = write_world(ctx.outputs / "world", cfg.seed, cfg.n_test, cfg.n_train, cfg.n_pretrain,
                        cfg.pretrain_repeats)
    (ctx.outputs / "world" / "files.json").write_text(json.dumps(files, indent=2))
    ctx.artifact(ctx.outputs / "world" / "files.json", "world_index")


class PretrainConfig(JobConfig):
    model: str = Field(description="HF-format model directory to start from (e.g. a model.tiny output)")
    text: str = Field(description="plain text file; samples are separated by blank lines")
    steps: int = Field(300, ge=1, description="optimizer steps")
    batch_size: int = Field(16, ge=1)
    lr: float = Field(3e-3, gt=0, description="AdamW learning rate (tiny models like it high)")
    max_length: int = Field(64, ge=8, description="tokens per sample")
    seed: int = 0


PRETRAIN_EXAMPLE = '''# demo.pretrain: full-parameter next-token training of a (tiny) model on plain text, saved to outputs/model.
kind = "demo.pretrain"
model = "runs/tiny/outputs/model"          # an HF-format directory
text = "runs/world/outputs/world/general/pretrain.txt"
steps = 300
batch_size = 16
lr = 0.003
max_length = 64
seed = 0
'''


@job_kind("demo.pretrain", PretrainConfig, "pre-train a tiny base briefly on general text (full parameters)",
          PRETRAIN_EXAMPLE)
def run_pretrain(cfg: PretrainConfig, ctx) -> None:
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    for p in (cfg.model, cfg.text):
        if not Path(p).exists():
            raise SpecError(f"{p}: no such file or directory")
    torch.manual_seed(cfg.seed)
    torch.set_num_threads(1)  # a tiny model's matmuls are too small to split; extra threads only contend
    tok = AutoTokenizer.from_pretrained(cfg.model)
    model = AutoModelForCausalLM.from_pretrained(cfg.model, dtype=torch.float32)
    samples = [s.strip() for s in Path(cfg.text).read_text(encoding="utf-8").split("\n\n") if s.strip()]
    if not samples:
        raise SpecError(f"{cfg.text}: no text samples")
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min(1.0, (s + 1) / 20) * max(0.05, 1 - s / cfg.steps))
    gen = torch.Generator().manual_seed(cfg.seed)
    lengths = [min(len(ids) + 1, cfg.max_length) for ids in tok(samples, add_special_tokens=False)["input_ids"]]
    model.train()
    for step in range(1, cfg.steps + 1):
        idx = sorted(torch.randint(len(samples), (cfg.batch_size,), generator=gen).tolist(), key=lengths.__getitem__)
        # Short and long samples in two forward passes (cut at the largest jump in length): padding every sample
        # to the longest would multiply the work; the loss stays the mean over all the batch's tokens.
        cut = max(range(1, len(idx)), key=lambda k: lengths[idx[k]] - lengths[idx[k - 1]], default=len(idx))
        tokens = sum(lengths[i] - 1 for i in idx)
        total = 0.0
        for part in (idx[:cut], idx[cut:]):
            if not part:
                continue
            batch = tok([samples[i] + tok.eos_token for i in part], return_tensors="pt", padding=True,
                        truncation=True, max_length=cfg.max_length)
            labels = batch["input_ids"].masked_fill(batch["attention_mask"] == 0, -100)
            share = (labels[:, 1:] != -100).sum().item() / max(tokens, 1)
            loss = model(**batch, labels=labels).loss * share
            loss.backward()
            total += loss.item()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        opt.zero_grad()
        if step % 10 == 0 or step == cfg.steps:
            ctx.metric("loss", total, step)
            ctx.progress(step, cfg.steps, unit="steps", label="pretrain")
    tmp = ctx.outputs / ".model.tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tok.save_pretrained(tmp)
    for extra in Path(cfg.model).glob("*"):  # tokenizer.model, tiny recipe: whatever the base dir carried
        if not (tmp / extra.name).exists() and extra.is_file():
            shutil.copy2(extra, tmp / extra.name)
    os.replace(tmp, ctx.outputs / "model")
    ctx.artifact(ctx.outputs / "model", "model")
