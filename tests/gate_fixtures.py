"""Helpers for the gate tests: shipped gates with short answers, a fake LanguageTool server, and a counting proxy.

The proxy sits in front of llama_server.py's endpoint. It records every chat request it forwards (its cache
key and body), can answer the first N with an HTTP error (retries, refusals), can hold each request a while
(to kill a run mid-gate), and tracks how many requests were in flight at once.
"""

from __future__ import annotations

import json
import threading
from contextlib import contextmanager
import tomllib
import time
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs

from engine.gates.judge_client import request_key
from engine.gates.spec import GATES_DIR
from engine.jobs import dumps_toml


def short_gate(name: str, folder: Path, max_new_tokens: int = 24) -> str:
    """A shipped gate, unchanged but for shorter answers (a tiny random model never stops by itself) and its shipped
    fixture as its file: a .toml path."""
    path = GATES_DIR / f"{name}.toml"
    data = tomllib.loads(path.read_text(encoding="utf-8"))
    data["generate"]["max_new_tokens"] = max_new_tokens
    data["dataset"]["file"] = str(path.parent / (data["dataset"].get("file") or data["dataset"]["fixture"]))
    out = folder / f"{name}.toml"
    out.write_text(dumps_toml(data), encoding="utf-8")
    return str(out)


def send(handler: BaseHTTPRequestHandler, code: int, raw: bytes) -> None:
    handler.send_response(code)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(raw)))
    handler.end_headers()
    handler.wfile.write(raw)


def serve(handler_class) -> ThreadingHTTPServer:
    """A threaded HTTP server on a free loopback port, serving in the background."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler_class)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


class Quiet(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass


class CountingProxy:
    """Forwards /v1/* to the server; `keys`/`bodies` hold the POSTed requests that got a reply from the server.

    `reset(rewrite=...)` replaces the content of the server's n-th reply (counted from 0) with what
    `rewrite(n)` returns, where it returns a string: a deterministic judge verdict over the real protocol.
    """

    def __init__(self, target: str):  # target: the server's API base, …/v1
        self.target = target
        self.keys: list[str] = []
        self.bodies: list[dict] = []
        self.fail_first, self.fail_code, self.delay_s = 0, 503, 0.0
        self.rewrite = lambda n: None
        self.failed = self.in_flight = self.max_in_flight = 0
        self.lock = threading.Lock()
        proxy = self

        class Handler(Quiet):
            def do_GET(self):  # /v1/models: passed through, not counted
                send(self, 200, urllib.request.urlopen(proxy.target + self.path.removeprefix("/v1"), timeout=30).read())

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length", 0)))
                with proxy.lock:
                    if proxy.failed < proxy.fail_first:
                        proxy.failed += 1
                        send(self, proxy.fail_code, b'{"error": "injected"}')
                        return
                    proxy.in_flight += 1
                    proxy.max_in_flight = max(proxy.max_in_flight, proxy.in_flight)
                try:
                    time.sleep(proxy.delay_s)
                    request = urllib.request.Request(proxy.target + self.path.removeprefix("/v1"), data=body,
                                                     headers={"Content-Type": "application/json"})
                    reply = urllib.request.urlopen(request, timeout=120).read()
                finally:
                    with proxy.lock:
                        proxy.in_flight -= 1
                with proxy.lock:
                    parsed = json.loads(body)
                    content = proxy.rewrite(len(proxy.keys))
                    proxy.keys.append(request_key(parsed))
                    proxy.bodies.append(parsed)
                if content is not None:
                    answer = json.loads(reply)
                    answer["choices"][0]["message"]["content"] = content
                    reply = json.dumps(answer).encode()
                send(self, 200, reply)

        self.server = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/v1"

    def wait_idle(self, timeout_s: float = 60) -> None:
        """Until requests of a killed client have finished on the server (so they are not counted after a reset)."""
        time.sleep(0.5)  # a request sent just before the kill may not have reached the handler yet
        deadline = time.time() + timeout_s
        while self.in_flight and time.time() < deadline:
            time.sleep(0.05)

    def reset(self, fail_first: int = 0, fail_code: int = 503, delay_s: float = 0.0,
              rewrite=lambda n: None) -> None:
        with self.lock:
            self.keys, self.bodies = [], []
            self.fail_first, self.fail_code, self.delay_s, self.rewrite = fail_first, fail_code, delay_s, rewrite
            self.failed, self.max_in_flight = 0, self.in_flight

    def close(self) -> None:
        self.server.shutdown()


class FakeLanguageTool:
    """LanguageTool's HTTP API as language-tool-python uses it (/v2/languages, /v2/check), answering every
    non-empty text with one spelling match (category TYPOS) and one grammar match; counts the texts checked."""

    def __init__(self):
        self.checked = 0
        tool = self

        class Handler(Quiet):
            def do_GET(self):
                send(self, 200, json.dumps([{"name": "Polish", "code": "pl", "longCode": "pl-PL"}]).encode())

            def do_POST(self):
                form = parse_qs(self.rfile.read(int(self.headers.get("Content-Length", 0))).decode())
                text = form.get("text", [""])[0]
                tool.checked += 1
                matches = [match(text, "TYPOS"), match(text, "GRAMMAR")] if text else []
                send(self, 200, json.dumps({"matches": matches}).encode())

        self.server = serve(Handler)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}"

    def close(self) -> None:
        self.server.shutdown()


def match(text: str, category: str) -> dict:
    return {"message": "m", "shortMessage": "", "replacements": [], "offset": 0, "length": 1,
            "context": {"text": text[:40], "offset": 0, "length": 1}, "sentence": text[:40],
            "rule": {"id": f"FAKE_{category}", "description": "", "issueType": "grammar", "category": {"id": category}}}


@contextmanager
def counted_llama_server(n_ctx: int):
    """llama-cpp-python's server on the tiny model behind a CountingProxy (skips where llama_cpp is missing)."""
    import pytest

    from llama_server import llama_server

    pytest.importorskip("llama_cpp")
    with llama_server(n_ctx=n_ctx) as url:
        proxy = CountingProxy(url)
        try:
            yield proxy
        finally:
            proxy.close()
