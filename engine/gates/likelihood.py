"""The `likelihood` scorer: multiple choice by summed log-probability, as lm-evaluation-harness scores it.

Each choice is the continuation `target_delimiter + choice` after the prompt. Trailing whitespace of
the prompt moves to the continuation; the continuation's tokens are `enc(ctx + cont)[len(enc(ctx)):]`.
acc = argmax of the sums, acc_norm = argmax of sum / character length of the choice, f1 = binary F1
with choice 1 positive, mc2 = the normalised probability mass on the choices labelled true (lm-eval's
TruthfulQA MC2). All choices of an item share one encoded context.
"""

from __future__ import annotations

import math

from engine.gates.answers import gate_prompts
from engine.gates.metrics import summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer
from engine.gates.template import lookup

METRICS = {"acc", "acc_norm", "f1", "mc2"}


def split_request(context: str, continuation: str) -> tuple[str, str]:
    """lm-eval's split: the context's trailing whitespace belongs to the continuation."""
    n = len(context) - len(context.rstrip())
    return (context[:-n], context[-n:] + continuation) if n else (context, continuation)


def encode_item(prompt: str, continuations: list[str], encode) -> tuple[list[int], list[list[int]]]:
    """Context tokens (once) and each continuation's tokens cut from the joint encoding."""
    context = split_request(prompt, "")[0]
    ctx = encode(context)
    conts = []
    for continuation in continuations:
        c, k = split_request(prompt, continuation)
        conts.append(encode(c + k)[len(ctx):])
    return ctx, conts


def item_groups(ctx: list[int], conts: list[list[int]], max_length: int) -> list[tuple[list[int], list[list[int]]]]:
    """One shared group, unless a choice overflows the model: then lm-eval left-truncates each choice's
    own sequence, so each such item becomes one group per choice."""
    if all(len(ctx) + len(c) <= max_length + 1 for c in conts):
        return [(ctx, conts)]
    return [((ctx + c)[-(max_length + 1):][:-len(c)], [c]) for c in conts]


def true_mass(lls: list[float], labels: list[int]) -> float:
    """Σ p(true choices) / Σ p(all choices), with p = exp(log-likelihood) (computed stably)."""
    top = max(lls)
    probs = [math.exp(v - top) for v in lls]
    return sum(p for p, label in zip(probs, labels) if int(label) == 1) / sum(probs)


def argmax(values: list[float]) -> int:
    """Index of the largest value; the first on ties (numpy's argmax)."""
    return max(range(len(values)), key=lambda i: (values[i], -i))


def continuation_loglikelihoods(prompts: list[str], continuations: list[list[str]], backend, bos: bool,
                                settings: ScoreSettings) -> list[list[float]]:
    """Summed log-probability of each item's continuations after its prompt: one shared context per item (one
    group per choice when a choice overflows the model). Progress is reported in items.
    A backend that scores text (the endpoint) gets each (context, continuation) pair, split as lm-eval splits it."""
    if hasattr(backend, "loglikelihood_texts"):
        pairs = [split_request(prompt, c) for prompt, conts in zip(prompts, continuations) for c in conts]
        total = len(pairs)
        flat = backend.loglikelihood_texts(pairs, lambda done: settings.progress(done * len(prompts) // total,
                                                                                  len(prompts)))
        out, k = [], 0
        for conts in continuations:
            out.append(flat[k:k + len(conts)])
            k += len(conts)
        return out
    encode = lambda text: backend.encode(text, bos)  # noqa: E731
    groups, owner = [], []
    for i, (prompt, conts) in enumerate(zip(prompts, continuations)):
        ctx, encoded = encode_item(prompt, conts, encode)
        for group in item_groups(ctx, encoded, backend.max_length):
            groups.append(group)
            owner.append(i)
    n, done = len(prompts), 0

    def on_batch(count: int) -> None:
        nonlocal done
        done += count
        settings.progress(done * n // len(groups), n)

    lls: list[list[float]] = [[] for _ in range(n)]
    for i, group_scores in zip(owner, backend.loglikelihoods(groups, settings.batch_size, on_batch)):
        lls[i].extend(group_scores)
    return lls


@scorer("likelihood", version="1", likelihood=True,
        metrics=lambda gate: METRICS if gate.target.labels_field else METRICS - {"mc2"})
def score_likelihood(items, backend, settings: ScoreSettings) -> ScoreOutput:
    gate = items.gate
    choices = [gate.choices_for(row) for row in items.rows]
    start_tokens, start_padded = backend.tokens_computed, backend.tokens_padded
    continuations = [[gate.choice_delimiter + c for c in cs] for cs in choices]
    lls = continuation_loglikelihoods(gate_prompts(items, backend), continuations, backend, gate.bos, settings)

    golds = items.golds()
    preds = [argmax(ll) for ll in lls]
    preds_norm = [argmax([v / len(c) for v, c in zip(ll, cs)]) for ll, cs in zip(lls, choices)]
    per_item = {"acc": [float(p == g) for p, g in zip(preds, golds)],
                "acc_norm": [float(p == g) for p, g in zip(preds_norm, golds)]}
    if gate.target.labels_field:
        per_item["mc2"] = [true_mass(ll, lookup(gate.prepare(row), gate.target.labels_field))
                           for ll, row in zip(lls, items.rows)]
    metrics, stderr = summarize(per_item, golds, preds, want_f1="f1" in gate.metrics)
    samples = [{"index": idx, "loglikelihoods": ll, "pred": p, "pred_norm": pn, "gold": g}
               for idx, ll, p, pn, g in zip(items.indices, lls, preds, preds_norm, golds)]
    stats = {"requests": sum(len(c) for c in choices),
             "tokens_computed": backend.tokens_computed - start_tokens,
             "tokens_padded": backend.tokens_padded - start_padded}
    return ScoreOutput(metrics, stderr, per_item, preds, golds, samples, stats)
