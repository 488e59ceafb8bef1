"""Guard throughput: 100k training prompts against 50k gate items, hashed numpy index vs plain Python sets.

    python bench/data_guard.py [--train 100000] [--items 50000] [--seed 0]

Both implementations apply the same rules (engine/data/guard.py: word 13-grams, exact prompts, short
items by all fields) to the same synthetic data and must drop the same examples. Prints, for each,
index build and check seconds, training prompts/s, and peak traced memory (tracemalloc, in a second
pass so it does not slow the timed one); then the ratios (goal ≥ 3× faster, ≤ ½ the memory).
"""

from __future__ import annotations

import argparse
import gc
import json
import sys
import time
import tracemalloc
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.guard import MIN_WORDS, NGRAM, GuardIndex, GuardItem, GuardSet, words  # noqa: E402


class PlainGuard:
    """The straightforward version: dicts keyed by word tuples (13-grams, short fields) and by normalised
    prompts; every window of every training text is cut into a tuple and looked up."""

    def __init__(self, sets: list[GuardSet], n: int = NGRAM, min_words: int = MIN_WORDS):
        self.n = n
        self.ngrams: dict[tuple, set[int]] = {}  # 13-gram → sets
        self.exact: dict[str, set[int]] = {}  # normalised prompt → sets
        self.short: dict[tuple, set[tuple[int, int]]] = {}  # short field → (set, item) needing it
        self.need: dict[tuple[int, int], int] = {}
        for s, gset in enumerate(sets):
            for i, item in enumerate(gset.items):
                for text in item.exact:
                    ws = words(text)
                    if len(ws) >= min_words:
                        self.exact.setdefault(" ".join(ws), set()).add(s)
                fields = [tuple(w) for w in map(words, item.fields) if w]
                if any(len(f) >= n for f in fields):
                    for f in fields:
                        for j in range(len(f) - n + 1):
                            self.ngrams.setdefault(f[j:j + n], set()).add(s)
                elif sum(map(len, fields)) >= min_words:
                    self.need[s, i] = len(set(fields))
                    for f in set(fields):
                        self.short.setdefault(f, set()).add((s, i))
        self.lengths = sorted({len(f) for f in self.short})

    def check(self, examples: list[list[str]]) -> dict[int, set[int]]:
        hits: dict[int, set[int]] = {}
        for e, texts in enumerate(examples):
            found: set[int] = set()
            fields: dict[tuple[int, int], set[tuple]] = {}
            for text in texts:
                ws = words(text)
                found.update(self.exact.get(" ".join(ws), ()))
                for j in range(len(ws) - self.n + 1):
                    found.update(self.ngrams.get(tuple(ws[j:j + self.n]), ()))
                for k in self.lengths:
                    for j in range(len(ws) - k + 1):
                        window = tuple(ws[j:j + k])
                        for owner in self.short.get(window, ()):
                            fields.setdefault(owner, set()).add(window)
            found.update(s for (s, i), got in fields.items() if len(got) >= self.need[s, i])
            if found:
                hits[e] = found
        return hits


def make_data(n_train: int, n_items: int, seed: int) -> tuple[list[GuardSet], list[list[str]], int]:
    """Five gates (three of passages + questions, two of short titles) and training prompts, some of
    which carry a planted 13-30-word span, a whole short item, or a gate prompt verbatim."""
    rnd = np.random.default_rng(seed)
    syllables = ["ka", "to", "mi", "rze", "sz", "no", "wa", "ły", "ść", "pro", "dzi", "en", "ta", "lo", "ją", "ru"]
    vocab = sorted({"".join(rnd.choice(syllables, rnd.integers(2, 5))) for _ in range(60000)})
    vocab += [w.capitalize() for w in vocab[:2000]] + [w + "," for w in vocab[:3000]] + [w + "." for w in vocab[:3000]]
    vocab = np.array(vocab, dtype=object)[rnd.permutation(len(vocab))]
    cdf = np.cumsum(1 / np.arange(1, len(vocab) + 1) ** 0.9)  # Zipf-like word frequencies
    stream = np.searchsorted(cdf, rnd.random(150 * (n_items + n_train)) * cdf[-1]).astype(np.int32)
    at = 0

    def text(lo: int, hi: int) -> str:
        nonlocal at
        k = int(rnd.integers(lo, hi + 1))
        at += k
        return " ".join(vocab[stream[at - k:at]])

    sets = []
    per_gate = n_items // 5
    for g in range(5):
        items = []
        for _ in range(per_gate):
            if g < 3:
                passage, question = text(40, 150), text(6, 12)
                items.append(GuardItem([f'Fragment: "{passage}"\nPytanie: "{question}"\nOdpowiedź:'],
                                       [passage, question]))
            else:
                title = text(5, 12)
                items.append(GuardItem([f'Tytuł: "{title}"\nKategoria:'], [title]))
        sets.append(GuardSet(f"gate{g}", "synthetic", items))
    examples, planted = [], 0
    for e in range(n_train):
        body = text(20, 200)
        roll = rnd.random()
        item = sets[rnd.integers(5)].items[rnd.integers(per_gate)]
        if roll < 0.01:
            ws = item.fields[0].split()
            span = int(rnd.integers(NGRAM, min(30, len(ws)) + 1)) if len(ws) >= NGRAM else len(ws)
            start = int(rnd.integers(0, len(ws) - span + 1))
            body = f"{body} {' '.join(ws[start:start + span])} {text(5, 20)}"
            planted += 1
        elif roll < 0.013:
            body = item.exact[0]
            planted += 1
        examples.append([f"Polecenie: {body}\nOdpowiedź:"])
    return sets, examples, planted


def run_numpy(sets, examples):
    index = GuardIndex(sets)
    built = time.perf_counter()
    hits = index.check(examples).hits
    return built, hits


def run_plain(sets, examples):
    guard = PlainGuard(sets)
    built = time.perf_counter()
    return built, guard.check(examples)


def peak_mb(fn, sets, examples) -> float:
    gc.collect()
    tracemalloc.start()
    result = fn(sets, examples)
    peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    del result
    return peak / 2**20


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    t = time.perf_counter()
    sets, examples, planted = make_data(args.train, args.items, args.seed)
    n_words = sum(len(x[0].split()) for x in examples)
    print(f"data: {args.train} training prompts ({n_words} words), {args.items} gate items in 5 gates, "
          f"{planted} planted overlaps; made in {time.perf_counter() - t:.1f} s", flush=True)
    results = {}
    for name, fn in (("numpy index", run_numpy), ("plain sets", run_plain)):
        gc.collect()
        start = time.perf_counter()
        built, hits = fn(sets, examples)
        done = time.perf_counter()
        results[name] = {"build_s": built - start, "check_s": done - built, "total_s": done - start,
                         "items_per_s": args.train / (done - start), "dropped": len(hits),
                         "per_gate": [sum(s in v for v in hits.values()) for s in range(len(sets))], "hits": hits}
        del hits
        results[name]["peak_mb"] = peak_mb(fn, sets, examples)
        print(f"{name}: {json.dumps({k: v for k, v in results[name].items() if k != 'hits'})}", flush=True)
    fast, plain = results["numpy index"], results["plain sets"]
    assert fast.pop("hits") == plain.pop("hits"), "the two implementations disagree"
    print(f"\n| implementation | build s | check s | prompts/s | peak MB | dropped |\n|---|---:|---:|---:|---:|---:|")
    for name, r in results.items():
        print(f"| {name} | {r['build_s']:.1f} | {r['check_s']:.1f} | {r['items_per_s']:,.0f} | {r['peak_mb']:.0f} | "
              f"{r['dropped']} |")
    print(f"\nspeed: {fast['items_per_s'] / plain['items_per_s']:.1f}× (goal ≥ 3×); memory: "
          f"{fast['peak_mb'] / plain['peak_mb']:.2f}× (goal ≤ 0.5×); identical drops: yes")


if __name__ == "__main__":
    main()
