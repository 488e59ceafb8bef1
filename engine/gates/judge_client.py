"""The judge endpoint: any OpenAI-compatible chat API, called concurrently, retried on transient errors, cached on disk.

The cache keeps one file per request, named by the hash of what is sent (model, messages, sampling
settings; not the URL or the key) and written whole, so a killed run resumes without paying twice for
replies that already came back. The API key is read from the environment variable named in the
settings at call time and never written anywhere.
"""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import random
import re
import threading
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field

from engine.errors import SpecError
from engine.jobs import JobConfig

URL_ENV, MODEL_ENV = "SLAYER_JUDGE_URL", "SLAYER_JUDGE_MODEL"
TRANSIENT_HTTP = {408, 409, 425, 429, 500, 502, 503, 504}
TRANSIENT_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
                    json.JSONDecodeError)


class JudgeSettings(JobConfig):
    """Where the judge lives and how hard to call it."""

    url: str = Field(description="base URL of the OpenAI-compatible API (…/v1); requests go to URL/chat/completions")
    model: str = Field(description="judge model id, sent with every request and recorded in fingerprints")
    api_key_env: str = Field("SLAYER_JUDGE_API_KEY",
                             description="environment variable holding the API key (unset: no key is sent)")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    timeout_s: float = Field(300.0, gt=0, description="per request")
    retries: int = Field(4, ge=0, description="extra tries after a transient error (5xx, 429, timeout, no connection)")
    backoff_s: float = Field(1.0, ge=0, description="wait before the first retry; doubles each time (plus jitter)")
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


class JudgeError(RuntimeError):
    """The endpoint kept failing (transient errors past the retries)."""


class JudgeClient:
    """Sends chat requests; counts what it did (requests, cache hits, calls, retries) for the gate's stats."""

    def __init__(self, settings: JudgeSettings):
        self.settings = settings
        self.endpoint = settings.url.rstrip("/") + "/chat/completions"
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
        pool = ThreadPoolExecutor(max_workers=self.settings.concurrency, thread_name_prefix="judge")
        try:
            futures = {pool.submit(self._call, bodies[i]): i for i in missing}
            for future in as_completed(futures):
                replies[futures[future]] = future.result()
                done += 1
                on_done(done)
        finally:  # a cancelled job must not wait for requests it will never use
            pool.shutdown(wait=False, cancel_futures=True)
        return replies

    # ---- one request -----------------------------------------------------------------------------

    def _call(self, body: dict) -> str | None:
        key = request_key(body)
        data = json.dumps(body, ensure_ascii=False).encode()
        headers = {"Content-Type": "application/json"}
        api_key = os.environ.get(self.settings.api_key_env)
        if api_key:
            headers["Authorization"] = f"Bearer {api_key}"
        last = ""
        for attempt in range(self.settings.retries + 1):
            if attempt:
                self._count("retries")
            try:
                request = urllib.request.Request(self.endpoint, data=data, headers=headers, method="POST")
                with urllib.request.urlopen(request, timeout=self.settings.timeout_s) as response:
                    reply = json.loads(response.read().decode("utf-8"))
                choice = reply["choices"][0]
                record = {"content": choice.get("message", {}).get("content"),
                          "finish_reason": choice.get("finish_reason"), "model": reply.get("model"),
                          "usage": reply.get("usage")}
                self._count("calls")
                self._write(key, record)
                return record["content"]
            except urllib.error.HTTPError as e:
                detail = e.read()[:300].decode("utf-8", "replace")
                if e.code not in TRANSIENT_HTTP:
                    raise SpecError(f"{self.endpoint}: the judge refused the request: HTTP {e.code}: "
                                    f"{detail}") from None
                last = f"HTTP {e.code}: {detail}"
                wait = _retry_after(e)
            except TRANSIENT_ERRORS as e:
                last, wait = f"{e.__class__.__name__}: {e}", None
            except (KeyError, IndexError, TypeError) as e:
                last, wait = f"not a chat completion ({e.__class__.__name__}: {e})", None
            if attempt < self.settings.retries:
                backoff = self.settings.backoff_s * 2 ** attempt
                time.sleep(wait if wait is not None else backoff * (1 + random.random() / 4))
        raise JudgeError(f"{self.endpoint}: no reply after {self.settings.retries + 1} tries; last: {last}")

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


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    """The server's Retry-After in seconds (capped at a minute), when it sent a number."""
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return min(60.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None
