"""A fault-injecting OpenAI-compatible endpoint on 127.0.0.1: forwards chat requests to an upstream server (or
answers them from a script), counts them by request hash, and answers chosen ones with a fault instead."""

from __future__ import annotations

import json
import threading
import urllib.request
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable

from engine.gates.judge_client import request_key

# What a fault does to the reply: an HTTP 500, a hang past the client's timeout, a body that is not JSON,
# an empty body, a completion cut in half, a completion with empty content.
FAULTS = ("500", "hang", "not_json", "empty_body", "truncated", "empty_content")


def completion(content: str, body: dict) -> dict:
    prompt = " ".join(m["content"] for m in body["messages"])
    return {"id": "chatcmpl-test", "object": "chat.completion", "model": body["model"],
            "choices": [{"index": 0, "message": {"role": "assistant", "content": content}, "finish_reason": "stop"}],
            "usage": {"prompt_tokens": len(prompt.split()), "completion_tokens": len(content.split())}}


class TeacherProxy:
    """`fault(n, body)` names the fault for the n-th request (1-based), or None to answer it properly;
    `script(body)` answers without an upstream. `seen` lists (key, fault) of every request in arrival order."""

    def __init__(self, upstream: str | None = None, fault: Callable[[int, dict], str | None] = lambda n, b: None,
                 script: Callable[[dict], str] | None = None):
        self.upstream, self.fault, self.script = upstream, fault, script
        self.seen: list[tuple[str, str | None]] = []
        self.bodies: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._release = threading.Event()
        proxy = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def do_POST(self):
                body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                with proxy._lock:
                    fault = proxy.fault(len(proxy.seen) + 1, body)
                    proxy.seen.append((request_key(body), fault))
                    proxy.bodies[request_key(body)] = body
                proxy.serve(self, body, fault)

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/v1"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def answer(self, body: dict) -> bytes:
        if self.script is not None:
            return json.dumps(completion(self.script(body), body)).encode()
        request = urllib.request.Request(f"{self.upstream}/chat/completions", data=json.dumps(body).encode(),
                                         headers={"Content-Type": "application/json"})
        with urllib.request.urlopen(request, timeout=120) as r:
            return r.read()

    def serve(self, handler: BaseHTTPRequestHandler, body: dict, fault: str | None) -> None:
        if fault == "hang":
            self._release.wait(30)  # the client gives up first; close() lets the thread go
            return
        status, data = 200, b""
        if fault == "500":
            status, data = 500, b'{"error": "injected"}'
        elif fault == "not_json":
            data = b"<html>502 Bad Gateway</html>"
        elif fault == "truncated":
            data = self.answer(body)[:40]
        elif fault == "empty_content":
            data = json.dumps(completion("", body)).encode()
        elif fault is None:
            data = self.answer(body)
        handler.send_response(status)
        handler.send_header("Content-Type", "application/json")
        handler.send_header("Content-Length", str(len(data)))
        handler.end_headers()
        handler.wfile.write(data)

    def answered(self) -> set[str]:
        """Keys of the requests that got a chat completion back (empty content included)."""
        return {key for key, fault in self.seen if fault in (None, "empty_content")}

    def close(self) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()
