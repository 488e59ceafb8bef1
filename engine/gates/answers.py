"""Prompts as the subject sees them (plain, or in its own chat template) and greedy answers to them.

Gates with `chat_template = true` use the template a deployment would: the hf backend's tokenizer template
(with thinking switched off, so the answer is not spent on reasoning), the template stored in the GGUF, or
(endpoint backend) the server's own, which gets the messages. Without it, the rendered prompt is completed
as plain text.
"""

from __future__ import annotations

import hashlib
import json

from engine.errors import SpecError


def render_chat(backend, messages: list[dict]) -> str:
    """`messages` as the subject's chat template renders them, ready for the assistant's answer."""
    tokenizer = getattr(backend, "tokenizer", None)
    if tokenizer is not None and getattr(tokenizer, "chat_template", None):
        return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                             enable_thinking=False)
    llm = getattr(backend, "llm", None)
    template = llm.metadata.get("tokenizer.chat_template") if llm is not None else None
    if template:
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        text = llm._model.token_get_text
        formatter = Jinja2ChatFormatter(template, text(llm.token_eos()), text(llm.token_bos()))
        return formatter(messages=messages, enable_thinking=False).prompt
    raise SpecError(f"the subject ({backend.name} backend) has no chat template; chat_template gates need one"
                    + (" (set the endpoint's `tokenizer`)" if backend.name == "endpoint" else ""))


def gate_prompts(items, backend) -> list[str]:
    """Every item's prompt: in the subject's chat template when the gate says `chat_template = true`."""
    if not items.gate.chat_template:
        return items.prompts()
    return [render_chat(backend, messages) for messages in items.chats()]


def completions(items, backend, settings) -> list[str]:
    """Greedy completions of every item (the gate's [generate] settings), cut at its stop strings; progress
    per batch. A backend that answers chats itself (the endpoint) gets the messages of chat_template gates."""
    gate, n = items.gate, len(items.rows)
    spec = gate.generate
    if spec is None:
        raise SpecError(f"{gate.source}: gate {gate.name}: needs a [generate] table (max_new_tokens, stop)")
    done = 0

    def on_batch(count: int) -> None:
        nonlocal done
        done += count
        settings.progress(done, n)

    if gate.chat_template and hasattr(backend, "generate_chat"):
        return backend.generate_chat(items.chats(), spec.stop, spec.max_new_tokens, on_batch)
    return backend.generate(gate_prompts(items, backend), spec.stop, spec.max_new_tokens, gate.bos,
                            settings.batch_size, on_batch)


def generate_answers(items, backend, settings) -> list[str]:
    """The stripped completions (answers judged or checked as a whole)."""
    return [a.strip() for a in completions(items, backend, settings)]


def rows_hash(rows: list[dict], columns: list[str]) -> str:
    """Hash of the given columns of the rows, in order (for gates whose scorer reads more than the template)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps([row.get(c) for c in columns], ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]

