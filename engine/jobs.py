"""The registry of job kinds and the typed, validated job spec (TOML).

A job spec is a TOML file: `kind = "..."`, optional `name` and `experiment`, then the kind's own
fields (nested tables allowed). Each kind registers a pydantic config model with `extra="forbid"`:
an unknown key is an error naming the key, a wrong type one naming the field and the expected type.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from pydantic import BaseModel, ConfigDict, ValidationError

from engine.errors import SpecError
from engine.registry import Registry

# Modules that register job kinds when imported. Imported lazily, once, by `kinds()`/`get_kind()`;
# each must keep heavy imports (torch, transformers…) inside its functions.
KIND_MODULES = [
    "engine.debug",
    "engine.demo.job",
    "engine.tiny.job",
    "engine.train.job",
    "engine.gates.job",
    "engine.data.job",
    "engine.data.entigraph_job",
    "engine.merge.job",
    "engine.export.job",
    "engine.serve.job",
]


class JobConfig(BaseModel):
    """Base of every kind's config: no unknown keys, field docs become TOML comments."""

    model_config = ConfigDict(extra="forbid", validate_default=True)


@dataclass(frozen=True)
class JobKind:
    name: str
    description: str
    config: type[JobConfig]
    run: Callable[[Any, Any], None]  # run(config, ctx: engine.events.JobContext)
    example: str  # a complete, commented TOML that runs as printed
    # False: runs on the light core install (no torch/transformers); or config → bool
    needs_ml: bool | Callable[[Any], bool] = True

    def ml_needed(self, config) -> bool:
        return self.needs_ml(config) if callable(self.needs_ml) else self.needs_ml


_KINDS: Registry[JobKind] = Registry("job kind", KIND_MODULES)


def job_kind(name: str, config: type[JobConfig], description: str, example: str,
             needs_ml: bool | Callable[[Any], bool] = True):
    """Decorator: register `fn(config, ctx)` as the runner of job kind `name`."""

    def register(fn):
        _KINDS.add(name, JobKind(name, description, config, fn, example, needs_ml), fn)
        return fn

    return register


def kinds() -> list[JobKind]:
    return _KINDS.all()


def get_kind(name: str, source: str = "job spec") -> JobKind:
    return _KINDS.get(name, source)


_TYPE_WORDS = {
    "int_type": "an integer", "int_parsing": "an integer", "float_type": "a number", "float_parsing": "a number",
    "string_type": "a string", "bool_type": "a boolean", "bool_parsing": "a boolean", "list_type": "a list",
    "dict_type": "a table", "model_type": "a table", "literal_error": None, "enum": None,
}


def describe_validation_error(err: ValidationError, source: str) -> str:
    """One line naming the first problem: the key, the field and the expected type."""
    e = err.errors()[0]
    loc = ".".join(str(p) for p in e["loc"])
    if e["type"] == "extra_forbidden":
        return f"{source}: unknown key {loc!r}"
    if e["type"] == "missing":
        return f"{source}: missing required key {loc!r}"
    word = _TYPE_WORDS.get(e["type"])
    if word:
        return f"{source}: field {loc!r} must be {word}, got {e.get('input')!r}"
    return f"{source}: field {loc!r}: {e['msg']}"


@dataclass
class JobSpec:
    kind: JobKind
    config: JobConfig
    name: str | None = None
    experiment: str | None = None

    def to_toml(self) -> str:
        """The resolved spec (defaults filled in), as written to RUN_DIR/job.toml."""
        head: dict[str, Any] = {"kind": self.kind.name}
        if self.name:
            head["name"] = self.name
        if self.experiment:
            head["experiment"] = self.experiment
        return dumps_toml({**head, **self.config.model_dump(mode="json", exclude_none=True)})


def parse_spec(data: dict, source: str) -> JobSpec:
    data = dict(data)
    kind_name = data.pop("kind", None)
    if not isinstance(kind_name, str):
        raise SpecError(f"{source}: missing required key 'kind' (see `slayer jobs kinds`)")
    name = data.pop("name", None)
    experiment = data.pop("experiment", None)
    kind = get_kind(kind_name, source)
    try:
        config = kind.config.model_validate(data)
    except ValidationError as err:
        raise SpecError(describe_validation_error(err, source)) from None
    return JobSpec(kind, config, name, experiment)


def load_spec(path: str | Path) -> JobSpec:
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise SpecError(f"{path}: no such file") from None
    except (IsADirectoryError, UnicodeDecodeError) as e:
        raise SpecError(f"{path}: cannot read as TOML text ({e.__class__.__name__})") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise SpecError(f"{path}: malformed TOML: {e}") from None
    return parse_spec(data, str(path))


def _toml_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return '"' + v.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n").replace("\t", "\\t") + '"'
    if isinstance(v, list):
        return "[" + ", ".join(_toml_value(x) for x in v) + "]"
    if isinstance(v, dict):
        return "{ " + ", ".join(f"{_toml_key(k)} = {_toml_value(x)}" for k, x in v.items()) + " }"
    raise TypeError(f"cannot write {type(v).__name__} to TOML")


def _toml_key(k: str) -> str:
    return k if k.replace("_", "").replace("-", "").isalnum() else _toml_value(k)


def dumps_toml(data: dict, prefix: str = "") -> str:
    """A small TOML writer (stdlib has only a reader): scalars first, then one [table] per dict.
    None values are left out (TOML has no null; an absent key takes the field's default)."""
    data = {k: v for k, v in data.items() if v is not None}
    lines = [f"{_toml_key(k)} = {_toml_value(v)}" for k, v in data.items() if not isinstance(v, dict)]
    for k, v in data.items():
        if isinstance(v, dict):
            name = f"{prefix}.{_toml_key(k)}" if prefix else _toml_key(k)
            lines.append(f"\n[{name}]")
            lines.append(dumps_toml(v, name))
    return "\n".join(line for line in lines if line != "") + "\n"
