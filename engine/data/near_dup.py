"""Exact and near-duplicate removal: normalised-text hashes, then MinHash signatures of word shingles banded
into LSH buckets, each candidate pair confirmed by its true shingle Jaccard (Broder 1997; Leskovec et al.,
Mining of Massive Datasets, ch. 3)."""

from __future__ import annotations

import hashlib

import numpy as np

from engine.data.guard import words

_rng = np.random.default_rng(20240910)  # fixed: the same texts give the same signatures in every process


def _stable_hash(text: str) -> int:
    return int.from_bytes(hashlib.blake2b(text.encode(), digest_size=8).digest(), "little")


def shingles(text: str, k: int) -> frozenset[int]:
    """Hashes of the text's word k-grams (after the guard's normalisation); a shorter text is one shingle."""
    ws = words(text)
    if len(ws) <= k:
        return frozenset([_stable_hash(" ".join(ws))])
    return frozenset(_stable_hash(" ".join(ws[i:i + k])) for i in range(len(ws) - k + 1))


class NearDuplicates:
    """Remembers kept texts; `check(text)` says "exact", "near" or None (new, and now remembered)."""

    def __init__(self, threshold: float = 0.8, shingle: int = 5, perms: int = 64, bands: int = 16):
        if perms % bands:
            raise ValueError("perms must be a multiple of bands")
        self.threshold, self.k, self.bands, self.rows = threshold, shingle, bands, perms // bands
        self._a = _rng.integers(1, 2**63, perms, dtype=np.uint64) | np.uint64(1)  # odd: a bijection mod 2^64
        self._b = _rng.integers(0, 2**63, perms, dtype=np.uint64)
        self._exact: set[str] = set()
        self._buckets: dict[tuple[int, bytes], list[int]] = {}
        self._kept: list[frozenset[int]] = []

    def _signature(self, sh: frozenset[int]) -> np.ndarray:
        x = np.fromiter(sh, dtype=np.uint64, count=len(sh))
        return (self._a[:, None] * x[None, :] + self._b[:, None]).min(axis=1)  # wraps mod 2^64 on purpose

    def check(self, text: str) -> str | None:
        key = " ".join(words(text))
        if key in self._exact:
            return "exact"
        sh = shingles(text, self.k)
        sig = self._signature(sh)
        bands = [(b, sig[b * self.rows:(b + 1) * self.rows].tobytes()) for b in range(self.bands)]
        candidates = {i for band in bands for i in self._buckets.get(band, ())}
        for i in sorted(candidates):
            other = self._kept[i]
            if len(sh & other) / len(sh | other) >= self.threshold:
                return "near"
        self._exact.add(key)
        for band in bands:
            self._buckets.setdefault(band, []).append(len(self._kept))
        self._kept.append(sh)
        return None
