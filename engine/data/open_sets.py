"""Loaders of the open sets the plan names, from the hub (through `datasets`) or a local file of the same shape:
Aya (multilingual, language-aware), Dolly-15k (categories → skills), OASST (the best-ranked assistant path of
each message tree, per language), OpenMathInstruct-2 (open-model math solutions); and a user's own rows.

Each loader turns raw rows into candidates {row, skill, language, messages} and knows its set's licence and
provenance, so the replay report records them without the operator typing them.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from typing import Callable

from engine.data.examples import to_messages
from engine.data.sources import SKILLS, SourceSpec
from engine.datafiles import read_rows
from engine.errors import SpecError

# Dolly's eight categories; closed QA answers from a given passage (reading a context, the long-context skill).
DOLLY_SKILLS = {"open_qa": "en_knowledge", "general_qa": "chat", "classification": "instruction",
                "closed_qa": "summarisation", "summarization": "summarisation", "information_extraction":
                "structured_output", "brainstorming": "chat", "creative_writing": "chat"}
# ISO 639-3 codes and English names (Aya's `language_code` / `language`) of languages people replay in.
_ISO3 = {"eng": "en", "deu": "de", "spa": "es", "fra": "fr", "ukr": "uk", "pol": "pl", "ita": "it", "por": "pt",
         "nld": "nl", "rus": "ru", "ces": "cs", "jpn": "ja", "zho": "zh", "kor": "ko", "tur": "tr", "ara": "ar"}
_NAMES = {"english": "en", "german": "de", "spanish": "es", "french": "fr", "ukrainian": "uk", "polish": "pl"}


def language_code(*values: str | None) -> str | None:
    """A two-letter code from 'en', 'pt-BR', 'eng' or 'English' (the first value that names one)."""
    for value in values:
        if not value:
            continue
        v = str(value).strip().lower().replace("_", "-").split("-")[0]
        code = v if len(v) == 2 else _ISO3.get(v) or _NAMES.get(v)
        if code:
            return code
    return None


def _multilingual(language: str) -> str:
    return "chat" if language == "en" else "multilingual"


def _aya(rows: list[dict], src: SourceSpec, where: Callable[[int], str]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        lang = language_code(row.get("language_code"), row.get("language"))
        if lang not in src.languages or not _text(row, "inputs") or not _text(row, "targets"):
            continue
        out.append({"row": i, "skill": "multilingual", "language": lang,
                    "messages": [{"role": "user", "content": row["inputs"]},
                                 {"role": "assistant", "content": row["targets"]}]})
    return out


def _dolly(rows: list[dict], src: SourceSpec, where: Callable[[int], str]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        category = row.get("category")
        if category not in DOLLY_SKILLS:
            raise SpecError(f"{where(i)}: unknown Dolly category {category!r} (known: {', '.join(DOLLY_SKILLS)})")
        out.append({"row": i, "skill": DOLLY_SKILLS[category], "language": "en",
                    "messages": to_messages(row, where(i))})
    return out


def _rank(message: dict) -> tuple:
    """Best first: ranked replies by rank (0 is the most preferred), then unranked ones in file order."""
    rank = message.get("rank")
    return (rank is None, rank if rank is not None else 0)


def _oasst(rows: list[dict], src: SourceSpec, where: Callable[[int], str]) -> list[dict]:
    """One conversation per tree: from the root prompt, always the best-ranked reply, down to the last answer."""
    children: dict[str, list[dict]] = defaultdict(list)
    roots = []
    for i, row in enumerate(rows):
        if row.get("deleted") or row.get("review_result") is False or row.get("synthetic"):
            continue
        if row.get("role") not in ("prompter", "assistant") or not _text(row, "text"):
            raise SpecError(f"{where(i)}: an OASST message needs role prompter|assistant and a text")
        row = {**row, "_row": i}
        if row.get("parent_id"):
            children[row["parent_id"]].append(row)
        elif row["role"] == "prompter":
            roots.append(row)
    out = []
    for root in roots:
        lang = language_code(root.get("lang"))
        if lang not in src.languages:
            continue
        path = [root]
        while children.get(path[-1]["message_id"]):
            path.append(sorted(children[path[-1]["message_id"]], key=_rank)[0])
        if path[-1]["role"] != "assistant":
            path.pop()
        if len(path) < 2:
            continue
        out.append({"row": root["_row"], "skill": _multilingual(lang), "language": lang,
                    "messages": [{"role": "user" if m["role"] == "prompter" else "assistant", "content": m["text"]}
                                 for m in path]})
    return out


def _openmath(rows: list[dict], src: SourceSpec, where: Callable[[int], str]) -> list[dict]:
    """Open-model solutions; the set holds many solutions per problem, the first one is kept."""
    seen, out = set(), []
    for i, row in enumerate(rows):
        problem, solution = _text(row, "problem"), _text(row, "generated_solution")
        if not problem or not solution or problem in seen:
            continue
        seen.add(problem)
        out.append({"row": i, "skill": "math", "language": "en",
                    "messages": [{"role": "user", "content": problem}, {"role": "assistant", "content": solution}]})
    return out


def _rows(rows: list[dict], src: SourceSpec, where: Callable[[int], str]) -> list[dict]:
    out = []
    for i, row in enumerate(rows):
        skill = row.get("skill")
        if skill is not None and skill not in SKILLS:
            raise SpecError(f"{where(i)}: unknown skill {skill!r} (known: {', '.join(SKILLS)})")
        lang = language_code(row.get("language"), row.get("lang"))
        out.append({"row": i, "skill": skill, "language": lang or "en", "messages": to_messages(row, where(i))})
    return out


def _text(row: dict, key: str) -> str | None:
    value = row.get(key)
    return value if isinstance(value, str) and value.strip() else None


@dataclass(frozen=True)
class Loader:
    convert: Callable[[list[dict], SourceSpec, Callable[[int], str]], list[dict]]
    columns: frozenset[str]  # the columns that identify the set's shape
    hf_ids: tuple[str, ...] = ()
    split: str = "train"
    stream: bool = False  # read only the first max_rows rows (huge sets whose rows stand alone)
    licence: str | None = None
    provenance: str | None = None


LOADER_TABLE = {
    "aya": Loader(_aya, frozenset({"inputs", "targets", "language"}), ("CohereForAI/aya_dataset",
                                                                       "CohereLabs/aya_dataset"),
                  licence="apache-2.0", provenance="human-written prompts and completions by Aya annotators "
                                                   "(Cohere For AI, 2024), 65 languages"),
    "dolly": Loader(_dolly, frozenset({"instruction", "context", "response", "category"}),
                    ("databricks/databricks-dolly-15k",), licence="CC-BY-SA-3.0",
                    provenance="human-written by Databricks employees (2023), told not to use generative AI; "
                               "some contexts from Wikipedia"),
    "oasst": Loader(_oasst, frozenset({"message_id", "parent_id", "role", "text"}),
                    ("OpenAssistant/oasst1", "OpenAssistant/oasst2"), licence="apache-2.0",
                    provenance="human-written, human-ranked conversation trees of OpenAssistant volunteers (LAION); "
                               "best-ranked reply path per tree"),
    "openmath": Loader(_openmath, frozenset({"problem", "generated_solution"}), ("nvidia/OpenMathInstruct-2",),
                       split="train_1M", stream=True, licence="CC-BY-4.0",
                       provenance="NVIDIA; GSM8K/MATH train problems and augmentations with solutions generated by "
                                  "Llama-3.1-405B-Instruct (open weights; the Llama 3.1 licence covers its outputs)"),
}
ROW_SHAPES = "messages, or prompt/instruction + response/output"


def detect(src: SourceSpec, columns: set[str] | None) -> str:
    """The loader for a source: declared, else from its hub id, else from its columns."""
    if src.loader != "auto":
        return src.loader
    if src.hf:
        found = next((n for n, ld in LOADER_TABLE.items() if src.hf in ld.hf_ids), None)
        if found:
            return found
    if columns is not None:
        found = next((n for n, ld in LOADER_TABLE.items() if ld.columns <= columns), None)
        if found:
            return found
        if "messages" in columns or ({"prompt", "instruction", "question"} & columns
                                     and {"response", "output", "answer", "completion"} & columns):
            return "rows"
        shapes = "; ".join(f"{n}: {', '.join(sorted(ld.columns))}" for n, ld in LOADER_TABLE.items())
        raise SpecError(f"{src.origin}: source {src.name!r}: columns {', '.join(sorted(columns))} fit no loader "
                        f"(expected {ROW_SHAPES}; or {shapes})")
    return "rows"


def _hub_rows(src: SourceSpec, loader: Loader | None) -> tuple[list[dict], str]:
    split = src.split or (loader.split if loader else "train")
    name = f"{src.origin}:{split}"
    try:
        import datasets

        if loader is not None and loader.stream:
            data = datasets.load_dataset(src.hf, src.config, split=split, streaming=True)
            rows = [dict(r) for _, r in zip(range(src.max_rows), data)]
        else:
            rows = datasets.load_dataset(src.hf, src.config, split=split).to_list()
    except Exception as e:  # offline boxes, unknown ids, missing splits: all need the same advice
        raise SpecError(f"{name}: source {src.name!r}: cannot load ({e.__class__.__name__}: {str(e)[:200]}); "
                        "offline, set `file` to a local copy with the same columns") from None
    if not rows:
        raise SpecError(f"{name}: source {src.name!r}: no rows")
    return rows, name


def load_source(src: SourceSpec) -> tuple[list[dict], dict]:
    """The source's candidates (skill filled in) and its record: loader, origin, licence, provenance."""
    if src.hf:
        known = LOADER_TABLE.get(detect(src, None))
        rows, origin = _hub_rows(src, known)
    else:
        rows, origin = read_rows(src.file), src.file
    name = detect(src, set(rows[0]))
    loader = LOADER_TABLE.get(name)
    licence = src.licence or (loader.licence if loader else None)
    provenance = src.provenance or (loader.provenance if loader else None)
    if not licence or not provenance:
        raise SpecError(f"{origin}: source {src.name!r}: a set of your own needs `licence` and `provenance`")
    convert = loader.convert if loader else _rows
    kept: dict[str, int] = defaultdict(int)
    candidates = []
    for c in convert(rows, src, lambda i: f"{origin}: row {i + 1}"):
        kept[c["language"]] += 1
        if kept[c["language"]] <= src.max_rows:  # per language, so one language cannot crowd out the rest
            candidates.append(c)
    for c in candidates:  # a row's own `skill` wins over the source's; the source's wins over a loader's mapping
        c["skill"] = (src.skill or c["skill"]) if loader else (c["skill"] or src.skill)
        if c["skill"] is None:
            raise SpecError(f"{origin}: row {c['row'] + 1}: no `skill` (add the field, or set the source's skill)")
    record = {"name": src.name, "kind": "open_set" if loader else "local", "loader": name, "origin": origin,
              "licence": licence, "provenance": provenance}
    return candidates, record
