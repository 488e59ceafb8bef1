"""The replay set: a quota per skill, filled from self-replay (the base model answers a prompt file through
the gates' generation backend) and from local human/open sets that declare licence and provenance.

Candidates are guarded before anything is drawn (so a dropped prompt never costs a generation), drawn
per skill by seed, generated, and the answers guarded again before writing.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, model_validator

from engine.data.against import GuardedConfig, build_index
from engine.data.examples import example_texts, jsonl, report_json, rng, to_messages, write_outputs
from engine.data.sources import SKILLS, SourceSpec, check_sources
from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.jobs import JobConfig

SELF = "self-replay"
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


class SelfReplaySpec(JobConfig):
    model: str = Field(description="the base model (HF id or local directory) that answers the prompts")
    prompts: str = Field(description="file of rows with `prompt` and `skill`")
    licence: str = Field(min_length=1, description="licence of the base model's outputs (e.g. apache-2.0)")
    device: str = Field("cpu", description="cpu | cuda | cuda:N")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: int = Field(512, ge=1)
    batch_size: int = Field(8, ge=1)
    chat_template: bool = Field(True, description="wrap each prompt in the tokenizer's chat template (thinking off)")


class ReplayConfig(GuardedConfig):
    quotas: dict[str, int] = Field(default_factory=lambda: {s: 50 for s in SKILLS},
                                   description="skill → examples wanted")
    self_replay: SelfReplaySpec | None = None
    sources: list[SourceSpec] = Field(default_factory=list, description="local human/open sets ([[sources]])")
    allow_synthetic_override: bool = Field(False, description="use sources derived from OpenAI/Anthropic outputs "
                                                              "anyway (recorded in the report)")
    seed: int = 0

    @model_validator(mode="after")
    def _valid(self):
        unknown = sorted(set(self.quotas) - set(SKILLS))
        if unknown:
            raise ValueError(f"unknown skill {unknown[0]!r} in quotas (known: {', '.join(SKILLS)})")
        if any(v < 0 for v in self.quotas.values()):
            raise ValueError("quotas must be ≥ 0")
        if self.self_replay is None and not self.sources:
            raise ValueError("set self_replay or at least one [[sources]] table")
        names = [SELF] + [s.name for s in self.sources]
        twice = next((n for n in names if names.count(n) > 1), None)
        if twice:
            raise ValueError(f"two sources are named {twice!r}")
        return self


def _skill(row: dict, default: str | None, where: str) -> str:
    skill = row.get("skill", default)
    if skill is None:
        raise SpecError(f"{where}: no `skill` (add the field, or set the source's skill)")
    if skill not in SKILLS:
        raise SpecError(f"{where}: unknown skill {skill!r} (known: {', '.join(SKILLS)})")
    return skill


def _candidates(config: ReplayConfig) -> list[dict]:
    """Every usable row, in a fixed order: self-replay prompts, then each source's rows."""
    out = []
    if config.self_replay:
        path = config.self_replay.prompts
        for i, row in enumerate(read_rows(path)):
            where = f"{path}: row {i + 1}"
            prompt = next((row[k] for k in ("prompt", "instruction", "question") if isinstance(row.get(k), str)), None)
            if not prompt or not prompt.strip():
                raise SpecError(f"{where}: no `prompt` text")
            out.append({"name": SELF, "row": i, "skill": _skill(row, None, where), "prompt": prompt})
    for src in config.sources:
        for i, row in enumerate(read_rows(src.file)):
            where = f"{src.file}: row {i + 1}"
            out.append({"name": src.name, "row": i, "skill": _skill(row, src.skill, where),
                        "messages": to_messages(row, where)})
    return out


def _generate(spec: SelfReplaySpec, prompts: list[str], progress: Callable[[int, int], None]) -> list[str]:
    """Greedy answers from the base model, through the same backend the gates score with."""
    from engine.gates.backend import SubjectSpec, check_device, open_backend

    check_device(spec.device)
    backend = open_backend(SubjectSpec(name=SELF, model=spec.model, dtype=spec.dtype), spec.device)
    done = 0

    def on_batch(count: int) -> None:
        nonlocal done
        done += count
        progress(done, len(prompts))

    try:
        if spec.chat_template:
            prompts = [backend.tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                                             add_generation_prompt=True, enable_thinking=False)
                       for p in prompts]
        answers = backend.generate(prompts, [], spec.max_new_tokens, False, spec.batch_size, on_batch)
    finally:
        backend.close()
    return [_THINK.sub("", a).strip() for a in answers]


def build_replay(config: ReplayConfig, out: Path, report_path: Path,
                 progress: Callable[[int, int, str], None] | None = None,
                 log: Callable[[str], None] = lambda message: None) -> dict:
    """Write the replay examples to `out` and the report to `report_path`; return the report."""
    say = progress or (lambda done, total, label: None)
    records = check_sources(config.sources, config.allow_synthetic_override)
    candidates = _candidates(config)
    tags = [{"kind": "replay", "skill": c["skill"], "name": c["name"], "row": c["row"]} for c in candidates]
    index = build_index(config.guard_against, config.guard_files, config.ngram)
    texts = [[c["prompt"]] if "prompt" in c else example_texts(c) for c in candidates]
    result = index.check(texts, lambda done, total: say(done, total, "guard"))
    clean = [i for i, ok in enumerate(result.keep()) if ok]
    chosen: list[int] = []
    skills = {}
    for skill in SKILLS:
        pool = [i for i in clean if candidates[i]["skill"] == skill]
        rng(config.seed, "skill", skill).shuffle(pool)
        quota = config.quotas.get(skill, 0)
        chosen += pool[:quota]
        skills[skill] = {"quota": quota, "available": len(pool), "selected": min(quota, len(pool))}
    asked = [i for i in chosen if "prompt" in candidates[i]]
    empty = 0
    if asked:
        answers = _generate(config.self_replay, [candidates[i]["prompt"] for i in asked],
                            lambda done, total: say(done, total, "self-replay"))
        answered = []
        for i, answer in zip(asked, answers):
            if answer:
                candidates[i]["messages"] = [{"role": "user", "content": candidates[i]["prompt"]},
                                             {"role": "assistant", "content": answer}]
                answered.append(i)
            else:
                empty += 1
        # The answers are new text: guard them too (a model can recite a test passage it has memorised).
        again = index.check([[candidates[i]["messages"][1]["content"]] for i in answered])
        result.absorb(again, answered)
    kept = [i for i in chosen if "messages" in candidates[i] and i not in result.hits]
    rng(config.seed, "order").shuffle(kept)
    for skill in SKILLS:
        got = sum(candidates[i]["skill"] == skill for i in kept)
        skills[skill].update(written=got, shortfall=max(0, skills[skill]["quota"] - got))
    warnings = [f"{s}: {v['written']} of {v['quota']} examples" for s, v in skills.items() if v["shortfall"]]
    for w in warnings:
        log(f"warning: {w}")
    if config.self_replay:
        sr = config.self_replay
        records.insert(0, {"name": SELF, "kind": "self_replay", "file": sr.prompts, "licence": sr.licence,
                           "provenance": f"answers of {sr.model} (greedy, hf backend, max_new_tokens "
                                         f"{sr.max_new_tokens}, chat template {'on' if sr.chat_template else 'off'})",
                           "synthetic": None})
    for rec in records:
        rec["rows"] = sum(c["name"] == rec["name"] for c in candidates)
        rec["used"] = sum(candidates[i]["name"] == rec["name"] for i in kept)
    rows = [{"messages": candidates[i]["messages"], "source": tags[i]} for i in kept]
    report = {"builder": "replay", "output": Path(out).name, "seed": config.seed, "total": len(rows),
              "skills": skills, "sources": records,
              "synthetic_override": {"allowed": config.allow_synthetic_override,
                                     "used_by": [r["name"] for r in records if r["synthetic"]]},
              "self_replay": {"prompts": len(asked), "empty_answers": empty}, "warnings": warnings,
              "guard": result.report(tags)}
    write_outputs({Path(out): jsonl(rows), Path(report_path): report_json(report)})
    return report
