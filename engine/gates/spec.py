"""Gates as data: the typed gate TOML, its prompt rendering and label mapping, and the suites.

A gate lives in `assets/gates/<name>.toml`; suites are lists of gate names in `assets/gates/suites.toml`.
The data builders reuse `Gate.render`, `Gate.choices_for` and `Gate.label_text`, so training prompts
and label strings are exactly the ones the gates score.
"""

from __future__ import annotations

import hashlib
import json
import tomllib
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, model_validator

from engine.errors import SpecError
from engine.gates import template as tpl
from engine.jobs import describe_validation_error
from engine.vocab import AXIS_NAMES, DEFAULT_TOLERANCE_PP, axis_order

GATES_DIR = Path(__file__).resolve().parents[2] / "assets" / "gates"
SUITES_FILE = "suites.toml"


class LabelError(ValueError):
    """A row's gold label is outside the gate's label set; the message says which value and which set."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class DatasetSpec(_Strict):
    hf: str | None = Field(None, description="Hugging Face dataset id")
    config: str | None = Field(None, description="dataset config (subset) name")
    split: str = Field("test", description="split the items come from")
    file: str | None = Field(None, description="local file with the same columns (jsonl/json/csv/tsv/parquet); "
                                               "overrides `hf`; relative to this TOML")
    hf_file: str | None = Field(None, description="one file of the hub dataset's repository, read instead of its "
                                                  "loader (datasets whose loader is a script: alpaca_eval)")
    fixture: str | None = Field(None, description="a tiny shipped file with the same columns, for tests and the demo "
                                                  "only (a run uses it when asked: fixtures = true)")
    user_data: str | None = Field(None, description="no public data: the run names the operator's own file "
                                                    "(this says what it holds)")
    user_data_key: str | None = Field(None, description="the `files` key that names it for every gate reading it "
                                                        "(besides the gate's own name)")
    fewshot_split: str = Field("train", description="split few-shot examples come from")
    fewshot_file: str | None = Field(None, description="local file of few-shot examples")


class TargetSpec(_Strict):
    """How a row's gold label becomes a choice index (first rule that is set wins: map, values_field, offset)."""

    field: str = Field(description="field path of the gold label")
    offset: int = Field(0, description="integer labels: choice index = int(label) + offset")
    map: dict[str, str] | None = Field(None, description="label value → choice string")
    values_field: str | None = Field(None, description="per-row list of label values in choice order (ARC)")
    text: str | None = Field(None, description="choice-less gates: template of the answer text (few-shot answers, "
                                               "the compared target); default: the field's value")
    labels_field: str | None = Field(None, description="per-row 0/1 label of every choice (1 = true): metric mc2, "
                                                       "the probability mass on the true ones (TruthfulQA MC2)")


class ExtractSpec(_Strict):
    name: str = Field("", description="metric suffix: exact_match_<name> (empty: exact_match)")
    regex: str = Field(description="answer pattern; the first non-empty group (or the match) is the answer")
    take: Literal["first", "last"] = Field("first", description="which match counts")


class GenerateSpec(_Strict):
    stop: list[str] = Field(default_factory=list, description="generation ends before the first of these")
    max_new_tokens: int = Field(256, ge=1)
    extract: list[ExtractSpec] = Field(default_factory=list,
                                       description="answer extractors; none: the stripped completion")
    ignore: list[str] = Field(default_factory=list,
                              description="regexes deleted from answer and target before comparing")
    ignore_case: bool = False


class CodeSpec(_Strict):
    program: str = Field(description="program template: row fields plus {{prompt}} and {{completion}}")
    timeout_s: float = Field(3.0, gt=0)
    memory_mb: int = Field(512, ge=64)


class FewshotSpec(_Strict):
    k: int = Field(0, ge=0, description="examples before each item")
    seed: int = Field(1234, description="seed of the example draw (lm-eval's default)")
    sampler: Literal["random", "first_n"] = "random"


class Gate(_Strict):
    name: str
    axis: Literal[AXIS_NAMES]
    description: str = ""
    scorer: str = Field(description="likelihood | generate | code_exec | …")
    metrics: list[str] = Field(min_length=1)
    primary: str
    higher_is_better: bool = True
    n: int = Field(0, ge=0, description="items drawn (0: all); see engine.gates.data.select_indices")
    seed: int = Field(1234, description="seed of the item draw")
    tolerance_pp: float = Field(DEFAULT_TOLERANCE_PP, ge=0)
    bos: bool = Field(False, description="prepend the tokenizer's special tokens (the leaderboard: false)")
    chat_template: bool = Field(False, description="render prompts in the subject's chat template, as lm-eval's "
                                                   "--apply_chat_template: few-shot examples and the question in one "
                                                   "user turn, choices follow the assistant header directly")
    fewshot_as_multiturn: bool = Field(False, description="with chat_template: each few-shot example as a user turn "
                                                          "and its answer as an assistant turn (lm-eval's flag)")
    dataset: DatasetSpec
    template: str
    doc: str | None = Field(None, description="row preprocessor run before the template (hellaswag, …)")
    choices: list[str] | None = None
    choices_field: str | None = Field(None, description="per-row list of choices (a field path)")
    target_delimiter: str = " "
    target: TargetSpec
    fewshot: FewshotSpec = FewshotSpec()
    generate: GenerateSpec | None = None
    code: CodeSpec | None = None
    breakdown: str | None = Field(None, description="also report the primary metric per value of this field")
    options: dict[str, Any] = Field(default_factory=dict, description="settings for scorers registered elsewhere")

    _source: Path | None = PrivateAttr(None)

    @model_validator(mode="after")
    def _consistent(self):
        if self.primary not in self.metrics:
            raise ValueError(f"primary metric {self.primary!r} is not in metrics {self.metrics}")
        if self.fewshot_as_multiturn and not self.chat_template:
            raise ValueError("fewshot_as_multiturn needs chat_template = true")
        if self.choices is not None and self.choices_field is not None:
            raise ValueError("set choices or choices_field, not both")
        if self.doc is not None and self.doc not in tpl.DOC_FUNCTIONS:
            raise ValueError(f"unknown doc preprocessor {self.doc!r} (known: {', '.join(tpl.DOC_FUNCTIONS)})")
        for text in (self.template, self.target.text, self.code and self.code.program):
            if text:
                tpl.fields(text)  # raises on an unsupported expression
        return self

    # ---- what a data builder and the scorers share -------------------------------------------------

    @property
    def source(self) -> Path | None:
        """The TOML this gate was loaded from."""
        return self._source

    @property
    def choice_delimiter(self) -> str:
        """What goes between a prompt and a choice: none after a chat template's assistant header (lm-eval)."""
        return "" if self.chat_template else self.target_delimiter

    @property
    def has_choices(self) -> bool:
        return self.choices is not None or self.choices_field is not None

    def prepare(self, row: dict) -> dict:
        """The row after the gate's preprocessor (if any)."""
        return tpl.DOC_FUNCTIONS[self.doc][0](row) if self.doc else row

    def render(self, row: dict) -> str:
        """The zero-shot prompt of `row`, exactly as scored."""
        return tpl.render(self.template, self.prepare(row))

    def choices_for(self, row: dict) -> list[str]:
        if self.choices is not None:
            return list(self.choices)
        if self.choices_field is None:
            raise ValueError(f"gate {self.name} has no choices")
        value = tpl.lookup(self.prepare(row), self.choices_field)
        return [str(c) for c in value]

    def gold_index(self, row: dict) -> int:
        """Index of the gold choice; LabelError when the label is outside the label set."""
        row = self.prepare(row)
        choices = self.choices_for(row)
        value = tpl.lookup(row, self.target.field)
        if self.target.map is not None:
            key = str(value)
            if key not in self.target.map or self.target.map[key] not in choices:
                raise LabelError(f"label {value!r} is not one of {sorted(self.target.map)}")
            return choices.index(self.target.map[key])
        if self.target.values_field is not None:
            values = [str(v) for v in tpl.lookup(row, self.target.values_field)]
            if str(value) not in values:
                raise LabelError(f"label {value!r} is not one of {values}")
            return values.index(str(value))
        try:
            index = int(value) + self.target.offset
        except (TypeError, ValueError):
            raise LabelError(f"label {value!r} is not an integer") from None
        if not 0 <= index < len(choices):
            low, high = -self.target.offset, len(choices) - 1 - self.target.offset
            raise LabelError(f"label {value!r} is outside the label set {low}..{high}")
        return index

    def label_text(self, row: dict) -> str:
        """The gold answer string: the gold choice, or (choice-less generative gates) the target field."""
        if self.has_choices:
            return self.choices_for(row)[self.gold_index(row)]
        if self.target.text is not None:
            return tpl.render(self.target.text, self.prepare(row))
        return str(tpl.lookup(self.prepare(row), self.target.field))

    def required_columns(self) -> set[str]:
        """Top-level row fields the gate reads (before its preprocessor adds any)."""
        _, reads, adds = tpl.DOC_FUNCTIONS[self.doc] if self.doc else (None, (), ())
        needed = tpl.fields(self.template) | {tpl.parse_expression(self.target.field)[0]}
        if self.choices_field:
            needed.add(tpl.parse_expression(self.choices_field)[0])
        for path in (self.target.values_field, self.target.labels_field):
            if path:
                needed.add(tpl.parse_expression(path)[0])
        if self.target.text is not None:
            needed |= tpl.fields(self.target.text)
        if self.code is not None:
            needed |= tpl.fields(self.code.program) - {"prompt", "completion"}
        if self.breakdown:
            needed.add(self.breakdown)
        return (needed - set(adds)) | set(reads)

    def template_hash(self) -> str:
        """Hash of everything that shapes prompts and scoring (not the dataset, n or seed)."""
        shaping = self.model_dump(mode="json", include={
            "template", "doc", "choices", "choices_field", "target_delimiter", "target", "fewshot", "generate",
            "code", "bos", "options", "chat_template", "fewshot_as_multiturn"})
        return hashlib.sha256(json.dumps(shaping, sort_keys=True).encode()).hexdigest()[:16]


def parse_gate(data: dict, source: str | Path) -> Gate:
    """Validate a gate table (as read from TOML); SpecError naming `source` and the first problem."""
    try:
        gate = Gate.model_validate(data)
    except ValidationError as err:
        raise SpecError(describe_validation_error(err, str(source))) from None
    from engine.gates.scoring import check_gate_metrics

    check_gate_metrics(gate, str(source))
    gate._source = Path(source)
    return gate


def _read_toml(path: Path) -> dict:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML: {e}") from None


def _shipped_names() -> list[str]:
    return sorted(p.stem for p in GATES_DIR.glob("*.toml") if p.name != SUITES_FILE)


def load_gate(name: str) -> Gate:
    """A shipped gate by name, or any gate TOML by path (`.toml`)."""
    if name.endswith(".toml"):
        path = Path(name)
    else:
        path = GATES_DIR / f"{name}.toml"
        if not path.is_file():
            raise SpecError(f"{GATES_DIR}: unknown gate {name!r} (known: {', '.join(_shipped_names())})")
    gate = parse_gate(_read_toml(path), path)
    if not name.endswith(".toml") and gate.name != name:
        raise SpecError(f"{path}: name {gate.name!r} differs from the file name {name!r}")
    return gate


def list_gates() -> list[Gate]:
    """Every shipped gate, by axis then name."""
    return sorted((load_gate(n) for n in _shipped_names()), key=lambda g: (axis_order(g.axis), g.name))


def suites() -> dict[str, list[str]]:
    path = GATES_DIR / SUITES_FILE
    data = _read_toml(path)
    for key, value in data.items():
        if not (isinstance(value, list) and all(isinstance(v, str) for v in value)):
            raise SpecError(f"{path}: suite {key!r} must be a list of gate names")
    return data


def load_suite(name: str) -> list[Gate]:
    """The gates of a suite, in the suite's order."""
    known = suites()
    if name not in known:
        raise SpecError(f"{GATES_DIR / SUITES_FILE}: unknown suite {name!r} (known: {', '.join(sorted(known))})")
    return [load_gate(g) for g in known[name]]
