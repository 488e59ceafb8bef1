"""Typed configs of merging: the merge parameters of a subject's recipe and the `merge.sweep` job."""

from __future__ import annotations

from typing import ClassVar, Literal

from pydantic import Field, model_validator

from engine.gates.settings import GateSettings
from engine.jobs import JobConfig
from engine.merge.methods import METHODS

DEFAULT_SCALES = [0.3, 0.4, 0.5, 0.6, 0.7]


class MergeParams(JobConfig):
    """How an adapter's task vector is combined before it is added to the base (engine.merge.methods)."""

    method: Literal[tuple(METHODS)] = Field(description="ties | dare_ties | dare_linear | task_arithmetic")
    density: float = Field(1.0, gt=0, le=1, description="fraction of task-vector entries kept: the largest "
                                                         "(ties) or a random draw rescaled by 1/density (dare)")
    seed: int = Field(0, description="seed of DARE's random drop, hashed with each tensor's name")


class MergeVariant(MergeParams):
    """One TIES / DARE candidate of a sweep; written to disk as a merged HF directory."""

    scale: float = Field(1.0, description="λ: the combined task vector is added as W + λ·τ")


class SweepGating(GateSettings):
    """How candidates are gated: the `gate` job's settings, the core suite unless told otherwise."""

    suite: str | None = Field("core", description="a suite from assets/gates/suites.toml (\"\": none)")
    empty_hint: ClassVar[str | None] = None  # skip_gates, or an empty suite, builds candidates only


class MergeSweepConfig(JobConfig):
    model: str = Field(description="base model: a local HF-format directory with safetensors weights")
    adapter: str = Field(description="PEFT LoRA or DoRA adapter directory")
    scales: list[float] = Field(default_factory=lambda: list(DEFAULT_SCALES),
                                description="adapter scales s: W + s·(W_adapted − W); [] for none")
    variants: list[MergeVariant] = Field(default_factory=list, description="TIES / DARE candidates")
    materialize_scales: bool = Field(False, description="also write scale candidates to disk (normally the hf "
                                                        "backend applies the adapter at its scale on load)")
    gate: SweepGating = Field(default_factory=SweepGating,
                               description="how candidates are gated ([gate] table; default: the core suite)")
    keep_merged: bool = Field(True, description="false: delete the merged directories once they are gated")
    gate_base: bool = Field(False, description="also gate the base in this run (deltas need a base result with "
                                               "the same fingerprint; pairwise judged gates need it in the run)")
    skip_gates: bool = Field(False, description="only build the candidates (no gating)")

    @model_validator(mode="after")
    def _some_candidate(self):
        if not self.scales and not self.variants:
            raise ValueError("nothing to sweep: give scales, variants or both")
        if len(set(self.scales)) != len(self.scales):
            raise ValueError("scales repeat a value")
        return self
