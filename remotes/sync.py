"""Pull a remote run into `$SLAYER_HOME/runs/<id>/`: results, reports and logs always; checkpoints and GGUF
files on demand. Downloads resume from `.part` files and are checked against the box's sha256."""

from __future__ import annotations

import os
import shlex
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Callable

import asyncssh

from engine.events import sha256_file
from remotes.boxes import BoxError, get_box
from remotes.follow import run_row
from remotes.ssh import connect_box, run_command

HEAVY_SUFFIXES = {".gguf", ".safetensors", ".bin", ".pt", ".pth", ".ckpt", ".npy", ".npz"}
# Append-only while the job runs: resumed from the local size, no hash (it changes under our feet).
GROWING = {"events.jsonl", "log.txt", "launch.log"}
BLOCK = 4 << 20

SHA_SH = ("cd {run_dir} && if command -v sha256sum >/dev/null 2>&1; then xargs -0 sha256sum --; "
          "else xargs -0 shasum -a 256 --; fi")


@dataclass
class SyncReport:
    run_id: str
    local_dir: str
    pulled: list[str] = field(default_factory=list)
    up_to_date: list[str] = field(default_factory=list)
    held_back: list[str] = field(default_factory=list)  # heavy files not asked for
    bytes: int = 0


def is_heavy(rel: str) -> bool:
    """Checkpoints and model files: pulled only on demand."""
    parts = PurePosixPath(rel).parts
    return PurePosixPath(rel).suffix in HEAVY_SUFFIXES or any(p.startswith("checkpoint") for p in parts[:-1])


async def _walk(sftp, root: str, prefix: str = "") -> list[tuple[str, int]]:
    files = []
    for entry in await sftp.readdir(f"{root}/{prefix}" if prefix else root):
        if entry.filename in (".", ".."):
            continue
        rel = f"{prefix}{entry.filename}"
        if entry.attrs.type == asyncssh.FILEXFER_TYPE_DIRECTORY:
            files += await _walk(sftp, root, rel + "/")
        elif entry.attrs.type == asyncssh.FILEXFER_TYPE_REGULAR:
            files.append((rel, entry.attrs.size or 0))
    return files


async def _pull(sftp, remote: str, local: Path, size: int, sha: str | None, start: int,
                progress: Callable[[int], None]) -> int:
    """Copy bytes [start, size) of `remote` onto `local`'s .part (or onto `local` itself when sha is None)."""
    local.parent.mkdir(parents=True, exist_ok=True)
    target = local.with_name(local.name + ".part") if sha else local
    done = start
    async with sftp.open(remote, "rb") as f:
        with open(target, "r+b" if target.exists() else "wb") as out:
            out.seek(done)
            out.truncate()
            while done < size:
                block = await f.read(min(BLOCK, size - done), done)
                if not block:
                    break
                out.write(block)
                done += len(block)
                progress(done)
    if sha:
        got = sha256_file(target)
        if got != sha:
            target.unlink()
            raise BoxError(f"{remote}: sha256 mismatch after download (box {sha[:12]}…, got {got[:12]}…); "
                           f"run the sync again")
        os.replace(target, local)
    return done - start


def _resume_from(rel: str, local: Path, size: int, sha: str | None) -> int | None:
    """Where the pull of `rel` starts: None when the local copy is complete, else a byte offset."""
    if rel in GROWING:
        have = local.stat().st_size if local.exists() else -1
        return None if have == size else (have if 0 <= have < size else 0)
    if local.exists() and local.stat().st_size == size and sha256_file(local) == sha:
        return None
    part = local.with_name(local.name + ".part")
    return part.stat().st_size if part.exists() and part.stat().st_size <= size else 0


def _wanted(rel: str, heavy: bool, paths: tuple[str, ...]) -> bool:
    return heavy or not is_heavy(rel) or any(rel == p or rel.startswith(p.rstrip("/") + "/") for p in paths)


async def sync_run(home, store, run_id: str, *, heavy: bool = False, paths: tuple[str, ...] = (),
                   on_progress: Callable[[str, int, int], None] | None = None) -> SyncReport:
    """Bring the run directory home. `heavy` pulls checkpoints and model files too; `paths` picks some."""
    run = run_row(store, run_id)
    box = get_box(home, run.box)
    local_dir = Path(home) / "runs" / run.id
    report = SyncReport(run.id, str(local_dir))
    async with connect_box(box, home) as conn:
        async with conn.start_sftp_client() as sftp:
            files = await _walk(sftp, run.run_dir)
            todo = [(rel, size) for rel, size in files if _wanted(rel, heavy, paths)]
            report.held_back = [rel for rel, _ in files if not _wanted(rel, heavy, paths)]
            hashed = [rel for rel, _ in todo if rel not in GROWING]
            sums: dict[str, str] = {}
            if hashed:
                out = await run_command(conn, box, SHA_SH.format(run_dir=shlex.quote(run.run_dir)),
                                        input="\0".join(hashed), what="sha256")
                for line in out.splitlines():
                    digest, _, name = line.partition("  ")
                    sums[name] = digest
            for rel, size in todo:
                local = local_dir / rel
                start = _resume_from(rel, local, size, sums.get(rel))
                if start is None:
                    report.up_to_date.append(rel)
                    continue
                progress = (lambda done, rel=rel, size=size: on_progress(rel, done, size)) if on_progress \
                    else (lambda done: None)
                report.bytes += await _pull(sftp, f"{run.run_dir}/{rel}", local, size, sums.get(rel), start, progress)
                report.pulled.append(rel)
    return report
