"""Merge methods by name: task arithmetic, TIES, DARE-TIES and DARE-linear as configured instances of one method.

Like mergekit's generalised task arithmetic, every method sparsifies each task vector, optionally elects a
sign per entry, combines the vectors and adds λ times the result to the base: W' = W + λ · combine(τ_1..τ_n).
With one adapter the sign election is a no-op (every kept entry agrees with itself), so TIES is trim + scale
and DARE is drop-and-rescale + scale; the registry keeps the n-vector form so the math stays the papers'.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal

from engine.merge import tensors

if TYPE_CHECKING:
    import torch


@dataclass(frozen=True)
class TaskVectorMethod:
    """One way to combine task vectors: how each is sparsified and whether signs are elected (TIES) first."""

    name: str
    sparsify: Literal["none", "magnitude", "random"]
    sign_consensus: bool
    description: str

    def combine(self, taus: list["torch.Tensor"], density: float = 1.0,
                generator: "torch.Generator | None" = None) -> "torch.Tensor":
        """The combined task vector (before λ): sparsify each τ, then disjoint mean (consensus) or sum."""
        import torch

        if self.sparsify == "magnitude":
            kept = [tensors.magnitude_trim(t.float(), density) for t in taus]
        elif self.sparsify == "random":
            kept = [tensors.random_drop(t.float(), density, generator) for t in taus]
        else:
            kept = [t.float() for t in taus]
        if self.sign_consensus and len(kept) > 1:  # one vector agrees with its own signs: nothing to elect
            return tensors.disjoint_mean(kept, tensors.elect_sign(kept))
        return kept[0] if len(kept) == 1 else torch.stack(kept).sum(0)


METHODS: dict[str, TaskVectorMethod] = {m.name: m for m in (
    TaskVectorMethod("task_arithmetic", "none", False,
                     "W + λ·Στ (Ilharco et al. 2023); with one adapter this is the adapter scale sweep"),
    TaskVectorMethod("ties", "magnitude", True,
                     "trim to the top-density entries by magnitude, elect signs, disjoint mean (Yadav et al. 2023)"),
    TaskVectorMethod("dare_ties", "random", True,
                     "DARE drop-and-rescale (Yu et al. 2023), then TIES sign election and disjoint mean"),
    TaskVectorMethod("dare_linear", "random", False,
                     "DARE drop-and-rescale (Yu et al. 2023), then a plain sum"),
)}


def tensor_generator(seed: int, tensor_name: str) -> "torch.Generator":
    """A generator seeded by (seed, tensor name): a DARE mask depends on neither shard order nor other tensors."""
    import torch

    digest = hashlib.sha256(f"{seed}:{tensor_name}".encode()).digest()
    return torch.Generator().manual_seed(int.from_bytes(digest[:8], "little") & ((1 << 63) - 1))


def merged_weight(weight: "torch.Tensor", taus: list["torch.Tensor"], method: str, scale: float = 1.0,
                  density: float = 1.0, seed: int = 0, tensor_name: str = "") -> "torch.Tensor":
    """W' = W + λ · METHODS[method].combine(τ…), in float32 (the caller casts back to the stored dtype)."""
    import torch

    generator = tensor_generator(seed, tensor_name) if METHODS[method].sparsify == "random" else None
    combined = METHODS[method].combine(taus, density, generator)
    return weight.to(torch.float32, copy=True).add_(combined, alpha=scale)
