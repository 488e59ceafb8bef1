"""Where replay data comes from: every source declares (or its loader knows) a licence and a provenance; sets
made of OpenAI/Anthropic outputs (OpenHermes, UltraChat, Alpaca, ShareGPT, GPT-4 sets…) are refused by name
unless the operator overrides it, and rows whose answers carry closed-model boilerplate are dropped by content."""

from __future__ import annotations

import re
from typing import Literal

from pydantic import Field, model_validator

from engine.errors import SpecError
from engine.jobs import JobConfig

SKILLS = ("code", "math", "reasoning", "en_knowledge", "multilingual", "instruction", "summarisation",
          "structured_output", "safety", "chat")
# The plan's grid: examples per skill (≈ 300), the default quotas and the shipped prompts' counts.
GRID = {"code": 50, "math": 40, "reasoning": 30, "en_knowledge": 30, "multilingual": 50, "instruction": 30,
        "summarisation": 20, "structured_output": 20, "safety": 20, "chat": 20}
# The replay languages of the plan's multilingual skill (Polish is the target, not replay).
LANGUAGES = ("en", "de", "es", "fr", "uk")
LOADERS = ("auto", "rows", "aya", "dolly", "oasst", "openmath")

# Squashed (lowercase, letters and digits only) names of sets and models whose text is OpenAI/Anthropic output.
SYNTHETIC_MARKERS = ("openhermes", "ultrachat", "ultrafeedback", "alpaca", "sharegpt", "gpt4", "gpt35", "gpt3",
                     "chatgpt", "openai", "davinci", "anthropic", "claude", "wizardlm", "evolinstruct", "selfinstruct",
                     "openorca", "slimorca", "airoboros", "vicuna", "baize", "capybara", "lmsyschat", "unnatural")

# What closed models' answers say about themselves: a row whose answer says it came from there is dropped
# even when its set is declared human-written (people pasted such answers into OASST and Dolly-like sets).
_CLOSED = r"(?:OpenAI|Anthropic)"
BOILERPLATE = {
    "as_an_ai_language_model": re.compile(r"\bas an ai(?: language)? model\b", re.I),
    "self_identifies_as_closed_model": re.compile(
        r"\bI(?:'m| am) (?:ChatGPT|GPT-?[345](?:\.5)?|Claude)\b|\bmy name is (?:ChatGPT|Claude)\b", re.I),
    "made_by_openai_or_anthropic": re.compile(
        rf"\bI(?: was|'m| am)\b[^.\n]{{0,40}}\b(?:created|developed|trained|made|built|designed) by {_CLOSED}\b", re.I),
    "openai_or_anthropic_policy": re.compile(
        rf"\b{_CLOSED}(?:'s)? (?:content |usage |use[- ]case |safety )?(?:polic(?:y|ies)|guidelines)\b", re.I),
    # The same opener in the other replay languages.
    "as_an_ai_language_model_translated": re.compile(
        r"\bals (?:ein |eine )?(?:KI-Sprachmodell|KI-Modell|Sprachmodell)\b|\bcomo (?:un )?modelo de lenguaje\b"
        r"|\ben tant que mod[eè]le de langage\b|\ben tant qu'(?:IA|intelligence artificielle)\b"
        r"|\bяк (?:мовна модель|модель штучного інтелекту)\b", re.I),
}


class SourceSpec(JobConfig):
    """One human/open set: a Hugging Face id or a local file (jsonl/json/csv/tsv/parquet) of the same shape."""

    name: str = Field(min_length=1, description="how reports call it (e.g. dolly-15k)")
    loader: Literal[LOADERS] = Field(
        "auto", description="rows (messages or prompt/response), aya, dolly, oasst, openmath; auto: from the "
                            "dataset id or the file's columns")
    hf: str | None = Field(None, description="Hugging Face dataset id (e.g. databricks/databricks-dolly-15k)")
    config: str | None = Field(None, description="dataset config (subset) of `hf`")
    split: str | None = Field(None, description="split of `hf` (default: the loader's; train)")
    file: str | None = Field(None, description="a local file with the set's columns (offline boxes, own sets)")
    licence: str | None = Field(None, min_length=1, description="its licence (known sets: filled in by the loader)")
    provenance: str | None = Field(None, min_length=1, description="who wrote it and how (known sets: filled in)")
    skill: str | None = Field(None, description="own rows: the skill of rows without a `skill` field; known sets: "
                                                "replaces the loader's mapping (e.g. Dolly's categories)")
    languages: list[str] = Field(default_factory=lambda: list(LANGUAGES),
                                 description="languages kept from multilingual sets (aya, oasst), ISO codes")
    max_rows: int = Field(20000, ge=1, description="the most rows kept per language (OpenMathInstruct-2, too "
                                                   "large to load whole, is streamed up to this many rows)")

    @model_validator(mode="after")
    def _valid(self):
        if (self.hf is None) == (self.file is None):
            raise ValueError(f"source {self.name!r}: set exactly one of `hf` (a dataset id) or `file`")
        if self.skill is not None and self.skill not in SKILLS:
            raise ValueError(f"source {self.name!r}: unknown skill {self.skill!r} (known: {', '.join(SKILLS)})")
        return self

    @property
    def origin(self) -> str:
        """The file, or hf:<id>[/<config>] (the split is added once the loader is known)."""
        return self.file if self.file else f"hf:{self.hf}{'/' + self.config if self.config else ''}"


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def synthetic_marker(*declared: str | None) -> str | None:
    """The first marker of OpenAI/Anthropic-derived data found in the declared name/provenance/file/id."""
    text = _squash(" ".join(d for d in declared if d))
    return next((m for m in SYNTHETIC_MARKERS if m in text), None)


def boilerplate(messages: list[dict]) -> str | None:
    """The name of the first closed-model tell found in the answers (assistant turns) of a row, else None."""
    for m in messages:
        if m["role"] == "assistant":
            found = next((name for name, rx in BOILERPLATE.items() if rx.search(m["content"])), None)
            if found:
                return found
    return None


def check_source(src: SourceSpec, allow_override: bool) -> str | None:
    """Refuse a source whose declared name, provenance, file or id marks it as OpenAI/Anthropic output (unless
    overridden); returns the marker found."""
    marker = synthetic_marker(src.name, src.provenance, src.file, src.hf)
    if marker and not allow_override:
        raise SpecError(f"{src.origin}: source {src.name!r} looks derived from OpenAI/Anthropic outputs "
                        f"({marker!r} in its name, provenance, file or id); refused — set "
                        "allow_synthetic_override = true to use it anyway (the report records it)")
    return marker
