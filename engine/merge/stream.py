"""Merge an adapter into its base model shard by shard, writing an HF-format directory.

Each base shard is read tensor by tensor and its merged copy is written before the next shard is opened:
memory holds the adapter and the tensor being merged, never a whole shard, let alone the model.
Tokenizer, config and other small files are copied; `slayer_merge.json` records how the weights were made.
"""

from __future__ import annotations

import ctypes
import functools
import json
import os
import shutil
import tempfile
from pathlib import Path
from typing import Callable

from engine.errors import SpecError
from engine.merge.adapter import Adapter
from engine.merge.layout import checkpoint_layout
from engine.merge.methods import METHODS, merged_weight
from engine.merge.shards import local_model_dir, rewrite_shard, shard_files

RECIPE_FILE = "slayer_merge.json"
WEIGHT_SUFFIXES = (".safetensors", ".bin", ".pt", ".pth", ".gguf", ".msgpack", ".h5")


def merge_model(base_dir: str | os.PathLike, adapter: Adapter, out_dir: str | os.PathLike,
                method: str = "task_arithmetic", scale: float = 1.0, density: float = 1.0, seed: int = 0,
                on_shard: Callable[[int, int, str], None] | None = None) -> Path:
    """Write base + λ·combine(τ) to `out_dir` (HF format, same shard layout as the base); returns its path.

    `base_dir` is a local HF directory or a Hugging Face id already in the local cache. Adapter weight names
    are matched to the base's through engine.merge.layout, so a published-layout base (text weights under
    `model.language_model.`) keeps its names, index, dtype and untouched vision tower and MTP head.
    `method` names an entry of engine.merge.methods.METHODS; `scale` is λ. Written into a temporary sibling
    and renamed, so `out_dir` is never half-written.
    """
    if method not in METHODS:
        raise SpecError(f"unknown merge method {method!r} (known: {', '.join(METHODS)})")
    base_dir, out = local_model_dir(base_dir), Path(out_dir)
    shards = shard_files(base_dir)
    stored = checkpoint_layout(base_dir).resolve(adapter.updates, f"{adapter.path}: the adapter changes")
    # stored name → (adapter's name, update); DARE seeds its mask with the adapter's name, so a merge draws
    # the same mask whichever layout its base is stored in
    updates = {stored[name]: (name, update) for name, update in adapter.updates.items()}
    out.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{out.name}.tmp-", dir=out.parent))
    try:
        for f in base_dir.iterdir():
            if f.is_file() and not f.name.endswith(WEIGHT_SUFFIXES):
                shutil.copy2(f, tmp / f.name)
        changed = 0
        for i, shard in enumerate(shards):
            changed += rewrite_shard(shard, tmp / shard.name,
                                     lambda name, read: _merged(read, *updates.get(name, (name, None)), adapter,
                                                                method, scale, density, seed))
            if on_shard:
                on_shard(i + 1, len(shards), shard.name)
        recipe = {"base": str(base_dir), "adapter": str(adapter.path), "method": method, "scale": scale,
                  "density": density, "seed": seed, "dora": adapter.use_dora, "weights_changed": changed}
        (tmp / RECIPE_FILE).write_text(json.dumps(recipe, indent=2) + "\n", encoding="utf-8")
        if out.exists():
            shutil.rmtree(out)
        os.replace(tmp, out)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    return out


@functools.cache
def _libc():
    try:
        return ctypes.CDLL("libc.so.6")
    except OSError:  # not glibc: nothing to trim
        return None


def trim_heap() -> None:
    """Give freed heap memory back to the OS. Without it glibc recycles each tensor's float32 temporaries
    through its heap and the resident size creeps up tensor by tensor (bench/merge_memory.py: +260 MiB
    instead of +130 MiB on a 944 MiB model)."""
    libc = _libc()
    if libc is not None:
        libc.malloc_trim(0)


def _merged(read, name: str, update, adapter: Adapter, method: str, scale: float, density: float, seed: int):
    if update is None:
        return None
    trim_heap()
    weight = read()
    if update.replacement is not None and update.replacement.shape != weight.shape:
        raise SpecError(f"{adapter.path}: saved {name!r} has shape {list(update.replacement.shape)}, the base "
                        f"{list(weight.shape)} (a resized vocabulary cannot be merged shard by shard)")
    tau = update.task_vector(weight)
    return merged_weight(weight, [tau], method, scale, density, seed, name).to(weight.dtype)
