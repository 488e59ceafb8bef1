"""Pure tensor math of adapter merging: LoRA and DoRA weight updates, magnitude trim, random drop, sign election.

Every function takes and returns float32 tensors and has no side effects; callers cast back to the
stored dtype. Names follow the papers: a *task vector* is τ = W_adapted − W (Ilharco et al. 2023).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    import torch


def lora_delta(lora_a: "torch.Tensor", lora_b: "torch.Tensor", scaling: float) -> "torch.Tensor":
    """LoRA's weight update ΔW = scaling · B·A (Hu et al. 2021, eq. 3).

    `scaling` is α/r, or α/√r with rsLoRA (Kalajdzievski 2023). Shapes: A [r, in], B [out, r] → [out, in].
    """
    return (lora_b.float() @ lora_a.float()).mul_(scaling)


def dora_weight(weight: "torch.Tensor", delta: "torch.Tensor", magnitude: "torch.Tensor",
                norm_dim: int = 1) -> "torch.Tensor":
    """DoRA's merged weight W' = m · (W + ΔW) / ‖W + ΔW‖ (Liu et al. 2024, eq. 5).

    The norm runs along `norm_dim`: 1 for a Linear weight [out, in] (one norm and one magnitude per output
    feature, the paper's column-wise norm), 0 for an Embedding [vocab, dim] (one per embedding feature), as PEFT does.
    """
    direction = weight.float() + delta.float()
    norm = direction.norm(p=2, dim=norm_dim, keepdim=True)
    shape = (-1, 1) if norm_dim == 1 else (1, -1)
    return magnitude.float().reshape(shape) * direction / norm


def magnitude_trim(tau: "torch.Tensor", density: float) -> "torch.Tensor":
    """TIES step 1, *trim*: keep the `density` fraction of entries largest in |τ|, zero the rest (Yadav et al. 2023, §4).

    Entries tied with the smallest kept magnitude are all kept, so exactly-equal values never split arbitrarily.
    """
    import torch

    if density >= 1.0:
        return tau.clone()
    keep = int(round(density * tau.numel()))
    if keep == 0:
        return torch.zeros_like(tau)
    # the keep-th largest |τ|, by an in-place partial sort of one |τ| copy (kthvalue adds an int64 index array)
    magnitudes = tau.abs().flatten().numpy()
    magnitudes.partition(tau.numel() - keep)
    threshold = float(magnitudes[tau.numel() - keep])
    del magnitudes
    return tau.masked_fill(tau.abs() < threshold, 0)


def random_drop(tau: "torch.Tensor", density: float, generator: "torch.Generator") -> "torch.Tensor":
    """DARE: drop each entry with probability p = 1 − density, rescale the survivors by 1/density (Yu et al. 2023, eq. 2).

    The rescale keeps the expected task vector unchanged: E[DARE(τ)] = τ.
    """
    import torch

    if density >= 1.0:
        return tau.clone()
    keep = torch.rand(tau.shape, generator=generator) < density
    return torch.where(keep, tau / density, torch.zeros_like(tau))


def elect_sign(taus: list["torch.Tensor"]) -> "torch.Tensor":
    """TIES step 2, *elect*: per entry, the sign of the larger total mass, sgn(Σ_t τ_t) (Yadav et al. 2023, §4)."""
    import torch

    return torch.sign(torch.stack(taus).sum(0))


def disjoint_mean(taus: list["torch.Tensor"], sign: "torch.Tensor") -> "torch.Tensor":
    """TIES step 3, *disjoint merge*: per entry, the mean over the task vectors whose entry has the elected sign.

    Zeros (trimmed or dropped entries) and entries of the other sign are left out of both sum and count.
    """
    import torch

    stacked = torch.stack(taus)
    agree = (torch.sign(stacked) == sign) & (stacked != 0)
    total = torch.where(agree, stacked, torch.zeros_like(stacked)).sum(0)
    count = agree.sum(0)
    return torch.where(count > 0, total / count.clamp(min=1), torch.zeros_like(total))
