"""Recipes for the real campaign: a complete Qwen3.5-27B training spec per box (`slayer jobs example KIND --for BOX`).

A recipe is the kind's head (what is trained on what) plus the box's body (assets/recipes/<box>.toml:
quantisation, adapter, batch, launcher, gating), sized so that `slayer plan` passes on that box. A named
recipe is a whole spec for a setting rather than a box (assets/recipes/<kind>/<name>.toml, e.g. gate --for
rebaseline).
"""

from __future__ import annotations

import tomllib

from engine.errors import SpecError
from engine.refs import ASSETS

RECIPES = ASSETS / "recipes"
MODEL = "Qwen/Qwen3.5-27B"

HEADS = {
    "train.sft": '''# train.sft on {box}: Qwen3.5-27B, QLoRA NF4 + DoRA r=16 (rsLoRA), every checkpoint gated on the
# core suite.
# Check it against the box first: `slayer plan THIS.toml --box {box}` (after `slayer boxes check {box}`).
kind = "train.sft"
name = "sft-27b-{box}"
experiment = "slayer-v2"
model = "{model}"      # or the box's local copy, e.g. "/models/Qwen3.5-27B"
data = "runs/mix/outputs/train_v2_mix.jsonl"   # what data.mix wrote (style + replay + KLEJ), on the box
''',
    "train.cpt": '''# train.cpt on {box}: Qwen3.5-27B knowledge adapter (QLoRA NF4 + DoRA r=16, rsLoRA) with replay;
# every checkpoint gated on the core suite. Check it first: `slayer plan THIS.toml --box {box}`.
kind = "train.cpt"
name = "cpt-27b-{box}"
experiment = "slayer-v2"
model = "{model}"      # or the box's local copy, e.g. "/models/Qwen3.5-27B"
data = "runs/entigraph/outputs/synthetic.jsonl"   # what data.entigraph wrote, on the box
replay = "data/general_pl.txt"                    # general text mixed in against forgetting
replay_share = 0.1
''',
}


def recipe_boxes() -> list[str]:
    return sorted(p.stem for p in RECIPES.glob("*.toml") if p.stem != "boxes")


def named_recipes(kind: str) -> list[str]:
    """Complete specs of `kind` for a named setting rather than a box (assets/recipes/KIND/NAME.toml)."""
    return sorted(p.stem for p in (RECIPES / kind).glob("*.toml"))


def recipe(kind: str, box: str) -> str:
    """The recipe text; SpecError (one line, naming what exists) for an unknown box or a kind without recipes."""
    if box in named_recipes(kind):  # e.g. gate --for rebaseline: the base, v1 and the references at matched settings
        return (RECIPES / kind / f"{box}.toml").read_text(encoding="utf-8")
    if box not in recipe_boxes():
        known = ", ".join(recipe_boxes() + named_recipes(kind))
        raise SpecError(f"no recipe for box {box!r}: recipes exist for {known} "
                        f"(or write one from `slayer jobs example {kind}`)")
    if kind not in HEADS:
        raise SpecError(f"no recipe for {kind!r}: recipes exist for {', '.join(sorted(HEADS))}; "
                        f"`slayer jobs example {kind}` prints the general example")
    body = (RECIPES / f"{box}.toml").read_text(encoding="utf-8")
    return HEADS[kind].format(box=box, model=MODEL) + body


def recipe_machine_report(box: str) -> dict:
    """The reference shape of a recipe box, as a `boxes check` report (what the recipe tests plan against)."""
    data = tomllib.loads((RECIPES / "boxes.toml").read_text(encoding="utf-8"))
    if box not in data:
        raise SpecError(f"no reference shape for box {box!r} in {RECIPES / 'boxes.toml'}")
    return {"box": box, **data[box]}
