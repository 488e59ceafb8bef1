"""The typed subject recipe: every producer's ids and recorded dicts are the ones the dict-built recipes gave
(pinned below, computed before the change), so stores and run directories written before stay joined."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from pydantic import ValidationError

from engine.subjects import Recipe, make_subject

HF = {"model": "/base", "adapter": None, "scale": 1.0, "merge": None, "format": "hf", "file": None}
CKPT = "/tmp/ck/checkpoint-30"


def test_every_producer_records_the_recipes_and_ids_it_recorded_before():
    from engine.export.config import ExportConfig
    from engine.export.job import _recipe
    from engine.gates.backend import SubjectSpec
    from engine.merge.config import MergeSweepConfig
    from engine.merge.job import _candidates
    from engine.serve.config import GGUFSubject
    from engine.train.run import Plan, checkpoint_subject

    plan = Plan("sft", "/base", "/base", ("sft",), None, "job.toml")
    sweep = MergeSweepConfig(model="/base", adapter="/nonexist/ad", scales=[0.5, 1], gate_base=True,
                             variants=[{"method": "ties", "density": 0.5},
                                       {"method": "dare_linear", "density": 0.7, "seed": 1, "scale": 0.8}])
    made = {
        "hf adapter": SubjectSpec(name="a", kind="checkpoint", model="/m", adapter="/ad", scale=0.5).subject(),
        "hf scale without adapter": SubjectSpec(name="a", model="/m", scale=0.5).subject(),
        "gguf": SubjectSpec(name="q", kind="quant", backend="llama_cpp", file="/x/m-Q8_0.gguf").subject(),
        "endpoint": SubjectSpec(name="e", backend="endpoint",
                                endpoint={"url": "http://127.0.0.1:1/v1", "model": "bielik"}).subject(),
        "served url": GGUFSubject(name="g", url="http://h/v1").subject(),
        "checkpoint": checkpoint_subject("run", 30, plan, Path(CKPT)),
        "checkpoint kl": checkpoint_subject("run", 30, plan, Path(CKPT), {"kl_to_base": 50.0}),
        "export merge": make_subject("x", "merge", _recipe(ExportConfig(
            model="/base", adapter="/ad", scale=0.5, merge={"method": "ties", "density": 0.5, "seed": 3}))),
        **{f"sweep {c.folder}": c.spec.subject() for c in _candidates(sweep)},
    }
    pinned = {
        "hf adapter": ("s-99dd9e770028", {**HF, "model": "/m", "adapter": "/ad", "scale": 0.5}),
        "hf scale without adapter": ("s-5f5f75f6f262", {**HF, "model": "/m"}),
        "gguf": ("s-32d2fee7b408", {**HF, "model": "/x/m-Q8_0.gguf", "format": "gguf", "file": "/x/m-Q8_0.gguf"}),
        "endpoint": ("s-0c0b6b1f0396", {**HF, "model": "bielik", "format": "endpoint"}),
        "served url": ("s-ec3a6d97a923", {**HF, "model": "http://h/v1", "format": "endpoint"}),
        "checkpoint": ("s-606af4346bcd", {**HF, "adapter": CKPT}),
        "checkpoint kl": ("s-1934549aaa59", {**HF, "adapter": CKPT, "kl_to_base": 50.0}),
        "export merge": ("s-4c469b824568", {**HF, "adapter": "/ad", "scale": 0.5,
                                            "merge": {"method": "ties", "density": 0.5, "seed": 3}}),
        "sweep base": ("s-5ff36b9e4137", HF),
        "sweep scale-0.5": ("s-d784f6ca67cd", {**HF, "adapter": "/nonexist/ad", "scale": 0.5}),
        "sweep scale-1": ("s-a00dd1c543a3", {**HF, "adapter": "/nonexist/ad"}),
        "sweep ties-d0.5": ("s-6f0045fe60cb", {**HF, "adapter": "/nonexist/ad",
                                               "merge": {"method": "ties", "density": 0.5, "seed": 0}}),
        "sweep dare_linear-d0.7-seed-1-x0.8": ("s-eeb6a6f81f33", {
            **HF, "adapter": "/nonexist/ad", "scale": 0.8, "merge": {"method": "dare_linear", "density": 0.7,
                                                                     "seed": 1}}),
    }
    assert made.keys() == pinned.keys()
    for what, (sid, recipe) in pinned.items():
        # json.dumps without sorting: the recorded key order is the old one too
        assert (made[what]["id"], json.dumps(made[what]["recipe"])) == (sid, json.dumps(recipe)), what


def test_a_gate_job_records_a_checkpoint_trained_with_kl_to_base_as_that_checkpoint():
    """Training gates its checkpoints in a separate gate job (mode = "process" or "fanout"): the [[subjects]]
    table it writes carries the checkpoint's recipe, so the results join the checkpoint, not a twin without
    kl_to_base (what the table loads may be a copy elsewhere)."""
    import tomllib

    from engine.gates.backend import SubjectSpec
    from engine.jobs import dumps_toml
    from engine.train.gating import recorded
    from engine.train.run import Plan, checkpoint_subject

    ckpt = checkpoint_subject("run", 30, Plan("sft", "/base", "/base", ("sft",), None, "job.toml"), Path(CKPT),
                              {"kl_to_base": 50.0})
    table = recorded(ckpt, {"name": ckpt["name"], "kind": "checkpoint", "model": "/copy", "adapter": "/copy/ad"})
    [spec] = tomllib.loads(dumps_toml({"subjects": [table]}))["subjects"]  # as the gate job reads it
    assert SubjectSpec(**spec).subject() == ckpt and ckpt["id"] == "s-1934549aaa59"


def test_a_recipe_is_frozen_and_refuses_what_no_subject_has():
    recipe = Recipe.hf("/base", "/ad", 0.5)
    with pytest.raises(ValidationError):
        recipe.scale = 1.0
    for bad in (dict(model="/base", scale=0.5), dict(model="/base", merge={"method": "ties", "density": 1, "seed": 0}),
                dict(model="/base", training={"kl_to_base": 1.0}),
                dict(model="/base", format="onnx"), dict(model="/base", tag="x"),
                dict(model="/base", adapter="/ad", training={"scale": 2})):
        with pytest.raises(ValidationError):
            Recipe(**bad)


def test_a_store_written_before_joins_the_subjects_made_now(tmp_path):
    """A gate_result recorded by the dict-built recipe and one from today's producer are one subject."""
    from deltas_fixtures import gate_event, ingest_events
    from engine.gates.backend import SubjectSpec
    from store import Store
    from store.overview import list_subjects

    store = Store.open(f"sqlite:///{tmp_path / 'slayer.db'}")

    old = {"id": "s-99dd9e770028", "name": "a", "kind": "checkpoint",
           "recipe": {"model": "/m", "adapter": "/ad", "scale": 0.5, "merge": None, "format": "hf", "file": None}}
    ingest_events(store, "old-run", "e", [gate_event(old, "arc", "reasoning", [1, 0, 1])])
    new = SubjectSpec(name="a", kind="checkpoint", model="/m", adapter="/ad", scale=0.5).subject()
    ingest_events(store, "new-run", "e", [gate_event(new, "hella", "reasoning", [1, 1, 0])])
    [row] = list_subjects(store, "e")
    assert (row.subject_id, row.recipe) == (old["id"], old["recipe"])
