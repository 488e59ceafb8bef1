"""Answers to chat prompts: each item's rendered prompt as one user turn in the subject's own chat template.

Gates with `options.chat = true` use the template a deployment would: the hf backend's tokenizer template
(with thinking switched off, so the answer is not spent on reasoning) or the template stored in the GGUF.
Without it, the rendered prompt is completed as plain text.
"""

from __future__ import annotations

import hashlib
import json

from engine.errors import SpecError


def chat_prompt(backend, user: str, system: str | None = None) -> str:
    """`user` (after an optional system turn) as the subject's chat template renders it, ready for the answer."""
    messages = ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]
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
    raise SpecError(f"the subject ({backend.name} backend) has no chat template; chat gates need one")


def gate_prompts(items, backend) -> list[str]:
    """Every item's prompt: in the chat template when the gate says `options.chat = true`."""
    gate = items.gate
    if not gate.options.get("chat"):
        return items.prompts()
    system = gate.options.get("system")
    return [chat_prompt(backend, prompt, system) for prompt in items.prompts()]


def generate_answers(items, backend, settings) -> list[str]:
    """Greedy answers to every item (the gate's [generate] settings), stripped; progress per batch."""
    gate, n = items.gate, len(items.rows)
    spec = gate.generate
    if spec is None:
        raise SpecError(f"{gate.source}: gate {gate.name}: needs a [generate] table (max_new_tokens, stop)")
    done = 0

    def on_batch(count: int) -> None:
        nonlocal done
        done += count
        settings.progress(done, n)

    out = backend.generate(gate_prompts(items, backend), spec.stop, spec.max_new_tokens, gate.bos,
                           settings.batch_size, on_batch)
    return [a.strip() for a in out]


def rows_hash(rows: list[dict], columns: list[str]) -> str:
    """Hash of the given columns of the rows, in order (for gates whose scorer reads more than the template)."""
    h = hashlib.sha256()
    for row in rows:
        h.update(json.dumps([row.get(c) for c in columns], ensure_ascii=False, sort_keys=True).encode())
        h.update(b"\n")
    return h.hexdigest()[:16]

