"""The `hf` backend: a transformers causal LM (CPU or CUDA), optionally with a PEFT adapter merged at a scale.

Likelihoods encode each shared context once (a left-padded batch, explicit positions), copy its cache
once per multi-token continuation (`Cache.reorder_cache`, which also expands Qwen3.5's
linear-attention states), and score every continuation in one right-padded pass from there.
"""

from __future__ import annotations

import copy
from typing import Callable

from engine.errors import SpecError

CONFIG_LENGTH_KEYS = ("n_positions", "max_position_embeddings", "n_ctx")  # lm-eval's order


def merge_adapter(model, adapter: str, scale: float):
    """Fold a PEFT adapter into the weights: W ← W + scale·(W_adapted − W), layer by layer.

    For LoRA this is LoRA with its scaling multiplied by `scale`. For DoRA the magnitude rescaling does
    not commute with scaling B·A, so we interpolate the merged DoRA weight linearly instead: scale 0 is
    exactly the base, 1 exactly the adapter (Liu et al. 2024, DoRA, eq. 5 for the merged weight).
    """
    from peft import PeftModel
    from peft.tuners.tuners_utils import BaseTunerLayer

    try:
        wrapped = PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError) as e:
        raise SpecError(f"{adapter}: cannot load the PEFT adapter ({e.__class__.__name__}: {str(e)[:200]})") from None
    if scale == 1.0:
        return wrapped.merge_and_unload()
    for module in wrapped.modules():
        if isinstance(module, BaseTunerLayer) and hasattr(module, "base_layer"):
            weight = module.get_base_layer().weight
            before = weight.detach().float().clone()
            module.merge()
            weight.data = (before + scale * (weight.detach().float() - before)).to(weight.dtype)
    return wrapped.unload()


def unmerged_adapter(model, adapter: str):
    """The adapter applied at run time on a quantised base (as QLoRA trained it)."""
    from peft import PeftModel

    try:
        return PeftModel.from_pretrained(model, adapter)
    except (OSError, ValueError) as e:
        raise SpecError(f"{adapter}: cannot load the PEFT adapter ({e.__class__.__name__}: {str(e)[:200]})") from None


def check_loading(quantization: str, device_map: str, device: str, adapter: str | None, scale: float,
                  who: str) -> None:
    """Refuse, in one line naming `who`, loading options this machine or this subject cannot have."""
    if quantization == "4bit" and not device.startswith("cuda"):
        raise SpecError(f'{who}: quantization = "4bit" (bitsandbytes NF4) needs a CUDA GPU and the gate runs on '
                        f'{device}; use quantization = "none"')
    if device_map == "auto" and not device.startswith("cuda"):
        raise SpecError(f'{who}: device_map = "auto" spreads the model over CUDA GPUs and the gate runs on '
                        f'{device}; use device_map = "none"')
    if quantization == "4bit" and adapter and scale != 1.0:
        raise SpecError(f'{who}: an adapter at scale {scale:g} is merged into the weights, which NF4 cannot '
                        'hold; score scaled candidates with quantization = "none"')


def loading_fingerprint(quantization: str, device_map: str) -> dict:
    """How the weights were loaded, for the fingerprint; empty for the plain load (older results still match)."""
    out = {}
    if quantization == "4bit":
        out["quantization"] = "nf4"
    if device_map == "auto":
        out["device_map"] = "auto"
    return out


def split_by_length(rows: list, length, min_saving: float = 0.1) -> list[list]:
    """Rows sorted by length, in one part, or two when that pads at least `min_saving` less (lm-eval sorts
    every request by length; one batch's continuations can differ a lot, e.g. HellaSwag endings)."""
    rows = sorted(rows, key=length)
    if len(rows) < 2:
        return [rows] if rows else []
    sizes = [length(r) for r in rows]
    cost, k = min((k * sizes[k - 1] + (len(rows) - k) * sizes[-1], k) for k in range(1, len(rows)))
    return [rows[:k], rows[k:]] if cost <= (1 - min_saving) * len(rows) * sizes[-1] else [rows]


class HFBackend:
    name = "hf"

    def __init__(self, model: str, adapter: str | None, scale: float, device: str, dtype: str,
                 quantization: str = "none", device_map: str = "none"):
        import torch
        from transformers import AutoModelForCausalLM, AutoTokenizer

        check_loading(quantization, device_map, device, adapter, scale, model)
        if dtype == "auto" or quantization == "4bit":
            dtype = "bfloat16" if device.startswith("cuda") else "float32"
        kwargs: dict = {"dtype": getattr(torch, dtype)}
        if quantization == "4bit":
            from engine.train.adapter import nf4_config

            kwargs["quantization_config"] = nf4_config()
        if quantization == "4bit" or device_map == "auto":
            # a quantised or dispatched model is placed by the loader and never moved afterwards
            kwargs["device_map"] = "auto" if device_map == "auto" else {"": device}
        try:
            tokenizer = AutoTokenizer.from_pretrained(model)
            net = AutoModelForCausalLM.from_pretrained(model, **kwargs)
        except OSError as e:
            raise SpecError(f"{model}: cannot load the model ({str(e)[:200]})") from None
        if adapter and quantization == "4bit":
            net = unmerged_adapter(net, adapter)  # merging into NF4 would round the update away
        elif adapter:
            net = merge_adapter(net, adapter, scale)
        if "device_map" not in kwargs:
            net = net.to(device)
        self._attach(net.eval(), tokenizer, device, dtype, loading_fingerprint(quantization, device_map))

    @classmethod
    def wrap(cls, model, tokenizer, device: str, dtype: str, loading: dict) -> "HFBackend":
        """A backend over a model already in memory (the training process's own, adapter and all): nothing is
        loaded, nothing is copied. The caller puts the model in eval mode and owns it afterwards."""
        backend = cls.__new__(cls)
        backend._attach(model, tokenizer, device, dtype, loading)
        return backend

    def _attach(self, model, tokenizer, device: str, dtype: str, loading: dict) -> None:
        self.model, self.tokenizer, self.dtype = model, tokenizer, dtype
        # inputs go where the embeddings live (the first GPU of a dispatched model)
        self.device = str(model.get_input_embeddings().weight.device) if device.startswith("cuda") else device
        self.fingerprint = loading  # added to every result's fingerprint: a 4-bit result never meets a bf16 one
        config = model.config.get_text_config() if hasattr(model.config, "get_text_config") else model.config
        self.max_length = next((getattr(config, k) for k in CONFIG_LENGTH_KEYS if getattr(config, k, None)), 2048)
        self.pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
        self.tokens_computed = 0  # real (non-pad) positions run through the model
        self.tokens_padded = 0  # positions including padding

    def encode(self, text: str, special: bool) -> list[int]:
        return self.tokenizer.encode(text, add_special_tokens=special)

    def close(self) -> None:
        import torch

        del self.model
        if self.device.startswith("cuda"):
            torch.cuda.empty_cache()

    # ---- likelihoods -------------------------------------------------------------------------------

    def loglikelihoods(self, groups: list[tuple[list[int], list[list[int]]]], batch_size: int,
                       on_batch: Callable[[int], None]) -> list[list[float]]:
        """Summed log-probabilities of each continuation after its context; longest groups first."""
        order = sorted(range(len(groups)), key=lambda i: -(len(groups[i][0]) + max(map(len, groups[i][1]))))
        out: list[list[float]] = [[] for _ in groups]
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            for i, scores in zip(chunk, self._score_batch([groups[i] for i in chunk])):
                out[i] = scores
            on_batch(len(chunk))
        return out

    def _score_batch(self, batch):
        import torch

        width = max(len(ctx) for ctx, _ in batch)
        ids = torch.full((len(batch), width), self.pad_id, dtype=torch.long)
        mask = torch.zeros((len(batch), width), dtype=torch.long)
        for b, (ctx, _) in enumerate(batch):
            ids[b, width - len(ctx):] = torch.tensor(ctx)
            mask[b, width - len(ctx):] = 1
        rows = [(b, j) for b, (_, conts) in enumerate(batch) for j, cont in enumerate(conts) if len(cont) > 1]
        dev = self.device
        with torch.inference_mode():
            out = self.model(input_ids=ids.to(dev), attention_mask=mask.to(dev),
                             position_ids=(mask.cumsum(-1) - 1).clamp(min=0).to(dev), use_cache=bool(rows),
                             logits_to_keep=1)
            first = out.logits[:, -1].float().log_softmax(-1).cpu()
            self.tokens_computed += int(mask.sum())
            self.tokens_padded += mask.numel()
            scores = [[float(first[b, cont[0]]) for cont in conts] for b, (_, conts) in enumerate(batch)]
            cache = out.cache if "cache" in out else out.past_key_values
            parts = split_by_length(rows, lambda r: len(batch[r[0]][1][r[1]]))
            for k, part in enumerate(parts):
                # every part but the last gets its own copy: _score_rest expands and extends the cache
                self._score_rest(batch, part, cache if k == len(parts) - 1 else copy.deepcopy(cache), mask, scores)
        return scores

    def _score_rest(self, batch, rows, cache, mask, scores) -> None:
        """Tokens 2.. of every multi-token continuation, all rows in one pass over a copy of the cache."""
        import torch

        dev = self.device
        owners = torch.tensor([b for b, _ in rows])
        cache.reorder_cache(owners.to(dev))
        tails = [batch[b][1][j][:-1] for b, j in rows]
        width = max(map(len, tails))
        ids = torch.full((len(rows), width), self.pad_id, dtype=torch.long)
        tail_mask = torch.zeros((len(rows), width), dtype=torch.long)
        for r, tail in enumerate(tails):
            ids[r, :len(tail)] = torch.tensor(tail)
            tail_mask[r, :len(tail)] = 1
        lengths = torch.tensor([len(batch[b][0]) for b, _ in rows])
        positions = lengths[:, None] + torch.arange(width)[None, :]
        out = self.model(input_ids=ids.to(dev), attention_mask=torch.cat([mask[owners], tail_mask], 1).to(dev),
                         position_ids=positions.to(dev), cache=cache, use_cache=True)
        self.tokens_computed += int(tail_mask.sum())
        self.tokens_padded += tail_mask.numel()
        targets = torch.zeros_like(ids)
        for r, (b, j) in enumerate(rows):
            targets[r, :len(tails[r])] = torch.tensor(batch[b][1][j][1:])
        logits = out.logits.float()
        logp = logits.gather(-1, targets.to(dev)[..., None])[..., 0] - logits.logsumexp(-1)
        sums = (logp * tail_mask.to(dev)).sum(-1).tolist()
        for (b, j), value in zip(rows, sums):
            scores[b][j] += value

    # ---- generation --------------------------------------------------------------------------------

    def generate(self, prompts: list[str], stop: list[str], max_new_tokens: int, special: bool, batch_size: int,
                 on_batch: Callable[[int], None]) -> list[str]:
        """Greedy completions, cut before the first stop string; longest prompts first, left-padded."""
        import torch
        from transformers import GenerationConfig

        encoded = [self.encode(p, special) for p in prompts]
        order = sorted(range(len(prompts)), key=lambda i: -len(encoded[i]))
        config = GenerationConfig(max_new_tokens=max_new_tokens, do_sample=False, pad_token_id=self.pad_id,
                                  eos_token_id=self.model.generation_config.eos_token_id,
                                  stop_strings=stop or None)
        out: list[str] = [""] * len(prompts)
        eos = config.eos_token_id
        eos = set(eos if isinstance(eos, list) else [eos])
        # Per prompt: it used every new token without reaching eos or a stop string (an unfinished answer).
        self.hit_limit = [False] * len(prompts)
        for start in range(0, len(order), batch_size):
            chunk = order[start:start + batch_size]
            width = max(len(encoded[i]) for i in chunk)
            ids = torch.full((len(chunk), width), self.pad_id, dtype=torch.long)
            mask = torch.zeros((len(chunk), width), dtype=torch.long)
            for b, i in enumerate(chunk):
                ids[b, width - len(encoded[i]):] = torch.tensor(encoded[i])
                mask[b, width - len(encoded[i]):] = 1
            with torch.inference_mode():
                gen = self.model.generate(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                                          generation_config=config, tokenizer=self.tokenizer)
            self.tokens_computed += int(mask.sum()) + (gen.shape[1] - width) * len(chunk)
            for b, i in enumerate(chunk):
                text = self.tokenizer.decode(gen[b, width:], skip_special_tokens=True)
                out[i] = cut_at_stop(text, stop)
                new = gen[b, width:].tolist()
                self.hit_limit[i] = len(new) >= max_new_tokens and not eos & set(new) and out[i] == text
            on_batch(len(chunk))
        return out


def cut_at_stop(text: str, stop: list[str]) -> str:
    """The text before the first occurrence of any stop string (lm-eval's `until`)."""
    for s in stop:
        if s:
            text = text.split(s)[0]
    return text
