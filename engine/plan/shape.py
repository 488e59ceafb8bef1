"""The shape of a model (layers, widths, vocabulary) and its parameter counts, read from config.json alone.

Counts follow the Qwen3 and Qwen3.5 decoder layouts in transformers: every linear layer of the decoder is a
LoRA / NF4 target; embeddings and the head are neither; norms, convolutions and gates stay unquantised.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from engine.errors import SpecError

# Published configs of the models the campaign targets, for planning from a Hugging Face id that is not
# downloaded yet. Qwen3.5-27B: model card and config.json (64 layers, 3 Gated DeltaNet : 1 full attention,
# hidden 5120, MLP 17408, 24 query / 4 KV heads of 256, vocabulary 248320, untied head; the linear-attention
# widths are the Qwen3-Next family's: 16 key / 48 value heads of 128, kernel 4). `extra_params`: the
# vision tower and the MTP layer, on disk but not loaded by a causal-LM training run.
PUBLISHED = {
    "Qwen/Qwen3.5-27B": {
        "num_hidden_layers": 64, "hidden_size": 5120, "intermediate_size": 17408, "num_attention_heads": 24,
        "num_key_value_heads": 4, "head_dim": 256, "vocab_size": 248320, "tie_word_embeddings": False,
        "layer_types": (["linear_attention"] * 3 + ["full_attention"]) * 16, "linear_num_key_heads": 16,
        "linear_num_value_heads": 48, "linear_key_head_dim": 128, "linear_value_head_dim": 128,
        "linear_conv_kernel_dim": 4, "model_type": "qwen3_5_text", "extra_params": 880_000_000,
        "disk_bytes": 55_560_000_000,
    },
}


class UnknownShape(SpecError):
    """The model's config is not at hand (a path on another box, an id never downloaded here)."""


@dataclass(frozen=True)
class ModelShape:
    name: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    gated_attention: bool  # Qwen3.5's full attention: q_proj also yields an output gate
    linear_layers: int  # Qwen3.5's Gated DeltaNet layers (0 for Qwen3)
    linear_k_heads: int = 0
    linear_v_heads: int = 0
    linear_k_dim: int = 0
    linear_v_dim: int = 0
    conv_kernel: int = 4
    extra_params: int = 0  # on disk, not in the causal LM (vision tower, MTP)
    disk_bytes: int | None = None  # the checkpoint's weights as stored
    largest_shard: int | None = None  # bytes of its largest safetensors file, when it is here

    @property
    def full_layers(self) -> int:
        return self.layers - self.linear_layers

    def linear_shapes(self) -> list[tuple[int, int, int]]:
        """(in, out, count) of every decoder linear layer: the adapter's targets and NF4's weights."""
        h, q = self.hidden, self.heads * self.head_dim
        kv = self.kv_heads * self.head_dim
        out = [(h, q * (2 if self.gated_attention else 1), self.full_layers), (h, kv, 2 * self.full_layers),
               (q, h, self.full_layers)]
        if self.linear_layers:
            keys, values = self.linear_k_heads * self.linear_k_dim, self.linear_v_heads * self.linear_v_dim
            out += [(h, 2 * keys + values, self.linear_layers), (h, values, self.linear_layers),
                    (h, self.linear_v_heads, 2 * self.linear_layers), (values, h, self.linear_layers)]
        out += [(h, self.intermediate, 2 * self.layers), (self.intermediate, h, self.layers)]
        return out

    @property
    def linear_params(self) -> int:
        return sum(i * o * n for i, o, n in self.linear_shapes())

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden * (1 if self.tied else 2)

    @property
    def other_params(self) -> int:
        """Norms, Qwen3.5's convolution and decay parameters: small, never quantised."""
        norms = self.hidden * (2 * self.layers + 1) + 2 * self.head_dim * self.full_layers
        conv = 0
        if self.linear_layers:
            width = 2 * self.linear_k_heads * self.linear_k_dim + self.linear_v_heads * self.linear_v_dim
            conv = (width * self.conv_kernel + 2 * self.linear_v_heads + self.linear_v_dim) * self.linear_layers
        return norms + conv

    @property
    def params(self) -> int:
        """Parameters of the causal LM (what training and the hf gates load)."""
        return self.linear_params + self.embed_params + self.other_params


def shape_from_config(name: str, config: dict, disk_bytes: int | None = None,
                      largest_shard: int | None = None) -> ModelShape:
    text = config.get("text_config") or config
    types = text.get("layer_types") or []
    layers = text["num_hidden_layers"]
    heads = text["num_attention_heads"]
    linear = sum(1 for t in types if t == "linear_attention")
    qwen35 = str(text.get("model_type", "")).startswith("qwen3_5") or linear > 0
    return ModelShape(
        name=name, layers=layers, hidden=text["hidden_size"], intermediate=text["intermediate_size"], heads=heads,
        kv_heads=text.get("num_key_value_heads") or heads,
        head_dim=text.get("head_dim") or text["hidden_size"] // heads, vocab=text["vocab_size"],
        tied=bool(config.get("tie_word_embeddings", text.get("tie_word_embeddings", False))),
        gated_attention=qwen35, linear_layers=linear, linear_k_heads=text.get("linear_num_key_heads", 0),
        linear_v_heads=text.get("linear_num_value_heads", 0), linear_k_dim=text.get("linear_key_head_dim", 0),
        linear_v_dim=text.get("linear_value_head_dim", 0), conv_kernel=text.get("linear_conv_kernel_dim", 4),
        extra_params=config.get("extra_params", 0), disk_bytes=disk_bytes or config.get("disk_bytes"),
        largest_shard=largest_shard)


def model_shape(model: str) -> ModelShape:
    """The shape of a local model directory (its config.json and safetensors), of the embedded tiny model, or of a
    published model this planner knows; SpecError naming the model otherwise."""
    if model.startswith("tiny:"):
        from engine.tiny.config import TinyModelConfig

        t = TinyModelConfig(arch=model.split(":", 1)[1] or "qwen3")
        types = ["full_attention" if (i + 1) % 4 == 0 or i == t.num_layers - 1 else "linear_attention"
                 for i in range(t.num_layers)] if t.arch == "qwen3_5" else []
        return shape_from_config(model, {
            "num_hidden_layers": t.num_layers, "hidden_size": t.hidden_size, "intermediate_size": t.intermediate_size,
            "num_attention_heads": t.num_heads, "num_key_value_heads": t.num_kv_heads, "head_dim": t.head_dim,
            "vocab_size": t.vocab_size, "tie_word_embeddings": t.tie_word_embeddings, "layer_types": types,
            "model_type": t.arch, "linear_num_key_heads": t.num_kv_heads, "linear_num_value_heads": t.num_heads,
            "linear_key_head_dim": t.head_dim, "linear_value_head_dim": t.head_dim})
    path = Path(model).expanduser()
    if (path / "config.json").is_file():
        config = json.loads((path / "config.json").read_text(encoding="utf-8"))
        sizes = [f.stat().st_size for f in path.glob("*.safetensors")]
        return shape_from_config(str(path), config, sum(sizes) or None, max(sizes, default=None))
    known = next((k for k in PUBLISHED if model == k or path.name == k.rsplit("/", 1)[-1]), None)
    if known:  # the id, or a copy of it on a box (/models/Qwen3.5-27B)
        return shape_from_config(model, PUBLISHED[known])
    raise UnknownShape(f"model {model!r}: no config.json here to plan from; give a local model directory "
                       f"(published models the planner knows: {', '.join(PUBLISHED)})")
