"""Where replay data comes from: every source declares a licence and a provenance, and outputs of
OpenAI/Anthropic models (OpenHermes, UltraChat, Alpaca, ShareGPT, GPT-4 sets…) are refused unless the
operator overrides it — in which case the report says so."""

from __future__ import annotations

import re

from pydantic import Field

from engine.errors import SpecError
from engine.jobs import JobConfig

SKILLS = ("code", "math", "reasoning", "en_knowledge", "multilingual", "instruction", "summarisation",
          "structured_output", "safety", "chat")

# Squashed (lowercase, letters and digits only) names of sets and models whose text is OpenAI/Anthropic output.
SYNTHETIC_MARKERS = ("openhermes", "ultrachat", "ultrafeedback", "alpaca", "sharegpt", "gpt4", "gpt35", "gpt3",
                     "chatgpt", "openai", "davinci", "anthropic", "claude", "wizardlm", "evolinstruct", "selfinstruct",
                     "openorca", "slimorca", "airoboros", "vicuna", "baize", "capybara", "lmsyschat", "unnatural")


class SourceSpec(JobConfig):
    """One local human/open set: a JSONL (or csv/tsv/json/parquet) of messages or prompt/response rows."""

    name: str = Field(min_length=1, description="how reports call it (e.g. dolly-15k)")
    file: str = Field(description="the data file")
    licence: str = Field(min_length=1, description="its licence (e.g. CC-BY-SA-3.0)")
    provenance: str = Field(min_length=1, description="who wrote it and how (e.g. human-written by Databricks staff)")
    skill: str | None = Field(None, description="skill of rows without a `skill` field")


def _squash(text: str) -> str:
    return re.sub(r"[^a-z0-9]", "", text.lower())


def synthetic_marker(*declared: str) -> str | None:
    """The first marker of OpenAI/Anthropic-derived data found in the declared name/provenance/file."""
    text = _squash(" ".join(declared))
    return next((m for m in SYNTHETIC_MARKERS if m in text), None)


def check_sources(sources: list[SourceSpec], allow_override: bool) -> list[dict]:
    """Licence/provenance records of the sources; refuses synthetic ones unless `allow_override`."""
    records = []
    for src in sources:
        marker = synthetic_marker(src.name, src.provenance, src.file)
        if marker and not allow_override:
            raise SpecError(f"{src.file}: source {src.name!r} looks derived from OpenAI/Anthropic outputs "
                            f"({marker!r} in its name, provenance or file); refused — set "
                            "allow_synthetic_override = true to use it anyway (the report records it)")
        if src.skill is not None and src.skill not in SKILLS:
            raise SpecError(f"{src.file}: source {src.name!r}: unknown skill {src.skill!r} (known: {', '.join(SKILLS)})")
        records.append({"name": src.name, "kind": "local", "file": src.file, "licence": src.licence,
                        "provenance": src.provenance, "synthetic": marker})
    return records
