"""References a spec may use instead of a path, resolved on the machine that runs the job (so a spec written on a
laptop runs the same on a box): `tiny:qwen3` / `tiny:qwen3_5` is the embedded tiny model (built once, cached),
`assets:examples/chat.jsonl` a file shipped in assets/. job.toml keeps the reference; the job sees the path."""

from __future__ import annotations

from pathlib import Path

from engine.errors import SpecError

ASSETS = Path(__file__).resolve().parents[1] / "assets"
TINY, ASSET = "tiny:", "assets:"


def resolve_ref(value: str) -> str:
    if value.startswith(TINY):
        from engine.tiny.build import tiny_model_dir

        arch = value[len(TINY):] or "qwen3"
        if arch not in ("qwen3", "qwen3_5"):
            raise SpecError(f"{value!r}: the embedded tiny models are tiny:qwen3 and tiny:qwen3_5")
        return str(tiny_model_dir(arch=arch, seed=0))
    if value.startswith(ASSET):
        path = ASSETS / value[len(ASSET):]
        if not path.exists():
            raise SpecError(f"{value!r}: no such file in {ASSETS}")
        return str(path)
    return value


def _walk(data):
    if isinstance(data, str):
        return resolve_ref(data)
    if isinstance(data, list):
        return [_walk(v) for v in data]
    if isinstance(data, dict):
        return {k: _walk(v) for k, v in data.items()}
    return data


def resolve_refs(config):
    """The job config with every tiny:/assets: reference replaced by its path (the same object when it has none)."""
    dump = config.model_dump(mode="json", exclude_unset=True)
    resolved = _walk(dump)
    return config if resolved == dump else type(config).model_validate(resolved)
