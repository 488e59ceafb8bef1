"""The HF text model run from its checkpoint one block at a time: float32 compute, never a float32 model.

The model is built with its parameters on the meta device (no memory). A forward pre-hook on each block
— the input embedding, every decoder layer, the final norm, the output head — reads that block's weights
from the shards just before it runs, and a forward hook drops them right after, so memory holds one
decoder layer at a time, in the checkpoint's dtype: each linear layer is cast to float32 only while it
runs (small weights — norms, convolutions, gates — are cast on load). An embedding lookup is exact in any
dtype (its rows are cast to float32 afterwards), and the head multiplies in float32 a slice of vocabulary
rows at a time. Stored names are found through
engine.merge.layout, so a published Qwen3.5 checkpoint runs as its text model.

All probes go through as one right-padded batch, so each weight is read once; inside a decoder layer they
run PROBES_AT_ONCE at a time, so activations stay small next to the layer. The numbers are those of the
float32 model on each probe alone (tests/test_published_layout.py compares them).
"""

from __future__ import annotations

import os
from contextlib import contextmanager
from typing import TYPE_CHECKING

from engine.errors import SpecError
from engine.merge.layout import detect
from engine.merge.shards import CheckpointReader
from engine.merge.stream import trim_heap

if TYPE_CHECKING:
    import torch

HEAD_ROWS = 16384  # vocabulary rows of the output head multiplied in float32 at once
PROBES_AT_ONCE = 4  # probes a decoder layer runs together


def _rows(value, part: slice, n: int):
    """`value` (an argument of a decoder layer) cut to the batch rows `part`: tensors whose first of ≥ 2
    dimensions is the batch (hidden states, masks, positions, rotary tables), inside tuples and dicts too."""
    import torch

    if torch.is_tensor(value):
        return value[part] if value.dim() >= 2 and value.shape[0] == n else value
    if isinstance(value, (tuple, list)):
        return type(value)(_rows(v, part, n) for v in value)
    if isinstance(value, dict):
        return {k: _rows(v, part, n) for k, v in value.items()}
    return value


def _in_parts(forward):
    """A decoder layer's forward run PROBES_AT_ONCE batch rows at a time (rows are independent)."""
    import torch

    def run(hidden_states, *args, **kwargs):
        n = hidden_states.shape[0]
        if n <= PROBES_AT_ONCE:
            return forward(hidden_states, *args, **kwargs)
        outs = [forward(*_rows((hidden_states, *args), part, n), **_rows(kwargs, part, n))
                for part in (slice(i, i + PROBES_AT_ONCE) for i in range(0, n, PROBES_AT_ONCE))]
        if torch.is_tensor(outs[0]):
            return torch.cat(outs)
        return type(outs[0])(torch.cat(parts) if torch.is_tensor(parts[0]) else parts[0] for parts in zip(*outs))

    return run


def _set_param(module, name: str, tensor) -> None:
    import torch

    owner_name, _, attr = name.rpartition(".")
    owner = module.get_submodule(owner_name) if owner_name else module
    owner._parameters[attr] = torch.nn.Parameter(tensor, requires_grad=False)


def _blocks(model) -> list[tuple[str, object, bool]]:
    """(name prefix, module, whether it is a decoder layer) of every block loaded on its own: the decoder's
    children (each layer of a ModuleList separately) that hold weights, then the output head."""
    import torch

    names = {id(m): n for n, m in model.named_modules()}
    decoder = model.get_decoder()
    prefix = names[id(decoder)] + "."
    blocks = []
    for child_name, child in decoder.named_children():
        if isinstance(child, torch.nn.ModuleList):
            blocks += [(f"{prefix}{child_name}.{i}.", layer, True) for i, layer in enumerate(child)]
        elif any(True for _ in child.parameters()):
            blocks.append((f"{prefix}{child_name}.", child, False))
    head = model.get_output_embeddings()
    blocks.append((names[id(head)] + ".", head, False))
    return blocks


def _float32(linear, args) -> None:
    """Before a linear layer runs: its weights as float32 copies (the stored ones are kept aside)."""
    linear._stored = {n: p.data for n, p in linear.named_parameters(recurse=False)}
    for n, p in linear.named_parameters(recurse=False):
        p.data = p.data.float()


def _stored_dtype(linear, args, out) -> None:
    """After it ran: the stored weights back, the float32 copies dropped."""
    for n, p in linear.named_parameters(recurse=False):
        p.data = linear._stored[n]
    del linear._stored


class _Streamer:
    def __init__(self, model, model_dir, device: str):
        import torch

        self.reader = CheckpointReader(model_dir)
        self.layout = detect(self.reader.entries, str(model_dir))
        self.device = device
        embed, head = model.get_input_embeddings(), model.get_output_embeddings()
        self.keep_dtype = {id(embed), id(head)}
        names = {id(m): n for n, m in model.named_modules()}
        # a tied head is stored once, as the embedding
        self.tied = {f"{names[id(head)]}.weight": f"{names[id(embed)]}.weight"} \
            if getattr(model.config, "tie_word_embeddings", False) else {}
        covered = set()
        for prefix, block, is_layer in _blocks(model):
            block.register_forward_pre_hook(lambda m, args, p=prefix: self.load(m, p))
            block.register_forward_hook(lambda m, args, out: self.release(m, out))
            covered |= {prefix + n for n, _ in block.named_parameters()}
            if is_layer:
                block.forward = _in_parts(block.forward)
            if id(block) not in self.keep_dtype:
                for linear in block.modules():
                    if isinstance(linear, torch.nn.Linear):
                        linear.register_forward_pre_hook(_float32)
                        linear.register_forward_hook(_stored_dtype)
        for name, _ in list(model.named_parameters()):  # weights outside every block: loaded for good
            if name not in covered:
                _set_param(model, name, self.read(name).float().to(device))
        head.forward = lambda hidden: self.head_logits(head, hidden)

    def read(self, name: str) -> "torch.Tensor":
        stored = self.layout.stored_name(name) or self.layout.stored_name(self.tied.get(name, ""))
        if stored is None:
            raise SpecError(f"{self.layout.where}: the text model needs {name!r}, {self.layout.why_missing(name)}")
        return self.reader.read(stored)

    def load(self, block, prefix: str) -> None:
        import torch

        linear = {n for n, m in block.named_modules() if isinstance(m, torch.nn.Linear)}
        for name, _ in list(block.named_parameters()):
            tensor = self.read(prefix + name)
            if id(block) not in self.keep_dtype and name.rpartition(".")[0] not in linear:
                tensor = tensor.float()
            _set_param(block, name, tensor.to(self.device))

    def release(self, block, out):
        import torch

        for name, p in list(block.named_parameters()):
            _set_param(block, name, torch.empty(p.shape, dtype=torch.float32, device="meta"))
        trim_heap()
        if id(block) in self.keep_dtype and torch.is_tensor(out):  # the embedding's rows, as float32
            return out.float()
        return out

    @staticmethod
    def head_logits(head, hidden: "torch.Tensor") -> "torch.Tensor":
        import torch

        weight = head.weight
        out = torch.empty((*hidden.shape[:-1], weight.shape[0]), dtype=torch.float32, device=hidden.device)
        for start in range(0, weight.shape[0], HEAD_ROWS):
            out[..., start:start + HEAD_ROWS] = hidden.float() @ weight[start:start + HEAD_ROWS].float().T
        return out


@contextmanager
def layered_model(model_dir: str | os.PathLike, device: str = "cpu"):
    """The checkpoint's text model (AutoModelForCausalLM's class) with weights streamed block by block."""
    import torch
    from accelerate import init_empty_weights
    from transformers import AutoConfig, AutoModelForCausalLM

    config = AutoConfig.from_pretrained(model_dir)
    with init_empty_weights(include_buffers=False):
        model = AutoModelForCausalLM.from_config(config, dtype=torch.float32)
    model.eval()
    for buffer in model.buffers():  # rotary tables etc. are computed at construction, not stored
        buffer.data = buffer.data.to(device)
    _Streamer(model, model_dir, device)
    yield model


def probe_logits(model_dir: str | os.PathLike, rows: list[list[int]], device: str = "cpu") -> list:
    """Next-token logits (float32 numpy [len(row), vocab]) of every token row, all rows in one padded batch."""
    import torch

    width = max(len(r) for r in rows)
    ids = torch.zeros((len(rows), width), dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, :len(row)] = torch.tensor(row)
        mask[i, :len(row)] = 1
    with layered_model(model_dir, device) as model, torch.inference_mode():
        logits = model(input_ids=ids.to(device), attention_mask=mask.to(device), use_cache=False).logits
    return [logits[i, :len(row)].float().cpu().numpy() for i, row in enumerate(rows)]
