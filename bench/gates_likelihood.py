"""Native likelihood scorer vs lm-eval's `hf` model: items/s, per-item agreement, tokens computed vs the minimum.

    python bench/gates_likelihood.py [--items 96] [--models 64x2,320x8] [--repeat 3]
                                     [--native-batches 1,2,4,8] [--lm-eval-batches 4,8,16,32,64,auto]

Same tiny model (engine.tiny), same items, same process, same thread count. Shapes: psc (long context,
two one-token choices), belebele (long passage, letters), 8tags (short title, eight multi-token
choices), polemo2_in (review, four multi-token choices), hellaswag (context, four long endings).
lm-eval is timed on `HFLM.loglikelihood` alone, fed the same (context, continuation) pairs.

Equal work per pass: our batch counts items, and one item's continuations run in one pass (items ×
choices sequences); lm-eval's counts requests (one sequence each). So both sides are swept: ours over
item batches, lm-eval over request batches (incl. its `auto`); each configuration is timed `--repeat`
times (median), and each side's best configuration is reported with the sequences per pass it used.
Tokens: ours counts the positions its forwards ran; lm-eval's are counted by wrapping its model call
(`_model_call`: every position of every padded batch it sends through the model).
"""

from __future__ import annotations

import argparse
import random
import statistics
import time
from pathlib import Path

DATA = Path(__file__).resolve().parents[1] / "tests" / "data" / "gates"


def words() -> list[str]:
    from engine.datafiles import read_rows

    text = " ".join(str(v) for f in DATA.glob("*.jsonl") for r in read_rows(f) for v in r.values())
    return [w for w in text.split() if w.isalpha()]


def sentence(rnd: random.Random, pool: list[str], n: int) -> str:
    return " ".join(rnd.choice(pool) for _ in range(n)).capitalize() + "."


def make_rows(shape: str, n: int, rnd: random.Random, pool: list[str]) -> list[dict]:
    s = lambda k: sentence(rnd, pool, k)  # noqa: E731
    if shape == "psc":
        return [{"extract_text": " ".join(s(14) for _ in range(6)), "summary_text": s(16), "label": rnd.randrange(2)}
                for _ in range(n)]
    if shape == "belebele":
        return [{"flores_passage": " ".join(s(16) for _ in range(8)), "question": s(8),
                 **{f"mc_answer{i}": s(5) for i in range(1, 5)}, "correct_answer_num": str(rnd.randrange(1, 5))}
                for _ in range(n)]
    if shape == "8tags":
        return [{"sentence": s(7), "label": rnd.randrange(8)} for _ in range(n)]
    if shape == "polemo2_in":
        labels = ["__label__meta_zero", "__label__meta_minus_m", "__label__meta_plus_m", "__label__meta_amb"]
        return [{"sentence": " ".join(s(12) for _ in range(4)), "target": rnd.choice(labels)} for _ in range(n)]
    return [{"activity_label": rnd.choice(pool).capitalize(), "ctx_a": s(20), "ctx_b": s(6).lower(),
             "endings": [s(14) for _ in range(4)], "label": str(rnd.randrange(4))} for _ in range(n)]


GATES = {"psc": "polish_psc", "belebele": "polish_belebele", "8tags": "polish_8tags", "polemo2_in": "polemo2_in",
         "hellaswag": "hellaswag"}


def native(backend, items, batch: int):
    from engine.gates.scoring import ScoreSettings, get_scorer

    start = time.perf_counter()
    out = get_scorer("likelihood").run(items, backend, ScoreSettings(batch_size=batch))
    return time.perf_counter() - start, out


def lm_eval_scores(lm, items) -> tuple[float, list[list[float]]]:
    from lm_eval.api.instance import Instance

    gate = items.gate
    requests, sizes = [], []
    for prompt, row in zip(items.prompts(), items.rows):
        choices = gate.choices_for(row)
        sizes.append(len(choices))
        requests += [Instance("loglikelihood", row, (prompt, gate.target_delimiter + c), j)
                     for j, c in enumerate(choices)]
    start = time.perf_counter()
    flat = [ll for ll, _ in lm.loglikelihood(requests, disable_tqdm=True)]
    elapsed = time.perf_counter() - start
    lls, k = [], 0
    for size in sizes:
        lls.append(flat[k:k + size])
        k += size
    return elapsed, lls


def token_counts(items, encode) -> tuple[int, int]:
    """(positions lm-eval runs, the minimum). lm-eval runs each distinct context + continuation[:-1] in full
    (its one-token grouping); the minimum runs each distinct prefix once: the nodes of the token trie."""
    from engine.gates.likelihood import encode_item

    seen, trie, nodes = set(), {}, 0
    for prompt, row in zip(items.prompts(), items.rows):
        ctx, conts = encode_item(prompt, [items.gate.target_delimiter + c for c in items.gate.choices_for(row)],
                                 encode)
        for c in conts:
            seq = tuple(ctx + c[:-1])
            seen.add(seq)
            node = trie
            for tok in seq:
                if tok not in node:
                    node[tok] = {}
                    nodes += 1
                node = node[tok]
    return sum(map(len, seen)), nodes


def counting_model_calls(lm) -> list[int]:
    """Wrap lm-eval's model call to count the positions (batch × length) it really runs."""
    seen = [0]
    call = lm._model_call

    def counted(inps, *args, **kwargs):
        seen[0] += inps.numel()
        return call(inps, *args, **kwargs)

    lm._model_call = counted
    return seen


def median_time(run, repeat: int):
    """(median seconds, last output) of `repeat` timed calls of run() -> (seconds, output)."""
    times, out = [], None
    for _ in range(repeat):
        t, out = run()
        times.append(t)
    return statistics.median(times), out


def bench_model(hidden: int, layers: int, args, pool) -> None:
    from lm_eval.models.huggingface import HFLM

    from engine.gates import load_gate
    from engine.gates.data import GateItems
    from engine.gates.hf_backend import HFBackend
    from engine.tiny.build import tiny_model_dir

    model = tiny_model_dir("qwen3", 0, hidden_size=hidden, intermediate_size=2 * hidden, num_layers=layers)
    backend = HFBackend(str(model), None, 1.0, "cpu", "float32")
    params = sum(p.numel() for p in backend.model.parameters())
    lms = {b: HFLM(pretrained=str(model), add_bos_token=False, batch_size=b, device="cpu", dtype="float32")
           for b in args.lm_eval_batches.split(",")}
    print(f"\ntiny qwen3: hidden {hidden}, {layers} layers, {params / 1e6:.2f}M parameters; {args.items} items per "
          f"shape; {args.threads} threads; median of {args.repeat}; native item batches {args.native_batches}, "
          f"lm-eval request batches {args.lm_eval_batches}\n")
    print("| shape | choices | native best: items/s (batch, seqs/pass) | lm-eval best: items/s (batch) | speed-up "
          "| same preds | max Δ loglik | tokens native | tokens lm-eval (counted) | minimum |")
    print("|---|---|---|---|---|---|---|---|---|---|")
    for shape in args.shapes.split(","):
        gate = load_gate(GATES[shape])
        rows = make_rows(shape, args.items, random.Random(0), pool)
        items = GateItems(gate, rows, list(range(len(rows))), "bench", len(rows), "")
        warm = GateItems(gate, rows[:4], [0, 1, 2, 3], "bench", 4, "")
        choices = len(gate.choices_for(rows[0]))
        n = len(rows)
        ours = {}
        for b in map(int, args.native_batches.split(",")):
            native(backend, warm, b)
            before = backend.tokens_computed
            ours[b] = median_time(lambda: native(backend, items, b), args.repeat)
            ours[b] = (*ours[b], (backend.tokens_computed - before) // args.repeat)
        theirs = {}
        for b, lm in lms.items():
            lm_eval_scores(lm, warm)
            seen = counting_model_calls(lm)
            theirs[b] = (*median_time(lambda: lm_eval_scores(lm, items), args.repeat), seen[0] // args.repeat)
        nb = min(ours, key=lambda b: ours[b][0])
        lb = min(theirs, key=lambda b: theirs[b][0])
        (t_native, out, tok_native), (t_lm, ref, tok_lm) = ours[nb], theirs[lb]
        ref_preds = [max(range(len(ll)), key=lambda i: (ll[i], -i)) for ll in ref]
        same = sum(p == q for p, q in zip(out.preds, ref_preds))
        mine = [s["loglikelihoods"] for s in out.samples]
        delta = max(abs(a - b) for x, y in zip(mine, ref) for a, b in zip(x, y))
        _, minimum = token_counts(items, lambda t: backend.encode(t, False))
        print(f"| {shape} | {choices} | {n / t_native:.1f} ({nb}, {nb * choices}) | {n / t_lm:.1f} ({lb}) "
              f"| {t_lm / t_native:.2f}× | {same}/{n} | {delta:.1e} | {tok_native} | {tok_lm} | {minimum} |")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--items", type=int, default=96)
    ap.add_argument("--models", default="64x2,320x8", help="hidden x layers, comma-separated")
    ap.add_argument("--native-batches", default="1,2,4,8", help="native: items per forward")
    ap.add_argument("--lm-eval-batches", default="4,8,16,32,64,auto", help="lm-eval: requests per forward")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default=",".join(GATES))
    args = ap.parse_args()

    import torch

    torch.set_num_threads(args.threads)
    pool = words()
    for spec in args.models.split(","):
        hidden, layers = (int(x) for x in spec.split("x"))
        bench_model(hidden, layers, args, pool)


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
