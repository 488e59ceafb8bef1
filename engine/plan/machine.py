"""What a machine offers a job: GPUs and their memory, RAM, free disk, architecture. From `slayer boxes check`'s
report (a plain dict), or measured on this machine by the engine itself."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

GIB = 2**30


@dataclass(frozen=True)
class Machine:
    name: str
    arch: str
    ram_gib: float
    disk_free_gib: float
    gpus_gib: list[float] = field(default_factory=list)  # memory of each GPU
    gpu_name: str = ""
    unified: bool = False  # GPU and CPU share one memory (GB10): the GPU's budget is the RAM

    @property
    def gpu_count(self) -> int:
        return len(self.gpus_gib)

    @property
    def device_gib(self) -> float:
        """The memory one training process can fill: one GPU's, the shared memory of a unified box, or RAM."""
        if self.unified or not self.gpus_gib:
            return self.ram_gib
        return min(self.gpus_gib)

    def describe(self) -> str:
        if not self.gpus_gib:
            gpus = "no GPU"
        elif self.unified:
            gpus = f"{self.gpu_name or 'GPU'} sharing {self.ram_gib:.0f} GiB"
        else:
            gpus = f"{self.gpu_count}× {self.gpu_name or 'GPU'} {self.device_gib:.0f} GiB"
        return f"{self.name} ({self.arch}, {gpus}, {self.ram_gib:.0f} GiB RAM, {self.disk_free_gib:.0f} GiB disk free)"


def machine_from_report(report: dict) -> Machine:
    """A `boxes check` report (BoxReport.as_dict()). nvidia-smi reports no memory of its own for a GPU that shares
    the system memory (GB10): such a GPU plans against the RAM."""
    gpus = report.get("gpus") or []
    sizes = [g.get("memory_mib", 0) / 1024 for g in gpus]
    ram = report.get("mem_total_gib") or 0.0
    unified = bool(gpus) and (any(s == 0 for s in sizes) or any("GB10" in g.get("name", "") for g in gpus))
    return Machine(name=report.get("box", "?"), arch=report.get("arch", ""), ram_gib=ram,
                   disk_free_gib=report.get("disk_free_gib") or 0.0, gpus_gib=[s or ram for s in sizes],
                   gpu_name=gpus[0].get("name", "") if gpus else "", unified=unified)


def this_machine(path: str = ".") -> Machine:
    """The machine this process runs on, read as `boxes check` reads a box (disk: the filesystem of `path`)."""
    ram = 0.0
    try:
        with open("/proc/meminfo") as f:
            ram = next(int(line.split()[1]) for line in f if line.startswith("MemTotal:")) / 2**20
    except (OSError, StopIteration):
        pass
    gpus = []
    if shutil.which("nvidia-smi"):  # what `boxes check` reads, without importing torch
        try:
            out = subprocess.run(["nvidia-smi", "--query-gpu=name,memory.total", "--format=csv,noheader,nounits"],
                                 capture_output=True, text=True, timeout=30).stdout
        except (OSError, subprocess.SubprocessError):
            out = ""
        for line in out.splitlines():
            name, _, mem = line.partition(",")
            gpus.append({"name": name.strip(), "memory_mib": int(mem) if mem.strip().isdigit() else 0})
    where = Path(path).resolve()
    while not where.exists():  # a home or run directory not made yet: the filesystem it will be on
        where = where.parent
    return machine_from_report({"box": os.uname().nodename, "arch": platform.machine(), "mem_total_gib": ram,
                                "disk_free_gib": shutil.disk_usage(where).free / GIB, "gpus": gpus})
