"""Training tokens/s of the `train.sft` job against a bare TRL SFTTrainer script: same tiny model, same data, same run.

    python bench/train_sft.py [--steps 12] [--save-steps 4] [--batch 8] [--repeats 5] [--threads 1]

Both sides do the same work from the same starting point: load the model and tokenizer, tokenise the
conversations (loss on the answers only), wrap a DoRA r=16 rsLoRA adapter on every linear layer but the
embeddings and head, train `--steps` steps and save a checkpoint every `--save-steps`. `train.sft` runs
through the real path (`run_job`: spec, run directory, events, checkpoint subjects, adapter publication;
gating off — gates are separate processes). The bare script is what one would write by hand: TRL's own
prompt/completion format, rows in memory as train.sft has them, float32 as train.sft trains on CPU (TRL's
default would autocast to bf16 even there). Tokens are the non-padding tokens trained (the Trainer's
counter, on in both). Two clocks: the whole run (load, tokenise, train, save), and the training loop alone
(`trainer.train()`; for train.sft, from its "training …" log event, emitted just before `trainer.train()`,
to the end-of-training metrics). The order alternates; median ratios are reported.

    python bench/train_sft.py --anti-drift [--steps 50] [--repeats 3] [--answer-repeat 1]

compares train.sft with itself instead: plain, with the drift meter (every 10 steps, 32 replay probes) and with
kl_to_base = 0.1 (one extra forward of the base per step), same run, rotating order after a warm-up run of each;
tokens/s of the training loop and the median slowdown of each against plain (goals: meter ≤ 5 % slower, KL ≤ 1.6×
the time). Two clocks for the loop: the wall clock and the process's CPU time (steadier on a shared machine; with
one torch thread it is the work done). Each variant's model forwards are counted (a hook on the causal LM), so
the table shows the work done, not only its time: plain one per step, kl_to_base two, the meter one per probe
batch per measurement plus the base's once. 50 steps by default: the meter's first measurement also computes the
base's side, so a short run (20 steps: 2 measurements) overstates its share. One checkpoint, at the end, unless
--save-steps.
The meter's cost is the forward of its probe tokens (32 probes ≈ 2.7k tokens with the tiny tokenizer) against the
tokens trained in 10 steps: with this script's ~140-token conversations (1.1k tokens a step) that share alone is
≈ 12 % (a LoRA step is ≈ 2 forwards: no weight gradients for the frozen base); `--answer-repeat 4` trains
~480-token conversations, nearer to SFT data, where it is ≈ 3.5 %.
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

QUESTIONS = ["Jaka jest stolica Polski i dlaczego?", "Opisz krótko pogodę w górach zimą.",
             "Wyjaśnij, czym jest fotosynteza.", "Podaj przepis na prostą zupę pomidorową.",
             "Co warto zobaczyć w Krakowie?", "Jak działa silnik elektryczny?"]
ANSWER = ("To dobre pytanie. Odpowiedź jest krótka, ale rzeczowa: {q} Najważniejsze fakty są proste, a szczegóły "
          "zależą od kontekstu, więc warto sprawdzić źródła i zapytać eksperta, jeśli sprawa jest poważna.")


def write_chats(path: Path, n: int, answer_repeat: int = 1) -> None:
    with open(path, "w", encoding="utf-8") as f:
        for i in range(n):
            q = QUESTIONS[i % len(QUESTIONS)]
            answer = " ".join([ANSWER.format(q=q.lower())] * answer_repeat)
            f.write(json.dumps({"messages": [{"role": "user", "content": q},
                                             {"role": "assistant", "content": answer}],
                                "source": {"id": i}}, ensure_ascii=False) + "\n")


def common(a, out: Path) -> dict:
    return dict(output_dir=str(out), max_steps=a.steps, per_device_train_batch_size=a.batch, learning_rate=5e-5,
                warmup_steps=0.03, save_steps=a.save_steps, logging_steps=10, seed=0, gradient_checkpointing=False,
                report_to="none", use_cpu=True, disable_tqdm=True, max_length=512,
                include_num_input_tokens_seen="non_padding",
                bf16=False)  # TRL's default turns bf16 autocast on even on CPU; train.sft trains float32 there


def ours(a, model: str, data: Path, work: Path, **extra) -> tuple[int, float, float]:
    from engine.jobs import parse_spec
    from engine.runner import run_job

    spec = parse_spec({"kind": "train.sft", "model": model, "data": str(data),
                       "adapter": {"method": "dora", "rank": 16, "use_rslora": True},
                       "training": {"max_steps": a.steps, "batch_size": a.batch, "save_steps": a.save_steps,
                                    "logging_steps": 10, "gradient_checkpointing": False, "max_length": 512,
                                    **extra.pop("training", {})}, **extra},
                      "bench")
    run_dir = Path(tempfile.mkdtemp(dir=work, prefix="ours-"))
    start = time.perf_counter()
    assert run_job(spec, run_dir) == "succeeded", (run_dir / "events.jsonl").read_text()[-500:]
    elapsed = time.perf_counter() - start
    events = [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]
    tokens = [e["value"] for e in events if e["type"] == "metric" and e["key"] == "tokens"][-1]
    begin = next(e["ts"] for e in events if e["type"] == "log" and e["message"].startswith("training sft"))
    end = next(e["ts"] for e in events if e["type"] == "metric" and e["key"] == "train_loss_mean")
    return int(tokens), elapsed, end - begin


def bare(a, model: str, data: Path, work: Path) -> tuple[int, float, float]:
    start = time.perf_counter()
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM, AutoTokenizer
    from trl import SFTConfig, SFTTrainer

    tok = AutoTokenizer.from_pretrained(model)
    lm = AutoModelForCausalLM.from_pretrained(model)
    chats = [json.loads(line)["messages"] for line in data.read_text(encoding="utf-8").splitlines()]
    rows = Dataset.from_list([{"prompt": m[:1], "completion": m[1:]} for m in chats])
    targets = [n for n, m in lm.named_modules() if type(m).__name__ == "Linear" and "lm_head" not in n]
    peft = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.05, use_dora=True, use_rslora=True,
                      target_modules=targets, task_type="CAUSAL_LM")
    trainer = SFTTrainer(model=lm, processing_class=tok, train_dataset=rows, peft_config=peft,
                         args=SFTConfig(**common(a, Path(tempfile.mkdtemp(dir=work, prefix="bare-")))))
    begin = time.perf_counter()
    trainer.train()
    end = time.perf_counter()
    return trainer.state.num_input_tokens_seen, end - start, end - begin


ANTI_DRIFT = {"plain": {}, "drift meter": {"training": {"drift_steps": 10, "drift_probe_count": 32}},
              "kl_to_base": {"kl_to_base": 0.1}}


@contextmanager
def counted_forwards():
    """A list whose length is the number of causal-LM forwards run inside the block (the base's, adapter disabled,
    included: it is the same module)."""
    import torch

    calls: list[int] = []
    def count(module, args, out):
        name = type(module).__name__
        if name.endswith("ForCausalLM") and not name.startswith("Peft"):  # the model, not PEFT's wrapper of it
            calls.append(1)

    hook = torch.nn.modules.module.register_module_forward_hook(count)
    try:
        yield calls
    finally:
        hook.remove()


@contextmanager
def loop_cpu_seconds():
    """A list that gets the process CPU time of each `Trainer.train()` inside the block: on a machine shared with
    other work (one torch thread) it moves far less than the wall clock."""
    from transformers import Trainer

    spent: list[float] = []
    train = Trainer.train

    def timed(self, *args, **kwargs):
        start = time.process_time()
        try:
            return train(self, *args, **kwargs)
        finally:
            spent.append(time.process_time() - start)

    Trainer.train = timed
    try:
        yield spent
    finally:
        Trainer.train = train


def anti_drift(a, model: str, data: Path, work: Path) -> None:
    names = list(ANTI_DRIFT)
    loops: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    tokens, forwards = {}, {}
    for name in names:  # warm-up: imports, first-touch allocations and each variant's own code paths
        ours(a, model, data, work, **json.loads(json.dumps(ANTI_DRIFT[name])))
    for r in range(a.repeats):
        for name in names[r % 3:] + names[:r % 3]:
            with counted_forwards() as calls, loop_cpu_seconds() as spent:
                tokens[name], _, loop = ours(a, model, data, work, **json.loads(json.dumps(ANTI_DRIFT[name])))
            forwards[name] = len(calls)
            loops[name].append(loop)
            cpu[name] += spent
    assert len(set(tokens.values())) == 1, f"the variants trained different token counts: {tokens}"
    print(f"anti-drift, {a.steps} steps × batch {a.batch}, {tokens['plain']} tokens per run; training loop, "
          "tok/s by the wall clock and by process CPU time:")
    for name in names:
        wall = statistics.median(x / p for x, p in zip(loops[name], loops["plain"]))
        cpu_ratio = statistics.median(x / p for x, p in zip(cpu[name], cpu["plain"]))
        print(f"  {name:12} wall " + " ".join(f"{tokens[name] / x:6.0f}" for x in loops[name])
              + f" ({wall:.3f}×)   cpu " + " ".join(f"{tokens[name] / x:6.0f}" for x in cpu[name])
              + f" ({cpu_ratio:.3f}×)   {forwards[name]} model forwards per run")
    print("(×: median time against plain, repeat by repeat)")


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("--steps", type=int, default=None, help="default 12, with --anti-drift 50")
    p.add_argument("--save-steps", type=int, default=None,
                   help="default 4, with --anti-drift one checkpoint at the end (saving would dilute the ratios)")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--hidden", type=int, default=64)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--threads", type=int, default=1, help="torch threads (1: steadier on a shared machine)")
    p.add_argument("--anti-drift", action="store_true", help="train.sft plain vs drift meter vs kl_to_base")
    p.add_argument("--answer-repeat", type=int, default=1,
                   help="answers this many times longer (1: ~140 tokens per conversation, 4: ~480)")
    a = p.parse_args()
    a.steps = a.steps or (50 if a.anti_drift else 12)
    a.save_steps = a.save_steps or (a.steps if a.anti_drift else 4)

    import torch

    torch.set_num_threads(a.threads)

    from engine.tiny.build import tiny_model_dir

    model = str(tiny_model_dir(arch="qwen3", seed=0, hidden_size=a.hidden, num_layers=a.layers,
                               intermediate_size=2 * a.hidden))
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        data = work / "chat.jsonl"
        write_chats(data, a.steps * a.batch, a.answer_repeat)
        if a.anti_drift:
            anti_drift(a, model, data, work)
            return
        bare(a, model, data, work)  # warm-up: imports, first-touch allocations
        rows = []
        for r in range(a.repeats):
            order = [("ours", ours), ("bare", bare)] if r % 2 == 0 else [("bare", bare), ("ours", ours)]
            got = {name: fn(a, model, data, work) for name, fn in order}
            rows.append((got["ours"], got["bare"]))
    print(f"tiny qwen3 hidden={a.hidden} layers={a.layers}, {a.steps} steps × batch {a.batch}, "
          f"checkpoint every {a.save_steps}, torch threads {torch.get_num_threads()}")
    print(f"{'repeat':>6} {'tokens':>7} | tok/s whole run: {'train.sft':>9} {'bare':>7} | "
          f"tok/s training loop: {'train.sft':>9} {'bare':>7}")
    for i, ((tok, whole, loop), (tok_b, whole_b, loop_b)) in enumerate(rows, 1):
        assert tok == tok_b, f"the two sides trained different token counts: {tok} vs {tok_b}"
        print(f"{i:>6} {tok:>7} | {'':>17}{tok / whole:>9.0f} {tok / whole_b:>7.0f} | "
              f"{'':>21}{tok / loop:>9.0f} {tok / loop_b:>7.0f}")
    whole = statistics.median(b[1] / o[1] for o, b in rows)
    loop = statistics.median(b[2] / o[2] for o, b in rows)
    print(f"median ratio train.sft / bare TRL: whole run {whole:.3f}, training loop {loop:.3f} (goal ≥ 0.95)")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
