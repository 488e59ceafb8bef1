"""The replay set: a quota per skill, filled first from self-replay (the base model answers the shipped prompt
grid, or the operator's prompt file) and then from human/open sets (Aya, Dolly, OASST, OpenMathInstruct-2,
one's own) that carry a licence and a provenance.

Candidates are guarded before anything is drawn (so a dropped prompt never costs a generation) and rows
whose answers carry closed-model boilerplate are dropped; the base answers through the hf backend or an
OpenAI-compatible endpoint (vLLM, llama-server) with the chat template and thinking off; answers that are
empty, hit the token limit, carry boilerplate or overlap a test set are dropped, and the open sets fill the
gap. The report shows per gated axis the examples that anchor it.
"""

from __future__ import annotations

import re
from collections import Counter
from importlib import resources
from pathlib import Path
from typing import Callable, Literal

from pydantic import Field, model_validator

from engine.data.against import GuardedConfig, build_index
from engine.data.coverage import coverage, gated_axes, unanchored_lines
from engine.data.examples import example_texts, jsonl, report_json, rng, write_outputs
from engine.data.open_sets import load_source
from engine.data.sources import GRID, SKILLS, SourceSpec, boilerplate, check_source
from engine.datafiles import read_rows
from engine.errors import SpecError
from engine.gates.endpoint import EndpointSettings
from engine.jobs import JobConfig

SELF = "self-replay"
PROMPT_LICENCE = "CC0-1.0"
_THINK = re.compile(r"^\s*<think>.*?</think>\s*", re.DOTALL)


def shipped_prompts() -> Path:
    """The prompt grid that ships with slayer (assets/replay/prompts.jsonl; see its README)."""
    return Path(str(resources.files("assets") / "replay" / "prompts.jsonl"))


class SelfReplaySpec(JobConfig):
    model: str = Field(description="the base model (HF id or local directory) that answers the prompts")
    prompts: str | None = Field(None, description="file of rows with `prompt` and `skill` (default: the shipped "
                                                  "grid, assets/replay/prompts.jsonl)")
    licence: str = Field(min_length=1, description="licence of the base model's outputs (e.g. apache-2.0)")
    device: str = Field("cpu", description="cpu | cuda | cuda:N (hf backend)")
    dtype: Literal["auto", "float32", "bfloat16", "float16"] = "auto"
    max_new_tokens: int = Field(512, ge=1, description="the longest answer")
    drop_unfinished: bool = Field(True, description="drop answers that reach max_new_tokens (counted either way); "
                                                    "false keeps them, e.g. for short-answer prompts to a base "
                                                    "that never stops")
    batch_size: int = Field(8, ge=1, description="hf backend")
    chat_template: bool = Field(True, description="wrap each prompt in the chat template (thinking off)")
    endpoint: EndpointSettings | None = Field(
        None, description="an OpenAI-compatible server (vLLM, llama-server) serving the base: url, model, "
                          "concurrency, chat_template_kwargs (thinking off by default); unset: hf generate")


class ReplayConfig(GuardedConfig):
    quotas: dict[str, int] = Field(default_factory=lambda: dict(GRID),
                                   description="skill → examples wanted (default: the plan's grid, ≈300)")
    self_replay: SelfReplaySpec | None = None
    sources: list[SourceSpec] = Field(default_factory=list, description="human/open sets ([[sources]])")
    allow_synthetic_override: bool = Field(False, description="use sources derived from OpenAI/Anthropic outputs "
                                                              "anyway (recorded in the report)")
    gated: list[str] = Field(default_factory=lambda: ["core"],
                             description="suites or gates the checkpoints are gated on: the report shows the replay "
                                         "examples anchoring each of their axes")
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


def _prompts(path: str) -> list[dict]:
    out = []
    for i, row in enumerate(read_rows(path)):
        where = f"{path}: row {i + 1}"
        prompt = next((row[k] for k in ("prompt", "instruction", "question") if isinstance(row.get(k), str)), None)
        if not prompt or not prompt.strip():
            raise SpecError(f"{where}: no `prompt` text")
        skill = row.get("skill")
        if skill not in SKILLS:
            raise SpecError(f"{where}: {'no `skill`' if skill is None else f'unknown skill {skill!r}'} "
                            f"(known: {', '.join(SKILLS)})")
        out.append({"name": SELF, "row": i, "skill": skill, "language": row.get("language", "en"), "prompt": prompt})
    return out


def _generate_hf(spec: SelfReplaySpec, prompts: list[str], progress: Callable[[int, int], None]) -> list[dict]:
    """Greedy answers through the gates' hf backend; `limit` marks answers that ran into max_new_tokens."""
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
    return [{"text": a, "limit": hit} for a, hit in zip(answers, backend.hit_limit)]


def _generate_endpoint(spec: SelfReplaySpec, prompts: list[str], progress: Callable[[int, int], None]) -> list[dict]:
    """Greedy completions from the gates' endpoint client: chats (the server applies the chat template, thinking
    off), or raw prompts without the template; finish_reason "length" marks answers that hit the limit."""
    from engine.gates.endpoint import complete_chats, complete_prompts, server_model

    settings = spec.endpoint.model_copy(update={"model": server_model(spec.endpoint)[0]})  # absent server: exit 2
    on_done = lambda done: progress(done, len(prompts))  # noqa: E731
    if spec.chat_template:
        replies = complete_chats(settings, [[{"role": "user", "content": p}] for p in prompts], spec.max_new_tokens,
                                 on_done=on_done)
    else:
        replies = complete_prompts(settings, prompts, spec.max_new_tokens, on_done=on_done)
    return [{"text": r.text, "limit": r.finish_reason == "length"} for r in replies]


def _answer(spec: SelfReplaySpec, prompts: list[str], progress: Callable[[int, int], None]) -> list[dict]:
    replies = (_generate_endpoint if spec.endpoint else _generate_hf)(spec, prompts, progress)
    for r in replies:
        r["text"] = _THINK.sub("", r["text"]).strip()
    return replies


def _provenance(spec: SelfReplaySpec) -> str:
    how = f"endpoint {spec.endpoint.url} ({spec.endpoint.model or 'its model'})" if spec.endpoint else "hf backend"
    return (f"answers of {spec.model} (greedy, {how}, max_new_tokens {spec.max_new_tokens}, chat template "
            f"{'on, thinking off' if spec.chat_template else 'off'}) to "
            f"{spec.prompts or f'the shipped prompt grid ({PROMPT_LICENCE}, written for slayer console)'}")


def build_replay(config: ReplayConfig, out: Path, report_path: Path,
                 progress: Callable[[int, int, str], None] | None = None,
                 log: Callable[[str], None] = lambda message: None) -> dict:
    """Write the replay examples to `out` and the report to `report_path`; return the report."""
    say = progress or (lambda done, total, label: None)
    sr = config.self_replay
    markers = {src.name: check_source(src, config.allow_synthetic_override) for src in config.sources}
    candidates = _prompts(sr.prompts or str(shipped_prompts())) if sr else []
    records = []
    if sr:
        records.append({"name": SELF, "kind": "self_replay", "loader": "prompts", "origin": sr.prompts or str(shipped_prompts()),
                        "licence": sr.licence, "provenance": _provenance(sr)})
    for src in config.sources:
        say(0, 1, f"loading {src.name}")
        rows, record = load_source(src)
        candidates += [{"name": src.name, **c} for c in rows]
        records.append(record)
    gated_axes(config.gated)  # a wrong gate name fails before any generation
    tags = [{"kind": "replay", "skill": c["skill"], "language": c["language"], "name": c["name"], "row": c["row"]}
            for c in candidates]
    index = build_index(config.guard_against, config.guard_files, config.ngram)
    texts = [[c["prompt"]] if "prompt" in c else example_texts(c) for c in candidates]
    result = index.check(texts, lambda done, total: say(done, total, "guard"))
    flagged: dict[int, str] = {i: why for i, c in enumerate(candidates)
                               if "messages" in c and (why := boilerplate(c["messages"]))}
    clean = [i for i, ok in enumerate(result.keep()) if ok and i not in flagged]
    pools = {}
    for skill in SKILLS:
        own = [i for i in clean if candidates[i]["skill"] == skill and candidates[i]["name"] == SELF]
        other = [i for i in clean if candidates[i]["skill"] == skill and candidates[i]["name"] != SELF]
        rng(config.seed, "skill", skill).shuffle(own)
        rng(config.seed, "open", skill).shuffle(other)
        pools[skill] = (own[:config.quotas.get(skill, 0)], other)
    asked = [i for skill in SKILLS for i in pools[skill][0]]
    dropped, hit_limit = Counter(), 0
    if asked:
        replies = _answer(sr, [candidates[i]["prompt"] for i in asked],
                          lambda done, total: say(done, total, "self-replay"))
        answered = []
        hit_limit = sum(r["limit"] for r in replies)
        for i, reply in zip(asked, replies):
            c = candidates[i]
            why = "empty" if not reply["text"] else "truncated" if reply["limit"] and sr.drop_unfinished else None
            if why:
                dropped[why] += 1
                continue
            c["messages"] = [{"role": "user", "content": c["prompt"]}, {"role": "assistant", "content": reply["text"]}]
            if (tell := boilerplate(c["messages"])) is not None:
                flagged[i] = tell
                continue
            answered.append(i)
        # The answers are new text: guard them too (a model can recite a test passage it has memorised).
        again = index.check([[candidates[i]["messages"][1]["content"]] for i in answered])
        result.absorb(again, answered)
    kept, skills = [], {}
    for skill in SKILLS:
        own, other = pools[skill]
        quota = config.quotas.get(skill, 0)
        answered = [i for i in own if "messages" in candidates[i] and i not in flagged and i not in result.hits]
        chosen = answered + other[:max(0, quota - len(answered))]
        kept += chosen
        available = sum(candidates[i]["skill"] == skill for i in clean)
        skills[skill] = {"quota": quota, "available": available, "selected": min(quota, available),
                         "self_replay": len(answered), "written": len(chosen),
                         "shortfall": max(0, quota - len(chosen))}
    rng(config.seed, "order").shuffle(kept)
    warnings = [f"{s}: {v['written']} of {v['quota']} examples" for s, v in skills.items() if v["shortfall"]]
    cov = coverage(Counter(candidates[i]["skill"] for i in kept), config.gated)
    warnings += unanchored_lines(cov)
    for w in warnings:
        log(f"warning: {w}")
    for rec in records:
        rec["synthetic"] = markers.get(rec["name"])
        rec["rows"] = sum(c["name"] == rec["name"] for c in candidates)
        rec["used"] = sum(candidates[i]["name"] == rec["name"] for i in kept)
        rec["languages"] = dict(sorted(Counter(candidates[i]["language"] for i in kept
                                               if candidates[i]["name"] == rec["name"]).items()))
    rows = [{"messages": candidates[i]["messages"], "source": tags[i]} for i in kept]
    report = {"builder": "replay", "output": Path(out).name, "seed": config.seed, "total": len(rows),
              "skills": skills, "coverage": cov, "sources": records,
              "synthetic_override": {"allowed": config.allow_synthetic_override,
                                     "used_by": [r["name"] for r in records if r["synthetic"]]},
              "boilerplate": {"dropped": len(flagged),
                              "by_source": dict(Counter(candidates[i]["name"] for i in flagged)),
                              "by_pattern": dict(Counter(flagged.values()))},
              "self_replay": {"prompts": len(asked), "kept": sum(v["self_replay"] for v in skills.values()),
                              "hit_limit": hit_limit, "dropped": dict(dropped)},
              "warnings": warnings, "guard": result.report(tags)}
    write_outputs({Path(out): jsonl(rows), Path(report_path): report_json(report)})
    return report
