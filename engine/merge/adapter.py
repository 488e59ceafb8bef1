"""A PEFT LoRA / DoRA adapter read from disk, as what it does to each base weight: the task vector τ = W_adapted − W.

W_adapted is exactly what PEFT's `merge_and_unload()` would store: LoRA adds scaling·B·A, DoRA rescales
W + scaling·B·A to its learned magnitude, a saved full weight (`modules_to_save`, an embedding's
`base_layer`) replaces the base before the low-rank update.

Scaling an adapter by s means W + s·τ: the whole task vector, the magnitude included. For LoRA this is
LoRA with its scaling multiplied by s. DoRA's W_adapted = m·(W + ΔW)/‖W + ΔW‖ is not linear in ΔW, and
scaling only the low-rank direction, m·(W + sΔW)/‖W + sΔW‖, keeps the learned magnitude m at every s:
s = 0 would give m·W/‖W‖, not W, so "scale 0" would still apply the adapter. Interpolating the merged
weight makes s = 0 exactly the base and s = 1 exactly the adapter, is what the gates' hf backend does
when it evaluates a scale without writing it (both routes are one subject), and gives TIES and DARE one
definition of τ for LoRA and DoRA alike.
"""

from __future__ import annotations

import json
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from engine.errors import SpecError
from engine.merge.tensors import dora_weight, lora_delta

if TYPE_CHECKING:
    import torch

PREFIX = "base_model.model."
# adapter key suffix → (part of the update, True when the module is an Embedding)
PARTS = {
    ".lora_A.weight": ("lora_a", False), ".lora_B.weight": ("lora_b", False),
    ".lora_embedding_A": ("lora_a", True), ".lora_embedding_B": ("lora_b", True),
    ".lora_magnitude_vector": ("magnitude", None), ".base_layer.weight": ("replacement", None),
}
# adapter_config.json features whose weights are not a LoRA/DoRA update of an existing weight
UNSUPPORTED = {
    "fan_in_fan_out": "Conv1D-style (fan_in_fan_out) weights",
    "lora_bias": "trained LoRA biases (lora_bias)",
    "target_parameters": "LoRA on raw parameters (target_parameters)",
    "trainable_token_indices": "trainable token rows (trainable_token_indices)",
    "layer_replication": "layer replication",
}


@dataclass
class WeightUpdate:
    """What the adapter does to one base weight (tensors as saved; math in float32)."""

    lora_a: "torch.Tensor | None" = None
    lora_b: "torch.Tensor | None" = None
    magnitude: "torch.Tensor | None" = None
    replacement: "torch.Tensor | None" = None
    embedding: bool = False
    scaling: float = 1.0

    def adapted(self, weight: "torch.Tensor") -> "torch.Tensor":
        """W_adapted in float32: the weight PEFT's merge would store for base weight `weight`."""
        start = (self.replacement if self.replacement is not None else weight).float()
        if self.lora_a is None:
            return start
        delta = lora_delta(self.lora_a, self.lora_b, self.scaling)
        if self.embedding:  # PEFT stores A [r, vocab], B [dim, r]: the update is (B·A)ᵀ
            delta = delta.T
        if self.magnitude is None:
            return start + delta
        return dora_weight(start, delta, self.magnitude, norm_dim=0 if self.embedding else 1)

    def task_vector(self, weight: "torch.Tensor") -> "torch.Tensor":
        """τ = W_adapted − W, the adapter's whole effect on this weight (float32)."""
        if self.replacement is None and self.magnitude is None:  # plain LoRA: τ is ΔW itself, no float copy of W
            delta = lora_delta(self.lora_a, self.lora_b, self.scaling)
            return delta.T if self.embedding else delta
        return self.adapted(weight) - weight.float()


@dataclass
class Adapter:
    path: Path
    config: dict
    updates: dict[str, WeightUpdate] = field(default_factory=dict)  # base weight name → update

    @property
    def use_dora(self) -> bool:
        return any(u.magnitude is not None for u in self.updates.values())


def _alpha(config: dict, module: str) -> float:
    """lora_alpha, or the first alpha_pattern entry matching the module name (PEFT's own matching rule)."""
    for pattern, alpha in (config.get("alpha_pattern") or {}).items():
        if re.match(rf"(.*\.)?({pattern})$", module):
            return float(alpha)
    return float(config.get("lora_alpha", 8))


def read_adapter_config(path: str | Path) -> dict:
    """adapter_config.json, checked: a LoRA-family adapter without features a weight merge cannot express."""
    path = Path(path)
    config_file = path / "adapter_config.json"
    if not config_file.is_file():
        raise SpecError(f"{path}: not a PEFT adapter directory (no adapter_config.json)")
    try:
        config = json.loads(config_file.read_text(encoding="utf-8"))
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise SpecError(f"{config_file}: not valid JSON ({e})") from None
    if config.get("peft_type") != "LORA":
        raise SpecError(f"{config_file}: peft_type {config.get('peft_type')!r} cannot be merged (LoRA and DoRA can)")
    for key, what in UNSUPPORTED.items():
        if config.get(key):
            raise SpecError(f"{config_file}: {what} cannot be merged into the base weights")
    return config


def load_adapter(path: str | Path) -> Adapter:
    """Read adapter_config.json and adapter_model.safetensors; every tensor must map to a known part."""
    from safetensors.torch import load_file

    path = Path(path)
    config = read_adapter_config(path)
    weights_file = path / "adapter_model.safetensors"
    if not weights_file.is_file():
        raise SpecError(f"{path}: no adapter_model.safetensors (save the adapter with safe_serialization=True)")
    saved = load_file(str(weights_file))
    updates: dict[str, WeightUpdate] = {}
    for key, tensor in saved.items():
        if not key.startswith(PREFIX):
            raise SpecError(f"{weights_file}: tensor {key!r} is not under {PREFIX!r} (not a causal-LM PEFT adapter)")
        name = key[len(PREFIX):]
        suffix = next((s for s in PARTS if name.endswith(s)), None)
        if suffix is None:  # a modules_to_save copy: the trained full weight, under the base weight's own name
            updates.setdefault(name, WeightUpdate()).replacement = tensor
            continue
        part, embedding = PARTS[suffix]
        update = updates.setdefault(name[: -len(suffix)] + ".weight", WeightUpdate())
        setattr(update, part, tensor)
        if embedding is not None:
            update.embedding = embedding
    for name, update in updates.items():
        if (update.lora_a is None) != (update.lora_b is None) or (update.magnitude is not None and update.lora_a is None):
            raise SpecError(f"{weights_file}: incomplete LoRA weights for {name!r}")
        if update.lora_a is not None:
            rank = update.lora_a.shape[0]
            alpha = _alpha(config, name[: -len(".weight")])
            update.scaling = alpha / math.sqrt(rank) if config.get("use_rslora") else alpha / rank
    return Adapter(path, config, updates)
