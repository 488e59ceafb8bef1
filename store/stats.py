"""Paired statistics for subject-vs-base deltas: bootstrap CIs, McNemar, detectable drop, verdicts.

Pure functions over per-item outcome vectors in dataset order (the same items for both subjects).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05  # two-sided significance level of every test and the CI level (95 %)
POWER = 0.80  # power at which the detectable drop is quoted
B_DEFAULT = 2000
SEED = 20240501
EPS = 1e-9  # float slack when comparing a drop with the tolerance


@dataclass(frozen=True)
class PairedStats:
    """One paired comparison, in the metric's own units (fractions for accuracy and F1)."""

    delta: float  # candidate − base
    ci_low: float
    ci_high: float
    p_value: float  # McNemar mid-p for 0/1 outcomes, else the bootstrap two-sided p
    se: float  # standard error of the paired difference
    detectable: float  # smallest drop n can detect (see detectable_drop*)
    n: int
    method: str  # "mcnemar" | "bootstrap" | "bootstrap-f1"
    discordant: tuple[int, int] | None = None  # (base right & candidate wrong, base wrong & candidate right)
    proportion: bool = True  # every outcome lies in [0, 1]: the metric is a proportion (report in pp)


def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def _percentile_ci(boot: np.ndarray, alpha: float) -> tuple[float, float]:
    lo, hi = np.quantile(boot, [alpha / 2, 1 - alpha / 2])
    return float(lo), float(hi)


def _bootstrap_p(boot: np.ndarray) -> float:
    """Two-sided percentile-bootstrap p of "no difference": 2·min(P*(d ≤ 0), P*(d ≥ 0)), capped at 1.
    It is below α exactly when the percentile CI excludes 0 (Efron & Tibshirani 1993, §15.4)."""
    return float(min(1.0, 2 * min(np.mean(boot <= 0), np.mean(boot >= 0))))


def _type_counts(*columns) -> tuple[np.ndarray, np.ndarray]:
    """Distinct item types (rows of the stacked columns) and how many items have each."""
    if len(columns) == 1:
        values, counts = np.unique(np.asarray(columns[0], dtype=float), return_counts=True)
        return values[:, None], counts
    stacked = np.column_stack([np.asarray(c, dtype=float) for c in columns])
    return np.unique(stacked, axis=0, return_counts=True)


def _resample_counts(counts: np.ndarray, B: int, seed: int) -> np.ndarray:
    """B bootstrap resamples of the n items, as counts per item type (B × types).

    Drawing n items with replacement and tallying them by type is a multinomial draw over the types
    with probabilities count/n, so this is the ordinary paired item bootstrap. The multinomial is drawn
    as a chain of vectorised conditional binomials (type j gets Bin(items left, count_j / count left)),
    which costs O(B · types) instead of O(B · n)."""
    rng = np.random.default_rng(seed)
    out = np.empty((B, len(counts)), dtype=np.int64)
    left = np.full(B, int(counts.sum()), dtype=np.int64)
    remaining = int(counts.sum())
    for j, c in enumerate(counts[:-1]):
        out[:, j] = rng.binomial(left, min(1.0, int(c) / remaining)) if remaining else 0
        left -= out[:, j]
        remaining -= int(c)
    out[:, -1] = left
    return out


def paired_bootstrap(base: list[float], cand: list[float], B: int = B_DEFAULT, seed: int = SEED,
                     alpha: float = ALPHA) -> tuple[float, float, float, float, float]:
    """Paired bootstrap of the mean difference mean(cand) − mean(base) (Efron & Tibshirani 1993, ch. 13).

    Items are resampled with replacement, the two outcomes of an item always together; the CI is the
    percentile interval of the B resampled differences. Returns (delta, ci_low, ci_high, se, p)."""
    d = np.asarray(cand, dtype=float) - np.asarray(base, dtype=float)
    values, counts = _type_counts(d)
    boot = _resample_counts(counts, B, seed) @ values[:, 0] / len(d)
    return (float(d.mean()), *_percentile_ci(boot, alpha), float(boot.std(ddof=1)), _bootstrap_p(boot))


def binary_f1_counts(tp, fp, fn):
    """F1 of the positive class 1 from counts (vectorised); 0 where undefined, as sklearn does."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _f1_of(weights: np.ndarray, preds: np.ndarray, golds: np.ndarray):
    pos_pred, pos_gold = preds == 1, golds == 1
    return binary_f1_counts(weights @ (pos_pred & pos_gold), weights @ (pos_pred & ~pos_gold),
                            weights @ (~pos_pred & pos_gold))


def paired_bootstrap_f1(base_preds: list[int], cand_preds: list[int], golds: list[int], B: int = B_DEFAULT,
                        seed: int = SEED, alpha: float = ALPHA) -> tuple[float, float, float, float, float]:
    """Paired bootstrap of F1(cand) − F1(base), binary F1 of class 1: each resample draws items (base
    prediction, candidate prediction, gold) together and recomputes both F1s from the resampled
    confusion counts — F1 is not a mean of per-item scores, so outcomes alone cannot give it.
    Returns (delta, ci_low, ci_high, se, p)."""
    types, counts = _type_counts(base_preds, cand_preds, golds)
    bp, cp, g = types[:, 0], types[:, 1], types[:, 2]
    delta = float(_f1_of(counts, cp, g) - _f1_of(counts, bp, g))
    m = _resample_counts(counts, B, seed)
    boot = _f1_of(m, cp, g) - _f1_of(m, bp, g)
    return (delta, *_percentile_ci(boot, alpha), float(boot.std(ddof=1)), _bootstrap_p(boot))


def mcnemar(b: int, c: int) -> tuple[float, float]:
    """McNemar's test on the discordant pairs: b = base right & candidate wrong, c = the reverse.

    Under "no difference" min(b, c) ~ Binomial(b + c, ½). Returns (exact two-sided p, mid-p), where
    exact = min(1, 2·P(X ≤ k)) and mid-p = 2·(P(X ≤ k) − ½·P(X = k)), k = min(b, c). The mid-p keeps
    the nominal level far better than the conservative exact test (Fagerland, Lydersen & Laake 2013,
    BMC Med Res Methodol 13:91); verdicts use it."""
    m, k = b + c, min(b, c)
    if m == 0:
        return 1.0, 1.0
    pmf = [math.comb(m, i) / 2**m for i in range(k + 1)]
    cdf = sum(pmf)
    return min(1.0, 2 * cdf), min(1.0, 2 * (cdf - pmf[k] / 2))


def detectable_drop_binary(b: int, c: int, n: int, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest drop (fraction) McNemar detects with `power` at two-sided `alpha` on n paired 0/1 items.

    Connor (1987, Biometrics 43:207) gives n = [z_{1−α/2}·√ψ + z_{power}·√(ψ − δ²)]² / δ² for
    discordance rate ψ and difference δ; with ψ − δ² ≈ ψ this solves to
        δ = (z_{1−α/2} + z_{power}) · √(ψ / n)      (2.80·√(ψ/n) at α = 0.05, 80 % power).
    ψ is estimated from the data as (b + c)/n, floored at 3/n (the "rule of three" 95 % upper bound
    when few or no discordant pairs were seen), so identical outcomes never claim a zero detectable drop."""
    if n == 0:
        return math.inf
    psi = max((b + c) / n, 3 / n)
    return min(1.0, (_z(1 - alpha / 2) + _z(power)) * math.sqrt(psi / n))


def detectable_drop(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest drop a paired comparison with standard error `se` detects: (z_{1−α/2} + z_{power}) · se
    (the normal-approximation minimum detectable effect; se is the paired difference's SE)."""
    return (_z(1 - alpha / 2) + _z(power)) * se


def is_binary(values: np.ndarray) -> bool:
    return bool(((values == 0) | (values == 1)).all())


def compare(base, cand, base_preds: list[int] | None = None, cand_preds: list[int] | None = None,
            golds: list[int] | None = None, f1: bool = False, B: int = B_DEFAULT, seed: int = SEED) -> PairedStats:
    """The paired comparison of two subjects on the same items, choosing the method by the data:
    F1 → bootstrap over (pred, pred, gold); 0/1 outcomes → bootstrap CI + McNemar mid-p;
    other scores → bootstrap CI and bootstrap p. Lengths must match (same fingerprint ⇒ same items)."""
    base, cand = np.asarray(base, dtype=float), np.asarray(cand, dtype=float)
    n = len(base)
    proportion = bool(((base >= 0) & (base <= 1) & (cand >= 0) & (cand <= 1)).all())
    if f1 and base_preds is not None and cand_preds is not None and golds is not None:
        delta, lo, hi, se, p = paired_bootstrap_f1(base_preds, cand_preds, golds, B, seed)
        return PairedStats(delta, lo, hi, p, se, min(1.0, detectable_drop(se)), len(golds), "bootstrap-f1",
                           proportion=True)
    delta, lo, hi, se, p = paired_bootstrap(base, cand, B, seed)
    if is_binary(base) and is_binary(cand):
        b = int(((base == 1) & (cand == 0)).sum())
        c = int(((base == 0) & (cand == 1)).sum())
        return PairedStats(delta, lo, hi, mcnemar(b, c)[1], se, detectable_drop_binary(b, c, n), n, "mcnemar",
                           (b, c), True)
    return PairedStats(delta, lo, hi, p, se, detectable_drop(se), n, "bootstrap", proportion=proportion)


def verdict(delta_pp: float, p_value: float, tolerance_pp: float, higher_is_better: bool = True,
            alpha: float = ALPHA) -> str:
    """PASS when the drop is within tolerance (gains are PASS); beyond it, FAIL when the paired test
    says the difference is real (p < alpha), else WARN (a drop that n cannot tell from noise).
    The drop is direction-aware: for lower-is-better metrics a rise is the drop."""
    drop = -delta_pp if higher_is_better else delta_pp
    if drop <= tolerance_pp + EPS:
        return "PASS"
    return "FAIL" if p_value < alpha else "WARN"
