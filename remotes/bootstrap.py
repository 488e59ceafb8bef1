"""`slayer boxes bootstrap`: make a box able to run `python -m engine` — use a configured python that already
has it, or build this project's wheel, push it by SFTP and pip-install it into the box's venv. Idempotent:
a wheel of unchanged sources is not built or installed again."""

from __future__ import annotations

import asyncio
import hashlib
import shlex
import shutil
import subprocess
import sys
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path

from remotes.boxes import Box, BoxError, get_box, put_box
from remotes.check import PY_PROBE
from remotes.ssh import HostKeyConfirm, connect_box, python_command, remote_workdir, run_command

PACKAGES = ("engine", "store", "remotes", "slayer_console", "assets")
PIP = "-m pip install --quiet --disable-pip-version-check"


@dataclass
class BootstrapReport:
    box: str
    python: str
    mode: str  # "configured python" | "wheel installed" | "wheel up to date"
    engine: str = ""
    python_version: str = ""
    torch: str = ""
    source: str = ""  # digest of the sources the installed wheel was built from

    def as_dict(self) -> dict:
        return asdict(self)


def project_root() -> Path:
    return Path(__file__).resolve().parents[1]


def source_files(root: Path) -> list[Path]:
    """The files a wheel is built from: pyproject.toml and the packages (no caches)."""
    files = [root / "pyproject.toml"]
    for package in PACKAGES:
        files += [p for p in sorted((root / package).rglob("*"))
                  if p.is_file() and "__pycache__" not in p.parts and p.suffix != ".pyc"]
    return files


def source_digest(root: Path | None = None) -> str:
    """What the wheel would contain, hashed: the same digest means the box already has these sources."""
    root = root or project_root()
    h = hashlib.sha256()
    for path in source_files(root):
        h.update(str(path.relative_to(root)).encode() + b"\0" + path.read_bytes() + b"\0")
    return h.hexdigest()[:16]


def build_wheel(out_dir: Path, root: Path | None = None) -> Path:
    """`pip wheel --no-deps` of a clean copy of the sources (the build never writes into the checkout)."""
    root = root or project_root()
    if not (root / "pyproject.toml").is_file():
        raise BoxError(f"{root}: no pyproject.toml, so no wheel can be built from this installation; "
                       f"give the box a python that already has the engine (`slayer boxes add --python`)")
    src = Path(tempfile.mkdtemp(prefix="slayer-src-"))
    try:
        for path in source_files(root):
            dst = src / path.relative_to(root)
            dst.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, dst)
        readme = root / "README.md"
        (src / "README.md").write_text(readme.read_text() if readme.is_file() else "slayer console\n")
        proc = subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                               "--disable-pip-version-check", "-q", "-w", str(out_dir), str(src)],
                              capture_output=True, text=True)
        if proc.returncode != 0:
            tail = (proc.stderr or proc.stdout).strip().splitlines()
            raise BoxError(f"building the wheel failed: {tail[-1] if tail else proc.returncode}")
    finally:
        shutil.rmtree(src, ignore_errors=True)
    return next(Path(out_dir).glob("*.whl"))


async def check_engine(conn, box: Box) -> str:
    """The engine version the box's python imports; one line naming the fix if it cannot."""
    probe = shlex.quote("import engine; print(engine.__version__)")
    try:
        out = await run_command(conn, box, f"{python_command(box)} -c {probe}", what="python")
    except BoxError as e:
        raise BoxError(f"box {box.name}: cannot run the engine with python {box.python or 'python3'} "
                       f"({str(e).split(': ', 2)[-1]}); run `slayer boxes bootstrap {box.name}`") from None
    return out.strip()


async def _probe(conn, box: Box, report: BootstrapReport) -> BootstrapReport:
    out = await run_command(conn, box, f"{python_command(box)} -c {shlex.quote(PY_PROBE)}", what="python")
    values = dict(line.partition("=")[::2] for line in out.splitlines())
    report.engine, report.python_version, report.torch = values.get("engine", ""), values.get("version", ""), \
        values.get("torch", "")
    if not report.engine:
        raise BoxError(f"box {box.name}: python {report.python} still cannot import the engine")
    return report


async def _has_python(conn, box: Box, python: str) -> None:
    try:
        await run_command(conn, box, f"{python_command(box, python)} -c pass", what="python")
    except BoxError as e:
        raise BoxError(f"box {box.name}: no working python at {python} ({str(e).split(': ', 2)[-1]}); "
                       f"set it with `slayer boxes add {box.name} … --python PATH`") from None


async def bootstrap_box(home, box_name: str, *, wheel: bool = False, base_python: str = "python3",
                        extras: str = "ml", source: Path | None = None,
                        confirm: HostKeyConfirm | None = None) -> BootstrapReport:
    """Make `box_name` run the engine. With a configured python that imports the engine, nothing is
    installed unless `wheel`; without one, a venv (`--system-site-packages`, so a CUDA torch on the box
    is reused) is made in the workdir from `base_python` and recorded as the box's python. `source`: the
    project tree to build the wheel from (default: the one this code runs from); `confirm`: asked about an
    unknown host key (without it, an unpinned box is refused)."""
    box = get_box(home, box_name)
    async with connect_box(box, home, confirm=confirm) as conn:
        if box.python and not wheel:
            await _has_python(conn, box, box.python)
            try:
                await check_engine(conn, box)
                return await _probe(conn, box, BootstrapReport(box.name, box.python, "configured python"))
            except BoxError:
                pass  # the python runs but lacks the engine: install the wheel into it
        workdir = await remote_workdir(conn, box)
        if not box.python:
            venv = f"{workdir}/venv"
            await _has_python(conn, box, base_python)
            vpy = f"{shlex.quote(venv)}/bin/python"
            # Without pip first: the base python's pip, seen through the system site, installs into the
            # venv in a fraction of ensurepip's time; ensurepip only when there is none.
            await run_command(conn, box, f"test -x {vpy} || {python_command(box, base_python)} -m venv "
                              f"--without-pip --system-site-packages {shlex.quote(venv)}; {vpy} -m pip --version "
                              f">/dev/null 2>&1 || {vpy} -m ensurepip --default-pip >/dev/null",
                              timeout=300, what=f"creating a venv with {base_python}")
            box = box.model_copy(update={"python": f"{venv}/bin/python"})
            put_box(home, box)
        digest = source_digest(source)
        marker = f"{workdir}/wheels/installed-{hashlib.sha256(box.python.encode()).hexdigest()[:12]}"
        installed = (await run_command(conn, box, f"cat {shlex.quote(marker)} 2>/dev/null || true")).strip()
        if installed == digest:
            try:
                await check_engine(conn, box)
                return await _probe(conn, box, BootstrapReport(box.name, box.python, "wheel up to date",
                                                               source=digest))
            except BoxError:
                pass  # the marker says installed but the engine is gone: install again
        with tempfile.TemporaryDirectory(prefix="slayer-wheel-") as tmp:
            local = await asyncio.to_thread(build_wheel, Path(tmp), source)
            remote = f"{workdir}/wheels/{local.name}"
            async with conn.start_sftp_client() as sftp:
                await sftp.makedirs(f"{workdir}/wheels", exist_ok=True)
                await sftp.put(str(local), remote)
        py, whl = python_command(box), shlex.quote(remote)
        with_extras = shlex.quote(f"{remote}[{extras}]" if extras else remote)
        # Same version number, new code: force the package itself, then let pip add any missing deps.
        await run_command(conn, box, f"{py} {PIP} --force-reinstall --no-deps {whl} && {py} {PIP} {with_extras} "
                          f"&& printf %s {digest} > {shlex.quote(marker)}", timeout=3600, what="pip install")
        return await _probe(conn, box, BootstrapReport(box.name, box.python, "wheel installed", source=digest))
