"""Answer extraction for generative gates: lm-eval's regex filter, and its exact-match normalisation."""

from __future__ import annotations

import re

INVALID = "[invalid]"  # what lm-eval's regex filter yields when nothing matches


def extract(text: str, regex: str, take: str = "first") -> str:
    """The first (or last) match of `regex` in `text`; with groups, the first non-empty group of it."""
    matches = re.findall(regex, text)
    if not matches:
        return INVALID
    match = matches[0 if take == "first" else -1]
    if isinstance(match, tuple):
        match = next((m for m in match if m), INVALID)
    return match.strip()


def normalize(text: str, ignore: list[str], ignore_case: bool) -> str:
    """Delete every `ignore` regex (in order), then lower-case if asked: how exact_match compares."""
    for pattern in ignore:
        text = re.sub(pattern, "", text)
    return text.lower() if ignore_case else text


def choice_index(answer: str, choices: list[str]) -> int:
    """Index of an extracted answer among the choices; -1 (always wrong) when it is none of them."""
    return choices.index(answer) if answer in choices else -1
