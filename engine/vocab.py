"""The project's shared words, defined once: run statuses, verdicts, axes and subject kinds.

The store's constraints, the delta tables, the card, the CLI and the console all read these records, so a new
axis or verdict is one edit here (plus a store migration when a CHECK constraint lists the values).
"""

from __future__ import annotations

from dataclasses import dataclass

# Run statuses, in the order a run passes through them. "lost" is not stored: the console derives it for an
# active run whose process is gone without a final status.
RUN_STATUSES = ("queued", "running", "succeeded", "failed", "cancelled")
ACTIVE = ("queued", "running")
TERMINAL = ("succeeded", "failed", "cancelled")
LOST = "lost"
STATUS_STYLE = {"queued": "cyan", "running": "bold cyan", "succeeded": "green", "failed": "bold red",
                "cancelled": "yellow", LOST: "bold magenta"}


@dataclass(frozen=True)
class Verdict:
    """A delta cell's verdict: `rank` orders severity (worst highest) when one cell stands for many; `mark` is
    its symbol, shown beside a delta number only when `flag` is set (a PASS number needs no mark)."""

    name: str
    rank: int
    mark: str
    style: str
    flag: bool
    compared: bool  # the cell carries a paired delta
    meaning: str

    @property
    def label(self) -> str:
        """The verdict in words with its mark, as the card writes it (`✓ PASS`, `—` for nothing compared)."""
        if self.name == "BASE":
            return "base"
        return f"{self.mark} {self.name}" if self.compared or self.name == "MISMATCH" else self.mark


_VERDICTS = (
    Verdict("FAIL", 6, "✗", "bold red", True, True,
            "significant regression beyond tolerance — accepting needs an override"),
    Verdict("WARN", 5, "▲", "bold yellow", True, True, "beyond tolerance, not significant (n too small to tell)"),
    Verdict("MISMATCH", 4, "≠", "magenta", True, False, "fingerprints differ from the base: not compared"),
    Verdict("UNDERPOWERED", 3, "?", "cyan", True, True,
            "within tolerance, but n cannot detect a drop of the tolerance's size"),
    Verdict("PASS", 2, "✓", "green", False, True, "within tolerance"),
    Verdict("NA", 1, "—", "dim", False, False, "no result to compare"),
    Verdict("BASE", 0, "", "dim", False, False, "the subject the others are compared with"),
)
VERDICTS = {v.name: v for v in _VERDICTS}
COMPARED = tuple(v.name for v in _VERDICTS if v.compared)


def verdict(name: str) -> Verdict:
    return VERDICTS[name]


def worst_verdict(names) -> str | None:
    """The most severe of `names` (None when there are none)."""
    return max(names, key=lambda n: VERDICTS[n].rank, default=None)


@dataclass(frozen=True)
class Axis:
    """A skill the gates measure. `group` says how it counts in the score: "style" gates make the style gain,
    "general" gates make the worst regression, "polish" targets get verdicts but count in neither, and "serving"
    measurements (latency) are shown beside them, never scored."""

    name: str
    label: str  # short column head in the delta grid
    group: str
    section: str  # heading in the model card


_AXES = (
    Axis("pl_nlu", "PL NLU", "polish", "Polish NLU"),
    Axis("pl_style", "style", "style", "Style"),
    Axis("pl_grammar", "gram", "polish", "Grammar"),
    Axis("en_knowledge", "EN", "general", "Knowledge"),
    Axis("reasoning", "reason", "general", "Reasoning"),
    Axis("math", "math", "general", "Math"),
    Axis("code", "code", "general", "Code"),
    Axis("multilingual", "multi", "general", "Multilingual"),
    Axis("factuality", "fact", "general", "Factuality"),
    Axis("instruction", "instr", "general", "Instruction following"),
    Axis("safety", "safety", "general", "Safety"),
    Axis("latency", "latency", "serving", "Latency"),  # bench.serve: measured, shown, never in the score
)
AXES = {a.name: a for a in _AXES}
AXIS_NAMES = tuple(AXES)
STYLE_AXES = tuple(a.name for a in _AXES if a.group == "style")
GENERAL_AXES = tuple(a.name for a in _AXES if a.group == "general")


def axis_label(name: str) -> str:
    return AXES[name].label if name in AXES else name


def axis_order(name: str) -> tuple[int, str]:
    """Sort key: the axes above in their order, unknown axes after them by name."""
    return (AXIS_NAMES.index(name) if name in AXES else len(AXIS_NAMES), name)


SUBJECT_KINDS = ("base", "reference", "checkpoint", "merge", "quant")

# A gate's tolerance when it names none: the largest drop (pp, or metric units) still called a PASS.
DEFAULT_TOLERANCE_PP = 0.5

# Subjects made from a trained adapter: what the loop may accept and ship.
ADAPTER_KINDS = ("checkpoint", "merge")

# The operator's decisions on a subject, with their marks and colours in the tables.
DECISIONS = {"accept": "✓", "reject": "⊘"}
DECISION_STYLE = {"accept": "bold green", "reject": "bold red"}


def sql_in(column: str, values) -> str:
    """A CHECK constraint's text: `column IN ('a','b')`."""
    return f"{column} IN ({','.join(repr(v) for v in values)})"
