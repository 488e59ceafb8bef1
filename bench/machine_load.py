"""The machine's load average at the start and the end of a benchmark, printed beside its figures.

A ratio measured on a loaded 2-core machine can differ from a quiet one's; docs/benchmarks.md says which is which.
"""

from __future__ import annotations

import os
from contextlib import contextmanager


def load_line(when: str) -> str:
    one, five, fifteen = os.getloadavg()
    return f"load average at {when}: {one:.2f} {five:.2f} {fifteen:.2f} (1/5/15 min, {os.cpu_count()} cores)"


@contextmanager
def reported_load():
    print(load_line("start"), flush=True)
    try:
        yield
    finally:
        print(load_line("end"), flush=True)
