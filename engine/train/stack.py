"""Adapter metadata (which training made it, on top of what) and stacking: knowledge, then behaviour, then preferences.

Every adapter directory this package writes holds `slayer_adapter.json`. Training on top of an adapter merges
it into the base first (saved once under outputs/stack_base/), so each checkpoint is still one adapter on one
model — a subject every backend can load. The order is enforced: CPT may not follow SFT or DPO, SFT may not
follow DPO.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from engine.errors import SpecError

META_FILE = "slayer_adapter.json"
# Training kinds in the order they may be stacked.
ORDER = {"cpt": 0, "sft": 1, "dpo": 2}
WHY = {"cpt": "knowledge", "sft": "behaviour", "dpo": "preferences"}


def read_meta(adapter_dir: str | os.PathLike) -> dict | None:
    path = Path(adapter_dir) / META_FILE
    if not path.is_file():
        return None
    return json.loads(path.read_text(encoding="utf-8"))


def write_meta(adapter_dir: str | os.PathLike, meta: dict) -> None:
    path = Path(adapter_dir) / META_FILE
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(meta, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def check_stack(kind: str, base_adapter: str, base_model: str, source: str) -> dict:
    """The base adapter's metadata, after checking the order and the base model; SpecError with the reason."""
    path = Path(base_adapter).expanduser()
    if not (path / "adapter_config.json").is_file():
        raise SpecError(f"{source}: base_adapter {base_adapter!r} is not a PEFT adapter directory "
                        "(no adapter_config.json)")
    meta = read_meta(path)
    if meta is None:
        raise SpecError(f"{source}: base_adapter {base_adapter!r} has no {META_FILE}, so the order of training "
                        "stages cannot be checked; train it with train.cpt / train.sft / train.dpo")
    later = [k for k in meta["stack"] if ORDER[k] > ORDER[kind]]
    if later:
        top = later[-1]
        raise SpecError(
            f"{source}: refusing {kind.upper()} on top of an adapter trained by {'→'.join(meta['stack']).upper()}: "
            f"{WHY[kind]} ({kind.upper()}) must come before {WHY[top]} ({top.upper()}), or the {kind.upper()} "
            f"loss washes out what {top.upper()} taught; train {kind.upper()} first, then {top.upper()} on top")
    if meta["base_model"] != base_model:
        raise SpecError(f"{source}: base_adapter was trained on {meta['base_model']!r}, not on model "
                        f"{base_model!r}")
    return meta


def build_stack_base(base_adapter: str, meta: dict, out_dir: Path) -> Path:
    """Merge the base adapter into the model it was trained on, streamed shard by shard (engine.merge.stream).

    Each weight is merged in float32 and stored back in the checkpoint's dtype, one tensor at a time, so
    neither a float32 model nor a second copy of the base is ever in memory; the result keeps the base's
    layout (a published Qwen3.5 checkpoint stays one, vision tower and MTP head untouched). 4-bit training
    later quantises the merged weights rather than merging into already-quantised ones. Reused when it
    already exists (a resumed run); written whole (temp folder, then rename).
    """
    if (out_dir / META_FILE).is_file():
        return out_dir
    from engine.merge.adapter import load_adapter
    from engine.merge.stream import merge_model

    merged = merge_model(meta["model"], load_adapter(base_adapter), out_dir)
    write_meta(merged, {**meta, "merged_adapter": str(Path(base_adapter).resolve())})
    return merged
