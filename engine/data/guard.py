"""The contamination guard: drop training examples that share word 13-grams or whole prompts with test items.

Texts are normalised (NFKC, lowercase; a word is a run of letters and digits, so punctuation and
symbols separate words) and every word becomes a 64-bit hash (engine/data/wordhash.py); an n-gram rolls
its words' hashes into one uint64 (h = h·P + w mod 2^64). The test side is one sorted numpy array of
keys; the training side is checked a chunk at a time with a bitset prefilter and `np.searchsorted`,
never a Python loop per word or n-gram.
(Two different n-grams share a 64-bit hash with odds of about 1e-19 per pair: a false overlap is
possible in principle and never seen; a missed one is not possible.)

An example overlaps a test item when, in any of its texts:
- a normalised text equals the item's normalised prompt (an exact duplicate), or
- it shares a word n-gram with one of the item's content fields of at least n words, or
- (items whose fields are all shorter than n words, e.g. 8TAGS titles) every field of the item occurs
  in it verbatim, word for word — items with fewer than `min_words` words in all take only the exact test.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from engine.data.wordhash import hash_texts, roll, roll_step, seq_hash, text_keys
from engine.data.wordhash import normalise, words  # noqa: F401  (the guard's word rule, used by other builders)

NGRAM = 13
MIN_WORDS = 4
METHOD = ("word {n}-grams after NFKC, lowercase, punctuation and symbols stripped, whitespace collapsed; "
          "exact duplicates of normalised prompts; items with every field shorter than {n} words: all fields found "
          "verbatim (items under {m} words: exact duplicates only)")
_CHUNK_WORDS = 1 << 18  # words cut into n-grams at once: bounds the temporary arrays
_CHUNK_CHARS = 1 << 18  # characters hashed at once (test items or training texts): the same


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
        self.item_set: list[int] = []
        self._need: list[int] = []
        self._small: tuple[list, list, list] = ([], [], [])  # exact and short-field keys: key, item, length
        self._long, self._long_items = [], []  # n-gram keys and their items, one array per batch of fields
        self._pending: tuple[list, list] = ([], [])  # word hashes of long fields not yet cut, their items
        batch, size = [], 0
        for s, gset in enumerate(sets):
            for item in gset.items:
                batch.append((s, item))
                size += sum(map(len, item.exact)) + sum(map(len, item.fields))
                if size >= _CHUNK_CHARS:
                    self._add_items(batch)
                    batch, size = [], 0
        if batch:
            self._add_items(batch)
        if self._pending[0]:
            self._add_ngrams(*self._pending)
        self.item_set = np.array(self.item_set, dtype=np.int32)
        self.item_need = np.array(self._need, dtype=np.int32)  # short-field keys an example must hit (0: n-grams)
        self._sort(*self._small)
        del self._small, self._need, self._pending
        self.lengths = sorted(set(self.tables) - {0})

    def _add_items(self, batch: list[tuple[int, GuardItem]]) -> None:
        """Keys of a batch of items: exact prompts, n-grams of long fields, whole short fields."""
        n = self.n
        hashes, counts = hash_texts([t for _, item in batch for t in (*item.exact, *item.fields)])
        exact = text_keys(hashes, counts).tolist()
        bounds = np.r_[0, np.cumsum(counts)].tolist()
        keys, key_items, key_lens = self._small
        t = 0
        for s, item in batch:
            g = len(self.item_set)
            self.item_set.append(s)
            for _ in item.exact:
                if bounds[t + 1] - bounds[t] >= self.min_words:  # a one-word label is no evidence of a leak
                    keys.append(exact[t])
                    key_items.append(g)
                    key_lens.append(0)
                t += 1
            fields = [hashes[bounds[j]:bounds[j + 1]] for j in range(t, t + len(item.fields)) if bounds[j + 1] > bounds[j]]
            t += len(item.fields)
            if any(len(f) >= n for f in fields):
                for f in fields:
                    if len(f) >= n:
                        self._pending[0].append(f)
                        self._pending[1].append(g)
                self._need.append(0)
                continue
            distinct = {(seq_hash(f), len(f)) for f in fields} if sum(map(len, fields)) >= self.min_words else set()
            self._need.append(len(distinct))
            for h, k in sorted(distinct):
                keys.append(h)
                key_items.append(g)
                key_lens.append(k)
        if sum(map(len, self._pending[0])) >= _CHUNK_WORDS:
            self._add_ngrams(*self._pending)
            self._pending = ([], [])

    def _add_ngrams(self, hashes: list[np.ndarray], owners: list[int]) -> None:
        """Cut a batch of long fields (their word hashes) into n-gram keys, each with its item."""
        lengths = np.fromiter(map(len, hashes), dtype=np.int64, count=len(hashes))
        h = roll(np.concatenate(hashes), self.n)
        valid = np.arange(len(h)) + self.n <= np.repeat(np.cumsum(lengths), lengths)[:len(h)]
        self._long.append(h[valid])
        self._long_items.append(np.repeat(np.array(owners, dtype=np.int32), lengths)[:len(h)][valid])

    def _sort(self, keys: list[int], key_item: list[int], key_len: list[int]) -> None:
        """One `_Table` per key length (0: exact prompts), each sorted, duplicates dropped.

        One array is rebuilt at a time, so at most one extra copy is alive (the build's memory peak).
        """
        count = sum(map(len, self._long))
        k = np.concatenate([np.array(keys, dtype=np.uint64), *self._long])
        self._long = []
        i = np.concatenate([np.array(key_item, dtype=np.int32), *self._long_items])
        self._long_items = []
        length = np.concatenate([np.array(key_len, dtype=np.uint8), np.full(count, self.n, dtype=np.uint8)])
        # Stable: equal hashes keep insertion order, so an item's repeats of one n-gram end up side by side.
        order = np.argsort(k, kind="stable")
        k = k[order]
        i = i[order]
        length = length[order]
        del order
        keep = np.ones(len(k), dtype=bool)  # one key per (hash, length, item): repeated n-grams go
        keep[1:] = (k[1:] != k[:-1]) | (length[1:] != length[:-1]) | (i[1:] != i[:-1])
        self.tables = {}
        for size in np.unique(length).tolist():
            mine = keep & (length == size)
            self.tables[size] = _Table(k[mine], i[mine])

    def check(self, examples: list[list[str]], progress: Callable[[int, int], None] | None = None) -> "GuardResult":
        """Which sets each example (a list of its texts) overlaps."""
        result = GuardResult(self, len(examples))
        start = 0
        while start < len(examples):
            stop, budget, texts, owners = start, 0, [], []
            while stop < len(examples) and (budget < _CHUNK_CHARS or stop == start):
                texts += examples[stop]
                owners += [stop] * len(examples[stop])
                budget += sum(map(len, examples[stop]))
                stop += 1
            self._check_chunk(texts, np.array(owners, dtype=np.int64), result)
            start = stop
            if progress:
                progress(start, len(examples))
        return result

    def _check_chunk(self, texts: list[str], owners: np.ndarray, result: "GuardResult") -> None:
        w, counts = hash_texts(texts)
        pairs = []  # (example, item) overlaps
        if 0 in self.tables:
            long_enough = np.flatnonzero(counts >= self.min_words)
            at, item, _ = self.tables[0].lookup(text_keys(w, counts)[long_enough])
            pairs.append(np.stack([owners[long_enough[at]], item], 1))
        short = []  # (example, item, key) hits of short fields
        ends = np.repeat(np.cumsum(counts), counts)
        owner_pos = np.repeat(owners, counts)
        h = w
        for k in range(1, (self.lengths[-1] if self.lengths else 0) + 1):
            if k > 1:
                h = roll_step(h, w, k)
            if k not in self.lengths:
                continue
            at, item, key = self.tables[k].lookup(h)
            inside = at + k <= ends[at]
            example, item = owner_pos[at[inside]], item[inside]
            if k == self.n:
                pairs.append(np.stack([example, item], 1))
            else:
                short.append(np.stack([example, item, key[inside].view(np.int64)], 1))
        if short:
            hits = np.unique(np.concatenate(short), axis=0)
            ex_item, hit_counts = np.unique(hits[:, :2], axis=0, return_counts=True)
            pairs.append(ex_item[hit_counts >= self.item_need[ex_item[:, 1]]])
        if pairs:
            result.add(np.concatenate(pairs))


class _Table:
    """The sorted keys of one length with the item of each, and a bitset over their top bits that
    turns away almost every query before the binary search."""

    def __init__(self, keys: np.ndarray, items: np.ndarray):
        self.keys, self.items = keys, items
        bits = max(16, int(len(keys) * 32).bit_length())  # ≤ 1/32 of absent queries pass the bitset
        self.shift = np.uint64(64 - bits)
        self.bitset = np.zeros(1 << (bits - 6), dtype=np.uint64)
        for start in range(0, len(keys), _CHUNK_WORDS):  # in slices: the temporaries stay small
            pos = keys[start:start + _CHUNK_WORDS] >> self.shift  # sorted keys: sorted positions
            word, bit = (pos >> np.uint64(6)).astype(np.intp), np.left_shift(np.uint64(1), pos & np.uint64(63))
            first = np.flatnonzero(np.r_[True, word[1:] != word[:-1]])
            self.bitset[word[first]] |= np.bitwise_or.reduceat(bit, first)

    def lookup(self, h: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """For every (position in `h`, item) whose hash is a key: the position, the item and the hash."""
        pos = h >> self.shift
        maybe = np.flatnonzero((self.bitset[(pos >> np.uint64(6)).astype(np.intp)] >> (pos & np.uint64(63)))
                               & np.uint64(1))
        left = np.searchsorted(self.keys, h[maybe], "left")
        found = self.keys[np.minimum(left, len(self.keys) - 1)] == h[maybe]
        maybe, left = maybe[found], left[found]
        counts = np.searchsorted(self.keys, h[maybe], "right") - left  # a hash shared by several items
        at = np.repeat(maybe, counts)
        key = np.repeat(left - np.cumsum(counts) + counts, counts) + np.arange(counts.sum())
        return at, self.items[key], self.keys[key]


@dataclass
class GuardResult:
    """Per example, the sets it overlaps; per set, the items hit."""

    index: GuardIndex
    checked: int
    hits: dict[int, set[int]] = field(default_factory=dict)  # example → set indices
    items_hit: dict[int, set[int]] = field(default_factory=dict)  # set index → global item indices

    def add(self, pairs: np.ndarray) -> None:
        if not len(pairs):
            return
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
