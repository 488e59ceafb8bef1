"""PEFT adapters with random non-zero weights (nothing trained) for merge and export tests."""

from __future__ import annotations


def make_adapter(base, out, dora: bool, **extra):
    """Save a LoRA / DoRA adapter of `base` to `out`; DoRA magnitudes are moved off their initial norms."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    torch.manual_seed(1)
    model = AutoModelForCausalLM.from_pretrained(base)
    config = LoraConfig(**{"r": 4, "lora_alpha": 8, "target_modules": "all-linear", "use_dora": dora,
                           "init_lora_weights": False, **extra})
    peft_model = get_peft_model(model, config)
    with torch.no_grad():
        for name, p in peft_model.named_parameters():
            if "lora_magnitude_vector" in name:
                p.mul_(1 + 0.3 * torch.randn_like(p))
    peft_model.save_pretrained(out)
    return out
