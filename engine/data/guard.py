"""The contamination guard: drop training examples that share word 13-grams or whole prompts with test items.

Texts are normalised (NFKC, lowercase, every character that is not a letter, digit or space becomes a
space, whitespace collapsed) and split into words. Each word hashes to 64 bits and an n-gram rolls its words' hashes into one uint64
(h = h·P + w mod 2^64), so the test side is one sorted numpy array of keys and the training side is
checked a chunk at a time with a bitset prefilter and `np.searchsorted`, never a Python loop per n-gram.
(Two different n-grams share a 64-bit hash with odds of about 1e-19 per pair: a false overlap is
possible in principle and never seen; a missed one is not possible.)

An example overlaps a test item when, in any of its texts:
- a normalised text equals the item's normalised prompt (an exact duplicate), or
- it shares a word n-gram with one of the item's content fields of at least n words, or
- (items whose fields are all shorter than n words, e.g. 8TAGS titles) every field of the item occurs
  in it verbatim, word for word — items with fewer than `min_words` words in all take only the exact test.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

NGRAM = 13
MIN_WORDS = 4
METHOD = ("word {n}-grams after NFKC, lowercase, punctuation and symbols stripped, whitespace collapsed; "
          "exact duplicates of normalised prompts; items with every field shorter than {n} words: all fields found "
          "verbatim (items under {m} words: exact duplicates only)")
_PUNCT = re.compile(r"[^\w\s]|_")
# The same rule for ASCII as a byte table (a regex over every character is ~5x slower).
_ASCII = bytes.maketrans(bytes(b for b in range(128) if not (chr(b).isalnum() or chr(b).isspace())),
                         b" " * sum(1 for b in range(128) if not (chr(b).isalnum() or chr(b).isspace())))
_P = np.uint64(0x9E3779B97F4A7C15)  # odd, so the rolling step is a bijection of the previous hash
_P_INT = int(_P)
_MASK = (1 << 64) - 1
_CHUNK_WORDS = 1 << 18  # words per training chunk: bounds the word lists and temporary arrays


def words(text: str) -> list[str]:
    """NFKC, lowercase, every character that is neither alphanumeric nor space → space, split."""
    text = unicodedata.normalize("NFKC", text).lower()
    ws = text.encode("utf-8", "surrogatepass").translate(_ASCII).decode("utf-8", "surrogatepass").split()
    if all(map(str.isalnum, ws)):
        return ws
    return [part for w in ws for part in ((w,) if w.isalnum() else _PUNCT.sub(" ", w).split())]


def normalise(text: str) -> str:
    return " ".join(words(text))


def _hash_words(tokens: list[str]) -> np.ndarray:
    # str hashes are salted per process; keys and queries are always hashed in the same process.
    return np.fromiter(map(hash, tokens), dtype=np.int64, count=len(tokens)).view(np.uint64)


def _seq_hash(hashes) -> int:
    """The rolling hash of a whole word sequence, in Python ints (equal to what `_windows` computes)."""
    h = 0
    for x in hashes:
        h = (h * _P_INT + int(x)) & _MASK
    return h


@dataclass
class GuardItem:
    """One test item: the texts that count as exact duplicates (its prompt) and its content fields."""

    exact: list[str]
    fields: list[str]


@dataclass
class GuardSet:
    """The items of one gate (or one plain test file)."""

    name: str
    source: str
    items: list[GuardItem]


class GuardIndex:
    """Every key of every item of every set, sorted, with the item each key belongs to."""

    def __init__(self, sets: list[GuardSet], n: int = NGRAM, min_words: int = MIN_WORDS):
        self.sets, self.n, self.min_words = sets, n, min_words
        item_set, keys, key_item, key_len, need = [], [], [], [], []
        long_hashes, long_owner = [], []  # word hashes of every long field (not the words: memory)
        for s_index, gset in enumerate(sets):
            for item in gset.items:
                g = len(item_set)
                item_set.append(s_index)
                for text in item.exact:
                    ws = words(text)
                    if len(ws) >= min_words:  # a one-word label is no evidence of a leaked item
                        keys.append(hash(" ".join(ws)) & _MASK)
                        key_item.append(g)
                        key_len.append(0)
                field_words = [w for w in map(words, item.fields) if w]
                if any(len(w) >= n for w in field_words):
                    for w in field_words:
                        if len(w) >= n:
                            long_hashes.append(_hash_words(w))
                            long_owner.append(g)
                    need.append(0)
                    continue
                distinct = {(_seq_hash(_hash_words(w)), len(w)) for w in field_words}
                if sum(map(len, field_words)) < min_words:
                    distinct = set()
                need.append(len(distinct))
                for h, k in sorted(distinct):
                    keys.append(h)
                    key_item.append(g)
                    key_len.append(k)
        self.item_set = np.array(item_set, dtype=np.int32)
        self.item_need = np.array(need, dtype=np.int32)  # short-field keys an example must hit (0: n-gram rule)
        k_arr = np.array(keys, dtype=np.uint64)
        i_arr = np.array(key_item, dtype=np.int32)
        l_arr = np.array(key_len, dtype=np.uint8)
        if long_hashes:
            h, owner = self._long_keys(long_hashes, long_owner)
            k_arr, i_arr = np.concatenate([k_arr, h]), np.concatenate([i_arr, owner])
            l_arr = np.concatenate([l_arr, np.full(len(h), n, dtype=np.uint8)])
        order = np.lexsort((i_arr, l_arr, k_arr))
        k_arr, i_arr, l_arr = k_arr[order], i_arr[order], l_arr[order]
        keep = np.ones(len(k_arr), dtype=bool)  # one key per (hash, length, item): repeated n-grams go
        keep[1:] = (k_arr[1:] != k_arr[:-1]) | (l_arr[1:] != l_arr[:-1]) | (i_arr[1:] != i_arr[:-1])
        self.keys, self.key_item, self.key_len = k_arr[keep], i_arr[keep], l_arr[keep]
        self.lengths = sorted({int(k) for k in np.unique(self.key_len)} - {0})
        self._build_bitset()

    def _long_keys(self, hashes: list[np.ndarray], owners: list[int]) -> tuple[np.ndarray, np.ndarray]:
        lengths = np.fromiter(map(len, hashes), dtype=np.int64, count=len(hashes))
        w, ends = np.concatenate(hashes), np.repeat(np.cumsum(lengths), lengths)
        owner_pos = np.repeat(np.array(owners, dtype=np.int32), lengths)
        h = w.copy()
        for j in range(1, self.n):
            h = h[:-1] * _P + w[j:]
        starts = np.arange(len(h))
        valid = starts + self.n <= ends[:len(h)]
        return h[valid], owner_pos[:len(h)][valid]

    def _build_bitset(self) -> None:
        """A bitset over the top bits of the keys; since keys are sorted, so are their bit positions."""
        bits = max(16, int(len(self.keys) * 64).bit_length())  # ≤ 1/64 of queries pass falsely
        self._shift = np.uint64(64 - bits)
        self.bitset = np.zeros(1 << max(0, bits - 6), dtype=np.uint64)
        if len(self.keys):
            pos = self.keys >> self._shift
            word, bit = pos >> np.uint64(6), np.left_shift(np.uint64(1), pos & np.uint64(63))
            starts = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
            self.bitset[word[starts].astype(np.intp)] = np.bitwise_or.reduceat(bit, starts)

    def _lookup(self, h: np.ndarray, length: int) -> tuple[np.ndarray, np.ndarray]:
        """Positions in `h` whose hash is a key of this length, and the item of each (a position may repeat)."""
        pos = h >> self._shift
        maybe = np.flatnonzero((self.bitset[(pos >> np.uint64(6)).astype(np.intp)] >> (pos & np.uint64(63)))
                               & np.uint64(1))
        if not len(maybe):
            return maybe, maybe
        left = np.searchsorted(self.keys, h[maybe], "left")
        found = self.keys[np.minimum(left, len(self.keys) - 1)] == h[maybe]
        maybe, left = maybe[found], left[found]
        counts = np.searchsorted(self.keys, h[maybe], "right") - left
        at = np.repeat(maybe, counts)
        key = np.repeat(left - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        same = self.key_len[key] == length
        return at[same], key[same]

    def check(self, examples: list[list[str]], progress: Callable[[int, int], None] | None = None) -> "GuardResult":
        """Which sets each example (a list of its texts) overlaps."""
        result = GuardResult(self, len(examples))
        start = 0
        while start < len(examples):
            stop, budget = start, 0
            flat, lengths, owners, exact = [], [], [], []
            while stop < len(examples) and (budget < _CHUNK_WORDS or stop == start):
                for text in examples[stop]:
                    ws = words(text)
                    flat += ws
                    lengths.append(len(ws))
                    owners.append(stop)
                    exact.append(hash(" ".join(ws)) & _MASK)
                    budget += len(ws)
                stop += 1
            self._check_chunk(_hash_words(flat), np.array(lengths, dtype=np.int64), np.array(owners, dtype=np.int64),
                              exact, result)
            start = stop
            if progress:
                progress(start, len(examples))
        return result

    def _check_chunk(self, w: np.ndarray, lengths: np.ndarray, owners: np.ndarray, exact: list[int],
                     result: "GuardResult") -> None:
        pairs = []  # (example, item) overlaps
        if len(exact):
            at, key = self._lookup(np.array(exact, dtype=np.uint64), 0)
            pairs.append(np.stack([owners[at], self.key_item[key]], 1))
        short = []  # (example, item, key) hits of short fields
        ends = np.repeat(np.cumsum(lengths), lengths)
        owner_pos = np.repeat(owners, lengths)
        h = w.copy()
        for k in range(1, (self.lengths[-1] if self.lengths else 0) + 1):
            if k > 1:
                h = h[:-1] * _P + w[k - 1:]
            if k not in self.lengths:
                continue
            at, key = self._lookup(h, k)
            inside = at + k <= ends[at]
            at, key = at[inside], key[inside]
            example, item = owner_pos[at], self.key_item[key]
            if k == self.n:
                pairs.append(np.stack([example, item], 1))
            else:
                short.append(np.stack([example, item, key], 1))
        if short:
            hits = np.unique(np.concatenate(short), axis=0)
            ex_item, counts = np.unique(hits[:, :2], axis=0, return_counts=True)
            pairs.append(ex_item[counts >= self.item_need[ex_item[:, 1]]])
        if pairs:
            result.add(np.concatenate(pairs))


@dataclass
class GuardResult:
    """Per example, the sets it overlaps; per set, the items hit."""

    index: GuardIndex
    checked: int
    hits: dict[int, set[int]] = field(default_factory=dict)  # example → set indices
    items_hit: dict[int, set[int]] = field(default_factory=dict)  # set index → global item indices

    def add(self, pairs: np.ndarray) -> None:
        for example, item in np.unique(pairs, axis=0).tolist():
            s = int(self.index.item_set[item])
            self.hits.setdefault(example, set()).add(s)
            self.items_hit.setdefault(s, set()).add(item)

    def absorb(self, other: "GuardResult", ids: list[int]) -> None:
        """Add a later check of some of the same examples (`ids[i]` is the example `other` calls i)."""
        for example, found in other.hits.items():
            self.hits.setdefault(ids[example], set()).update(found)
        for s, items in other.items_hit.items():
            self.items_hit.setdefault(s, set()).update(items)

    def keep(self) -> list[bool]:
        return [i not in self.hits for i in range(self.checked)]

    def report(self, tags: list[dict] | None = None) -> dict:
        """The guard report: per set, overlapping examples (dropped) and items hit. No test text."""
        sets = self.index.sets
        per_set = [0] * len(sets)
        for found in self.hits.values():
            for s in found:
                per_set[s] += 1
        gates = [{"name": s.name, "source": s.source, "items": len(s.items), "overlap": per_set[i],
                  "items_hit": len(self.items_hit.get(i, ()))} for i, s in enumerate(sets)]
        dropped = [{"example": e, **({"source": tags[e]} if tags else {}),
                    "gates": [sets[s].name for s in sorted(found)]} for e, found in sorted(self.hits.items())]
        return {"method": METHOD.format(n=self.index.n, m=self.index.min_words), "ngram": self.index.n,
                "min_words": self.index.min_words, "checked": self.checked, "dropped": len(self.hits),
                "gates": gates, "dropped_examples": dropped,
                "summary": [f"{g['name']}: {g['overlap']} overlap ({g['items']} test items, {self.checked} training "
                            f"examples checked)" for g in gates]}
