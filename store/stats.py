"""Paired statistics for subject-vs-base deltas: bootstrap CIs, McNemar, detectable drop, verdicts.

Pure functions over per-item outcome vectors in dataset order (the same items for both subjects).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass
from statistics import NormalDist

import numpy as np

ALPHA = 0.05  # two-sided significance level of every test and the CI level (95 %)
POWER = 0.80  # power at which the detectable drop is quoted
B_DEFAULT = 2000
SEED = 20240501
BLOCK = 250  # resamples drawn and multiplied at a time
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


@functools.cache  # a table asks for the same two quantiles thousands of times
def _z(q: float) -> float:
    return NormalDist().inv_cdf(q)


def _percentile_ci(boot: np.ndarray, alpha: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of boot (k × B): the α/2 and 1 − α/2 percentiles, linearly interpolated as np.quantile's
    default does. One sort of the whole block is several times faster than np.quantile along an axis."""
    ordered = np.sort(boot, axis=1)
    ends = []
    for q in (alpha / 2, 1 - alpha / 2):
        h = (boot.shape[1] - 1) * q
        i = int(h)
        upper = ordered[:, min(i + 1, boot.shape[1] - 1)]
        ends.append(ordered[:, i] + (h - i) * (upper - ordered[:, i]))
    return ends[0], ends[1]


def _bootstrap_p(boot: np.ndarray) -> np.ndarray:
    """Per row of boot: the two-sided percentile-bootstrap p of "no difference", 2·min(P*(d ≤ 0), P*(d ≥ 0)),
    capped at 1. It is below α exactly when the percentile CI excludes 0 (Efron & Tibshirani 1993, §15.4)."""
    below, above = np.count_nonzero(boot <= 0, axis=1), np.count_nonzero(boot >= 0, axis=1)
    return np.minimum(1.0, 2 * np.minimum(below, above) / boot.shape[1])


def _weight_blocks(n: int, B: int, seed):
    """The bootstrap's resampling weights in blocks of rows: row b counts how often each of the n items is
    drawn when resample b draws n items with replacement (float32: the counts are exact). Blocks keep the
    memory at BLOCK × n whatever the gate's size."""
    rng = np.random.default_rng(seed)
    for start in range(0, B, BLOCK):
        rows = min(BLOCK, B - start)
        draws = rng.integers(0, n, size=(rows, n))
        draws += np.arange(rows)[:, None] * n
        yield start, np.bincount(draws.ravel(), minlength=rows * n).reshape(rows, n).astype(np.float32)


@functools.cache
def _blas():
    """The BLAS thread pools. The products here are a few ms each: on a shared 2-core machine OpenBLAS's
    threads only fight the other processes (measured 4× slower at load 10), so they run on one thread."""
    from threadpoolctl import ThreadpoolController

    return ThreadpoolController()


def resampled_sums(columns: np.ndarray, B: int = B_DEFAULT, seed=SEED) -> np.ndarray:
    """k × n per-item values → k × B: each row's sum over each of B bootstrap resamples of the n items.

    Every row is resampled with the same weights — the rows are the subjects of one gate (or the confusion
    counts of their predictions), whose items are the same — so the bootstrap of a whole gate is one
    matrix product per block of resamples instead of a loop over subjects. Integer values (0/1 outcomes,
    their differences, confusion indicators) are summed in float32, exact below 2**24 and twice as fast."""
    columns = np.asarray(columns, dtype=float)
    exact = bool(np.array_equal(columns, np.rint(columns)) and np.abs(columns).max(initial=0) * columns.shape[1] < 2**24)
    work = columns.astype(np.float32) if exact else columns
    out = np.empty((len(columns), B))
    with _blas().limit(limits=1, user_api="blas"):
        for start, weights in _weight_blocks(columns.shape[1], B, seed):
            out[:, start:start + len(weights)] = work @ (weights.T if exact else weights.T.astype(float))
    if not exact:
        # A resample whose sum is 0 in exact arithmetic comes out as a few ulps of either sign, in an order
        # BLAS picks by the batch's shape; snap those to 0 so the bootstrap p (which counts sums ≤ 0 and
        # ≥ 0) is the same whichever batch a pair was computed in.
        out[np.abs(out) <= 1e-9 * columns.shape[1] * np.abs(columns).max(initial=0)] = 0.0
    return out


def binary_f1_counts(tp, fp, fn):
    """F1 of the positive class 1 from counts (vectorised); 0 where undefined, as sklearn does."""
    tp, fp, fn = (np.asarray(x, dtype=float) for x in (tp, fp, fn))
    denom = 2 * tp + fp + fn
    return np.divide(2 * tp, denom, out=np.zeros_like(denom), where=denom > 0)


def _confusion(preds: np.ndarray, golds: np.ndarray) -> np.ndarray:
    """Per-item indicators of (true positive, false positive, false negative) for class 1: 3 × … × n."""
    pos_pred, pos_gold = preds == 1, golds == 1
    return np.stack([pos_pred & pos_gold, pos_pred & ~pos_gold, ~pos_pred & pos_gold]).astype(float)


@functools.lru_cache(maxsize=8192)  # a table repeats (b, c) pairs many times
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


def items_needed(tolerance: float, discordance: float, alpha: float = ALPHA, power: float = POWER) -> int:
    """Paired 0/1 items McNemar needs to detect a drop of `tolerance` (a fraction) with `power`: Connor's
    n = (z_{1−α/2} + z_{power})² · ψ / δ² for discordance rate ψ — detectable_drop_binary solved for n."""
    return math.ceil((_z(1 - alpha / 2) + _z(power)) ** 2 * discordance / tolerance ** 2)


def detectable_drop(se: float, alpha: float = ALPHA, power: float = POWER) -> float:
    """Smallest drop a paired comparison with standard error `se` detects: (z_{1−α/2} + z_{power}) · se
    (the normal-approximation minimum detectable effect; se is the paired difference's SE)."""
    return (_z(1 - alpha / 2) + _z(power)) * se


def is_binary(values: np.ndarray) -> bool:
    return bool(((values == 0) | (values == 1)).all())


@dataclass(frozen=True)
class Batch:
    """One base compared with k candidates on the same items: their statistics and the B resampled
    deltas behind them (k × B, metric units), which the axis pooling sums across gates."""

    stats: list[PairedStats]
    boot: np.ndarray


def _summaries(delta, boot: np.ndarray, alpha: float) -> tuple:
    lo, hi = _percentile_ci(boot, alpha)
    return np.asarray(delta, dtype=float), lo, hi, boot.std(axis=1, ddof=1), _bootstrap_p(boot)


def compare_f1(base_preds, cand_preds, golds, B: int = B_DEFAULT, seed=SEED, alpha: float = ALPHA) -> Batch:
    """Paired bootstrap of F1(candidate) − F1(base), binary F1 of class 1, for k candidates (k × n preds):
    each resample draws items (base prediction, candidate predictions, gold) together and recomputes every
    F1 from the resampled confusion counts — F1 is not a mean of per-item scores, so outcomes cannot give it."""
    golds = np.asarray(golds)
    preds = np.vstack([np.asarray(base_preds)[None, :], np.atleast_2d(np.asarray(cand_preds))])
    counts = _confusion(preds, golds[None, :])  # 3 × (1 + k) × n
    full = binary_f1_counts(*counts.sum(axis=2))
    sums = resampled_sums(counts.reshape(-1, len(golds)), B, seed).reshape(3, len(preds), B)
    f1 = binary_f1_counts(*sums)
    boot = f1[1:] - f1[0]
    delta, lo, hi, se, p = _summaries(full[1:] - full[0], boot, alpha)
    return Batch([PairedStats(float(delta[i]), float(lo[i]), float(hi[i]), float(p[i]), float(se[i]),
                              min(1.0, detectable_drop(float(se[i]))), len(golds), "bootstrap-f1")
                  for i in range(len(boot))], boot)


def compare_many(base, cands, B: int = B_DEFAULT, seed=SEED, alpha: float = ALPHA) -> Batch:
    """The paired comparison of one base with k candidates on the same n items (cands: k × n outcomes).

    Paired item bootstrap of the mean difference (Efron & Tibshirani 1993, ch. 13): items are resampled
    with replacement, an item's outcomes always together, with one set of weights for every candidate;
    the CI is the percentile interval of the B resampled differences. 0/1 outcomes get McNemar's mid-p
    and Connor's detectable drop, other scores the bootstrap p and the normal-approximation one."""
    base = np.asarray(base, dtype=float)
    cands = np.atleast_2d(np.asarray(cands, dtype=float))
    n = len(base)
    diffs = cands - base
    boot = resampled_sums(diffs, B, seed) / n
    delta, lo, hi, se, p = _summaries(diffs.mean(axis=1), boot, alpha)
    proportion = bool(((base >= 0) & (base <= 1)).all()) & ((cands >= 0) & (cands <= 1)).all(axis=1)
    binary = is_binary(base) & ((cands == 0) | (cands == 1)).all(axis=1)
    lost = ((base == 1) & (cands == 0)).sum(axis=1)
    gained = ((base == 0) & (cands == 1)).sum(axis=1)
    out = []
    for i in range(len(cands)):
        common = dict(delta=float(delta[i]), ci_low=float(lo[i]), ci_high=float(hi[i]), se=float(se[i]), n=n)
        if binary[i]:
            b, c = int(lost[i]), int(gained[i])
            out.append(PairedStats(**common, p_value=mcnemar(b, c)[1], detectable=detectable_drop_binary(b, c, n),
                                   method="mcnemar", discordant=(b, c), proportion=True))
        else:
            out.append(PairedStats(**common, p_value=float(p[i]), detectable=detectable_drop(float(se[i])),
                                   method="bootstrap", proportion=bool(proportion[i])))
    return Batch(out, boot)


def compare(base, cand, base_preds: list[int] | None = None, cand_preds: list[int] | None = None,
            golds: list[int] | None = None, f1: bool = False, B: int = B_DEFAULT, seed=SEED) -> PairedStats:
    """The paired comparison of two subjects on the same items, choosing the method by the data:
    F1 → bootstrap over (pred, pred, gold); 0/1 outcomes → bootstrap CI + McNemar mid-p;
    other scores → bootstrap CI and bootstrap p. Lengths must match (same fingerprint ⇒ same items).
    The same computation as a batch of one: a pair gets the numbers it gets inside its gate's table."""
    if f1 and base_preds is not None and cand_preds is not None and golds is not None:
        return compare_f1(base_preds, [cand_preds], golds, B, seed).stats[0]
    return compare_many(base, [cand], B, seed).stats[0]


def pooled(groups: list[list[tuple[float, PairedStats, np.ndarray]]], alpha: float = ALPHA) -> list[PairedStats]:
    """Per group (one subject's axis), its gates' paired items pooled into one comparison: the estimate is the
    item-weighted mean gain Σ nᵍ·sᵍ·Δᵍ / Σ nᵍ, where sᵍ = ±1 turns each gate's delta so that + is better.

    Each part is (sᵍ, the gate's statistics, its B resampled deltas). The gates were resampled
    independently (one seed per gate), so Σ nᵍ·sᵍ·bootᵍ / Σ nᵍ is the stratified bootstrap of the
    pooled estimate (Efron & Tibshirani 1993, §8.4: resample within strata, keep their sizes). When
    every part is 0/1 the pooled items are 0/1 pairs too: McNemar on the summed discordant counts and
    Connor's detectable drop at the pooled n; otherwise the bootstrap p and (z + z)·SE. The groups' intervals
    come from one sort of all their resamples."""
    sizes = [sum(st.n for _, st, _ in parts) for parts in groups]
    gains = [sum(st.n * sign * st.delta for sign, st, _ in parts) / n for parts, n in zip(groups, sizes)]
    boot = np.vstack([sum(st.n * sign * b for sign, st, b in parts) / n for parts, n in zip(groups, sizes)])
    _, lo, hi, se, p = _summaries(gains, boot, alpha)
    out = []
    for i, (parts, n) in enumerate(zip(groups, sizes)):
        common = dict(delta=gains[i], ci_low=float(lo[i]), ci_high=float(hi[i]), se=float(se[i]), n=n,
                      proportion=all(st.proportion for _, st, _ in parts))
        if all(st.method == "mcnemar" for _, st, _ in parts):
            worse = sum(st.discordant[0] if sign > 0 else st.discordant[1] for sign, st, _ in parts)
            better = sum(st.discordant[1] if sign > 0 else st.discordant[0] for sign, st, _ in parts)
            out.append(PairedStats(**common, p_value=mcnemar(worse, better)[1],
                                   detectable=detectable_drop_binary(worse, better, n), method="pooled-mcnemar",
                                   discordant=(worse, better)))
        else:
            out.append(PairedStats(**common, p_value=float(p[i]), detectable=detectable_drop(float(se[i])),
                                   method="pooled-bootstrap"))
    return out


def verdict(delta_pp: float, p_value: float, tolerance_pp: float, higher_is_better: bool = True,
            detectable_pp: float | None = None, alpha: float = ALPHA) -> str:
    """PASS when the drop is within tolerance (gains are PASS); beyond it, FAIL when the paired test
    says the difference is real (p < alpha), else WARN (a drop that n cannot tell from noise).
    The drop is direction-aware: for lower-is-better metrics a rise is the drop.

    A PASS is UNDERPOWERED when n could not detect a drop of the tolerance's size (detectable_pp >
    tolerance) — unless it is a significant gain, which needs no power to show it is no regression."""
    drop = -delta_pp if higher_is_better else delta_pp
    if drop > tolerance_pp + EPS:
        return "FAIL" if p_value < alpha else "WARN"
    if detectable_pp is None or detectable_pp <= tolerance_pp + EPS or (drop < 0 and p_value < alpha):
        return "PASS"
    return "UNDERPOWERED"
