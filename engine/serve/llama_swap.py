"""llama-swap's config.yaml: one `models:` entry per served subject, validated against llama-swap's documented
format (github.com/mostlygeek/llama-swap, config.example.yaml) and rewritten atomically with a backup.

An entry is `models.<id>: {cmd, ttl, name, description, metadata}`; `cmd` is the llama-server command line with
the `${PORT}` macro (llama-swap picks the port and proxies to it, so no `proxy` is needed). Writing the
same subject twice leaves the file byte-identical: the update is idempotent.
"""

from __future__ import annotations

import os
import re
import shlex
import time
from pathlib import Path

import yaml

from engine.errors import SpecError

# Top-level keys and model keys llama-swap documents, with the YAML types it accepts.
TOP_KEYS = {"healthCheckTimeout": int, "logLevel": str, "logTimeFormat": str, "logToStdout": str,
            "metricsMaxInMemory": int, "captureBuffer": int, "startPort": int, "sendLoadingState": bool,
            "includeAliasesInList": bool, "macros": dict, "apiKeys": list, "models": dict, "groups": dict,
            "hooks": dict, "peers": dict}
MODEL_KEYS = {"cmd": str, "cmdStop": str, "name": str, "description": str, "env": list, "proxy": str,
              "aliases": list, "checkEndpoint": str, "ttl": int, "useModelName": str, "filters": dict,
              "metadata": dict, "macros": dict, "concurrencyLimit": int, "sendLoadingState": bool, "unlisted": bool}
MACRO_NAME = re.compile(r"^[A-Za-z0-9_-]{1,63}$")
RESERVED_MACROS = ("PORT", "MODEL_ID", "PID")


def _type_name(t: type) -> str:
    return {int: "an integer", str: "a string", bool: "a boolean", list: "a list", dict: "a mapping"}[t]


def _check_keys(mapping: dict, known: dict[str, type], where: str, what: str) -> None:
    for key, value in mapping.items():
        want = known.get(key)
        if want is None:
            raise SpecError(f"{where}: unknown {what} {key!r} (llama-swap would refuse it)")
        if not isinstance(value, want) or (want is int and isinstance(value, bool)):
            raise SpecError(f"{where}: {key} must be {_type_name(want)}")


def validate(config: dict, source: str) -> None:
    """Raise SpecError (one line) where `config` breaks llama-swap's documented format."""
    if not isinstance(config, dict):
        raise SpecError(f"{source}: not a YAML mapping")
    _check_keys(config, TOP_KEYS, source, "top-level key")
    for name in config.get("macros") or {}:
        if not MACRO_NAME.match(str(name)) or name in RESERVED_MACROS:
            raise SpecError(f"{source}: macro name {name!r} is not allowed")
    models = config.get("models")
    if not models:
        raise SpecError(f"{source}: `models` is required and must not be empty")
    aliases: dict[str, str] = {}
    for model_id, entry in models.items():
        where = f"{source}: models.{model_id}"
        if not isinstance(entry, dict):
            raise SpecError(f"{where} must be a mapping")
        _check_keys(entry, MODEL_KEYS, where, "key")
        if not str(entry.get("cmd", "")).strip():
            raise SpecError(f"{where}: `cmd` is required")
        if entry.get("ttl", 0) < 0:
            raise SpecError(f"{where}.ttl must be 0 (never unload) or more")
        if "${PORT}" not in entry["cmd"] and "proxy" not in entry:
            raise SpecError(f"{where}: `cmd` has a fixed port but no `proxy` says where to reach it")
        for alias in entry.get("aliases") or []:
            if alias in aliases or alias in models:
                raise SpecError(f"{where}: alias {alias!r} is not unique")
            aliases[alias] = model_id
    for group, spec in (config.get("groups") or {}).items():
        for member in (spec or {}).get("members") or []:
            if member not in models:
                raise SpecError(f"{source}: groups.{group} names {member!r}, which is not in `models`")


def model_entry(cmd: list[str], ttl: int, subject: dict, sha256: str | None) -> dict:
    """The `models.<id>` entry of one subject: cmd with ${PORT}, ttl, and what it is in metadata."""
    entry = {"cmd": " ".join(shlex.quote(a) if a != "${PORT}" else a for a in cmd), "ttl": ttl,
             "name": subject["name"], "description": f"slayer subject {subject['id']} ({subject['kind']})",
             "metadata": {"slayer_subject": subject["id"], "gguf_sha256": sha256 or ""}}
    return entry


def read_config(path: Path) -> tuple[str, dict]:
    """The file's text and its parsed, validated content; a missing or malformed file is one line."""
    if not path.is_file():
        raise SpecError(f"llama_swap.config: {path}: no llama-swap config on this box (install llama-swap and "
                        "create its config.yaml, or use mode = \"direct\")")
    text = path.read_text(encoding="utf-8")
    try:
        data = yaml.safe_load(text) or {}
    except yaml.YAMLError as e:
        raise SpecError(f"{path}: malformed YAML ({str(e).splitlines()[0]})") from None
    if not isinstance(data, dict):
        raise SpecError(f"{path}: not a YAML mapping")
    data.setdefault("models", {})
    if data["models"] is None:
        data["models"] = {}
    return text, data


def upsert_model(path: Path, model_id: str, entry: dict, backups: int = 5) -> str:
    """Put `entry` under models.<model_id>; returns "added", "updated" or "unchanged".

    The new text is validated before anything is written; the old file is copied to a dated backup and
    the new one renamed over it, so a crash leaves either the old or the new config, never half of one.
    """
    old_text, data = read_config(path)
    before = data["models"].get(model_id)
    if before == entry:
        return "unchanged"
    data["models"][model_id] = entry
    new_text = yaml.safe_dump(data, sort_keys=False, allow_unicode=True, width=10_000)
    validate(yaml.safe_load(new_text), str(path))
    stamp = time.strftime("%Y%m%d-%H%M%S")
    backup = path.with_name(f"{path.name}.{stamp}.bak")
    n = 1
    while backup.exists():
        n += 1
        backup = path.with_name(f"{path.name}.{stamp}-{n}.bak")
    backup.write_text(old_text, encoding="utf-8")
    for stale in sorted(path.parent.glob(f"{path.name}.*.bak"))[:-backups]:
        stale.unlink()
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    tmp.write_text(new_text, encoding="utf-8")
    os.replace(tmp, path)
    return "added" if before is None else "updated"
