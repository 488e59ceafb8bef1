"""Safetensors shards streamed one tensor at a time: a rewritten shard keeps the base header byte for byte.

A merged weight has the base weight's name, dtype and shape, so the output header (names, offsets) is the
input header: the writer copies it, then writes each tensor in offset order — unchanged tensors as a raw
byte copy, changed ones from memory. Tensors are read with plain file reads rather than safetensors'
mmap, whose touched pages stay resident until the shard is closed; so only one tensor is held at a time.
"""

from __future__ import annotations

import json
import os
import struct
from pathlib import Path
from typing import TYPE_CHECKING, Callable

from engine.errors import SpecError

if TYPE_CHECKING:
    import torch

INDEX_FILE = "model.safetensors.index.json"
FLOAT_DTYPES = {"F32": "float32", "F16": "float16", "BF16": "bfloat16", "F64": "float64"}
SINGLE_FILE = "model.safetensors"
COPY_CHUNK = 16 << 20


def read_header(path: str | os.PathLike) -> tuple[bytes, dict]:
    """(the raw header bytes including its 8-byte length, the parsed header) of a .safetensors file."""
    with open(path, "rb") as f:
        head = f.read(8)
        if len(head) < 8:
            raise SpecError(f"{path}: not a safetensors file (too short)")
        (size,) = struct.unpack("<Q", head)
        raw = f.read(size)
    try:
        header = json.loads(raw)
    except (json.JSONDecodeError, UnicodeDecodeError):
        raise SpecError(f"{path}: not a safetensors file (bad header)") from None
    return head + raw, header


def local_model_dir(model: str | os.PathLike) -> Path:
    """A local HF-format directory: `model` itself, or a Hugging Face id already in the local HF cache (no download)."""
    path = Path(model).expanduser()
    if path.is_dir():
        return path
    from huggingface_hub import snapshot_download

    try:
        return Path(snapshot_download(str(model), local_files_only=True))
    except (OSError, ValueError):
        raise SpecError(f"{model}: no such directory, and not a Hugging Face id in the local cache") from None


def shard_files(model_dir: str | os.PathLike) -> list[Path]:
    """The model's safetensors shards in index order (or its single model.safetensors)."""
    model_dir = Path(model_dir)
    index = model_dir / INDEX_FILE
    if index.is_file():
        weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
        return [model_dir / name for name in dict.fromkeys(weight_map.values())]
    if (model_dir / SINGLE_FILE).is_file():
        return [model_dir / SINGLE_FILE]
    raise SpecError(f"{model_dir}: no {SINGLE_FILE} or {INDEX_FILE} (merging needs safetensors weights)")


def tensor_names(shard: str | os.PathLike) -> list[str]:
    return [k for k in read_header(shard)[1] if k != "__metadata__"]


def _copy_range(src, dst, start: int, length: int) -> None:
    src.seek(start)
    while length > 0:
        block = src.read(min(COPY_CHUNK, length))
        if not block:
            raise SpecError(f"{src.name}: truncated safetensors file")
        dst.write(block)
        length -= len(block)


def _read_tensor(f, offset: int, info: dict, name: str) -> "torch.Tensor":
    import torch

    if info["dtype"] not in FLOAT_DTYPES:
        raise SpecError(f"{f.name}: {name!r} is {info['dtype']}, not a float weight an adapter can change")
    begin, end = info["data_offsets"]
    buf = bytearray(end - begin)
    f.seek(offset + begin)
    if f.readinto(buf) != len(buf):
        raise SpecError(f"{f.name}: truncated safetensors file")
    return torch.frombuffer(buf, dtype=getattr(torch, FLOAT_DTYPES[info["dtype"]])).reshape(info["shape"])


def rewrite_shard(src: str | os.PathLike, dst: str | os.PathLike,
                  replace: Callable[[str, Callable[[], "torch.Tensor"]], "torch.Tensor | None"]) -> int:
    """Write `dst` = `src` with each tensor for which `replace(name, read)` returns a tensor swapped for it.

    `read()` loads the original tensor (only when called). The replacement must have the original shape
    and byte size. Returns how many tensors were replaced.
    """
    import torch

    raw, header = read_header(src)
    entries = sorted(((k, v) for k, v in header.items() if k != "__metadata__"), key=lambda kv: kv[1]["data_offsets"][0])
    replaced = 0
    with open(src, "rb") as fin, open(dst, "wb") as fout:
        fout.write(raw)
        for name, info in entries:
            begin, end = info["data_offsets"]
            tensor = replace(name, lambda: _read_tensor(fin, len(raw), info, name))
            if tensor is None:
                _copy_range(fin, fout, len(raw) + begin, end - begin)
                continue
            data = tensor.contiguous().view(-1).view(torch.uint8).numpy()
            if list(tensor.shape) != info["shape"] or data.nbytes != end - begin:
                raise ValueError(f"{name}: replacement {list(tensor.shape)} ({data.nbytes} bytes) does not match "
                                 f"{info['shape']} ({end - begin} bytes)")
            fout.write(data)
            replaced += 1
    return replaced



class CheckpointReader:
    """Single tensors of a safetensors checkpoint by stored name, read with plain file reads (nothing mapped,
    so nothing stays resident after the caller drops the tensor)."""

    def __init__(self, model_dir: str | os.PathLike):
        self.entries: dict[str, tuple[Path, int, dict]] = {}
        for shard in shard_files(model_dir):
            raw, header = read_header(shard)
            for name, info in header.items():
                if name != "__metadata__":
                    self.entries[name] = (shard, len(raw), info)

    def read(self, name: str) -> "torch.Tensor":
        shard, start, info = self.entries[name]
        with open(shard, "rb") as f:
            return _read_tensor(f, start, info, name)
