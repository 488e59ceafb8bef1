"""`slayer boxes check`: what a box offers — OS/arch, GPUs (or "no GPU"), RAM, disk free in the workdir,
python, torch and the engine on it. One shell probe over one SSH connection."""

from __future__ import annotations

import asyncio
import json
import os
import shlex
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from remotes.boxes import Box, BoxError
from remotes.ssh import HostKeyConfirm, connect_box, ensure_pinned, python_command, run_command, shell_path

# Reads torch's version and CUDA build from its files instead of importing it (seconds on a big box).
PY_PROBE = """
import importlib.metadata, importlib.util, pathlib, platform, re, sys
print("version=" + platform.python_version())
print("executable=" + sys.executable)
try:
    print("torch=" + importlib.metadata.version("torch"))
    text = (pathlib.Path(importlib.util.find_spec("torch").origin).parent / "version.py").read_text()
    m = re.search(r"^cuda\\b[^=]*=\\s*['\\"]([^'\\"]+)", text, re.M)
    print("cuda=" + (m.group(1) if m else ""))
except Exception:
    print("torch=")
try:
    import engine
    print("engine=" + engine.__version__)
    from engine.gates.sandbox import sandbox_mode
    print("sandbox=" + sandbox_mode())
except Exception:
    print("engine=")
"""

SH_PROBE = """\
echo "os=$(uname -s)"
echo "arch=$(uname -m)"
echo "cpus=$(getconf _NPROCESSORS_ONLN 2>/dev/null || nproc)"
awk '/^MemTotal:/{{print "mem_total_kb="$2}} /^MemAvailable:/{{print "mem_avail_kb="$2}}' /proc/meminfo 2>/dev/null
mkdir -p {wd} && echo "workdir=$(cd {wd} && pwd -P)" && df -Pk {wd} | awk 'NR==2{{print "disk_free_kb="$4}}'
if command -v nvidia-smi >/dev/null 2>&1; then
  nvidia-smi --query-gpu=name,memory.total,memory.used,utilization.gpu --format=csv,noheader,nounits \\
    2>/dev/null | sed 's/^/gpu=/'
fi
out=$({python} -c {probe} 2>&1); echo "python_rc=$?"; printf '%s\\n' "$out" | sed 's/^/py./'
"""


@dataclass
class Gpu:
    name: str
    memory_mib: int
    used_mib: int
    util_pct: int


@dataclass
class BoxReport:
    box: str
    address: str
    host_key: str = ""
    os: str = ""
    arch: str = ""
    cpus: int = 0
    mem_total_gib: float | None = None
    mem_available_gib: float | None = None
    workdir: str = ""
    disk_free_gib: float | None = None
    gpus: list[Gpu] = field(default_factory=list)
    python: str = ""
    python_version: str = ""
    torch: str = ""
    cuda: str = ""  # the CUDA version torch was built for ("" for a CPU build)
    engine: str = ""
    sandbox: str = ""  # the code-execution sandbox code gates get there (engine.gates.sandbox.MODES)
    problem: str | None = None
    elapsed_s: float = 0.0

    def as_dict(self) -> dict:
        return asdict(self)

    def rows(self) -> list[tuple[str, str]]:
        """(field, value) lines for a table."""
        gpus = "; ".join(f"{g.name} {g.memory_mib} MiB ({g.used_mib} used, {g.util_pct}% busy)"
                         for g in self.gpus) or "no GPU"
        gib = lambda v: "?" if v is None else f"{v:.1f} GiB"  # noqa: E731
        return [("address", self.address), ("host key", self.host_key), ("os/arch", f"{self.os} {self.arch}"),
                ("cpus", str(self.cpus)),
                ("memory", f"{gib(self.mem_available_gib)} free of {gib(self.mem_total_gib)}"),
                ("disk", f"{gib(self.disk_free_gib)} free in {self.workdir}"), ("gpus", gpus),
                ("python", f"{self.python_version} {self.python}".strip() or "missing"),
                ("torch", (self.torch + (f" (CUDA {self.cuda})" if self.cuda else "")) or "missing"),
                ("engine", self.engine or "not installed (run `slayer boxes bootstrap`)"),
                ("code sandbox", self.sandbox or "unknown (no engine)")]


def _int(text: str) -> int:
    try:
        return int(float(text.strip()))
    except ValueError:
        return 0


def parse_probe(box: Box, out: str) -> BoxReport:
    report = BoxReport(box.name, box.address)
    values: dict[str, str] = {}
    py_lines: list[str] = []
    for line in out.splitlines():
        key, _, value = line.partition("=")
        if line.startswith("gpu="):
            name, mem, used, util = (value.split(",") + ["0", "0", "0"])[:4]
            report.gpus.append(Gpu(name.strip(), _int(mem), _int(used), _int(util)))
        elif line.startswith("py."):
            py_lines.append(line[3:])
            k, _, v = line[3:].partition("=")
            values["py." + k] = v
        else:
            values[key] = value
    report.os, report.arch, report.cpus = values.get("os", ""), values.get("arch", ""), _int(values.get("cpus", "0"))
    kib = lambda k: round(_int(values[k]) / 2**20, 1) if k in values else None  # noqa: E731
    report.mem_total_gib, report.mem_available_gib = kib("mem_total_kb"), kib("mem_avail_kb")
    report.workdir, report.disk_free_gib = values.get("workdir", ""), kib("disk_free_kb")
    python = box.python or "python3"
    if values.get("python_rc", "0") != "0":
        why = py_lines[-1] if py_lines else "it does not run"
        report.problem = (f"box {box.name}: no working python at {python} ({why}); "
                          f"set it with `slayer boxes add --python` or run `slayer boxes bootstrap {box.name}`")
    else:
        report.python = values.get("py.executable", python)
        report.python_version = values.get("py.version", "")
        report.torch, report.engine = values.get("py.torch", ""), values.get("py.engine", "")
        report.cuda = values.get("py.cuda", "")
        report.sandbox = values.get("py.sandbox", "")
    return report


async def check_here(box: Box, home) -> BoxReport:
    """The same probe run on this machine without SSH (disk free where $SLAYER_HOME is)."""
    script = SH_PROBE.format(wd=shlex.quote(str(home)), python=sys.executable, probe=shlex.quote(PY_PROBE))
    proc = await asyncio.create_subprocess_shell(script, stdout=asyncio.subprocess.PIPE,
                                                 stderr=asyncio.subprocess.STDOUT)
    out, _ = await proc.communicate()
    return parse_probe(box, out.decode(errors="replace"))


async def check_box(box: Box, home, *, confirm: HostKeyConfirm | None = None,
                    accept_fingerprint: str | None = None) -> BoxReport:
    """Connect (pinning the host key on first contact) and probe the box."""
    start = time.monotonic()
    async with connect_box(box, home, confirm=confirm, accept_fingerprint=accept_fingerprint) as conn:
        script = SH_PROBE.format(wd=shell_path(box.workdir), python=python_command(box),
                                 probe=shlex.quote(PY_PROBE))
        out = await run_command(conn, box, script, timeout=120, what="probe")
    report = parse_probe(box, out)
    report.host_key = await ensure_pinned(box, home)
    report.elapsed_s = round(time.monotonic() - start, 2)
    save_report(home, report)
    return report


def checks_dir(home) -> Path:
    return Path(home) / "box_checks"


def save_report(home, report: BoxReport) -> None:
    """Keep the last check of a box: `slayer plan` and `slayer run --box` plan against it."""
    path = checks_dir(home) / f"{report.box}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps({**report.as_dict(), "checked_s": time.time()}, indent=1), encoding="utf-8")
    os.replace(tmp, path)


def load_report(home, name: str) -> dict:
    """The last recorded check of box `name`; BoxError (one line, with the fix) when it was never checked."""
    path = checks_dir(home) / f"{name}.json"
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise BoxError(f"box {name!r} was never checked, so its GPUs, memory and disk are unknown: run "
                       f"`slayer boxes check {name}` first") from None
    except ValueError:
        raise BoxError(f"{path}: unreadable check record; run `slayer boxes check {name}` again") from None
