"""A tiny, safe prompt-template renderer: `{{field}}`, `{{a.b}}`, `{{list[0]}}`, `{{field.strip()}}`.

No code runs: an expression is a field path with an optional `.strip()`, nothing else. Also the
named row preprocessors (`doc` in a gate) for prompts a plain template cannot express.
"""

from __future__ import annotations

import re
from typing import Callable

PLACEHOLDER = re.compile(r"\{\{\s*(.*?)\s*\}\}")
PATH_STEP = re.compile(r"\.([A-Za-z_]\w*)|\[(\d+)\]")
EXPRESSION = re.compile(r"([A-Za-z_]\w*)((?:\.[A-Za-z_]\w*|\[\d+\])*?)(\.strip\(\))?")


class TemplateError(ValueError):
    """A placeholder that is not a field path."""


class MissingField(KeyError):
    """A row lacks a field the template (or the gate) needs; args[0] is the field path."""


def parse_expression(expr: str) -> tuple[str, list[str | int], bool]:
    """`question.strip()` → ("question", [], True); `choices.text[0]` → ("choices", ["text", 0], False)."""
    m = EXPRESSION.fullmatch(expr)
    if not m:
        raise TemplateError(f"unsupported template expression {{{{{expr}}}}} (use a field path, optionally .strip())")
    steps: list[str | int] = [int(i) if i else a for a, i in PATH_STEP.findall(m.group(2))]
    return m.group(1), steps, bool(m.group(3))


def fields(template: str) -> set[str]:
    """The top-level row fields a template reads."""
    return {parse_expression(e)[0] for e in PLACEHOLDER.findall(template)}


def lookup(row: dict, path: str):
    """The value at a dotted/indexed path (`choices.label`, `test_list[0]`) of `row`."""
    head, steps, _ = parse_expression(path)
    return _walk(row, head, steps, path)


def _walk(row: dict, head: str, steps: list, expr: str):
    if head not in row:
        raise MissingField(head)
    value = row[head]
    for step in steps:
        try:
            value = value[step]
        except (KeyError, IndexError, TypeError):
            raise MissingField(expr) from None
    return value


def render(template: str, row: dict) -> str:
    """Fill every placeholder from `row`; raises MissingField or TemplateError."""

    def fill(m: re.Match) -> str:
        head, steps, strip = parse_expression(m.group(1))
        value = _walk(row, head, steps, m.group(1))
        text = value if isinstance(value, str) else str(value)
        return text.strip() if strip else text

    return PLACEHOLDER.sub(fill, template)


def _hellaswag_clean(text: str) -> str:
    """HellaSwag's WikiHow artifacts: ' [title]' ends a sentence, other [tags] go, double spaces close up."""
    text = text.strip().replace(" [title]", ". ")
    text = re.sub(r"\[.*?\]", "", text)
    return text.replace("  ", " ")


def hellaswag(row: dict) -> dict:
    """Adds `query` (activity label + contexts, ctx_b capitalised) and cleaned `choices` (EVAL_SPEC)."""
    context = row["ctx_a"] + " " + row["ctx_b"].capitalize()
    return {**row, "query": _hellaswag_clean(row["activity_label"] + ": " + context),
            "choices": [_hellaswag_clean(e) for e in row["endings"]]}


def letter_options(row: dict) -> dict:
    """Adds `options` ("A. first\\nB. second…") and `letters` (["A", "B", …]) from the list in `answers`."""
    letters = [chr(ord("A") + i) for i in range(len(row["answers"]))]
    options = "\n".join(f"{letter}. {answer}" for letter, answer in zip(letters, row["answers"]))
    return {**row, "options": options, "letters": letters}


def first_choice(row: dict) -> dict:
    """Adds `gold` = 0: the gold answer is always the first choice (TruthfulQA's mc1/mc2 targets)."""
    return {**row, "gold": 0}


# name → (function, the row fields it reads, the fields it adds)
DOC_FUNCTIONS: dict[str, tuple[Callable[[dict], dict], tuple[str, ...], tuple[str, ...]]] = {
    "hellaswag": (hellaswag, ("activity_label", "ctx_a", "ctx_b", "endings"), ("query", "choices")),
    "letter_options": (letter_options, ("answers",), ("options", "letters")),
    "first_choice": (first_choice, (), ("gold",)),
}
