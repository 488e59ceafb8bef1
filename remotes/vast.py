"""vast.ai rentals through its REST API: search offers, create an instance, wait for SSH, register it as a
SSH box with its `Rental`, bootstrap it, destroy it. The API key comes from $VAST_API_KEY or the OS keyring (service
"slayer", user "vast.ai") and is never written to boxes.toml, the store or a log."""

from __future__ import annotations

import asyncio
import json
import os
import time
import urllib.error
import urllib.request
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import asyncssh

from remotes.boxes import Box, BoxError, BoxUnreachable, Rental, get_box, load_boxes, put_box, remove_box
from remotes.ssh import HostKeyConfirm, connect_box, forget_host_key

PROVIDER = "vast"  # the rental record's provider
DEFAULT_URL = "https://console.vast.ai"
KEYRING = ("slayer", "vast.ai")
RETRY_STATUSES = (429, 500, 502, 503, 504)


def api_key() -> str:
    key = os.environ.get("VAST_API_KEY", "").strip()
    if not key:
        try:
            import keyring

            key = (keyring.get_password(*KEYRING) or "").strip()
        except Exception:  # no keyring backend on this machine: same as no key
            key = ""
    if not key:
        raise BoxError("no vast.ai API key: set VAST_API_KEY, or store it with `keyring set slayer vast.ai`")
    return key


def base_url() -> str:
    return os.environ.get("SLAYER_VAST_URL", DEFAULT_URL).rstrip("/")


@dataclass
class Offer:
    id: int
    gpu_name: str
    num_gpus: int
    dph_total: float
    gpu_ram_gib: float
    disk_gb: float
    reliability: float
    location: str

    @classmethod
    def from_api(cls, o: dict) -> "Offer":
        return cls(int(o["id"]), o.get("gpu_name", "?"), int(o.get("num_gpus") or 0), float(o.get("dph_total") or 0),
                   round(float(o.get("gpu_ram") or 0) / 1024, 1), float(o.get("disk_space") or 0),
                   float(o.get("reliability2", o.get("reliability")) or 0), o.get("geolocation") or "")

    def as_dict(self) -> dict:
        return asdict(self)


class VastClient:
    """The few endpoints the rental flow uses. Retries rate limits and server errors with backoff."""

    def __init__(self, key: str | None = None, url: str | None = None, retries: int = 3, backoff_s: float = 1.0):
        self._key = key or api_key()
        self.url = (url or base_url()).rstrip("/")
        self.retries, self.backoff_s = retries, backoff_s

    def __repr__(self) -> str:  # never show the key
        return f"VastClient({self.url})"

    def request(self, method: str, path: str, body: dict | None = None) -> dict:
        data = json.dumps(body).encode() if body is not None else None
        for attempt in range(self.retries + 1):
            req = urllib.request.Request(f"{self.url}/api/v0{path}", data=data, method=method, headers={
                "Authorization": f"Bearer {self._key}", "Accept": "application/json",
                "Content-Type": "application/json"})
            try:
                with urllib.request.urlopen(req, timeout=30) as resp:
                    text = resp.read().decode() or "{}"
                return json.loads(text)
            except urllib.error.HTTPError as e:
                if e.code in RETRY_STATUSES and attempt < self.retries:
                    wait = float(e.headers.get("Retry-After") or self.backoff_s * 2 ** attempt)
                    time.sleep(min(wait, 30))
                    continue
                raise BoxError(f"vast.ai {method} {path}: {e.code} {_error_text(e)}") from None
            except urllib.error.URLError as e:
                raise BoxUnreachable(f"vast.ai: cannot reach {self.url} ({e.reason})") from None
            except json.JSONDecodeError:
                raise BoxError(f"vast.ai {method} {path}: the answer is not JSON") from None
        raise AssertionError("unreachable")

    def search_offers(self, gpu: str | None = None, num_gpus: int | None = None, max_price: float | None = None,
                      limit: int = 20) -> list[Offer]:
        query: dict = {"rentable": {"eq": True}, "rented": {"eq": False}, "type": "on-demand", "limit": limit,
                       "order": [["dph_total", "asc"]]}
        if gpu:
            query["gpu_name"] = {"eq": gpu.replace("_", " ")}
        if num_gpus:
            query["num_gpus"] = {"eq": num_gpus}
        if max_price is not None:
            query["dph_total"] = {"lte": max_price}
        return [Offer.from_api(o) for o in self.request("POST", "/bundles/", query).get("offers", [])]

    def create_instance(self, offer_id: int, image: str, disk_gb: float, label: str) -> int:
        answer = self.request("PUT", f"/asks/{offer_id}/", {"image": image, "disk": disk_gb, "label": label,
                                                             "runtype": "ssh_direct"})
        if not answer.get("success") or "new_contract" not in answer:
            raise BoxError(f"vast.ai: offer {offer_id} was not rented ({answer.get('msg') or answer.get('error')})")
        return int(answer["new_contract"])

    def attach_ssh_key(self, instance_id: int, public_key: str) -> None:
        self.request("POST", f"/instances/{instance_id}/ssh/", {"ssh_key": public_key})

    def show_instance(self, instance_id: int) -> dict:
        return self.request("GET", f"/instances/{instance_id}/").get("instances") or {}

    def destroy_instance(self, instance_id: int) -> None:
        self.request("DELETE", f"/instances/{instance_id}/")


def _error_text(e: urllib.error.HTTPError) -> str:
    try:
        body = json.loads(e.read().decode() or "{}")
        return str(body.get("msg") or body.get("error") or e.reason)
    except (json.JSONDecodeError, UnicodeDecodeError, AttributeError):
        return str(e.reason)


async def _wait_running(client: VastClient, instance_id: int, deadline: float, poll_s: float,
                        on_state: Callable[[str], None]) -> dict:
    while True:
        inst = await asyncio.to_thread(client.show_instance, instance_id)
        status = inst.get("actual_status") or "unknown"
        if status == "running" and inst.get("ssh_host") and inst.get("ssh_port"):
            return inst
        if status in ("exited", "offline") or inst.get("intended_status") == "stopped":
            raise BoxError(f"vast.ai instance {instance_id} is {status}: {inst.get('status_msg') or ''}".strip())
        if time.monotonic() > deadline:
            raise BoxError(f"vast.ai instance {instance_id} still {status} after waiting; destroyed")
        on_state(f"instance {instance_id}: {status} ({inst.get('status_msg') or 'starting'})")
        await asyncio.sleep(poll_s)


async def _wait_ssh(box: Box, home, deadline: float, poll_s: float, confirm, accept_fingerprint,
                    on_state: Callable[[str], None]) -> None:
    while True:
        try:
            async with connect_box(box, home, confirm=confirm, accept_fingerprint=accept_fingerprint):
                return
        except BoxUnreachable as e:
            if time.monotonic() > deadline:
                raise
            on_state(f"{e}; waiting for sshd")
            await asyncio.sleep(poll_s)


async def rent_box(home, name: str, offer_id: int, *, key_path: str, client: VastClient | None = None,
                   image: str = "pytorch/pytorch:latest", disk_gb: float = 64, workdir: str = "/workspace/slayer",
                   python: str | None = None, env: dict[str, str] | None = None,
                   confirm: HostKeyConfirm | None = None, accept_fingerprint: str | None = None,
                   bootstrap: bool = True, wait_s: float = 900, poll_s: float = 5,
                   on_state: Callable[[str], None] | None = None) -> Box:
    """Rent `offer_id`, wait until SSH answers, pin its host key, register box `name`, bootstrap it.
    An instance that never comes up is destroyed, so it costs nothing more."""
    say = on_state or (lambda _: None)
    if name in load_boxes(home):
        raise BoxError(f"box {name!r} exists already; pick another name")
    public = asyncssh.read_private_key(str(Path(key_path).expanduser())).export_public_key("openssh").decode().strip()
    client = client or VastClient()
    instance_id = await asyncio.to_thread(client.create_instance, offer_id, image, disk_gb, f"slayer-{name}")
    say(f"rented offer {offer_id} as instance {instance_id}")
    deadline = time.monotonic() + wait_s
    try:
        await asyncio.to_thread(client.attach_ssh_key, instance_id, public)
        inst = await _wait_running(client, instance_id, deadline, poll_s, say)
        box = Box(name=name, user="root", host=inst["ssh_host"], port=int(inst["ssh_port"]),
                  key=key_path, workdir=workdir, python=python, env=env or {},
                  rental=Rental(provider=PROVIDER, instance_id=instance_id, offer_id=offer_id,
                                gpu=f"{inst.get('num_gpus') or '?'}x {inst.get('gpu_name') or '?'}",
                                dph_total=float(inst.get("dph_total") or 0),
                                started_s=float(inst.get("start_date") or time.time())))
        await _wait_ssh(box, home, deadline, poll_s, confirm, accept_fingerprint, say)
    except BaseException as e:
        try:
            await asyncio.to_thread(client.destroy_instance, instance_id)
        except BoxError as d:
            raise BoxError(f"{e}; destroying instance {instance_id} failed too ({d}): destroy it in vast's "
                           f"console, it costs money") from None
        raise
    put_box(home, box)
    say(f"box {name} registered ({box.address}, ${box.rental.dph_total:.3f}/h)")
    if bootstrap:
        from remotes.bootstrap import bootstrap_box

        await bootstrap_box(home, name)
        box = get_box(home, name)
    return box


async def destroy_box(home, name: str, *, client: VastClient | None = None) -> Box:
    """Destroy the rented instance, then forget the box and its pinned host key (the address gets reused)."""
    box = get_box(home, name)
    if box.rental is None or box.rental.provider != PROVIDER:
        raise BoxError(f"box {name} is not a vast.ai rental; `slayer boxes remove {name}` forgets it")
    client = client or VastClient()
    await asyncio.to_thread(client.destroy_instance, box.rental.instance_id)
    remove_box(home, name)
    forget_host_key(home, box.host, box.port)
    return box
