"""The plan's locked decisions as a policy, checked before any job launches (locally or on a box).

The rules: the base stays frozen (PEFT adapters only: no full fine-tuning, no tokenizer extension), 3+ epochs
only with checkpoint gates, no benchmark data in training (a training file whose guard report shows overlap),
and no teacher, judge or replay derived from OpenAI/Anthropic outputs. An experiment's `[policy]` table
(store.experiment_config) tunes the rules and records a person's `override`, with the reason, per rule.

`check` is a pure function of the job's resolved config; the only reading it does is of the guard reports that
sit beside a training file.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path

RULES = {
    "full_finetune": "the base stays frozen: PEFT adapters only",
    "tokenizer_extension": "no tokenizer extension",
    "epochs_without_gates": "3+ epochs only with [gates]",
    "guard_overlap": "no benchmark data in training",
    "closed_derived": "teacher, judge and replay not derived from OpenAI/Anthropic outputs",
}
PEFT_METHODS = ("lora", "dora")
TOKENIZER_KEYS = ("add_tokens", "new_tokens", "extend_tokenizer", "resize_token_embeddings")
# Model ids and endpoints that are the vendors' own models; a model or file merely derived from their outputs is
# marked by the experiment ([policy.derived]).
VENDOR_PATTERNS = {"openai": r"(^|/)(gpt-|chatgpt|o[134](-|$))|api\.openai\.com",
                   "anthropic": r"(^|/)claude|api\.anthropic\.com"}


@dataclass(frozen=True)
class Policy:
    epochs_without_gates: float = 3.0  # this many epochs or more need [gates]
    vendors: tuple[str, ...] = ("openai", "anthropic")  # outputs of these may not teach, judge or replay
    derived: dict[str, str] = field(default_factory=dict)  # model id or file → the vendor its outputs come from
    override: dict[str, str] = field(default_factory=dict)  # rule → why a person lets the job break it


@dataclass(frozen=True)
class Violation:
    rule: str
    field: str
    problem: str

    def line(self, source: str) -> str:
        return f"{source}: policy rule {self.rule} ({RULES[self.rule]}): field {self.field!r}: {self.problem}"


def _walk(value, path: str = ""):
    """(dotted path, value) of every leaf and table in a nested config."""
    yield path, value
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _walk(v, f"{path}.{k}" if path else str(k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _walk(v, f"{path}[{i}]")


def guard_overlap(path: str) -> int | None:
    """Overlapping examples the guard reports found in a training file: a report beside it (`*guard*.json`) whose
    `train` is the file, or the guard report of the data job that wrote it (`STEM_report_guard.json` beside
    `STEM_report.json` naming it as `output`). None: no guard report found."""
    file = Path(path).expanduser()
    found = None
    for report_path in sorted(file.parent.glob("*guard*.json")) if file.parent.is_dir() else []:
        try:
            report = json.loads(report_path.read_text(encoding="utf-8"))
            builder = report_path.with_name(report_path.name.replace("_guard.json", ".json"))
            output = json.loads(builder.read_text(encoding="utf-8")).get("output") if builder != report_path \
                and builder.is_file() else None
        except (OSError, ValueError):
            continue
        names = {Path(str(report.get("train", ""))).name, str(output or "")}
        if file.name in names and isinstance(report.get("dropped"), int):
            found = (found or 0) + report["dropped"]
    return found


def _vendor(value: str, policy: Policy) -> str | None:
    marked = policy.derived.get(value) or policy.derived.get(Path(value).name)
    if marked:
        return marked if marked.lower() in policy.vendors else None
    return next((v for v in policy.vendors if re.search(VENDOR_PATTERNS.get(v, re.escape(v)), value, re.I)), None)


def check(kind: str, config: dict, policy: Policy, overlap=guard_overlap) -> list[Violation]:
    """Every rule the job (`kind`, its resolved config as a dict) breaks, overridden rules left out."""
    found: list[Violation] = []
    training = kind.startswith("train.")
    if training:
        method = (config.get("adapter") or {}).get("method")
        if method not in PEFT_METHODS:
            found.append(Violation("full_finetune", "adapter.method",
                                   f"{method!r} trains base weights (allowed: {', '.join(PEFT_METHODS)})"))
    for path, value in _walk(config):
        if path.rsplit(".", 1)[-1] in TOKENIZER_KEYS and value:
            found.append(Violation("tokenizer_extension", path, "adds tokens to the base's vocabulary"))
        if path.rsplit(".", 1)[-1] in ("full_finetune", "full_weights") and value is True:
            found.append(Violation("full_finetune", path, "trains every base weight"))
    epochs = (config.get("training") or {}).get("epochs", 0)
    if training and epochs >= policy.epochs_without_gates and not config.get("gates"):
        found.append(Violation("epochs_without_gates", "training.epochs",
                               f"{epochs:g} epochs and no [gates] table (≥ {policy.epochs_without_gates:g} need "
                               "every checkpoint gated)"))
    for key in ("data", "replay") if training else ():
        if isinstance(config.get(key), str):
            n = overlap(config[key])
            if n:
                found.append(Violation("guard_overlap", key, f"{config[key]}: its guard report shows {n} "
                                                             "example(s) overlapping the gates"))
    for path, value in _walk(config):
        last = path.rsplit(".", 1)[-1]
        sourced = any(part in ("teacher", "judge") for part in re.split(r"[.\[]", path)) and last in ("model", "url")
        if (sourced or last == "replay") and isinstance(value, str):
            vendor = _vendor(value, policy)
            if vendor:
                found.append(Violation("closed_derived", path, f"{value!r} is {vendor}-derived"))
    return [v for v in found if v.rule not in policy.override]
