"""Words of normalised text as 64-bit hashes, computed for many texts at once with numpy.

A word is a maximal run of alphanumeric characters (`str.isalnum`) after NFKC and lowercasing, so
punctuation, symbols and any whitespace separate words. `words()` is the plain-Python definition;
`hash_texts()` finds the same words on the texts' code points (UTF-32) and hashes each as a polynomial
in its code points (prefix sums, mod 2^64), finished by splitmix64 — no Python work per word, and the
same hashes in every process.
"""

from __future__ import annotations

import re
import sys
import unicodedata

import numpy as np

_PUNCT = re.compile(r"[^\w\s]|_")
# The same rule for ASCII as a byte table (a regex over every character is ~5x slower).
_NOT_WORD = bytes(b for b in range(128) if not (chr(b).isalnum() or chr(b).isspace()))
_ASCII = bytes.maketrans(_NOT_WORD, b" " * len(_NOT_WORD))
_R = np.uint64(0x100000001B3)  # odd: invertible mod 2^64
_R_INV = np.uint64(pow(int(_R), -1, 1 << 64))
_ROLL = np.uint64(0x9E3779B97F4A7C15)  # n-gram step: h = h·ROLL + word (odd, so a bijection of h)
_ROLL_INT = int(_ROLL)
_MASK = (1 << 64) - 1
_cache: dict[str, np.ndarray] = {}


def words(text: str) -> list[str]:
    """NFKC, lowercase, every character that is neither alphanumeric nor space → space, split."""
    text = unicodedata.normalize("NFKC", text).lower()
    ws = text.encode("utf-8", "surrogatepass").translate(_ASCII).decode("utf-8", "surrogatepass").split()
    if all(map(str.isalnum, ws)):
        return ws
    return [part for w in ws for part in ((w,) if w.isalnum() else _PUNCT.sub(" ", w).split())]


def normalise(text: str) -> str:
    return " ".join(words(text))


def _word_table() -> np.ndarray:
    """is-alphanumeric for every code point (built once, ~1 MB)."""
    if "table" not in _cache:
        _cache["table"] = np.fromiter((chr(c).isalnum() for c in range(sys.maxunicode + 1)), dtype=bool,
                                      count=sys.maxunicode + 1)
    return _cache["table"]


def _powers(n: int) -> tuple[np.ndarray, np.ndarray]:
    """R^j and R^-j (mod 2^64) for j < n, grown by doubling and kept."""
    if len(_cache.get("pow", ())) < n:
        size = max(1 << 16, 1 << (n - 1).bit_length())
        _cache["pow"] = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, _R, dtype=np.uint64)], dtype=np.uint64)
        _cache["inv"] = np.cumprod(np.r_[np.uint64(1), np.full(size - 1, _R_INV, dtype=np.uint64)],
                                   dtype=np.uint64)
    return _cache["pow"], _cache["inv"]


def _mix(x: np.ndarray) -> np.ndarray:
    """splitmix64's finaliser: spreads every input bit over the whole word."""
    x = x ^ (x >> np.uint64(30))
    x = x * np.uint64(0xBF58476D1CE4E5B9)
    x = x ^ (x >> np.uint64(27))
    x = x * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _spans(values: np.ndarray, starts: np.ndarray, ends: np.ndarray) -> np.ndarray:
    """For each span [start, end) of `values`: sum of values[j]·R^(j−start) mod 2^64."""
    pw, inv = _powers(len(values) + 1)
    prefix = np.zeros(len(values) + 1, dtype=np.uint64)
    np.cumsum(values.astype(np.uint64) * pw[:len(values)], out=prefix[1:])
    return (prefix[ends] - prefix[starts]) * inv[starts]


def hash_texts(texts: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """The word hashes of all texts, concatenated, and how many words each text has."""
    norm = [unicodedata.normalize("NFKC", t).lower() for t in texts]
    points = np.frombuffer(" ".join(norm).encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
    is_word = np.zeros(len(points) + 2, dtype=np.int8)
    is_word[1:-1] = _word_table()[points]
    edge = np.diff(is_word)
    starts, ends = np.flatnonzero(edge == 1), np.flatnonzero(edge == -1)
    hashes = _mix(_spans(points, starts, ends))
    offsets = np.cumsum(np.fromiter((len(t) + 1 for t in norm), dtype=np.int64, count=len(norm)))
    counts = np.diff(np.searchsorted(starts, np.r_[0, offsets]))
    return hashes, counts


def text_keys(hashes: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """One key per text from its word hashes: equal exactly when the normalised texts are equal."""
    bounds = np.r_[0, np.cumsum(counts)]
    return _mix(_spans(hashes, bounds[:-1], bounds[1:]) + counts.astype(np.uint64))


def roll_step(h: np.ndarray, hashes: np.ndarray, k: int) -> np.ndarray:
    """From the (k−1)-word window hashes to the k-word ones."""
    return h[:-1] * _ROLL + hashes[k - 1:]


def roll(hashes: np.ndarray, k: int) -> np.ndarray:
    """Hashes of every k-word window (position i covers words i..i+k−1)."""
    h = hashes
    for j in range(2, k + 1):
        h = roll_step(h, hashes, j)
    return h


def seq_hash(hashes) -> int:
    """`roll` of one whole sequence, in Python ints (for a handful of short fields)."""
    h = 0
    for x in hashes:
        h = (h * _ROLL_INT + int(x)) & _MASK
    return h
