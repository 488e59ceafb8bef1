"""Rich text pieces the tables share: verdict colours and marks, delta cells, progress bars, durations."""

from __future__ import annotations

from rich.text import Text

VERDICT_STYLE = {"PASS": "green", "WARN": "bold yellow", "FAIL": "bold red", "MISMATCH": "magenta",
                 "BASE": "dim", "NA": "dim"}
VERDICT_MARK = {"WARN": "▲", "FAIL": "✗", "MISMATCH": "≠"}
STATUS_STYLE = {"running": "bold cyan", "queued": "cyan", "succeeded": "green", "failed": "bold red",
                "cancelled": "yellow", "lost": "bold magenta"}


def verdict_text(verdict: str | None) -> Text:
    if not verdict:
        return Text("")
    return Text(verdict + VERDICT_MARK.get(verdict, ""), style=VERDICT_STYLE.get(verdict, ""))


def delta_label(cell) -> tuple[str, str]:
    """A delta cell as (text, style): `+1.3`, `-2.1✗`; the base row shows its own value; `—` when there
    is nothing to compare."""
    if cell is None:
        return "", ""
    if cell.verdict == "BASE":
        return ("" if cell.value is None else f"{cell.value:.3g}"), "dim"
    if cell.delta_pp is None:
        return VERDICT_MARK.get(cell.verdict, "—"), VERDICT_STYLE.get(cell.verdict, "dim")
    return f"{number(cell.delta_pp)}{VERDICT_MARK.get(cell.verdict, '')}", VERDICT_STYLE[cell.verdict]


def number(value: float | None, fmt: str = "+.1f") -> str:
    if value is None:
        return ""
    return format(value + 0.0 if round(value, 1) else 0.0, fmt)  # no "-0.0"


def progress_bar(done: float | None, total: float | None, width: int = 10) -> Text:
    """`███████░░░ 1800/2400` — plain characters, readable in any terminal."""
    if not total:
        return Text("")
    frac = max(0.0, min(1.0, (done or 0) / total))
    filled = round(frac * width)
    bar = Text("█" * filled, style="cyan") + Text("░" * (width - filled), style="dim")
    return bar + Text(f" {done or 0:g}/{total:g}")


def duration(start_ms: int | None, end_ms: int | None) -> str:
    if not start_ms or not end_ms:
        return ""
    s = max(0, (end_ms - start_ms) // 1000)
    return f"{s // 3600}h{s % 3600 // 60:02d}m" if s >= 3600 else f"{s // 60}m{s % 60:02d}s"
