"""The `model.tiny` job kind: build a tiny real causal LM into RUN_DIR/outputs/model."""

from __future__ import annotations

import json

from engine.jobs import job_kind
from engine.tiny.config import TinyModelConfig

EXAMPLE = """\
# A tiny real causal LM for tests and demos: random weights, a tokenizer trained on the spot on the
# packaged Polish + English corpus, a ChatML chat template. Saved in HF format to outputs/model;
# AutoModelForCausalLM / AutoTokenizer load it, and llama.cpp's convert_hf_to_gguf.py converts the qwen3 one.
kind = "model.tiny"
name = "tiny-qwen3"

arch = "qwen3"                  # "qwen3" (full attention) or "qwen3_5" (linear + full attention layers)
layout = "causal_lm"            # "causal_lm" (text-only, SentencePiece), or with arch = "qwen3_5" "published": the
                                # released Qwen3.5 structure (vision tower, MTP head, bf16 shards, Qwen's BPE)
# shards = 4                    # published layout: about this many safetensors shards (plus the index)
seed = 0                        # seed of the random weights: same seed and sizes give the same model
vocab_size = 1024               # SentencePiece BPE pieces (256 of them are byte-fallback pieces)
hidden_size = 64                # width of the residual stream
intermediate_size = 128         # width of the MLP
num_layers = 2                  # decoder layers (qwen3_5: every 4th and the last are full attention)
num_heads = 4                   # attention heads
num_kv_heads = 2                # key/value heads; must divide num_heads
head_dim = 16                   # size of one head (even; a multiple of 8 for qwen3_5)
max_position_embeddings = 2048  # longest sequence the model accepts
tie_word_embeddings = false     # share the input embedding with the output head
# corpus = "my_texts/"          # optional: a .txt file or folder of .txt files added to the tokenizer corpus
"""


@job_kind("model.tiny", TinyModelConfig, "build a tiny real Qwen3 / Qwen3.5 model (HF format) for tests and demos",
          EXAMPLE)
def run_tiny(config: TinyModelConfig, ctx) -> None:
    from engine.tiny.build import RECIPE_FILE, build_tiny_model

    def on_step(done: int, total: int, label: str) -> None:
        ctx.progress(done, total, unit="steps", label=label)

    out = build_tiny_model(ctx.outputs / "model", on_step=on_step, **config.model_dump())
    recipe = json.loads((out / RECIPE_FILE).read_text(encoding="utf-8"))
    ctx.log(f"built a {config.arch} ({config.layout} layout) model with {recipe['parameters']} parameters and a {config.vocab_size}-piece "
            f"tokenizer at {out}")
    ctx.artifact(out, "model", arch=config.arch, layout=config.layout)
