"""The judge endpoint: any OpenAI-compatible chat API, called concurrently, retried on transient errors, cached on disk.

The cache keeps one file per request, named by the hash of what is sent (model, messages, sampling
settings; not the URL or the key) and written whole, so a killed run resumes without paying twice for
replies that already came back. The API key is read from the environment variable named in the
settings at call time and never written anywhere.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import threading
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field

from engine.errors import SpecError
from engine.gates.http_api import ApiError, ApiSettings, map_concurrently, post_json

URL_ENV, MODEL_ENV = "SLAYER_JUDGE_URL", "SLAYER_JUDGE_MODEL"


class JudgeSettings(ApiSettings):
    """Where the judge lives (requests go to URL/chat/completions) and how hard to call it."""

    model: str = Field(description="judge model id, sent with every request and recorded in fingerprints")
    max_tokens: int = Field(1024, ge=1, description="longest judge reply")
    structured: Literal["off", "json_object", "json_schema"] = Field(
        "off", description="ask for a JSON verdict: json_object (llama-cpp-python, vLLM) or json_schema (OpenAI, "
                           "vLLM, llama.cpp's llama-server); off: a free-text verdict is parsed")
    cache_dir: str | None = Field(None, description="reply cache (default: $SLAYER_HOME/cache/judge, "
                                                    "else ~/.cache/slayer/judge)")


def judge_from_env() -> JudgeSettings | None:
    """Settings from SLAYER_JUDGE_URL and SLAYER_JUDGE_MODEL when both are set (the CLI's way to name a judge)."""
    url, model = os.environ.get(URL_ENV), os.environ.get(MODEL_ENV)
    return JudgeSettings(url=url, model=model) if url and model else None


def default_cache_dir() -> Path:
    home = os.environ.get("SLAYER_HOME")
    return (Path(home) / "cache" if home else Path.home() / ".cache" / "slayer") / "judge"


def request_key(body: dict) -> str:
    return hashlib.sha256(json.dumps(body, sort_keys=True, ensure_ascii=False).encode()).hexdigest()


THINKING = re.compile(r"<think>.*?</think>", re.S)
JSON_OBJECT = re.compile(r"\{[^{}]*\}")
BRACKETED = re.compile(r"\[\[\s*([^\[\]]+?)\s*\]\]")


def parse_choice(reply: str | None, field: str, names: dict[str, str]) -> str | None:
    """The label a judge reply names, else None: a JSON object's `field`, else the last [[label]], else the bare
    reply (reasoning in <think> blocks is dropped). `names` maps lower-case spellings to labels."""
    if not reply:
        return None
    text = THINKING.sub("", reply).strip()
    for found in reversed(JSON_OBJECT.findall(text)):
        try:
            value = json.loads(found).get(field)
        except (json.JSONDecodeError, AttributeError):
            continue
        if isinstance(value, str) and value.strip().lower() in names:
            return names[value.strip().lower()]
    for mark in reversed(BRACKETED.findall(text)):
        if mark.lower() in names:
            return names[mark.lower()]
    return names.get(text.strip(" .*\n").lower())


def judge_prompts(gate) -> tuple[str, str]:
    """The gate's judge system prompt (may be empty) and user prompt template."""
    system, prompt = gate.options.get("judge_system", ""), gate.options.get("judge_prompt")
    if not prompt:
        raise SpecError(f"{gate.source}: gate {gate.name}: options.judge_prompt is missing")
    return system, prompt


def judge_fingerprint(settings: JudgeSettings, system: str, prompt: str, schema: dict) -> dict:
    """What decides a judged score besides the answers: the judge model, its prompts and reply settings."""
    prompt_hash = hashlib.sha256(json.dumps([system, prompt, schema], sort_keys=True).encode()).hexdigest()[:16]
    return {"judge_model": settings.model, "judge_prompt_hash": prompt_hash, "judge_structured": settings.structured,
            "judge_max_tokens": settings.max_tokens}


def chat_messages(system: str, user: str) -> list[dict]:
    return ([{"role": "system", "content": system}] if system else []) + [{"role": "user", "content": user}]


class JudgeError(ApiError):
    """The endpoint kept failing (transient errors past the retries)."""


class JudgeClient:
    """Sends chat requests; counts what it did (requests, cache hits, calls, retries) for the gate's stats."""

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self.cache = Path(settings.cache_dir).expanduser() if settings.cache_dir else default_cache_dir()
        self.counts = {"requests": 0, "cache_hits": 0, "calls": 0, "retries": 0}
        self._lock = threading.Lock()

    def _count(self, name: str, by: int = 1) -> None:
        with self._lock:
            self.counts[name] += by

    def body(self, messages: list[dict], schema: dict | None = None) -> dict:
        """A greedy chat request; with `structured` set and a schema, the reply is constrained to it."""
        body = {"model": self.settings.model, "messages": messages, "temperature": 0.0,
                "max_tokens": self.settings.max_tokens}
        if schema is not None and self.settings.structured == "json_object":
            body["response_format"] = {"type": "json_object", "schema": schema}
        elif schema is not None and self.settings.structured == "json_schema":
            body["response_format"] = {"type": "json_schema",
                                       "json_schema": {"name": "verdict", "schema": schema, "strict": True}}
        return body

    def complete_all(self, bodies: list[dict], on_done: Callable[[int], None] = lambda done: None) -> list[str | None]:
        """Each request's reply text (None when the reply had no content), in order; cached replies are reused."""
        self._count("requests", len(bodies))
        replies: list[str | None] = [None] * len(bodies)
        missing = []
        for i, body in enumerate(bodies):
            cached = self._read(request_key(body))
            if cached is None:
                missing.append(i)
            else:
                replies[i] = cached["content"]
                self._count("cache_hits")
        done = len(bodies) - len(missing)
        on_done(done)
        if not missing:
            return replies
        found = map_concurrently(self._call, [bodies[i] for i in missing], self.settings.concurrency,
                                 lambda count: on_done(done + count))
        for i, reply in zip(missing, found):
            replies[i] = reply
        return replies

    # ---- one request -----------------------------------------------------------------------------

    def _call(self, body: dict) -> str | None:
        def check(reply: dict) -> None:
            reply["choices"][0].get("message", {})

        reply = post_json(self.settings, "/chat/completions", body, who="the judge", error=JudgeError,
                          on_retry=lambda: self._count("retries"), check=check)
        choice = reply["choices"][0]
        record = {"content": choice.get("message", {}).get("content"), "finish_reason": choice.get("finish_reason"),
                  "model": reply.get("model"), "usage": reply.get("usage")}
        self._count("calls")
        self._write(request_key(body), record)
        return record["content"]

    def _path(self, key: str) -> Path:
        return self.cache / key[:2] / f"{key}.json"

    def _read(self, key: str) -> dict | None:
        try:
            return json.loads(self._path(key).read_text(encoding="utf-8"))
        except (FileNotFoundError, json.JSONDecodeError):
            return None

    def _write(self, key: str, record: dict) -> None:
        path = self._path(key)
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.{id(record)}.tmp")
        tmp.write_text(json.dumps(record, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)

