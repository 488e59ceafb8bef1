"""Which gate axes the replay anchors: a declared map from replay skills to axes, and per gated axis the
replay examples that anchor it (the plan: every gated axis needs an anchor, so no competency trains unheld).

The Polish axes are what the adapter trains toward (style data and KLEJ feed them), so replay does not
anchor them; every other axis a gate protects needs replay examples of a skill mapped to it.
"""

from __future__ import annotations

from collections import Counter

from engine.data.sources import SKILLS
from engine.vocab import GENERAL_AXES

ANCHORS: dict[str, tuple[str, ...]] = {
    "code": ("code",), "math": ("math",), "reasoning": ("reasoning",), "en_knowledge": ("en_knowledge", "factuality"),
    "multilingual": ("multilingual",), "instruction": ("instruction",), "summarisation": ("instruction",),
    "structured_output": ("instruction",), "safety": ("safety",), "chat": ("instruction",),
}


def gated_axes(gated: list[str]) -> dict[str, list[str]]:
    """axis → gate names, for the general (non-target) axes of the named suites, gates or gate TOML files."""
    from engine.gates.spec import load_gate, suites

    names: list[str] = []
    for entry in gated:
        entry = entry.split("=", 1)[0].strip()
        names += suites().get(entry, [entry])
    axes: dict[str, list[str]] = {}
    for name in dict.fromkeys(names):
        gate = load_gate(name)  # an unknown name fails here, listing the known gates
        if gate.axis in GENERAL_AXES:
            axes.setdefault(gate.axis, []).append(gate.name)
    return axes


def coverage(skills: Counter, gated: list[str]) -> dict:
    """Per gated axis: its gates, the replay examples anchoring it and from which skills; the axes without any."""
    axes = {}
    for axis, gates in gated_axes(gated).items():
        by_skill = {s: skills[s] for s in SKILLS if axis in ANCHORS[s] and skills[s]}
        axes[axis] = {"gates": gates, "examples": sum(by_skill.values()), "skills": by_skill,
                      "anchored_by": [s for s in SKILLS if axis in ANCHORS[s]]}
    return {"gated": list(gated), "axes": axes, "unanchored": [a for a, v in axes.items() if not v["examples"]]}


def unanchored_lines(cov: dict) -> list[str]:
    """One line per gated axis without a replay example: its gates, and which skills would anchor it."""
    out = []
    for axis in cov["unanchored"]:
        v = cov["axes"][axis]
        need = f"replay of skill {' or '.join(v['anchored_by'])}" if v["anchored_by"] else "a skill mapped to it"
        out.append(f"gated axis {axis} ({', '.join(v['gates'])}) has no replay example anchoring it (needs {need})")
    return out


def markdown_rows(cov: dict) -> list[str]:
    """The coverage table in Markdown (mix report, model card)."""
    lines = ["| gated axis | gates | replay examples | from skills |", "|---|---|---:|---|"]
    for axis, v in cov["axes"].items():
        skills = ", ".join(f"{s} {n}" for s, n in v["skills"].items()) or "—"
        lines.append(f"| {axis} | {', '.join(v['gates'])} | {v['examples']} | {skills} |")
    return lines
