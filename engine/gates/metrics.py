"""Gate metrics and their standard errors: accuracy-like means, binary F1, a seeded bootstrap."""

from __future__ import annotations

import math


def mean(values: list[float]) -> float:
    return sum(values) / len(values) if values else 0.0


def mean_stderr(values: list[float]) -> float:
    """Sample standard deviation / √n, as lm-eval reports for mean metrics."""
    n = len(values)
    if n < 2:
        return 0.0
    m = mean(values)
    return math.sqrt(sum((v - m) ** 2 for v in values) / (n - 1)) / math.sqrt(n)


def binary_f1(golds: list[int], preds: list[int]) -> float:
    """F1 of the positive class 1 (sklearn's `f1_score(golds, preds)`; 0.0 when undefined)."""
    tp = sum(1 for g, p in zip(golds, preds) if g == 1 and p == 1)
    fp = sum(1 for g, p in zip(golds, preds) if g != 1 and p == 1)
    fn = sum(1 for g, p in zip(golds, preds) if g == 1 and p != 1)
    return 2 * tp / (2 * tp + fp + fn) if tp + fp + fn else 0.0


def f1_bootstrap_stderr(golds: list[int], preds: list[int], iters: int = 1000, seed: int = 1234) -> float:
    """Standard deviation of binary F1 over `iters` resamples of the items (seeded: same inputs, same SE)."""
    import numpy as np

    if len(golds) < 2:
        return 0.0
    idx = np.random.default_rng(seed).integers(0, len(golds), size=(iters, len(golds)))
    g, p = np.asarray(golds)[idx] == 1, np.asarray(preds)[idx] == 1
    tp, fp, fn = (g & p).sum(1), (~g & p).sum(1), (g & ~p).sum(1)
    denominator = 2 * tp + fp + fn
    f1 = np.divide(2 * tp, denominator, out=np.zeros(iters), where=denominator > 0)
    return float(f1.std(ddof=1))


def summarize(per_item: dict[str, list[float]], golds: list[int] | None = None,
              preds: list[int] | None = None, want_f1: bool = False) -> tuple[dict, dict]:
    """Metric values and standard errors from per-item scores (means) and, for F1, golds and preds."""
    metrics = {name: mean(values) for name, values in per_item.items()}
    stderr = {name: mean_stderr(values) for name, values in per_item.items()}
    if want_f1:
        metrics["f1"] = binary_f1(golds, preds)
        stderr["f1"] = f1_bootstrap_stderr(golds, preds)
    return metrics, stderr
