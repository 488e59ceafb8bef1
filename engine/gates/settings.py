"""How gates are run: one settings model for every place that gates — the `gate` job, a training run's
per-checkpoint gating ([gates]) and a merge sweep ([gate]) — so a setting added here reaches all three."""

from __future__ import annotations

from typing import ClassVar

from pydantic import Field, model_validator

from engine.gates.judge_client import JudgeSettings
from engine.jobs import JobConfig


class GateSettings(JobConfig):
    suite: str | None = Field(None, description="a suite from assets/gates/suites.toml (core, extended)")
    gates: list[str] = Field(default_factory=list, description="gate names (or gate .toml paths), after the suite")
    files: dict[str, str] = Field(default_factory=dict, description="gate name (or a user-data key: style_prompts, "
                                                                    "style_pairs) → local data file")
    fixtures: bool = Field(False, description="gates without a file here score their tiny shipped fixture "
                                              "(tests and demos only: too few items to certify anything)")
    fewshot_files: dict[str, str] = Field(default_factory=dict, description="gate name → local few-shot file")
    limit: int = Field(0, ge=0, description="score only the first N items of each gate (0: all; a smoke run)")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
    batch_size: int = Field(8, ge=1, description="items per forward pass")
    chat_template: bool | None = Field(None, description="true/false: every gate's prompts in (or out of) the "
                                                         "subject's chat template (lm-eval's --apply_chat_template); "
                                                         "unset: each gate's own setting")
    allow_code_exec: bool = Field(False, description="run model-generated programs (mbpp, humaneval)")
    judge: JudgeSettings | None = Field(None, description="judge endpoint for judged gates (style_judge, en_chat, "
                                                          "xstest); default: SLAYER_JUDGE_URL / SLAYER_JUDGE_MODEL")

    # what to add to "name a suite or at least one gate"; None: an empty selection is allowed
    empty_hint: ClassVar[str | None] = ""

    @model_validator(mode="after")
    def _something_to_run(self):
        if self.empty_hint is not None and not self.suite and not self.gates:
            raise ValueError("name a suite or at least one gate" + self.empty_hint)
        return self

    def run_settings(self) -> dict:
        """These settings as `engine.gates.run_gates` keyword arguments (the selection goes to resolve_gates)."""
        return {k: getattr(self, k) for k in GateSettings.model_fields if k not in ("suite", "gates", "chat_template")}
