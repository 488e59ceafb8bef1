"""A real OpenSSH `sshd` on 127.0.0.1 for the remotes tests: its own host key and authorized client key,
an ephemeral port, and stop/start on the same port (to drop every connection mid-run)."""

from __future__ import annotations

import asyncio
import getpass
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import asyncssh
import pytest

from conftest import free_port, missing_system_package
from remotes.boxes import Box, put_box
from remotes.ssh import ensure_pinned

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"

CONFIG = """\
Port {port}
ListenAddress 127.0.0.1
HostKey {root}/host_key
AuthorizedKeysFile {root}/authorized_keys
PidFile {root}/sshd.pid
UsePAM no
StrictModes no
PasswordAuthentication no
KbdInteractiveAuthentication no
PermitRootLogin prohibit-password
Subsystem sftp internal-sftp
MaxStartups 50
LogLevel ERROR
"""


def _write_key(path: Path) -> asyncssh.SSHKey:
    key = asyncssh.generate_private_key("ssh-ed25519")
    key.write_private_key(str(path))
    os.chmod(path, 0o600)
    return key


def _children() -> dict[int, list[int]]:
    tree: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                stat = Path(f"/proc/{entry}/stat").read_text()
            except OSError:
                continue
            ppid = int(stat.rsplit(")", 1)[1].split()[1])
            tree.setdefault(ppid, []).append(int(entry))
    return tree


class SshServer:
    """One sshd. `box(name)` describes it as a slayer box that logs in with the authorized key."""

    def __init__(self, root: Path):
        self.root = root
        root.mkdir(parents=True, exist_ok=True)
        self.port = free_port()
        self.client_key = root / "client_key"
        _write_key(self.client_key)
        (root / "authorized_keys").write_text(
            asyncssh.read_private_key(str(self.client_key)).export_public_key("openssh").decode())
        self.new_host_key()
        (root / "sshd_config").write_text(CONFIG.format(port=self.port, root=root))
        self.proc: subprocess.Popen | None = None

    def new_host_key(self) -> str:
        """Replace the host key (what a reinstalled box, or a man in the middle, looks like)."""
        key = _write_key(self.root / "host_key")
        return key.get_fingerprint("sha256")

    @property
    def fingerprint(self) -> str:
        return asyncssh.read_private_key(str(self.root / "host_key")).get_fingerprint("sha256")

    def start(self) -> None:
        Path("/run/sshd").mkdir(parents=True, exist_ok=True)
        self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(self.root / "sshd_config")],
                                     stdout=subprocess.DEVNULL, stderr=open(self.root / "sshd.log", "ab"))
        deadline = time.time() + 10
        while time.time() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {(self.root / 'sshd.log').read_text()[-500:]}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("sshd did not start listening")

    def stop(self) -> None:
        """Kill the listener and every connection it serves (jobs started with setsid are not its children)."""
        if self.proc is None:
            return
        tree, doomed, todo = _children(), [], [self.proc.pid]
        while todo:
            pid = todo.pop()
            doomed.append(pid)
            todo.extend(tree.get(pid, []))
        for pid in doomed:
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
        self.proc.wait()
        self.proc = None

    def box(self, name: str, **fields) -> Box:
        return Box(**{"name": name, "user": getpass.getuser(), "host": "127.0.0.1", "port": self.port,
                      "key": str(self.client_key), **fields})


def _need_sshd() -> None:
    if not Path(SSHD).exists():
        missing_system_package("OpenSSH sshd", "openssh-server")


@pytest.fixture
def sshd_factory(tmp_path):
    """Start sshd servers on demand: `sshd_factory()` → a started SshServer; all stopped at the end."""
    _need_sshd()
    servers: list[SshServer] = []

    def make() -> SshServer:
        server = SshServer(tmp_path / f"sshd{len(servers)}")
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def sshd(sshd_factory) -> SshServer:
    return sshd_factory()


def engine_box(server: SshServer, name: str, workdir: Path, **fields) -> Box:
    """A box on `server` whose python is this interpreter with this checkout importable (no bootstrap needed)."""
    root = Path(__file__).resolve().parents[1]
    env = {"PYTHONPATH": str(root), **fields.pop("env", {})}
    return server.box(name, workdir=str(workdir), python=fields.pop("python", sys.executable), env=env, **fields)


def register(home: Path, box: Box, server: SshServer) -> Box:
    """Put the box in boxes.toml with its host key pinned, as `slayer boxes add` would."""
    put_box(home, box)
    asyncio.run(ensure_pinned(box, home, accept_fingerprint=server.fingerprint))
    return box
