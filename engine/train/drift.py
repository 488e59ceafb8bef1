"""Anti-drift while training: the KL to the base (the same model with its adapter disabled, no second copy) as a
loss term and as a live meter.

KL(base ‖ adapted) = Σ_v p_base(v) · (log p_base(v) − log p_adapted(v)) per position: it grows wherever the adapter
moves probability away from what the base predicted.
"""

from __future__ import annotations

from contextlib import contextmanager

from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.refs import resolve_ref


def kl_to_base(adapted_logits, base_logits):
    """Per-position KL(base ‖ adapted) of two [..., vocab] logit tensors, in float32."""
    import torch.nn.functional as F

    base = F.log_softmax(base_logits.float(), dim=-1)
    return (base.exp() * (base - F.log_softmax(adapted_logits.float(), dim=-1))).sum(-1)


@contextmanager
def base_model(model):
    """The model with its adapter(s) disabled and no gradients: the base's logits from the same weights."""
    import torch

    with torch.no_grad(), model.disable_adapter():
        yield model


def read_probes(path: str, count: int, source: str) -> list[list[dict]]:
    """The first `count` probe prompts as chat messages (a 'prompt' string or a 'messages' list per row)."""
    file = resolve_ref(path)
    probes = []
    for number, row in enumerate(read_rows(file), 1):
        if isinstance(row.get("messages"), list) and row["messages"]:
            messages = [m for m in row["messages"] if m.get("role") != "assistant"] or row["messages"]
        elif isinstance(row.get("prompt"), str):
            messages = [{"role": "user", "content": row["prompt"]}]
        else:
            raise SpecError(f"{source}: drift_probes {path}: row {number} needs a 'prompt' string or 'messages'")
        probes.append(messages)
        if len(probes) == count:
            break
    if not probes:
        raise SpecError(f"{source}: drift_probes {path}: no probe prompts")
    return probes


def encode_probes(tok, probes: list[list[dict]], max_length: int) -> dict:
    """Left-aligned, right-padded batch of the probes as the model sees a prompt (chat template, generation
    prompt), cut to `max_length` tokens."""
    import torch

    ids = []
    for messages in probes:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) \
            if tok.chat_template else messages[-1]["content"]
        ids.append(tok.encode(text, add_special_tokens=False)[:max_length])
    width = max(len(x) for x in ids)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0
    return {"input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])}


class DriftMeter:
    """Mean KL(base ‖ adapted) over every probe token, measured in eval mode (no dropout) and batches of
    `batch` probes; training mode is restored afterwards."""

    def __init__(self, tok, probes: list[list[dict]], max_length: int = 128, batch: int = 8):
        self.batches = [encode_probes(tok, probes[i:i + batch], max_length) for i in range(0, len(probes), batch)]

    def measure(self, model) -> float:
        import torch

        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        try:
            for batch in self.batches:
                batch = {k: v.to(model.device) for k, v in batch.items()}
                with torch.no_grad():
                    adapted = model(**batch, use_cache=False).logits
                with base_model(model):
                    base = model(**batch, use_cache=False).logits
                mask = batch["attention_mask"].bool()
                total += kl_to_base(adapted[mask], base[mask]).sum().item()
                tokens += int(mask.sum())
        finally:
            model.train(was_training)
        return total / max(tokens, 1)


def drift_callback(ctx, meter: DriftMeter, every: int, max_drift: float | None, stopped: dict):
    """A TrainerCallback: `drift_kl` every `every` steps; past `max_drift`, save a checkpoint and stop (the step
    and value land in `stopped`, which the checkpoint metadata records)."""
    from transformers import TrainerCallback

    class DriftCallback(TrainerCallback):
        def on_step_end(self, args, state, control, model=None, **kwargs):
            if state.global_step % every:
                return
            value = meter.measure(model)
            if state.is_world_process_zero:
                ctx.metric("drift_kl", value, step=state.global_step)
            if max_drift is not None and value > max_drift:
                stopped.update(stopped_by="max_drift", drift_kl=round(value, 6), max_drift=max_drift)
                control.should_save = True
                control.should_training_stop = True
                if state.is_world_process_zero:
                    ctx.log(f"drift_kl {value:.4g} passed max_drift {max_drift:g} at step {state.global_step}: "
                            "checkpoint saved, training stopped", level="warning")

    return DriftCallback()
