"""Polish grammar and spelling of the subject's answers, per 100 words (lower is better).

`grammar`: LanguageTool through language-tool-python, against a server (`options.languagetool_url` or
$SLAYER_LANGUAGETOOL_URL) or a local install (Java plus a LanguageTool in language-tool-python's
download folder; nothing is ever downloaded here). Spelling matches (category TYPOS) are not grammar
errors. `spelling`: the Polish hunspell dictionary (Debian's hunspell-pl) through spylls; a different
metric with its own fingerprint, the offline stand-in the pl_grammar gate falls back to (`options.fallback`).
Words are runs of letters; an empty answer has no words and scores 0 (counted in the stats).
"""

from __future__ import annotations

import functools
import hashlib
import os
import re
import shutil
from pathlib import Path

from engine.errors import SpecError
from engine.gates.answers import generate_answers
from engine.gates.metrics import summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer

WORD = re.compile(r"[^\W\d_]+")
URL_ENV = "SLAYER_LANGUAGETOOL_URL"
DICTIONARY_DIRS = ("/usr/share/hunspell", "/usr/share/myspell/dicts", "/usr/share/myspell")
DICTIONARY_ENV = "SLAYER_HUNSPELL_DIR"
SKIPPED_CATEGORIES = ("TYPOS",)


def words(text: str) -> list[str]:
    return WORD.findall(text)


def per_100_words(errors: list[int], counts: list[int]) -> list[float]:
    return [100.0 * e / c if c else 0.0 for e, c in zip(errors, counts)]


def rate_output(name: str, errors: list[int], counts: list[int], indices: list[int], fingerprint: dict,
                extra: dict[str, list[int]] | None = None) -> ScoreOutput:
    """Per-item rates, their means, and totals in the stats (totals: errors per 100 words over all answers)."""
    per_item = {name: per_100_words(errors, counts)}
    for key, values in (extra or {}).items():
        per_item[key] = per_100_words(values, counts)
    metrics, stderr = summarize(per_item)
    total = sum(counts)
    stats = {"words": total, "errors": sum(errors), "empty_answers": counts.count(0),
             "pooled_per_100w": round(100.0 * sum(errors) / total, 4) if total else 0.0}
    samples = [{"index": i, "words": c, "errors": e} for i, c, e in zip(indices, counts, errors)]
    return ScoreOutput(metrics, stderr, per_item, samples=samples, stats=stats, fingerprint=fingerprint)


# ---- spelling: hunspell through spylls --------------------------------------------------------------

def find_dictionary(language: str) -> Path | None:
    """The hunspell dictionary stem (…/pl_PL, with .aff and .dic beside it), from $SLAYER_HUNSPELL_DIR or the
    system's folders."""
    dirs = ([os.environ[DICTIONARY_ENV]] if os.environ.get(DICTIONARY_ENV) else []) + list(DICTIONARY_DIRS)
    for folder in dirs:
        stem = Path(folder) / language
        if stem.with_suffix(".aff").is_file() and stem.with_suffix(".dic").is_file():
            return stem
    return None


@functools.lru_cache(maxsize=4)
def load_dictionary(stem: str):
    """A spylls dictionary; loading takes seconds, so once per process."""
    from spylls.hunspell import Dictionary

    return Dictionary.from_files(stem)


class SpellChecker:
    """Counts the words of a text the dictionary does not know (each distinct word looked up once)."""

    def __init__(self, language: str = "pl_PL"):
        stem = find_dictionary(language)
        if stem is None:
            raise SpecError(f"no hunspell dictionary {language} in {', '.join(DICTIONARY_DIRS)} or ${DICTIONARY_ENV} "
                            f"(Debian: apt-get install hunspell-{language.split('_')[0]})")
        self.stem, self.language = stem, language
        self.dictionary = load_dictionary(str(stem))
        self._known: dict[str, bool] = {}

    def is_known(self, word: str) -> bool:
        if word not in self._known:
            self._known[word] = bool(self.dictionary.lookup(word))
        return self._known[word]

    def misspelled(self, text: str) -> list[str]:
        return [w for w in words(text) if not self.is_known(w)]

    def fingerprint(self) -> dict:
        h = hashlib.sha256()
        for suffix in (".aff", ".dic"):
            h.update(self.stem.with_suffix(suffix).read_bytes())
        return {"checker": "hunspell (spylls)", "dictionary": self.language, "dictionary_hash": h.hexdigest()[:16]}


@scorer("spelling", version="1", metrics=lambda gate: {"spelling_errors_per_100w"})
def score_spelling(items, backend, settings: ScoreSettings) -> ScoreOutput:
    checker = SpellChecker(items.gate.options.get("dictionary", "pl_PL"))  # before generating: fail fast
    answers = generate_answers(items, backend, settings)
    counts = [len(words(a)) for a in answers]
    errors = [len(checker.misspelled(a)) for a in answers]
    return rate_output("spelling_errors_per_100w", errors, counts, items.indices, checker.fingerprint())


# ---- grammar: LanguageTool ----------------------------------------------------------------------------

def languagetool_url(gate) -> str | None:
    return gate.options.get("languagetool_url") or os.environ.get(URL_ENV) or None


def local_languagetool() -> Path | None:
    """A LanguageTool already in language-tool-python's download folder, when Java can run it."""
    folder = Path(os.environ.get("LTP_PATH") or Path.home() / ".cache" / "language_tool_python")
    found = sorted(folder.glob("LanguageTool-*")) if folder.is_dir() else []
    return found[-1] if found and shutil.which("java") else None


def languagetool_missing(gate) -> str | None:
    """Why the grammar scorer cannot run here (None: it can)."""
    if languagetool_url(gate) or local_languagetool():
        return None
    return f"no LanguageTool: set {URL_ENV} or options.languagetool_url, or install one locally"


@scorer("grammar", version="1", metrics=lambda gate: {"grammar_errors_per_100w", "languagetool_matches_per_100w"},
        unavailable=languagetool_missing)
def score_grammar(items, backend, settings: ScoreSettings) -> ScoreOutput:
    gate = items.gate
    why = languagetool_missing(gate)
    if why:
        raise SpecError(f"{gate.source}: gate {gate.name}: {why}")
    import language_tool_python

    answers = generate_answers(items, backend, settings)
    url = languagetool_url(gate)
    language = gate.options.get("language", "pl-PL")
    skipped = set(gate.options.get("skip_categories", SKIPPED_CATEGORIES))
    tool = language_tool_python.LanguageTool(language, remote_server=url) if url else \
        language_tool_python.LanguageTool(language)
    try:
        found = [tool.check(a) if a else [] for a in answers]
    finally:
        tool.close()
    counts = [len(words(a)) for a in answers]
    grammar = [sum(1 for m in matches if m.category not in skipped) for matches in found]
    fingerprint = {"checker": "languagetool", "languagetool": "remote" if url else local_languagetool().name,
                   "language": language, "skipped_categories": sorted(skipped)}
    return rate_output("grammar_errors_per_100w", grammar, counts, items.indices, fingerprint,
                       {"languagetool_matches_per_100w": [len(m) for m in found]})
