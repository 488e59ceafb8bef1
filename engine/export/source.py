"""What the converter needs to know about a model folder that its own checks get wrong, decided once here.

- MTP: Qwen3.5 / Qwen3-Next converters add the checkpoint's multi-token-prediction head (`mtp.*`) as a
  NextN block (llama.cpp skips it unless asked to load it as a draft), and stop on an assertion when the
  checkpoint has none; so `--no-mtp` is passed exactly when there is none.
- The BPE pre-tokenizer: declared by the model folder (model.tiny writes `gguf_pre_tokenizer`) for a
  tokenizer whose hash the converter does not know.
"""

from __future__ import annotations

import json
from pathlib import Path

from engine.merge.layout import checkpoint_layout

MTP_ARCHITECTURES = {"Qwen3_5ForConditionalGeneration", "Qwen3_5ForCausalLM", "Qwen3_5MoeForConditionalGeneration",
                     "Qwen3_5MoeForCausalLM", "Qwen3NextForCausalLM"}
MTP_FLAGS = {"--mtp", "--no-mtp", "--no-nextn"}
TINY_RECIPE = "slayer_tiny.json"


def declared_pre_tokenizer(model_dir: Path) -> str | None:
    recipe = model_dir / TINY_RECIPE
    if not recipe.is_file():
        return None
    return json.loads(recipe.read_text(encoding="utf-8")).get("gguf_pre_tokenizer")


def mtp_layers(model_dir: Path) -> int:
    """How many MTP layers the checkpoint holds (`mtp.layers.N.*`)."""
    layers = {n.split(".")[2] for n in checkpoint_layout(model_dir).stored if n.startswith("mtp.layers.")}
    return len(layers)


def conversion_plan(model_dir: Path, user_args: list[str], pre_tokenizer: str | None) -> tuple[list[str], dict]:
    """(extra converter arguments, what was decided: {"args", "mtp_layers", "mtp_in_gguf", "pre_tokenizer"}),
    `pre_tokenizer` being the fallback to offer the converter (`pre_tokenizer` or the folder's declaration)."""
    config_file = model_dir / "config.json"
    architectures = []
    if config_file.is_file():
        architectures = json.loads(config_file.read_text(encoding="utf-8")).get("architectures") or []
    layers = mtp_layers(model_dir)
    args = []
    if MTP_ARCHITECTURES & set(architectures) and not layers and not MTP_FLAGS & set(user_args):
        args.append("--no-mtp")
    in_gguf = layers > 0 and not {"--no-mtp", "--no-nextn"} & set(user_args)
    return args, {"args": args, "mtp_layers": layers, "mtp_in_gguf": in_gguf,
                  "pre_tokenizer": pre_tokenizer or declared_pre_tokenizer(model_dir)}
