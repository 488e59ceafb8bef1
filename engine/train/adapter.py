"""The base model as training sees it: device and dtype, optional 4-bit NF4 (QLoRA), and the PEFT adapter config."""

from __future__ import annotations

import importlib.util
from collections import Counter
from pathlib import Path

from engine.errors import SpecError
from engine.train.config import AdapterConfig, TrainJobConfig

# Never adapted: the input embedding and the output head stay exactly the base's.
ALWAYS_EXCLUDED = ("embed_tokens", "lm_head")


def model_ref(model: str) -> str:
    """A local model directory as an absolute path (gates and the store find it from anywhere); an HF id as is."""
    path = Path(model).expanduser()
    return str(path.resolve()) if path.exists() else model


def has_cuda() -> bool:
    import torch

    return torch.cuda.is_available()


def check_quantization(cfg: TrainJobConfig, source: str) -> None:
    """4-bit needs bitsandbytes on a CUDA GPU: say so in one line instead of failing deep inside a load."""
    if cfg.quantization != "4bit":
        return
    if not has_cuda():
        raise SpecError(f'{source}: quantization = "4bit" (QLoRA, bitsandbytes NF4) needs a CUDA GPU and this '
                        'machine has none; use quantization = "none"')
    if importlib.util.find_spec("bitsandbytes") is None:
        raise SpecError(f'{source}: quantization = "4bit" needs bitsandbytes (pip install bitsandbytes)')


def weights_dtype(cfg: TrainJobConfig):
    import torch

    if cfg.dtype == "auto":
        return torch.bfloat16 if has_cuda() else torch.float32
    return getattr(torch, cfg.dtype)


def trains_bf16(cfg: TrainJobConfig) -> bool:
    """bf16 mixed precision: on CUDA for QLoRA (bf16 compute) and bf16 weights; never on CPU."""
    import torch

    return has_cuda() and (cfg.quantization == "4bit" or weights_dtype(cfg) == torch.bfloat16)


def local_rank() -> int:
    import os

    return int(os.environ.get("LOCAL_RANK", "0"))


def nf4_config(sharded: bool = False):
    """QLoRA's quantisation (Dettmers et al. 2023): NF4 weights, double quantisation, bf16 compute. FSDP shards
    only floating-point tensors of one dtype, so a sharded run stores the packed 4-bit weights as bf16
    (`bnb_4bit_quant_storage`); the values are the same."""
    import torch
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                              bnb_4bit_compute_dtype=torch.bfloat16,
                              bnb_4bit_quant_storage=torch.bfloat16 if sharded else torch.uint8)


def load_base(path: str, cfg: TrainJobConfig):
    """The frozen base (4-bit NF4 with double quantisation and bf16 compute when asked)."""
    import torch
    from transformers import AutoModelForCausalLM

    kwargs: dict = {"dtype": weights_dtype(cfg)}
    sharded = cfg.launcher == "accelerate" and cfg.distributed == "fsdp"
    if cfg.quantization == "4bit":
        kwargs["quantization_config"] = nf4_config(sharded)
        kwargs["dtype"] = torch.bfloat16
        if not sharded:  # FSDP places the shards itself
            kwargs["device_map"] = {"": local_rank()}
    model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    if cfg.quantization == "4bit":
        prepare_quantized(model, cfg.training.gradient_checkpointing, upcast_norms=not sharded)
    return model


def prepare_quantized(model, gradient_checkpointing: bool, upcast_norms: bool) -> None:
    """QLoRA's preparation, without peft's blanket upcast (`prepare_model_for_kbit_training` turns every bf16
    weight into float32: on Qwen3.5-27B that is the 2.5 B-parameter embeddings and head, +4.7 GiB, more than a
    24 GB card can spare). The base is frozen; only the small 1-D weights (norms) go to float32 for stable
    statistics (not under FSDP, which shards one dtype); training runs under bf16 autocast (`bf16=True`)."""
    import torch

    for param in model.parameters():
        param.requires_grad = False
        if upcast_norms and param.ndim == 1 and param.dtype == torch.bfloat16:
            param.data = param.data.float()
    if gradient_checkpointing:
        model.enable_input_require_grads()  # checkpointed layers need an input that requires grad


def _matches(name: str, pattern: str) -> bool:
    """`pattern` is a run of whole dotted components of `name`: 'q_proj', 'self_attn.q_proj', 'layers.0', 'mlp'."""
    return f".{pattern.strip('.')}." in f".{name}."


def target_modules(model, adapter: AdapterConfig, source: str) -> list[str]:
    """Full names of the linear layers the adapter wraps: every linear layer except the embeddings and the head
    (on Qwen3.5 that includes the linear-attention projections), narrowed by include, minus exclude."""
    import torch

    heads = {id(m) for m in (model.get_input_embeddings(), model.get_output_embeddings()) if m is not None}
    names = [n for n, m in model.named_modules()
             if isinstance(m, torch.nn.Linear) and id(m) not in heads
             and not any(_matches(n, p) for p in ALWAYS_EXCLUDED)]
    for pattern in adapter.include:
        if not any(_matches(n, pattern) for n in names):
            raise SpecError(f"{source}: adapter.include {pattern!r} matches no linear layer of the model")
    if adapter.include:
        names = [n for n in names if any(_matches(n, p) for p in adapter.include)]
    names = [n for n in names if not any(_matches(n, p) for p in adapter.exclude)]
    if not names:
        raise SpecError(f"{source}: the adapter's include/exclude lists leave no linear layer to train")
    return names


def lora_config(model, adapter: AdapterConfig, source: str):
    from peft import LoraConfig

    return LoraConfig(
        r=adapter.rank, lora_alpha=adapter.scaling_alpha, lora_dropout=adapter.dropout,
        use_rslora=adapter.use_rslora, use_dora=adapter.method == "dora",
        target_modules=target_modules(model, adapter, source), bias="none", task_type="CAUSAL_LM")


def adapter_summary(cfg: TrainJobConfig, targets: list[str]) -> dict:
    """What a checkpoint event records about its adapter: method, rank, scaling and which layers it wraps."""
    a = cfg.adapter
    return {"method": a.method, "rank": a.rank, "alpha": a.scaling_alpha, "dropout": a.dropout,
            "use_rslora": a.use_rslora, "quantization": cfg.quantization,
            "targets": dict(sorted(Counter(n.rsplit(".", 1)[-1] for n in targets).items())),
            "excluded": list(ALWAYS_EXCLUDED) + list(a.exclude)}
