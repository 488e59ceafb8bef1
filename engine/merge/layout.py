"""Checkpoint layouts: which stored weight a weight name of the loaded text model refers to.

The text model transformers loads with AutoModelForCausalLM names its weights `model.layers.N.…`,
`model.embed_tokens.weight`, `model.norm.weight`, `lm_head.weight`; PEFT adapters trained on it are saved
under those names. Checkpoints on disk come in two layouts:

- `causal_lm`: the same names (what `Qwen3ForCausalLM` / `Qwen3_5ForCausalLM.save_pretrained` write).
- `published`: Qwen3.5's released checkpoints, `Qwen3_5ForConditionalGeneration`: the text model under
  `model.language_model.`, a vision tower under `model.visual.`, the multi-token-prediction (MTP) head
  under `mtp.`, `lm_head.weight` at the top. transformers drops `language_model.` when it loads the text
  model alone, and loads neither the vision tower nor the MTP head: those have no text-model counterpart.

Every place that matches adapter names, base names or loaded-model names goes through `Layout`, so both
layouts are handled the same way everywhere (merge, stacking, export verification).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Iterable

from engine.errors import SpecError

CAUSAL_LM, PUBLISHED = "causal_lm", "published"
LAYOUTS = (CAUSAL_LM, PUBLISHED)
TEXT_PREFIX = "model."
PUBLISHED_TEXT_PREFIX = "model.language_model."
# stored-name prefixes of the published layout that the text model does not have
NOT_TEXT = {"model.visual.": "the vision tower", "mtp.": "the multi-token-prediction (MTP) head"}


@dataclass(frozen=True)
class Layout:
    name: str  # causal_lm | published
    stored: frozenset[str]  # every weight name the checkpoint holds
    where: str = "the model"  # named in errors

    def stored_name(self, name: str) -> str | None:
        """The checkpoint's name for `name` (a text-model name, or already a stored name); None if it has none."""
        if name in self.stored:
            return name
        if self.name == PUBLISHED and name.startswith(TEXT_PREFIX):
            candidate = PUBLISHED_TEXT_PREFIX + name[len(TEXT_PREFIX):]
            if candidate in self.stored:
                return candidate
        return None

    def text_name(self, stored: str) -> str | None:
        """The text model's name for stored weight `stored`; None for the vision tower and the MTP head."""
        if self.name == PUBLISHED:
            if stored.startswith(PUBLISHED_TEXT_PREFIX):
                return TEXT_PREFIX + stored[len(PUBLISHED_TEXT_PREFIX):]
            if stored.startswith(tuple(NOT_TEXT)):
                return None
        return stored

    def part(self, stored: str) -> str:
        """What a stored weight belongs to: 'text', 'the vision tower' or 'the MTP head'."""
        return next((what for prefix, what in NOT_TEXT.items() if stored.startswith(prefix)), "text")

    def why_missing(self, name: str) -> str:
        """The clause saying why `name` has no counterpart here (follows the name in one-line errors)."""
        for prefix, what in NOT_TEXT.items():
            if name.startswith(prefix):
                return f"a weight of {what}, which {self.where} ({self.name} layout) does not have"
        if self.name == PUBLISHED:
            return (f"which {self.where} does not have under either name (published layout: text weights under "
                    f"{PUBLISHED_TEXT_PREFIX!r})")
        return f"which {self.where} does not have"

    def resolve(self, names: Iterable[str], what: str) -> dict[str, str]:
        """name → stored name for every one of `names`; SpecError naming the first one without a counterpart.

        `what` starts the message, e.g. "ADAPTER: the adapter changes".
        """
        mapping, missing = {}, []
        for name in names:
            stored = self.stored_name(name)
            if stored is None:
                missing.append(name)
            else:
                mapping[name] = stored
        if missing:
            missing.sort()
            raise SpecError(f"{what} {missing[0]!r}, {self.why_missing(missing[0])} ({len(missing)} such "
                            "weights): was it trained on this base?")
        return mapping


def detect(names: Iterable[str], where: str = "the model") -> Layout:
    """The layout of a checkpoint holding weights `names`."""
    stored = frozenset(names)
    published = any(n.startswith(PUBLISHED_TEXT_PREFIX) for n in stored)
    return Layout(PUBLISHED if published else CAUSAL_LM, stored, where)


def checkpoint_layout(model_dir: str | os.PathLike) -> Layout:
    """The layout of a local safetensors checkpoint directory (read from the shard headers only)."""
    from engine.merge.shards import shard_files, tensor_names

    return detect((n for shard in shard_files(model_dir) for n in tensor_names(shard)), str(model_dir))
