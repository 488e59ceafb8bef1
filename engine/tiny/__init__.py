"""Tiny real causal LMs (Qwen3 / Qwen3.5) with a freshly trained Polish+English tokenizer, for tests and demos."""

from engine.tiny.build import build_tiny_model, tiny_model_dir

__all__ = ["build_tiny_model", "tiny_model_dir"]
