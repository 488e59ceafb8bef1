"""Names cut to a column's width from the middle, so that no two cut names read the same.

Subject names differ at their ends (`sft-replay-ckpt-30 ×0.5`) and in the middle (`…ckpt-30 ties…`), so a
plain cut of the tail makes near-duplicates look identical; the full name is shown on focus."""

from __future__ import annotations

import os

ELLIPSIS = "…"


def middle(text: str, width: int, head: int | None = None) -> str:
    """`text` in at most `width` cells: its first `head` characters, `…`, and as much of its end as fits."""
    if len(text) <= width:
        return text
    if width <= 1:
        return ELLIPSIS[:width]
    head = width // 2 if head is None else head
    tail = width - 1 - head
    return text[:head] + ELLIPSIS + (text[len(text) - tail:] if tail else "")


def distinct(names: list[str], width: int) -> dict[str, str]:
    """name → its cut to `width`, cut from the middle; where two cuts coincide, the split point moves for
    that group until they differ, and if no split separates them the cut shows where the names differ."""
    out = {n: middle(n, width) for n in dict.fromkeys(names)}
    groups: dict[str, list[str]] = {}
    for name, cut in out.items():
        groups.setdefault(cut, []).append(name)
    for group in (g for g in groups.values() if len(g) > 1):
        out.update(_separate(group, width))
    return out


def _separate(group: list[str], width: int) -> dict[str, str]:
    balanced = width // 2
    for head in sorted(range(1, width), key=lambda h: abs(h - balanced)):  # the first character always stays
        cuts = {n: middle(n, width, head) for n in group}
        if len(set(cuts.values())) == len(group):
            return cuts
    if width <= 3:  # too narrow to tell them apart
        return {n: middle(n, width) for n in group}
    common = len(os.path.commonprefix(group))
    if common == 0:  # different first characters already separate the parts
        parts: dict[str, list[str]] = {}
        for n in group:
            parts.setdefault(n[0], []).append(n)
        out = {}
        for part in parts.values():
            out.update(_separate(part, width) if len(part) > 1 else {part[0]: middle(part[0], width)})
        return out
    # no single split point tells them apart: keep the first character, skip the shared prefix, cut the rest
    rest = distinct([n[common:] for n in group], width - 2)
    return {n: n[0] + ELLIPSIS + rest[n[common:]] for n in group}
