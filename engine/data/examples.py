"""Training examples: chat rows from the shapes people store them in, their texts, seeded draws, atomic writes."""

from __future__ import annotations

import json
import os
import random
from pathlib import Path

from engine.errors import SpecError

ROLES = ("system", "user", "assistant")
PROMPT_KEYS = ("prompt", "instruction", "question")
RESPONSE_KEYS = ("response", "output", "answer", "completion")
CONTEXT_KEYS = ("input", "context")


def is_plain(row: dict) -> bool:
    """A plain example: `prompt` and `completion` strings, learned as raw text with no chat template (TRL's
    prompt-completion form; what data.klej writes with format = "plain")."""
    return "messages" not in row and isinstance(row.get("prompt"), str) and isinstance(row.get("completion"), str)


def to_messages(row: dict, where: str) -> list[dict]:
    """A row as chat messages: `messages`, or prompt/instruction (+ input/context) with response/output.

    `where` ("FILE: row N") prefixes every error.
    """
    if "messages" in row:
        messages = row["messages"]
        if not isinstance(messages, list) or not messages:
            raise SpecError(f"{where}: `messages` must be a non-empty list of {{role, content}}")
        for m in messages:
            if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
                raise SpecError(f"{where}: each message needs a role ({', '.join(ROLES)}) and a string content")
        if not any(m["role"] == "assistant" for m in messages):
            raise SpecError(f"{where}: no assistant turn")
        return [{"role": m["role"], "content": m["content"]} for m in messages]
    prompt = next((row[k] for k in PROMPT_KEYS if isinstance(row.get(k), str)), None)
    response = next((row[k] for k in RESPONSE_KEYS if isinstance(row.get(k), str)), None)
    if prompt is None or response is None:
        raise SpecError(f"{where}: needs `messages`, or a prompt ({'/'.join(PROMPT_KEYS)}) and a response "
                        f"({'/'.join(RESPONSE_KEYS)}); the row has: {', '.join(sorted(row))}")
    context = next((row[k] for k in CONTEXT_KEYS if isinstance(row.get(k), str) and row[k].strip()), None)
    user = f"{prompt}\n\n{context}" if context else prompt
    return [{"role": "user", "content": user}, {"role": "assistant", "content": response}]


def example_texts(row: dict) -> list[str]:
    """The texts of a row the guard checks: message contents, else every string value (except `source`)."""
    if isinstance(row.get("messages"), list):
        return [m["content"] for m in row["messages"] if isinstance(m, dict) and isinstance(m.get("content"), str)]
    out: list[str] = []

    def walk(value) -> None:
        if isinstance(value, str):
            out.append(value)
        elif isinstance(value, list):
            for v in value:
                walk(v)
        elif isinstance(value, dict):
            for v in value.values():
                walk(v)

    walk({k: v for k, v in row.items() if k != "source"})
    return out


def rng(seed: int, *parts) -> random.Random:
    """A generator seeded by the seed and a path of names: stable across runs and Python processes."""
    return random.Random("/".join([str(seed), *map(str, parts)]))


def allocate(total: int, sizes: dict[str, int]) -> dict[str, int]:
    """Split `total` over groups in proportion to their sizes (largest remainder, ties by name), capped by size."""
    whole = sum(sizes.values())
    if whole == 0 or total >= whole:
        return dict(sizes)
    shares = {k: total * v / whole for k, v in sizes.items()}
    out = {k: int(s) for k, s in shares.items()}
    for k in sorted(shares, key=lambda k: (-(shares[k] - out[k]), k))[:total - sum(out.values())]:
        out[k] += 1
    return out


def dumps(row: dict) -> str:
    return json.dumps(row, ensure_ascii=False, separators=(", ", ": "))


def write_outputs(files: dict[Path, str]) -> None:
    """Write every file to a temp name first, then move them all into place (no partial outputs)."""
    temps = []
    try:
        for path, text in files.items():
            path = Path(path)
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(f".{path.name}.tmp")
            temps.append((tmp, path))
            tmp.write_text(text, encoding="utf-8")
    except BaseException:
        for tmp, _ in temps:
            tmp.unlink(missing_ok=True)
        raise
    for tmp, path in temps:
        os.replace(tmp, path)


def jsonl(rows: list[dict]) -> str:
    return "".join(dumps(r) + "\n" for r in rows)


def report_json(report: dict) -> str:
    return json.dumps(report, ensure_ascii=False, indent=2) + "\n"
