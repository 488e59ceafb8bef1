"""Guard throughput: 100k training prompts against 50k gate items, hashed numpy index vs plain Python sets.

    python bench/data_guard.py [--train 100000] [--items 50000] [--seed 0]

Both implementations apply the same rules (engine/data/guard.py: word 13-grams, exact prompts, short
items by all fields) to the same synthetic data and must drop the same examples. Each runs in its own
process; prints index build and check seconds, training prompts/s (build + check) and peak RSS above
the loaded data (Linux VmHWM, reset after loading), then the ratios (goal ≥ 3× faster, ≤ ½ the memory).
"""

from __future__ import annotations

import argparse
import gc
import hashlib
import json
import re
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from engine.data.guard import MIN_WORDS, NGRAM, GuardIndex, GuardItem, GuardSet  # noqa: E402
from engine.data.wordhash import words  # noqa: E402


class PlainGuard:
    """The straightforward version: dicts keyed by word tuples (13-grams, short fields) and by normalised
    prompts; every window of every training text is cut into a tuple and looked up. A 13-gram maps to a
    bitmask of the gates holding it (a small int: no object per entry)."""

    def __init__(self, sets: list[GuardSet], n: int = NGRAM, min_words: int = MIN_WORDS):
        self.n = n
        self.ngrams: dict[tuple, int] = {}  # 13-gram → bitmask of sets
        self.exact: dict[str, int] = {}  # normalised prompt → bitmask of sets
        self.short: dict[tuple, set[tuple[int, int]]] = {}  # short field → (set, item) needing it
        self.need: dict[tuple[int, int], int] = {}
        for s, gset in enumerate(sets):
            for i, item in enumerate(gset.items):
                for text in item.exact:
                    ws = words(text)
                    if len(ws) >= min_words:
                        key = " ".join(ws)
                        self.exact[key] = self.exact.get(key, 0) | 1 << s
                fields = [tuple(w) for w in map(words, item.fields) if w]
                if any(len(f) >= n for f in fields):
                    for f in fields:
                        for j in range(len(f) - n + 1):
                            self.ngrams[f[j:j + n]] = self.ngrams.get(f[j:j + n], 0) | 1 << s
                elif sum(map(len, fields)) >= min_words:
                    self.need[s, i] = len(set(fields))
                    for f in set(fields):
                        self.short.setdefault(f, set()).add((s, i))
        self.lengths = sorted({len(f) for f in self.short})

    def check(self, examples: list[list[str]]) -> dict[int, set[int]]:
        hits: dict[int, set[int]] = {}
        for e, texts in enumerate(examples):
            mask = 0
            fields: dict[tuple[int, int], set[tuple]] = {}
            for text in texts:
                ws = words(text)
                mask |= self.exact.get(" ".join(ws), 0)
                for j in range(len(ws) - self.n + 1):
                    mask |= self.ngrams.get(tuple(ws[j:j + self.n]), 0)
                for k in self.lengths:
                    for j in range(len(ws) - k + 1):
                        window = tuple(ws[j:j + k])
                        for owner in self.short.get(window, ()):
                            fields.setdefault(owner, set()).add(window)
            found = {s for s in range(mask.bit_length()) if mask >> s & 1}
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


def _rss_kb(field: str) -> int:
    return int(re.search(rf"{field}:\s+(\d+)", Path("/proc/self/status").read_text()).group(1))


def measure(impl: str, n_train: int, n_items: int, seed: int) -> dict:
    """One implementation in this process: build and check times, and peak RSS above the loaded data."""
    sets, examples, planted = make_data(n_train, n_items, seed)
    gc.collect()
    before = _rss_kb("VmRSS")
    Path("/proc/self/clear_refs").write_text("5")  # resets the peak (VmHWM) to the current RSS
    start = time.perf_counter()
    if impl == "numpy":
        index = GuardIndex(sets)
        built = time.perf_counter()
        hits = index.check(examples).hits
    else:
        plain = PlainGuard(sets)
        built = time.perf_counter()
        hits = plain.check(examples)
    done = time.perf_counter()
    peak = _rss_kb("VmHWM") - before
    digest = hashlib.sha256(json.dumps(sorted((e, sorted(s)) for e, s in hits.items())).encode()).hexdigest()
    return {"build_s": built - start, "check_s": done - built, "total_s": done - start,
            "items_per_s": n_train / (done - start), "peak_mb": peak / 1024, "dropped": len(hits),
            "per_gate": [sum(s in v for v in hits.values()) for s in range(len(sets))], "planted": planted,
            "words": sum(len(x[0].split()) for x in examples), "hits_sha256": digest}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--train", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--impl", choices=["numpy", "plain"], help="(internal) measure one implementation here")
    args = parser.parse_args()
    if args.impl:
        print(json.dumps(measure(args.impl, args.train, args.items, args.seed)))
        return
    results = {}
    for impl in ("numpy", "plain"):  # each in a fresh process, so one's memory never counts for the other
        out = subprocess.run([sys.executable, __file__, "--impl", impl, "--train", str(args.train), "--items",
                              str(args.items), "--seed", str(args.seed)], check=True, capture_output=True, text=True)
        results[impl] = json.loads(out.stdout)
        print(f"{impl}: {out.stdout.strip()}", flush=True)
    fast, plain = results["numpy"], results["plain"]
    assert fast["hits_sha256"] == plain["hits_sha256"], "the two implementations disagree"
    print(f"\n{args.train} training prompts ({fast['words']} words) vs {args.items} gate items in 5 gates; "
          f"{fast['planted']} planted overlaps\n")
    print("| implementation | build s | check s | prompts/s | peak MB | dropped |\n|---|---:|---:|---:|---:|---:|")
    for name, r in (("numpy index", fast), ("plain sets", plain)):
        print(f"| {name} | {r['build_s']:.1f} | {r['check_s']:.1f} | {r['items_per_s']:,.0f} | {r['peak_mb']:.0f} | "
              f"{r['dropped']} |")
    print(f"\nspeed: {fast['items_per_s'] / plain['items_per_s']:.1f}x (goal >= 3x); memory: "
          f"{fast['peak_mb'] / plain['peak_mb']:.2f}x (goal <= 0.5x); identical drops: yes")


if __name__ == "__main__":
    from machine_load import reported_load

    with reported_load():
        main()
