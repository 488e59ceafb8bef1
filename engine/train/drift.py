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


def encode_probes(tok, probes: list[list[dict]], max_length: int) -> list[list[int]]:
    """Each probe as the model sees a prompt (chat template, generation prompt), cut to `max_length` tokens."""
    ids = []
    for messages in probes:
        text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=True) \
            if tok.chat_template else messages[-1]["content"]
        ids.append(tok.encode(text, add_special_tokens=False)[:max_length])
    return ids


def pad_batch(ids: list[list[int]], pad: int) -> dict:
    """Left-aligned, right-padded tensors of token id lists."""
    import torch

    width = max(len(x) for x in ids)
    return {"input_ids": torch.tensor([x + [pad] * (width - len(x)) for x in ids]),
            "attention_mask": torch.tensor([[1] * len(x) + [0] * (width - len(x)) for x in ids])}


def top_k_kl(base_top, base_ids, adapted_logits):
    """KL(base ‖ adapted) per position over the base's top-k tokens plus one bucket for the rest of the vocabulary:
    the KL of the two distributions coarsened to k + 1 outcomes — exact when the top k hold all the base's mass,
    otherwise a lower bound (coarsening never adds divergence)."""
    import torch
    import torch.nn.functional as F

    adapted = F.log_softmax(adapted_logits.float(), dim=-1).gather(-1, base_ids)
    p = base_top.exp()
    rest_p = (1 - p.sum(-1)).clamp(min=0)
    rest_q = (1 - adapted.exp().sum(-1)).clamp(min=1e-12)
    return (p * (base_top - adapted)).sum(-1) + torch.xlogy(rest_p, rest_p) - torch.xlogy(rest_p, rest_q)


class DriftMeter:
    """Mean KL(base ‖ adapted) over every probe token, measured in eval mode (no dropout); training mode is
    restored afterwards.

    The base is frozen, so its side is computed once, on the first measurement, and kept as its top-`top_k`
    log-probabilities per probe token (at a 248k vocabulary, 32 probes × 128 tokens of full log-probs would be
    4 GB of float32 beside training; the top 256 are 12 MB): each measurement after that is one no-grad forward
    of the adapted model. The probes are sorted by length before batching, so a batch pads little."""

    def __init__(self, tok, probes: list[list[dict]], max_length: int = 128, batch: int = 8, top_k: int = 256):
        ids = sorted(encode_probes(tok, probes, max_length), key=len)
        pad = tok.pad_token_id if tok.pad_token_id is not None else 0
        self.batches = [pad_batch(ids[i:i + batch], pad) for i in range(0, len(ids), batch)]
        self.top_k = top_k
        self.base: list | None = None  # per batch: (top-k log-probs, their token ids) at the probe tokens

    def _logits(self, model, batch: dict):
        batch = {k: v.to(model.device) for k, v in batch.items()}
        return model(**batch, use_cache=False).logits[batch["attention_mask"].bool()]

    def _base_top(self, model, batch: dict):
        import torch.nn.functional as F

        logprobs = F.log_softmax(self._logits(model, batch).float(), dim=-1)
        return logprobs.topk(min(self.top_k, logprobs.shape[-1]), dim=-1)

    def measure(self, model) -> float:
        import torch

        was_training = model.training
        model.eval()
        total, tokens = 0.0, 0
        try:
            if self.base is None:
                with base_model(model):
                    self.base = [self._base_top(model, b) for b in self.batches]
            for batch, (top, ids) in zip(self.batches, self.base):
                with torch.no_grad():
                    total += top_k_kl(top, ids, self._logits(model, batch)).sum().item()
                tokens += len(top)
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
