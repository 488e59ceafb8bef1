"""Subjects: anything that can be evaluated (base, reference, checkpoint, merge, quant), with a stable id.

A subject's `Recipe` says how to build it; the id is a hash of the recipe's dict, so the same recipe is the
same subject wherever it was evaluated. Every job that makes subjects builds the recipe with one of the
constructors below (`Recipe.hf`, `Recipe.gguf`, `Recipe.endpoint`), and the recipe cannot change after that.

Its dict (`Recipe.as_dict`, what events carry and the store keeps) is
`{"model", "adapter", "scale", "merge", "format", "file"}` followed by the training settings that change what
an adapter is (SFT's `kl_to_base`), flat — the layout recorded since the first run, so the ids of subjects
already in stores and run directories stay what they were.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from engine.vocab import SUBJECT_KINDS

FORMATS = ("hf", "gguf", "endpoint")


class _Frozen(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class MergeRecipe(_Frozen):
    """How a TIES / DARE merge combined the adapter's task vector (engine.merge.methods)."""

    method: str
    density: float
    seed: int


class Recipe(_Frozen):
    """How to build a subject: a base model, optionally with an adapter at a scale or merged, or a GGUF file,
    or a model behind a server."""

    model: str = Field(description="base model path or HF id; the GGUF file; the served model's id")
    adapter: str | None = Field(None, description="PEFT adapter directory")
    scale: float = Field(1.0, description="adapter scale (1.0 without an adapter)")
    merge: MergeRecipe | None = Field(None, description="TIES / DARE parameters of a merged adapter")
    format: Literal[FORMATS] = "hf"
    file: str | None = Field(None, description="the GGUF file (gguf format)")
    training: dict[str, Any] = Field(default_factory=dict,
                                     description="training settings that change what the adapter is (kl_to_base)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.adapter is None and (self.scale != 1.0 or self.merge is not None or self.training):
            raise ValueError("scale, merge and training settings belong to an adapter")
        clash = set(self.training) & set(type(self).model_fields)
        if clash:
            raise ValueError(f"training settings may not be named {sorted(clash)}")
        return self

    @classmethod
    def hf(cls, model: str, adapter: str | None = None, scale: float = 1.0, merge=None,
           training: dict[str, Any] | None = None) -> Recipe:
        """A model loaded by transformers: the base alone, or with `adapter` at `scale` (ignored without one),
        merged by `merge` (anything with method, density and seed, e.g. a MergeParams) when given."""
        return cls(model=model, adapter=adapter, scale=scale if adapter else 1.0,
                   merge=None if merge is None else MergeRecipe.model_validate(merge, from_attributes=True),
                   training=training or {})

    @classmethod
    def gguf(cls, file: str, model: str | None = None) -> Recipe:
        """A GGUF file scored by llama.cpp (`model` defaults to the file)."""
        return cls(model=model or file, format="gguf", file=file)

    @classmethod
    def endpoint(cls, model: str) -> Recipe:
        """A model behind an OpenAI-compatible server, by the id it is served under."""
        return cls(model=model, format="endpoint")

    @classmethod
    def from_dict(cls, recorded: dict) -> Recipe:
        """The recipe of a recorded dict (`as_dict`'s inverse: keys that are not fields are training settings)."""
        fields = {k: v for k, v in recorded.items() if k in cls.model_fields and k != "training"}
        return cls(**fields, training={k: v for k, v in recorded.items() if k not in cls.model_fields})

    def as_dict(self) -> dict:
        """The recorded form (events, the store, artifacts' `source`), key order included."""
        return {"model": self.model, "adapter": self.adapter, "scale": self.scale,
                "merge": self.merge.model_dump() if self.merge else None, "format": self.format, "file": self.file,
                **self.training}

    @property
    def id(self) -> str:
        canonical = json.dumps(self.as_dict(), sort_keys=True, separators=(",", ":"), default=str)
        return "s-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def make_subject(name: str, kind: str, recipe: Recipe) -> dict:
    """The subject record events carry: {id, name, kind, recipe}."""
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"subject kind must be one of {SUBJECT_KINDS}, got {kind!r}")
    return {"id": recipe.id, "name": name, "kind": kind, "recipe": recipe.as_dict()}
