"""SSH to a box with asyncssh. Host keys are pinned in `$SLAYER_HOME/known_hosts`: the first contact shows
the fingerprint and asks (or takes `--accept-host-key FINGERPRINT`); a changed key is refused, loudly."""

from __future__ import annotations

import asyncio
import inspect
import os
import shlex
from contextlib import asynccontextmanager
from pathlib import Path
from typing import AsyncIterator, Awaitable, Callable

import asyncssh

from remotes.boxes import Box, BoxError, BoxUnreachable, parse_address

# confirm(box, "host:port", key type, "SHA256:…") → accept? (a CLI prompt, a TUI dialog; may be async)
HostKeyConfirm = Callable[[Box, str, str, str], "bool | Awaitable[bool]"]

CONNECT_TIMEOUT_S = 15.0


def known_hosts_path(home: str | os.PathLike) -> Path:
    return Path(home) / "known_hosts"


def host_pattern(host: str, port: int) -> str:
    """The known_hosts spelling of an address: plain for port 22, else [host]:port."""
    return host if port == 22 else f"[{host}]:{port}"


def pinned_keys(home: str | os.PathLike, host: str, port: int) -> list[asyncssh.SSHKey]:
    path = known_hosts_path(home)
    if not path.exists() or not path.read_text().strip():
        return []
    return list(asyncssh.read_known_hosts(str(path)).match(host, "", port)[0])


def _rewrite_known_hosts(home: str | os.PathLike, keep: Callable[[str], bool], extra: str = "") -> None:
    path = known_hosts_path(home)
    lines = path.read_text().splitlines(keepends=True) if path.exists() else []
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(line for line in lines if keep(line)) + extra)
    os.replace(tmp, path)


def pin_host_key(home: str | os.PathLike, host: str, port: int, key: asyncssh.SSHKey) -> None:
    line = f"{host_pattern(host, port)} {key.export_public_key('openssh').decode().strip()}\n"
    _rewrite_known_hosts(home, lambda _: True, line)


def forget_host_key(home: str | os.PathLike, host: str, port: int) -> None:
    """Unpin an address (a destroyed rental whose host:port will be someone else's)."""
    pattern = host_pattern(host, port)
    _rewrite_known_hosts(home, lambda line: line.split(" ", 1)[0] != pattern)


def fingerprint(key: asyncssh.SSHKey) -> str:
    return key.get_fingerprint("sha256")


def _same_fingerprint(a: str, b: str) -> bool:
    return a.strip().removeprefix("SHA256:") == b.strip().removeprefix("SHA256:")


async def _offered_key(box: Box, tunnel) -> asyncssh.SSHKey:
    try:
        key = await asyncio.wait_for(
            asyncssh.get_server_host_key(box.host, box.port, tunnel=tunnel or ()), CONNECT_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as e:
        raise BoxUnreachable(f"box {box.name}: cannot reach {box.host}:{box.port} ({_reason(e)})") from None
    if key is None:
        raise BoxError(f"box {box.name}: {box.host}:{box.port} offered no host key")
    return key


async def ensure_pinned(box: Box, home, confirm: HostKeyConfirm | None = None,
                        accept_fingerprint: str | None = None, tunnel=None) -> str:
    """Pin the box's host key on first contact (asking), return its fingerprint. Never trusts silently."""
    pinned = pinned_keys(home, box.host, box.port)
    if pinned:
        return fingerprint(pinned[0])
    key = await _offered_key(box, tunnel)
    fp, where = fingerprint(key), f"{box.host}:{box.port}"
    if accept_fingerprint is not None:
        if not _same_fingerprint(accept_fingerprint, fp):
            raise BoxError(f"box {box.name}: {where} offers host key {fp}, not the {accept_fingerprint} you accepted")
    elif confirm is None:
        raise BoxError(f"box {box.name}: host key of {where} is not pinned yet ({key.get_algorithm()} {fp}); "
                       f"confirm it with `slayer boxes check {box.name}` or pass --accept-host-key {fp}")
    else:
        ok = confirm(box, where, key.get_algorithm(), fp)
        if inspect.isawaitable(ok):
            ok = await ok
        if not ok:
            raise BoxError(f"box {box.name}: host key {fp} of {where} not accepted")
    pin_host_key(home, box.host, box.port, key)
    return fp


def _reason(e: BaseException) -> str:
    if isinstance(e, asyncio.TimeoutError):
        return f"timed out after {CONNECT_TIMEOUT_S:g} s"
    if isinstance(e, ConnectionRefusedError):
        return "connection refused"
    if isinstance(e, OSError) and e.strerror:
        return e.strerror.lower()
    return str(e) or e.__class__.__name__


async def _connect(box: Box, home, confirm, accept_fingerprint, tunnel) -> asyncssh.SSHClientConnection:
    if not box.host:  # the local box, or one registered without a host
        raise BoxError(f"box {box.name} is not an ssh box")
    keys = ()
    if box.key:
        key_path = Path(box.key).expanduser()
        if not key_path.is_file():
            raise BoxError(f"box {box.name}: key file {box.key} not found")
        keys = [str(key_path)]
    await ensure_pinned(box, home, confirm, accept_fingerprint, tunnel)
    options = dict(known_hosts=str(known_hosts_path(home)), tunnel=tunnel or (), config=None,
                   keepalive_interval=10, keepalive_count_max=3)
    if keys:
        options["client_keys"] = keys
    if box.user:
        options["username"] = box.user
    where = f"{box.user + '@' if box.user else ''}{box.host}:{box.port}"
    try:
        return await asyncio.wait_for(asyncssh.connect(box.host, box.port, **options), CONNECT_TIMEOUT_S)
    except asyncssh.HostKeyNotVerifiable:
        offered = fingerprint(await _offered_key(box, tunnel))
        pinned = ", ".join(fingerprint(k) for k in pinned_keys(home, box.host, box.port))
        raise BoxError(f"box {box.name}: HOST KEY CHANGED for {box.host}:{box.port}: pinned {pinned}, the server "
                       f"now offers {offered}. Refusing to connect (possible man-in-the-middle). If the box was "
                       f"reinstalled, check the new key and delete its line from {known_hosts_path(home)}") from None
    except asyncssh.PermissionDenied:
        raise BoxError(f"box {box.name}: {where} refused the login (permission denied; "
                       f"key {box.key or 'from ssh-agent/~/.ssh'})") from None
    except asyncssh.KeyImportError as e:
        raise BoxError(f"box {box.name}: cannot read key file {box.key} ({e})") from None
    except (OSError, asyncio.TimeoutError, asyncssh.Error) as e:
        raise BoxUnreachable(f"box {box.name}: cannot reach {where} ({_reason(e)})") from None


@asynccontextmanager
async def connect_box(box: Box, home, *, confirm: HostKeyConfirm | None = None,
                      accept_fingerprint: str | None = None) -> AsyncIterator[asyncssh.SSHClientConnection]:
    """An SSH connection to the box (through its jump host if it has one), closed on exit."""
    opened: list[asyncssh.SSHClientConnection] = []
    try:
        tunnel = None
        if box.jump:
            user, host, port = parse_address(box.jump, f"box {box.name}: jump")
            jump = box.model_copy(update=dict(name=f"{box.name}-jump", user=user or box.user, host=host,
                                              port=port, jump=None))
            tunnel = await _connect(jump, home, confirm, None, None)
            opened.append(tunnel)
        opened.append(await _connect(box, home, confirm, accept_fingerprint, tunnel))
        yield opened[-1]
    finally:
        for conn in reversed(opened):
            conn.close()


def shell_path(path: str) -> str:
    """A box path for the remote shell: ~/x becomes "$HOME"/x, everything else is quoted."""
    if path == "~":
        return '"$HOME"'
    if path.startswith("~/"):
        return '"$HOME"/' + shlex.quote(path[2:])
    return shlex.quote(path)


def python_command(box: Box, python: str | None = None) -> str:
    """`env K=V … PYTHON`: how jobs and probes start python on the box."""
    env = " ".join(shlex.quote(f"{k}={v}") for k, v in box.env.items())
    exe = shell_path(python or box.python or "python3")
    return f"env {env} {exe}" if env else exe


async def run_command(conn: asyncssh.SSHClientConnection, box: Box, command: str, *, timeout: float = 120,
                      input: str | None = None, what: str | None = None) -> str:
    """Run a shell command on the box; a non-zero exit is one line naming the box and stderr's last line."""
    try:
        result = await conn.run(command, input=input, timeout=timeout, check=False)
    except asyncssh.TimeoutError:
        raise BoxError(f"box {box.name}: {what or 'command'} timed out after {timeout:g} s") from None
    except (OSError, asyncssh.Error) as e:
        raise BoxUnreachable(f"box {box.name}: connection lost ({_reason(e)})") from None
    if result.exit_status != 0:
        lines = (str(result.stderr or "") + str(result.stdout or "")).strip().splitlines()
        tail = lines[-1] if lines else f"exit status {result.exit_status}"
        raise BoxError(f"box {box.name}: {what or 'command'} failed: {tail}")
    return str(result.stdout or "")


async def remote_workdir(conn: asyncssh.SSHClientConnection, box: Box) -> str:
    """The box's workdir as an absolute path (created if missing)."""
    wd = shell_path(box.workdir)
    out = await run_command(conn, box, f"mkdir -p {wd} && cd {wd} && pwd -P", what=f"creating workdir {box.workdir}")
    return out.strip().splitlines()[-1]
