"""Build a tiny model directory (HF format: weights, config, tokenizer, chat template) and cache it for tests."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from engine.tiny.config import TinyModelConfig
from engine.tiny.tokenizer import (
    CHAT_MARKERS, corpus_digest, corpus_files, corpus_lines, hf_tokenizer, train_sentencepiece,
)

# Bump when the build changes what lands on disk, so cached tiny models are rebuilt.
BUILD_VERSION = 3
RECIPE_FILE = "slayer_tiny.json"
INDEX_FILE = "model.safetensors.index.json"


def _layer_types(n: int) -> list[str]:
    """Qwen3.5's pattern: three linear-attention layers, then one full; the last layer is always full."""
    return ["full_attention" if (i + 1) % 4 == 0 or i == n - 1 else "linear_attention" for i in range(n)]


def _vision_config(cfg: TinyModelConfig) -> dict:
    """The smallest vision tower Qwen3_5ForConditionalGeneration builds: never run, only carried (and merged around)."""
    return dict(depth=1, hidden_size=16, intermediate_size=32, num_heads=2, patch_size=4, spatial_merge_size=2,
                temporal_patch_size=2, out_hidden_size=cfg.hidden_size, num_position_embeddings=16)


def _rope(head_dim: int) -> dict:
    """Qwen3.5's rotary settings: a quarter of each head rotated, as interleaved MRoPE whose (t, h, w) sections
    split the rotated pairs as the released [11, 11, 10] splits 32 (llama.cpp requires they fit the head)."""
    pairs = head_dim // 4 // 2
    t = -(-pairs // 3)
    h = -(-(pairs - t) // 2)
    return {"rope_type": "default", "rope_theta": 10000000.0, "partial_rotary_factor": 0.25,
            "mrope_section": [t, h, pairs - t - h], "mrope_interleaved": True}


def _model_config(cfg: TinyModelConfig, tok):
    common = dict(
        vocab_size=len(tok), hidden_size=cfg.hidden_size, intermediate_size=cfg.intermediate_size,
        num_hidden_layers=cfg.num_layers, num_attention_heads=cfg.num_heads, num_key_value_heads=cfg.num_kv_heads,
        head_dim=cfg.head_dim, max_position_embeddings=cfg.max_position_embeddings,
        tie_word_embeddings=cfg.tie_word_embeddings, bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    if cfg.arch == "qwen3":
        from transformers import Qwen3Config, Qwen3ForCausalLM

        return Qwen3Config(**common), Qwen3ForCausalLM
    from transformers import Qwen3_5ForCausalLM, Qwen3_5TextConfig

    text = dict(**common, layer_types=_layer_types(cfg.num_layers), linear_num_key_heads=cfg.num_kv_heads,
                linear_num_value_heads=cfg.num_heads, linear_key_head_dim=cfg.head_dim,
                linear_value_head_dim=cfg.head_dim)
    if cfg.layout == "causal_lm":
        return Qwen3_5TextConfig(**text), Qwen3_5ForCausalLM
    from transformers import Qwen3_5Config, Qwen3_5ForConditionalGeneration

    # the released configs declare their MTP head in text_config; transformers itself ignores it
    text_config = Qwen3_5TextConfig(**text, rope_parameters=_rope(cfg.head_dim), mtp_num_hidden_layers=1,
                                    mtp_use_dedicated_embeddings=False)
    ids = tok.convert_tokens_to_ids
    config = Qwen3_5Config(
        text_config=text_config.to_dict(), vision_config=_vision_config(cfg), image_token_id=ids("<|image_pad|>"),
        video_token_id=ids("<|video_pad|>"), vision_start_token_id=ids("<|vision_start|>"),
        vision_end_token_id=ids("<|vision_end|>"), tie_word_embeddings=cfg.tie_word_embeddings)
    return config, Qwen3_5ForConditionalGeneration


def _mtp_weights(model, cfg: TinyModelConfig) -> dict:
    """Random weights of a one-layer MTP head named as the released Qwen3.5 checkpoints name it (`mtp.*`):
    a full-attention decoder layer, the projection of [embedding; hidden] back to hidden, and three norms
    (Qwen3.5 norms scale by 1 + w, so zeros are their identity)."""
    import torch

    h = cfg.hidden_size
    full = model.model.language_model.layers[-1]  # the last layer is always full attention
    weights = {f"mtp.layers.0.{k}": (torch.randn_like(v, dtype=torch.float32) * 0.02 if v.dim() > 1
                                     else torch.zeros_like(v, dtype=torch.float32))
               for k, v in full.state_dict().items()}
    weights["mtp.fc.weight"] = torch.randn(h, 2 * h) * 0.02
    for norm in ("pre_fc_norm_embedding", "pre_fc_norm_hidden", "norm"):
        weights[f"mtp.{norm}.weight"] = torch.zeros(h)
    return {k: v.to(torch.bfloat16).contiguous() for k, v in weights.items()}


def _save_published(model, cfg: TinyModelConfig, folder: Path, mtp: dict) -> None:
    """`save_pretrained` in bfloat16, about `cfg.shards` shards, then the MTP head added to the last shard
    (where the released checkpoints keep it) and to the index."""
    import torch
    from safetensors.torch import load_file, save_file

    model.to(torch.bfloat16)
    size = sum(p.numel() * p.element_size() for p in model.state_dict().values())
    model.save_pretrained(folder, max_shard_size=size // cfg.shards + 1)
    index_file = folder / INDEX_FILE
    if index_file.is_file():
        index = json.loads(index_file.read_text(encoding="utf-8"))
    else:  # one shard: give it an index like a sharded save would
        index = {"metadata": {"total_size": size}, "weight_map": dict.fromkeys(load_file(folder / "model.safetensors"),
                                                                                "model.safetensors")}
    last = folder / sorted(set(index["weight_map"].values()))[-1]
    save_file({**load_file(last), **mtp}, last, metadata={"format": "pt"})
    index["weight_map"].update(dict.fromkeys(mtp, last.name))
    index["metadata"]["total_size"] += sum(v.numel() * v.element_size() for v in mtp.values())
    if "total_parameters" in index["metadata"]:
        index["metadata"]["total_parameters"] += sum(v.numel() for v in mtp.values())
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _replace_dir(tmp: Path, out: Path) -> None:
    """Move a finished build into place; an older directory at `out` is removed only after that succeeds."""
    old = None
    if out.exists():
        old = out.with_name(f".{out.name}.old-{os.getpid()}")
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def build_tiny_model(out_dir: str | os.PathLike, on_step: Callable[[int, int, str], None] | None = None,
                     **config) -> Path:
    """Build the tiny model described by `config` (TinyModelConfig fields) into `out_dir`; returns its path.

    Written into a temporary sibling folder and renamed, so `out_dir` is never half-written.
    `on_step(done, total, label)` reports progress.
    """
    import torch
    from transformers import GenerationConfig

    cfg = TinyModelConfig(**config)
    step = on_step or (lambda done, total, label: None)
    out = Path(out_dir)
    out.parent.mkdir(parents=True, exist_ok=True)
    files = corpus_files(cfg.corpus)

    step(0, 3, "training tokenizer")
    sp_model = None
    if cfg.layout == "published":
        from engine.tiny.bpe import train_qwen_bpe

        tok = train_qwen_bpe(corpus_lines(files), cfg.vocab_size)
    else:
        sp_model = train_sentencepiece(corpus_lines(files), cfg.vocab_size)
        tok = hf_tokenizer(sp_model)

    step(1, 3, "initialising weights")
    model_config, model_cls = _model_config(cfg, tok)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(cfg.seed)
        model = model_cls(model_config).float().eval()
        mtp = _mtp_weights(model, cfg) if cfg.layout == "published" else {}
    model.generation_config = GenerationConfig(
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)

    step(2, 3, "saving")
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        recipe = {"build_version": BUILD_VERSION, "config": cfg.model_dump(mode="json"),
                  "corpus_sha256": corpus_digest(files), "parameters": sum(p.numel() for p in model.parameters())}
        tok.save_pretrained(tmp)
        if sp_model is None:
            from engine.tiny.bpe import PRE_TOKENIZER

            _save_published(model, cfg, tmp, mtp)
            # read by export.gguf: llama.cpp's converter knows the pre-tokenizer, not this tokenizer's hash
            recipe["gguf_pre_tokenizer"] = PRE_TOKENIZER
        else:
            model.save_pretrained(tmp)
            (tmp / "tokenizer.model").write_bytes(sp_model)
            _write_converter_hints(tmp / "tokenizer_config.json", tok)
        (tmp / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
        _replace_dir(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    step(3, 3, "done")
    return out


def _write_converter_hints(path: Path, tok) -> None:
    """Keys llama.cpp's converter reads from tokenizer_config.json and transformers 5 no longer writes there.

    Without `added_tokens_decoder` the chat markers become normal GGUF tokens (llama.cpp would then spell
    `<|im_start|>` out of pieces); without `add_bos_token: false` llama.cpp's SPM default adds a BOS.
    Only the chat markers are listed: <unk> <s> </s> <pad> already carry their types in tokenizer.model.
    """
    data = json.loads(path.read_text(encoding="utf-8"))
    data.update(add_bos_token=False, add_eos_token=False)
    data["added_tokens_decoder"] = {
        str(i): {"content": t.content, "lstrip": t.lstrip, "rstrip": t.rstrip, "normalized": t.normalized,
                 "single_word": t.single_word, "special": t.special}
        for i, t in sorted(tok.added_tokens_decoder.items()) if t.content in CHAT_MARKERS}
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


_built: dict[str, Path] = {}


def _cache_key(cfg: TinyModelConfig) -> str:
    import sentencepiece
    import tokenizers
    import transformers

    payload = {"build_version": BUILD_VERSION, "config": cfg.model_dump(mode="json"),
               "corpus": corpus_digest(corpus_files(cfg.corpus)),
               "transformers": transformers.__version__, "sentencepiece": sentencepiece.__version__, "tokenizers": tokenizers.__version__}
    return hashlib.sha256(json.dumps(payload, sort_keys=True).encode()).hexdigest()[:16]


def tiny_model_dir(arch: str = "qwen3", seed: int = 0, **config) -> Path:
    """A built tiny model shared by every caller: built once into $SLAYER_TINY_CACHE (or the temp dir) per config.

    Safe under parallel test workers: each builds into its own temp folder; the first rename wins.
    """
    cfg = TinyModelConfig(arch=arch, seed=seed, **config)
    key = _cache_key(cfg)
    if key in _built and _built[key].is_dir():
        return _built[key]
    root = Path(os.environ.get("SLAYER_TINY_CACHE") or Path(tempfile.gettempdir()) / "slayer-tiny-cache")
    out = root / f"{cfg.arch}-{key}"
    if not (out / RECIPE_FILE).is_file():
        root.mkdir(parents=True, exist_ok=True)
        tmp_parent = Path(tempfile.mkdtemp(prefix=".build-", dir=root))
        try:
            built = build_tiny_model(tmp_parent / "model", **cfg.model_dump())
            try:
                os.rename(built, out)
            except OSError:
                if not (out / RECIPE_FILE).is_file():  # not a lost race: a real failure
                    raise
        finally:
            shutil.rmtree(tmp_parent, ignore_errors=True)
    _built[key] = out
    return out
