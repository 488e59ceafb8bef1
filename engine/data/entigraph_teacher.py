"""The EntiGraph teacher: the judge gates' OpenAI-compatible client, made to skip (and count) requests that keep
failing instead of stopping the job, with token accounting from each reply's `usage`; and the reply parsers."""

from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from pydantic import Field

from engine.gates.judge_client import JudgeClient, JudgeError, JudgeSettings, request_key
from engine.jobs import JobConfig

# Every request ends in exactly one of these (the report's columns; nothing is lost silently).
OUTCOMES = ("ok", "empty", "unparseable", "truncated", "failed")
_FAILED = object()


class TeacherSettings(JudgeSettings):
    """The teacher endpoint (an OpenAI-compatible chat API) and how hard to call it."""

    model: str = Field(description="teacher model id, sent with every request (e.g. deepseek-v4-pro)")
    api_key_env: str = Field("SLAYER_TEACHER_API_KEY",
                             description="environment variable holding the API key (unset: no key is sent)")
    temperature: float = Field(0.7, ge=0, description="sampling temperature of the variants (entities and the "
                                                      "judge are greedy)")
    max_tokens: int = Field(512, ge=16, description="longest teacher reply")
    max_chars: int | None = Field(None, ge=16, description="structured output: longest free-text variant in "
                                                           "characters (default 3 × max_tokens)")
    structured: Literal["off", "json_object", "json_schema"] = Field(
        "off", description="constrain every reply to a JSON schema: json_object (llama-cpp-python, vLLM) or "
                           "json_schema (OpenAI, vLLM, llama-server); off: plain replies, parsed leniently")
    cache_dir: str | None = Field(None, description="reply cache (default: $SLAYER_HOME/cache/teacher, else "
                                                    "~/.cache/slayer/teacher); a rerun pays only for what is missing")


class JudgeFilter(JobConfig):
    """The open judge: is a variant faithful to its chunk (yes/no)? Endpoint settings default to the teacher's."""

    enabled: bool = Field(True, description="judge every variant; false: keep all that parse")
    url: str | None = Field(None, description="judge API base URL (default: the teacher's)")
    model: str | None = Field(None, description="judge model id (default: the teacher's)")
    api_key_env: str | None = Field(None, description="environment variable with the judge's key (default: the "
                                                      "teacher's)")
    max_tokens: int = Field(64, ge=8, description="longest verdict reply")
    on_unparseable: Literal["drop", "keep"] = Field("drop", description="a reply that is neither yes nor no")


def default_cache_dir() -> Path:
    home = os.environ.get("SLAYER_HOME")
    return (Path(home) / "cache" if home else Path.home() / ".cache" / "slayer") / "teacher"


@dataclass
class Reply:
    content: str | None
    finish_reason: str | None
    failed: bool = False


class TeacherClient(JudgeClient):
    """Counts requests, cache hits, calls, retries and failures, and the tokens in/out that replies report
    (`paid`: fresh calls of this run; `all`: including cached replies, i.e. what the data cost in total)."""

    def __init__(self, settings: JudgeSettings):
        if settings.cache_dir is None:
            settings = settings.model_copy(update={"cache_dir": str(default_cache_dir())})
        super().__init__(settings)
        self.counts["failed"] = 0
        self.tokens = {"in_all": 0, "out_all": 0, "in_paid": 0, "out_paid": 0}
        self.last_error = ""

    def _call(self, body: dict):
        try:
            return super()._call(body)
        except JudgeError as e:  # past the retries: skip this request, counted; a rerun asks again
            self._count("failed")
            self.last_error = str(e)
            return _FAILED

    def ask(self, bodies: list[dict]) -> list[Reply]:
        """One reply per body, in order; identical bodies are sent once."""
        keys = [request_key(b) for b in bodies]
        first: dict[str, dict] = {}
        for key, body in zip(keys, bodies):
            first.setdefault(key, body)
        unique = list(first)
        fresh = {k for k in unique if not self._path(k).is_file()}
        contents = dict(zip(unique, self.complete_all([first[k] for k in unique])))
        replies = {}
        for key in unique:
            if contents[key] is _FAILED:
                replies[key] = Reply(None, None, failed=True)
                continue
            record = self._read(key) or {}
            usage = record.get("usage") or {}
            tokens_in, tokens_out = int(usage.get("prompt_tokens") or 0), int(usage.get("completion_tokens") or 0)
            with self._lock:
                self.tokens["in_all"] += tokens_in
                self.tokens["out_all"] += tokens_out
                if key in fresh:
                    self.tokens["in_paid"] += tokens_in
                    self.tokens["out_paid"] += tokens_out
            replies[key] = Reply(contents[key], record.get("finish_reason"))
        return [replies[k] for k in keys]

    def stats(self) -> dict:
        return {"url": self.settings.url, "model": self.settings.model, **self.counts,
                "tokens_in": self.tokens["in_all"], "tokens_out": self.tokens["out_all"],
                "tokens_in_paid": self.tokens["in_paid"], "tokens_out_paid": self.tokens["out_paid"],
                **({"last_error": self.last_error} if self.last_error else {})}


_FENCE = re.compile(r"^```[a-zA-Z]*\s*|\s*```$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")


def clean(text: str) -> str:
    """Without control characters (other than newline and tab) and surrounding space."""
    return _CONTROL.sub("", text).strip()


def parse_json(reply: Reply) -> tuple[object, str]:
    """(value, outcome): the JSON in a reply, found inside code fences or surrounding prose when needed."""
    if reply.failed:
        return None, "failed"
    text = _FENCE.sub("", (reply.content or "").strip())
    if not text:
        return None, "empty"
    candidates = [text] + [text[text.find(o):text.rfind(c) + 1] for o, c in (("[", "]"), ("{", "}"))
                           if text.find(o) != -1 and text.rfind(c) > text.find(o)]
    for candidate in candidates:
        try:
            return json.loads(candidate, strict=False), "ok"  # raw newlines in strings are common
        except json.JSONDecodeError:
            continue
    return None, "truncated" if reply.finish_reason == "length" else "unparseable"


def parse_text(reply: Reply, structured: bool) -> tuple[str | None, str]:
    """(text, outcome) of a free-text reply ({"text": …} when structured); a reply cut off by the length
    limit is dropped as truncated."""
    if reply.failed:
        return None, "failed"
    if structured:
        value, outcome = parse_json(reply)
        if outcome != "ok":
            return None, outcome
        text = value.get("text") if isinstance(value, dict) else None
        if not isinstance(text, str):
            return None, "unparseable"
    else:
        text = reply.content or ""
    text = clean(text)
    if not text:
        return None, "empty"
    if reply.finish_reason == "length":
        return None, "truncated"
    return text, "ok"


def parse_list(reply: Reply, key: str) -> tuple[list | None, str]:
    """(items, outcome) of a reply holding a JSON list, bare or under `key`."""
    value, outcome = parse_json(reply)
    if outcome != "ok":
        return None, outcome
    if isinstance(value, dict):
        value = value.get(key)
    if not isinstance(value, list):
        return None, "unparseable"
    return value, ("ok" if value else "empty")


def parse_entities(reply: Reply, limit: int) -> tuple[list[str] | None, str]:
    """Distinct entity names (case-insensitively), at most `limit`, each under 100 characters."""
    items, outcome = parse_list(reply, "entities")
    if items is None:
        return None, outcome
    names: dict[str, str] = {}
    for item in items:
        if isinstance(item, dict):
            item = item.get("name")
        if isinstance(item, str) and 0 < len(clean(item)) < 100:
            names.setdefault(clean(item).casefold(), clean(item))
    entities = list(names.values())[:limit]
    return (entities, "ok") if entities else (None, "unparseable")


def parse_qa(reply: Reply) -> tuple[str | None, str]:
    """QA pairs as one text ("Pytanie: …\\nOdpowiedź: …" blocks)."""
    items, outcome = parse_list(reply, "pairs")
    if items is None:
        return None, outcome
    pairs = [(i.get("question"), i.get("answer")) for i in items if isinstance(i, dict)]
    pairs = [(clean(q), clean(a)) for q, a in pairs if isinstance(q, str) and isinstance(a, str)]
    blocks = [f"Pytanie: {q}\nOdpowiedź: {a}" for q, a in pairs if q and a]
    return ("\n\n".join(blocks), "ok") if blocks else (None, "unparseable")


_YES, _NO = {"tak", "yes", "true"}, {"nie", "no", "false"}


def parse_verdict(reply: Reply) -> tuple[bool | None, str]:
    """(faithful, outcome): {"verdict": "yes"|"no"} or a reply whose first word is tak/yes/nie/no."""
    if reply.failed:
        return None, "failed"
    text = (reply.content or "").strip()
    if not text:
        return None, "empty"
    value, outcome = parse_json(reply)
    if outcome == "ok" and isinstance(value, dict):
        text = str(value.get("verdict", ""))
    first = re.findall(r"\w+", text.casefold())[:1]
    if first and first[0] in _YES:
        return True, "ok"
    if first and first[0] in _NO:
        return False, "ok"
    return None, "truncated" if reply.finish_reason == "length" else "unparseable"
