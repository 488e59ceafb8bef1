"""Optional extras: tell, without importing anything heavy, whether this install has them.

The light core (`pip install slayer-console`) drives boxes, reads the store and runs the console;
training, gating and the demo need the `ml` extra, GGUF scoring and export the `gguf` extra.
A command that needs one it lacks says so in one line (exit 2) instead of failing half-way.
"""

from __future__ import annotations

import importlib.util

from engine.errors import SpecError

# extra → the modules it brings that the code imports (pyproject.toml's optional-dependencies)
EXTRAS = {
    "ml": ("torch", "transformers", "peft", "trl", "datasets", "accelerate", "safetensors", "sentencepiece",
           "tokenizers", "pyarrow"),
    "gguf": ("llama_cpp", "gguf"),
    "style": ("language_tool_python", "spylls", "lm_eval", "nltk", "langdetect", "immutabledict"),
    "postgres": ("psycopg",),
}


def missing(extra: str) -> list[str]:
    """The modules of `extra` that this Python cannot import (find_spec does not import them)."""
    return [m for m in EXTRAS[extra] if importlib.util.find_spec(m) is None]


def install_hint(*extras: str) -> str:
    return f"pip install 'slayer-console[{','.join(extras)}]'"


def require(what: str, *extras: str) -> None:
    """Raise a one-line SpecError naming the extras to install when `what` cannot run here."""
    lacking = {extra: missing(extra) for extra in extras}
    needed = [extra for extra in extras if lacking[extra]]
    if needed:
        names = " and ".join(lacking[extra][0] for extra in needed)
        raise SpecError(f"{what} needs {names}, which this install lacks: {install_hint(*needed)}")


def require_for_job(spec) -> None:
    """Refuse, in one line, a job whose kind needs the ML stack on an install without it."""
    if spec.kind.ml_needed(spec.config):
        require(f"job kind {spec.kind.name}", "ml")


def extra_of(module: str | None) -> str | None:
    """The extra that brings `module` (a ModuleNotFoundError's name), if any."""
    top = (module or "").split(".")[0]
    return next((extra for extra, mods in EXTRAS.items() if top in mods), None)
