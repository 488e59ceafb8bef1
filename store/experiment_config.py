"""An experiment's config, `$SLAYER_HOME/experiments/NAME.toml`: the objective that ranks its subjects and
the drop each axis tolerates. A missing file means the plan's defaults.

    [objective]
    lambda = 1.0          # λ: weight of the worst general regression (pp)
    [objective.weights]   # weight of each axis's mean gain (pp) in the score
    pl_style = 1.0        # the style gain
    pl_nlu = 1.0          # w_nlu: the mean Polish NLU (KLEJ) gain

    [tolerance]           # pp per axis (default: each gate's own, 0.5 unless a gate says otherwise)
    en_knowledge = 0.5

    [policy]              # the plan's locked rules (engine.policy), checked before any job launches
    epochs_without_gates = 3              # this many epochs or more need [gates]
    vendors = ["openai", "anthropic"]     # whose outputs may not teach, judge or replay
    [policy.derived]                      # models or files made from a vendor's outputs
    "my-distilled-judge" = "openai"
    [policy.override]                     # rule = "why a person lets jobs break it" (listed on the card)
    epochs_without_gates = "4-epoch ablation, gated by hand afterwards"

score = Σ weight(axis) · mean gain(axis) − λ · max(0, worst general regression). Other tables in the file
belong to other parts of the experiment and are left alone here.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from engine.errors import SpecError
from engine.policy import RULES, Policy
from engine.vocab import AXIS_NAMES

# The v2.1 plan: style gain + w_nlu · mean KLEJ gain − λ · max(0, worst general regression). The plan names no
# number for w_nlu; "crush the KLEJ tasks" is a goal equal to the style one, so both weigh 1.
DEFAULT_WEIGHTS = {"pl_style": 1.0, "pl_nlu": 1.0}
DEFAULT_LAMBDA = 1.0


@dataclass(frozen=True)
class ExperimentConfig:
    weights: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_WEIGHTS))
    lam: float = DEFAULT_LAMBDA
    tolerance_pp: dict[str, float] = field(default_factory=dict)  # axis → pp; absent: the gates' own
    policy: Policy = field(default_factory=Policy)
    source: str = ""  # the file it came from ("" for the defaults)

    def formula(self, lam: float | None = None) -> str:
        """The score in one line, in the config's own words: `pl_style + 0.5·pl_nlu − 1·max(0, regression)`."""
        terms = " + ".join(a if w == 1 else f"{w:g}·{a}" for a, w in self.weights.items() if w)
        return f"{terms or '0'} − {self.lam if lam is None else lam:g}·max(0, regression)"


def _number(value, where: str, path: Path) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0:
        raise SpecError(f"{path}: {where} must be a number ≥ 0, not {value!r}")
    return float(value)


def _per_axis(table, where: str, path: Path) -> dict[str, float]:
    if not isinstance(table, dict):
        raise SpecError(f"{path}: [{where}] must be a table of axis = number")
    unknown = [a for a in table if a not in AXIS_NAMES]
    if unknown:
        raise SpecError(f"{path}: [{where}] {unknown[0]!r} is not an axis (known: {', '.join(AXIS_NAMES)})")
    return {a: _number(v, f"[{where}] {a}", path) for a, v in table.items()}


def load_experiment_config(path: Path) -> ExperimentConfig:
    """The config in `path`, or the defaults when there is no such file. Bad input → SpecError naming the
    file and the field."""
    path = Path(path)
    if not path.is_file():
        return ExperimentConfig()
    try:
        data = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as e:
        raise SpecError(f"{path}: {e}") from None
    objective = data.get("objective", {})
    if not isinstance(objective, dict):
        raise SpecError(f"{path}: [objective] must be a table")
    extra = sorted(set(objective) - {"lambda", "weights"})
    if extra:
        raise SpecError(f"{path}: [objective] has no setting {extra[0]!r} (known: lambda, weights)")
    weights = {**DEFAULT_WEIGHTS, **_per_axis(objective.get("weights", {}), "objective.weights", path)}
    lam = _number(objective["lambda"], "[objective] lambda", path) if "lambda" in objective else DEFAULT_LAMBDA
    return ExperimentConfig(weights, lam, _per_axis(data.get("tolerance", {}), "tolerance", path),
                            _policy(data.get("policy", {}), path), str(path))


def _strings(table, where: str, path: Path, keys=None) -> dict[str, str]:
    if not isinstance(table, dict) or not all(isinstance(v, str) and v.strip() for v in table.values()):
        raise SpecError(f"{path}: [{where}] must be a table of name = \"text\"")
    unknown = [k for k in table if keys is not None and k not in keys]
    if unknown:
        raise SpecError(f"{path}: [{where}] {unknown[0]!r} is not a policy rule (known: {', '.join(keys)})")
    return dict(table)


def _policy(table, path: Path) -> Policy:
    if not isinstance(table, dict):
        raise SpecError(f"{path}: [policy] must be a table")
    extra = sorted(set(table) - {"epochs_without_gates", "vendors", "derived", "override"})
    if extra:
        raise SpecError(f"{path}: [policy] has no setting {extra[0]!r} "
                        "(known: epochs_without_gates, vendors, derived, override)")
    vendors = table.get("vendors", list(Policy.vendors))
    if not isinstance(vendors, list) or not all(isinstance(v, str) for v in vendors):
        raise SpecError(f"{path}: [policy] vendors must be a list of names")
    epochs = _number(table.get("epochs_without_gates", Policy.epochs_without_gates),
                     "[policy] epochs_without_gates", path)
    return Policy(epochs, tuple(v.lower() for v in vendors), _strings(table.get("derived", {}), "policy.derived", path),
                  _strings(table.get("override", {}), "policy.override", path, tuple(RULES)))
