"""Calling an OpenAI-compatible HTTP API: one JSON POST retried on transient errors, many of them concurrently.

Shared by the judge client (engine.gates.judge_client) and the endpoint backend (engine.gates.endpoint).
Transient: HTTP 408/409/425/429/5xx, timeouts, refused connections, a reply that is not JSON; the wait
doubles from `backoff_s` (plus jitter) or follows the server's Retry-After. Any other HTTP error is the
caller's fault and is raised at once as a SpecError (one line, exit 2).
"""

from __future__ import annotations

import http.client
import json
import os
import random
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor, as_completed
from typing import Callable, Sequence, TypeVar

from pydantic import Field

from engine.errors import SpecError
from engine.jobs import JobConfig

TRANSIENT_HTTP = {408, 409, 425, 429, 500, 502, 503, 504}
TRANSIENT_ERRORS = (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
                    json.JSONDecodeError)

T = TypeVar("T")
R = TypeVar("R")


class ApiSettings(JobConfig):
    """Where an OpenAI-compatible API lives and how hard to call it."""

    url: str = Field(description="base URL of the OpenAI-compatible API (…/v1)")
    api_key_env: str = Field("SLAYER_JUDGE_API_KEY",
                             description="environment variable holding the API key (unset: no key is sent)")
    concurrency: int = Field(8, ge=1, description="requests in flight at once")
    timeout_s: float = Field(300.0, gt=0, description="per request")
    retries: int = Field(4, ge=0, description="extra tries after a transient error (5xx, 429, timeout, no connection)")
    backoff_s: float = Field(1.0, ge=0, description="wait before the first retry; doubles each time (plus jitter)")


class ApiError(RuntimeError):
    """The API kept failing (transient errors past the retries)."""


def headers(settings: ApiSettings) -> dict:
    out = {"Content-Type": "application/json"}
    key = os.environ.get(settings.api_key_env)
    if key:
        out["Authorization"] = f"Bearer {key}"
    return out


def get_json(settings: ApiSettings, path: str) -> dict:
    """GET URL/path once (no retries): a SpecError naming the URL when the server is not there."""
    url = settings.url.rstrip("/") + path
    try:
        request = urllib.request.Request(url, headers=headers(settings))
        with urllib.request.urlopen(request, timeout=min(settings.timeout_s, 30)) as response:
            return json.loads(response.read().decode("utf-8"))
    except (urllib.error.URLError, TimeoutError, ConnectionError, http.client.HTTPException,
            json.JSONDecodeError) as e:
        raise SpecError(f"{url}: no answer from the server ({e.__class__.__name__}: {str(e)[:200]})") from None


def post_json(settings: ApiSettings, path: str, body: dict, *, who: str = "the server",
              error: type[Exception] = ApiError, on_retry: Callable[[], None] = lambda: None,
              check: Callable[[dict], None] = lambda reply: None) -> dict:
    """POST `body` to URL/path and return the JSON reply; `check(reply)` raising KeyError/IndexError/TypeError
    marks a malformed reply (retried like a transient error)."""
    endpoint = settings.url.rstrip("/") + path
    data = json.dumps(body, ensure_ascii=False).encode()
    last = ""
    for attempt in range(settings.retries + 1):
        if attempt:
            on_retry()
        try:
            request = urllib.request.Request(endpoint, data=data, headers=headers(settings), method="POST")
            with urllib.request.urlopen(request, timeout=settings.timeout_s) as response:
                reply = json.loads(response.read().decode("utf-8"))
            check(reply)
            return reply
        except urllib.error.HTTPError as e:
            detail = e.read()[:300].decode("utf-8", "replace")
            if e.code not in TRANSIENT_HTTP:
                raise SpecError(f"{endpoint}: {who} refused the request: HTTP {e.code}: {detail}") from None
            last = f"HTTP {e.code}: {detail}"
            wait = _retry_after(e)
        except TRANSIENT_ERRORS as e:
            last, wait = f"{e.__class__.__name__}: {e}", None
        except (KeyError, IndexError, TypeError) as e:
            last, wait = f"not the reply expected ({e.__class__.__name__}: {e})", None
        if attempt < settings.retries:
            backoff = settings.backoff_s * 2 ** attempt
            time.sleep(wait if wait is not None else backoff * (1 + random.random() / 4))
    raise error(f"{endpoint}: no reply after {settings.retries + 1} tries; last: {last}")


def map_concurrently(fn: Callable[[T], R], items: Sequence[T], concurrency: int,
                     on_done: Callable[[int], None] = lambda done: None) -> list[R]:
    """`[fn(x) for x in items]` with up to `concurrency` calls in flight; `on_done(count)` after each one ends.
    The first exception is raised; requests not yet started are dropped."""
    out: list = [None] * len(items)
    if not items:
        return out
    pool = ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="api")
    try:
        futures = {pool.submit(fn, item): i for i, item in enumerate(items)}
        for done, future in enumerate(as_completed(futures), 1):
            out[futures[future]] = future.result()
            on_done(done)
    finally:  # a cancelled job must not wait for requests it will never use
        pool.shutdown(wait=False, cancel_futures=True)
    return out


def _retry_after(error: urllib.error.HTTPError) -> float | None:
    """The server's Retry-After in seconds (capped at a minute), when it sent a number."""
    value = error.headers.get("Retry-After") if error.headers else None
    try:
        return min(60.0, max(0.0, float(value)))
    except (TypeError, ValueError):
        return None
