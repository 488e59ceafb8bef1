"""Training data: chat rows with an assistant-token mask, plain text with replay, preference pairs.

Every problem with a file is a SpecError naming the file and the row.
"""

from __future__ import annotations

import random
from pathlib import Path
from typing import Callable

from engine.data.examples import is_plain
from engine.datafiles import read_rows
from engine.errors import SpecError

ROLES = ("system", "user", "assistant")


def klej_format(path: str) -> str:
    """"plain" or "chat": the format of a training file's KLEJ rows (those data.mix tagged source.kind = "klej"),
    or of its first row when none is tagged (data.mix keeps plain KLEJ rows plain beside chat style rows)."""
    rows = read_rows(path)
    row = next((r for r in rows if isinstance(r.get("source"), dict) and r["source"].get("kind") == "klej"), rows[0])
    return "plain" if is_plain(row) else "chat"


def read_examples(path: str) -> list[list[dict] | dict]:
    """Every row of a training file: its chat messages (a list; `source` and other keys are ignored), or
    {prompt, completion} (a dict) for a plain row; one file may hold both."""
    return [{"prompt": row["prompt"], "completion": row["completion"]} if is_plain(row) else _chat(path, number, row)
            for number, row in enumerate(read_rows(path), 1)]


def example_tokenizer(tok) -> Callable[[list[dict] | dict], dict]:
    """A function: one example of read_examples → {input_ids, assistant_masks}, chat or plain as the row is."""
    plain, chat = plain_tokenizer(tok), None

    def encode(example: list[dict] | dict) -> dict:
        nonlocal chat
        if isinstance(example, dict):
            return plain(example)
        chat = chat or chat_tokenizer(tok)  # only when there is a chat row: a plain file needs no chat template
        return chat(example)

    return encode


def plain_tokenizer(tok) -> Callable[[dict], dict]:
    """A function: {prompt, completion} → {input_ids, assistant_masks}: the completion's tokens cut from the joint
    tokenization (as lm-eval cuts a continuation), then end-of-text; the loss covers the completion and the end."""

    def encode(example: dict) -> dict:
        context = tok.encode(example["prompt"], add_special_tokens=False)
        whole = tok.encode(example["prompt"] + example["completion"], add_special_tokens=False)
        ids = whole + ([tok.eos_token_id] if tok.eos_token_id is not None else [])
        return {"input_ids": ids, "assistant_masks": [0] * len(context) + [1] * (len(ids) - len(context))}

    return encode


def _chat(path: str, number: int, row: dict) -> list[dict]:
    messages = row.get("messages")
    if not isinstance(messages, list) or not messages:
        raise SpecError(f"{path}: row {number}: needs a non-empty 'messages' list (or string 'prompt' and "
                        "'completion' for a plain example)")
    for m in messages:
        if not isinstance(m, dict) or m.get("role") not in ROLES or not isinstance(m.get("content"), str):
            raise SpecError(f"{path}: row {number}: each message needs a role ({'/'.join(ROLES)}) and "
                            "a string content")
    if messages[0]["role"] == "assistant":
        raise SpecError(f"{path}: row {number}: starts with an assistant turn (nothing to answer)")
    if not any(m["role"] == "assistant" and m["content"].strip() for m in messages):
        raise SpecError(f"{path}: row {number}: has no non-empty assistant turn to learn from")
    return [{"role": m["role"], "content": m["content"]} for m in messages]


def chat_tokenizer(tok) -> Callable[[list[dict]], dict]:
    """A function: messages → {input_ids, assistant_masks} (1 on the assistant's tokens, its end-of-turn included).

    Templates with `{% generation %}` markers, or ones TRL ships a marked training copy of (Qwen3/3.5, Llama…),
    mask through those markers; any other template is rendered turn by turn and the assistant spans are
    located in the text, which needs a template whose rendering of a conversation extends its prefixes.
    """
    from trl.chat_template_utils import get_training_chat_template

    try:
        template = get_training_chat_template(tok) or tok.chat_template
    except ValueError:
        return lambda messages: _mask_by_prefixes(tok, messages)

    def by_markers(messages: list[dict]) -> dict:
        out = tok.apply_chat_template(messages, tokenize=True, return_dict=True, chat_template=template,
                                      return_assistant_tokens_mask=True)
        return {"input_ids": list(out["input_ids"]), "assistant_masks": list(out["assistant_masks"])}

    return by_markers


def _mask_by_prefixes(tok, messages: list[dict]) -> dict:
    text = tok.apply_chat_template(messages, tokenize=False)
    spans = []
    for i, m in enumerate(messages):
        if m["role"] != "assistant":
            continue
        prompt = tok.apply_chat_template(messages[:i], tokenize=False, add_generation_prompt=True)
        turn = tok.apply_chat_template(messages[: i + 1], tokenize=False)
        if not (turn.startswith(prompt) and text.startswith(turn)):
            raise SpecError("chat template: rendering a conversation does not extend the rendering of its first "
                            "turns, so the assistant tokens cannot be located; use a template with "
                            "{% generation %} markers")
        # The turn's end-of-turn marker is learned (the model must learn to stop); the separator after it is not.
        spans.append((len(prompt), len(turn.rstrip())))
    enc = tok(text, add_special_tokens=False, return_offsets_mapping=True)
    mask = [int(any(s <= a < e for s, e in spans)) for a, _ in enc["offset_mapping"]]
    return {"input_ids": list(enc["input_ids"]), "assistant_masks": mask}


def read_texts(path: str) -> list[str]:
    """Documents of a .txt file (separated by blank lines) or of a table with a 'text' column."""
    p = Path(path)
    if p.suffix.lower() == ".txt":
        if not p.is_file():
            raise SpecError(f"{path}: no such file")
        docs = [d.strip() for d in p.read_text(encoding="utf-8").split("\n\n")]
    else:
        docs = []
        for number, row in enumerate(read_rows(path), 1):
            if not isinstance(row.get("text"), str):
                raise SpecError(f"{path}: row {number}: needs a string 'text'")
            docs.append(row["text"].strip())
    docs = [d for d in docs if d]
    if not docs:
        raise SpecError(f"{path}: no text")
    return docs


def mix_replay(docs: list[str], replay: list[str], share: float, count: Callable[[str], int],
               seed: int) -> tuple[list[str], float]:
    """`docs` plus replay documents (drawn in a seeded order, repeating if needed) until replay makes up
    `share` of the tokens; returns the shuffled mix and the share actually reached."""
    if share <= 0 or not replay:
        return list(docs), 0.0
    own = sum(count(d) for d in docs)
    want = own * share / (1 - share)
    rng = random.Random(seed)
    order = list(range(len(replay)))
    rng.shuffle(order)
    picked, got, i = [], 0, 0
    while got < want:
        doc = replay[order[i % len(order)]]
        picked.append(doc)
        got += count(doc)
        i += 1
    mixed = list(docs) + picked
    rng.shuffle(mixed)
    return mixed, got / (own + got)


def read_pairs(path: str) -> list[dict]:
    """Preference rows: prompt, chosen, rejected — strings, or message lists (TRL's conversational form)."""
    rows = []
    for number, row in enumerate(read_rows(path), 1):
        missing = [k for k in ("prompt", "chosen", "rejected") if k not in row]
        if missing:
            raise SpecError(f"{path}: row {number}: missing {', '.join(missing)} (a preference pair needs "
                            "prompt, chosen and rejected)")
        if row["chosen"] == row["rejected"]:
            raise SpecError(f"{path}: row {number}: chosen and rejected are identical")
        rows.append({k: row[k] for k in ("prompt", "chosen", "rejected")})
    return rows
