"""A streaming OpenAI-compatible client that times each request: time to first token, decode tokens/s.

Plain `http.client` over one keep-alive connection per worker thread: nothing between the socket and the
clock but SSE line parsing (bench/serve.py checks it against a bare httpx loop). A token is one streamed
chunk with a `content` field, empty or not (llama.cpp streams one token per chunk, and a token that ends
inside a UTF-8 character decodes to ""); the server's own `usage` count wins when it sends one.
Not engine.gates.http_api: that one posts whole JSON replies with retries, which would hide the first token
and fold retry waits into the latency being measured.
"""

from __future__ import annotations

import http.client
import json
import queue
import threading
import time
from dataclasses import dataclass
from urllib.parse import urlsplit


@dataclass
class Timing:
    index: int  # the request's position in the fixed request list
    ttft_s: float
    total_s: float
    tokens: int

    @property
    def decode_tok_s(self) -> float:
        """Tokens after the first over the time after the first (the prefill is in ttft_s)."""
        decode = self.total_s - self.ttft_s
        return (self.tokens - 1) / decode if self.tokens > 1 and decode > 0 else 0.0


class Endpoint:
    """Chat completions at BASE_URL (…/v1) for one model id."""

    def __init__(self, url: str, model: str, timeout_s: float = 300.0, api_key: str | None = None):
        parts = urlsplit(url.rstrip("/"))
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"endpoint URL must be http(s)://HOST[:PORT]/…, got {url!r}")
        self.scheme, self.host, self.port = parts.scheme, parts.hostname, parts.port
        self.path = parts.path + "/chat/completions"
        self.model, self.timeout_s = model, timeout_s
        self.headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        if api_key:
            self.headers["Authorization"] = f"Bearer {api_key}"

    def connect(self) -> http.client.HTTPConnection:
        cls = http.client.HTTPSConnection if self.scheme == "https" else http.client.HTTPConnection
        return cls(self.host, self.port, timeout=self.timeout_s)

    def body(self, prompt: str, max_tokens: int, ignore_eos: bool) -> bytes:
        req = {"model": self.model, "messages": [{"role": "user", "content": prompt}], "max_tokens": max_tokens,
               "temperature": 0.0, "stream": True, "stream_options": {"include_usage": True}}
        if ignore_eos:  # llama-server reads ignore_eos; llama-cpp-python's server min_tokens (EOS banned until then)
            req.update(ignore_eos=True, min_tokens=max_tokens)
        return json.dumps(req).encode()

    def _send(self, conn: http.client.HTTPConnection, body: bytes) -> tuple[float, http.client.HTTPResponse]:
        """(when it was sent, the response); a keep-alive connection the server has closed meanwhile is
        reopened once (the request never reached it, and the clock starts again)."""
        for attempt in (0, 1):
            try:
                started = time.perf_counter()
                conn.request("POST", self.path, body=body, headers=self.headers)
                return started, conn.getresponse()
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                conn.close()
                if attempt:
                    raise
        raise AssertionError("unreachable")

    def stream(self, conn: http.client.HTTPConnection, body: bytes, index: int) -> Timing:
        started, resp = self._send(conn, body)
        if resp.status != 200:
            detail = resp.read()[:200].decode(errors="replace")
            raise RuntimeError(f"{self.host}:{self.port}{self.path} answered HTTP {resp.status}: {detail}")
        first = last = None
        chunks, usage = 0, None
        for raw in resp:
            line = raw.strip()
            if not line.startswith(b"data:"):
                continue
            data = line[5:].strip()
            if data == b"[DONE]":
                break
            event = json.loads(data)
            if event.get("usage"):
                usage = event["usage"].get("completion_tokens")
            for choice in event.get("choices") or ():
                if (choice.get("delta") or {}).get("content") is not None:
                    last = time.perf_counter()
                    first = first or last
                    chunks += 1
        resp.read()
        if first is None:  # the model ended at once: no token, the whole wait counts as time to first token
            first = last = time.perf_counter()
        return Timing(index, first - started, last - started, usage or chunks)


def run_requests(endpoint: Endpoint, bodies: list[bytes], concurrency: int,
                 on_done=None) -> tuple[list[Timing], float]:
    """Send every body with `concurrency` requests in flight; (timings in request order, wall seconds)."""
    todo: queue.Queue = queue.Queue()
    for i, body in enumerate(bodies):
        todo.put((i, body))
    timings: list[Timing | None] = [None] * len(bodies)
    errors: list[BaseException] = []
    lock = threading.Lock()

    def worker() -> None:
        conn = endpoint.connect()
        try:
            while not errors:
                try:
                    i, body = todo.get_nowait()
                except queue.Empty:
                    return
                timings[i] = endpoint.stream(conn, body, i)
                if on_done:
                    with lock:
                        on_done()
        except BaseException as e:  # reported by the caller, after every worker stopped
            errors.append(e)
        finally:
            conn.close()

    started = time.perf_counter()
    threads = [threading.Thread(target=worker, daemon=True) for _ in range(min(concurrency, len(bodies)))]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    wall = time.perf_counter() - started
    if errors:
        raise errors[0]
    return timings, wall
