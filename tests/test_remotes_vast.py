"""The vast.ai flow against a local HTTP server that answers the endpoints the code uses (vast itself
cannot be reached here), its instances being the test sshd: search, rent, wait, register, bootstrap, run,
cost, destroy — and the error replies. The API key never lands on disk."""

from __future__ import annotations

import asyncio
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from click.testing import CliRunner

from conftest import ROOT, free_port
from engine.errors import SpecError
from remotes.boxes import BoxError, get_box, load_boxes
from remotes.vast import VastClient, rent_box
from slayer_console.cli import cli
from sshd import sshd, sshd_factory  # noqa: F401  (fixtures)

KEY = "vast-test-key-0123456789abcdef"
OFFERS = [
    {"id": 101, "gpu_name": "RTX 4090", "num_gpus": 1, "dph_total": 0.41, "gpu_ram": 24564, "disk_space": 120,
     "reliability2": 0.995, "geolocation": "PL"},
    {"id": 102, "gpu_name": "RTX 4090", "num_gpus": 2, "dph_total": 0.80, "gpu_ram": 24564, "disk_space": 200,
     "reliability2": 0.99, "geolocation": "DE"},
    {"id": 201, "gpu_name": "H100 SXM", "num_gpus": 1, "dph_total": 2.10, "gpu_ram": 81559, "disk_space": 500,
     "reliability2": 0.999, "geolocation": "US"},
]


class FakeVast:
    """Answers /api/v0/{bundles,asks,instances} like vast does, errors included; its instances are `ssh_port`."""

    def __init__(self, ssh_port: int):
        self.ssh_port = ssh_port
        self.calls: list[tuple[str, str, dict | None]] = []
        self.instances: dict[int, dict] = {}
        self.throttle = 0  # answer this many next requests with 429
        self.boots_after = 2  # polls of an instance before it runs (0: never)
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args):
                pass

            def _answer(self, code: int, body: dict, headers: dict | None = None):
                data = json.dumps(body).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def _handle(self):
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                fake.calls.append((self.command, self.path, body))
                if self.headers.get("Authorization") != f"Bearer {KEY}":
                    return self._answer(401, {"success": False, "error": "invalid_user_key",
                                              "msg": "Invalid user key"})
                if fake.throttle:
                    fake.throttle -= 1
                    return self._answer(429, {"success": False, "error": "rate_limited", "msg": "slow down"},
                                        {"Retry-After": "0"})
                return fake.route(self.command, self.path, body, self._answer)

            do_GET = do_PUT = do_POST = do_DELETE = _handle

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"

    def route(self, method, path, body, answer):
        if method == "POST" and path == "/api/v0/bundles/":
            found = [o for o in OFFERS
                     if ("gpu_name" not in body or o["gpu_name"] == body["gpu_name"]["eq"])
                     and ("num_gpus" not in body or o["num_gpus"] == body["num_gpus"]["eq"])
                     and ("dph_total" not in body or o["dph_total"] <= body["dph_total"]["lte"])]
            return answer(200, {"offers": sorted(found, key=lambda o: o["dph_total"])[:body.get("limit", 64)]})
        if m := re.fullmatch(r"/api/v0/asks/(\d+)/", path):
            offer = next((o for o in OFFERS if o["id"] == int(m[1])), None)
            if method != "PUT" or offer is None:
                return answer(404, {"success": False, "error": "no_such_ask",
                                    "msg": f"Offer {m[1]} is no longer available"})
            iid = 9000 + len(self.instances)
            self.instances[iid] = {"offer": offer, "polls": 0, "label": body["label"], "ssh_keys": []}
            return answer(200, {"success": True, "new_contract": iid})
        m = re.fullmatch(r"/api/v0/instances/(\d+)/(ssh/)?", path)
        inst = self.instances.get(int(m[1])) if m else None
        if inst is None:
            return answer(404, {"success": False, "error": "no_such_instance", "msg": "Instance not found"})
        if method == "POST" and m[2]:
            inst["ssh_keys"].append(body["ssh_key"])
            return answer(200, {"success": True})
        if method == "DELETE":
            del self.instances[int(m[1])]
            return answer(200, {"success": True})
        inst["polls"] += 1
        running = self.boots_after and inst["polls"] >= self.boots_after
        offer = inst["offer"]
        return answer(200, {"instances": {
            "id": int(m[1]), "actual_status": "running" if running else "loading", "status_msg": "pulling image",
            "ssh_host": "127.0.0.1" if running else None, "ssh_port": self.ssh_port if running else None,
            "gpu_name": offer["gpu_name"], "num_gpus": offer["num_gpus"], "dph_total": offer["dph_total"],
            "start_date": time.time() - 600 if running else None}})

    def close(self):
        self.server.shutdown()


@pytest.fixture
def vast(sshd, monkeypatch):
    fake = FakeVast(sshd.port)
    monkeypatch.setenv("VAST_API_KEY", KEY)
    monkeypatch.setenv("SLAYER_VAST_URL", fake.url)
    yield fake
    fake.close()


def slayer(home, *args):
    return CliRunner().invoke(cli, ["--home", str(home), *args])


def test_rent_bootstrap_run_cost_destroy(vast, sshd, home, tmp_path):
    vast.throttle = 1  # the first answer is a rate limit: retried
    offers = slayer(home, "boxes", "vast", "offers", "--gpu", "RTX_4090", "--max-price", "0.5", "--format", "json")
    assert offers.exit_code == 0, offers.output
    assert [o["id"] for o in json.loads(offers.output)] == [101]
    assert vast.calls[0][2]["rentable"] == {"eq": True}

    states: list[str] = []
    box = asyncio.run(rent_box(home, "v1", 101, key_path=str(sshd.client_key), workdir=str(tmp_path / "wd"),
                               python=sys.executable, env={"PYTHONPATH": str(ROOT)},
                               accept_fingerprint=sshd.fingerprint, poll_s=0.05, on_state=states.append))
    assert (box.kind, box.rental.provider, box.rental.dph_total, box.rental.gpu) == ("ssh", "vast", 0.41, "1x RTX 4090")
    assert any("loading" in s for s in states)
    instance = vast.instances[box.rental.instance_id]
    assert instance["ssh_keys"] == [sshd.client_key.with_name("authorized_keys").read_text().strip()]
    assert get_box(home, "v1").address == f"root@127.0.0.1:{sshd.port}"

    spec = tmp_path / "job.toml"
    spec.write_text('kind = "debug.sleep"\nsteps = 3\n')
    ran = slayer(home, "run", str(spec), "--box", "v1", "--quiet")
    assert ran.exit_code == 0 and ran.stdout.strip().endswith(" succeeded"), ran.output
    listed = json.loads(slayer(home, "boxes", "--format", "json").output)
    assert next(b for b in listed if b["name"] == "v1")["running_cost"] > 0  # 10 minutes at $0.41/h

    destroyed = slayer(home, "boxes", "vast", "destroy", "v1")
    assert destroyed.exit_code == 0, destroyed.output
    assert vast.calls[-1][:2] == ("DELETE", f"/api/v0/instances/{box.rental.instance_id}/")
    assert vast.instances == {} and "v1" not in load_boxes(home)
    assert f":{sshd.port}]" not in (home / "known_hosts").read_text()
    for path in home.rglob("*"):
        if path.is_file():
            assert KEY.encode() not in path.read_bytes(), path


def test_error_replies_are_one_line_and_never_show_the_key(vast, sshd, home, monkeypatch, tmp_path):
    monkeypatch.setenv("VAST_API_KEY", "wrong-key")
    refused = slayer(home, "boxes", "vast", "offers")
    assert isinstance(refused.exception, SpecError)
    assert str(refused.exception) == "vast.ai POST /bundles/: 401 Invalid user key"
    assert "wrong-key" not in refused.output + repr(VastClient())

    monkeypatch.setenv("VAST_API_KEY", KEY)
    gone = slayer(home, "boxes", "vast", "rent", "v2", "999", "--key", str(sshd.client_key))
    assert "404 Offer 999 is no longer available" in str(gone.exception) and "v2" not in load_boxes(home)

    vast.boots_after = 0  # an instance that never comes up is destroyed, not left running
    with pytest.raises(BoxError, match="still loading"):
        asyncio.run(rent_box(home, "v3", 201, key_path=str(sshd.client_key), wait_s=0.3, poll_s=0.05,
                             accept_fingerprint=sshd.fingerprint))
    assert vast.calls[-1][0] == "DELETE" and vast.instances == {} and "v3" not in load_boxes(home)

    vast.throttle = 10
    with pytest.raises(BoxError, match="429 slow down"):
        VastClient(retries=2, backoff_s=0).search_offers()

    monkeypatch.setenv("SLAYER_VAST_URL", f"http://127.0.0.1:{free_port()}")
    assert "cannot reach" in str(slayer(home, "boxes", "vast", "offers").exception)

    monkeypatch.delenv("VAST_API_KEY")
    monkeypatch.setenv("PYTHON_KEYRING_BACKEND", "keyring.backends.null.Keyring")
    assert "no vast.ai API key" in str(slayer(home, "boxes", "vast", "offers").exception)
