"""Rich text pieces the tables share: verdict text, delta cells, progress bars, durations (words from engine.vocab)."""

from __future__ import annotations

from rich.text import Text

from engine.vocab import VERDICTS


def flag(verdict: str) -> str:
    """The mark shown beside a delta number: none for a PASS."""
    v = VERDICTS[verdict]
    return v.mark if v.flag else ""


def verdict_text(verdict: str | None) -> Text:
    if not verdict:
        return Text("")
    return Text(verdict + flag(verdict), style=VERDICTS[verdict].style)


def delta_label(cell) -> tuple[str, str]:
    """A delta cell as (text, style): `+1.3`, `-2.1✗`; the base row shows its own value; `—` when there
    is nothing to compare."""
    if cell is None:
        return "", ""
    if cell.verdict == "BASE":
        return ("" if cell.value is None else f"{cell.value:.3g}"), "dim"
    if cell.delta_pp is None:
        return VERDICTS[cell.verdict].mark, VERDICTS[cell.verdict].style
    return f"{number(cell.delta_pp)}{flag(cell.verdict)}", VERDICTS[cell.verdict].style


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
