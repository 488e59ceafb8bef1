"""Subjects: anything that can be evaluated (base, reference, checkpoint, merge, quant), with a stable id.

A recipe says how to build the subject: {"model": base path or HF id, "adapter": path or None,
"scale": adapter scale, "merge": merge params or None, "format": "hf" | "gguf" | "endpoint", "file": GGUF path or None}.
The id is a hash of the recipe, so the same recipe is the same subject wherever it was evaluated.
"""

from __future__ import annotations

import hashlib
import json

from engine.vocab import SUBJECT_KINDS


def subject_id(recipe: dict) -> str:
    canonical = json.dumps(recipe, sort_keys=True, separators=(",", ":"), default=str)
    return "s-" + hashlib.sha256(canonical.encode()).hexdigest()[:12]


def make_subject(name: str, kind: str, recipe: dict) -> dict:
    if kind not in SUBJECT_KINDS:
        raise ValueError(f"subject kind must be one of {SUBJECT_KINDS}, got {kind!r}")
    return {"id": subject_id(recipe), "name": name, "kind": kind, "recipe": recipe}
