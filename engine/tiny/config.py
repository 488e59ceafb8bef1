"""The typed config of a tiny model: architecture, sizes, seed and tokenizer corpus."""

from __future__ import annotations

from typing import Literal

from pydantic import Field, field_validator

from engine.jobs import JobConfig


class TinyModelConfig(JobConfig):
    """What `model.tiny` builds. Defaults give ~0.2M parameters: a 512-token forward pass takes milliseconds."""

    arch: Literal["qwen3", "qwen3_5"] = Field(
        "qwen3", description="architecture: qwen3 (full attention) or qwen3_5 (linear + full attention layers)")
    layout: Literal["causal_lm", "published"] = Field(
        "causal_lm", description="causal_lm: a text-only *ForCausalLM with a SentencePiece tokenizer; published "
                                 "(qwen3_5 only): the structure of the released Qwen3.5 checkpoints — "
                                 "Qwen3_5ForConditionalGeneration with a small vision tower and an MTP head, "
                                 "sharded bfloat16 safetensors, Qwen3.5's byte-level BPE tokenizer and chat template")
    shards: int = Field(4, ge=1, description="published layout: split the weights into about this many shards")
    seed: int = Field(0, description="seed of the random weights (same seed and config give the same model)")
    vocab_size: int = Field(
        1024, ge=320, le=32000,
        description="SentencePiece vocabulary size (256 byte pieces + specials + learned merges)")
    hidden_size: int = Field(64, ge=8, description="width of the residual stream")
    intermediate_size: int = Field(128, ge=8, description="width of the MLP")
    num_layers: int = Field(
        2, ge=1, description="decoder layers (qwen3_5: every 4th and the last use full attention, the rest linear)")
    num_heads: int = Field(4, ge=1, description="attention (and linear-attention value) heads")
    num_kv_heads: int = Field(2, ge=1, description="key/value heads (grouped-query attention); divides num_heads")
    head_dim: int = Field(16, ge=4, description="size of one attention head (even; a multiple of 8 for qwen3_5)")
    max_position_embeddings: int = Field(2048, ge=16, description="longest sequence the model accepts")
    tie_word_embeddings: bool = Field(False, description="share the input embedding with the output head")
    corpus: str | None = Field(
        None, description="extra tokenizer training text: a .txt file or a folder of .txt files (added to the "
                          "packaged Polish + English corpus)")

    @field_validator("layout")
    @classmethod
    def _published_is_qwen3_5(cls, v: str, info):
        if v == "published" and info.data.get("arch") != "qwen3_5":
            raise ValueError('layout = "published" is the released Qwen3.5 structure: it needs arch = "qwen3_5"')
        return v

    @field_validator("num_kv_heads")
    @classmethod
    def _kv_divides_heads(cls, v: int, info):
        heads = info.data.get("num_heads")
        if heads and heads % v:
            raise ValueError(f"num_kv_heads ({v}) must divide num_heads ({heads})")
        return v

    @field_validator("head_dim")
    @classmethod
    def _rotary_head_dim(cls, v: int, info):
        # Rotary embeddings rotate pairs; Qwen3.5 rotates only a quarter of each head.
        step = 8 if info.data.get("arch") == "qwen3_5" else 2
        if v % step:
            raise ValueError(f"head_dim ({v}) must be a multiple of {step} for {info.data.get('arch')}")
        return v
