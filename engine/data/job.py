"""Job kinds data.klej, data.replay, data.mix and data.guard: the builders, writing into RUN_DIR/outputs."""

from __future__ import annotations

from pydantic import Field

from engine.data.guard import NGRAM
from engine.data.klej import KlejConfig
from engine.data.mix import MixConfig
from engine.data.replay import ReplayConfig
from engine.jobs import JobConfig, job_kind


class KlejJobConfig(KlejConfig):
    out: str = Field("klej.jsonl", description="output file name under outputs/")


class ReplayJobConfig(ReplayConfig):
    out: str = Field("replay.jsonl", description="output file name under outputs/")


class MixJobConfig(MixConfig):
    out: str = Field("train_v2_mix.jsonl", description="output file name under outputs/")


class GuardJobConfig(JobConfig):
    train: str = Field(description="training file (messages, prompt/response or text rows)")
    against: list[str] = Field(default_factory=lambda: ["core"],
                               description="suites, gates, GATE=FILE or plain test files")
    guard_files: dict[str, str] = Field(default_factory=dict, description="gate name → local test file")
    ngram: int = Field(NGRAM, ge=4, description="n-gram length in words")
    clean: str | None = Field(None, description="also write the training file without overlapping examples "
                                                "(a name under outputs/)")


def _progress(ctx):
    return lambda done, total, label: ctx.progress(done, total, "items", label)


def _logger(ctx):
    """Builders' messages as log events; those starting with "warning: " at level warning."""
    return lambda message: ctx.log(message, "warning" if message.startswith("warning: ") else "info")


def _build(ctx, build, config, stem: str, kind: str) -> None:
    """Run a builder into outputs/; artifacts: the data, its report, and the guard report on its own
    (what the model card cites)."""
    from engine.data.examples import report_json, write_outputs

    out, report_path = ctx.outputs / config.out, ctx.outputs / f"{stem}_report.json"
    report = build(config, out, report_path, _progress(ctx), _logger(ctx))
    with open(out, "rb") as f:
        ctx.log(f"wrote {sum(1 for _ in f)} examples to {out.name}")
    guard_path = ctx.outputs / f"{stem}_report_guard.json"
    write_outputs({guard_path: report_json(report["guard"])})
    ctx.artifact(out, "data")
    ctx.artifact(report_path, kind)
    if report_path.with_suffix(".md").exists():
        ctx.artifact(report_path.with_suffix(".md"), f"{kind}_markdown")
    ctx.artifact(guard_path, "guard_report")
    for line in report["guard"]["summary"]:
        ctx.log(f"guard: {line}")


KLEJ_EXAMPLE = '''# data.klej: KLEJ-family train splits as instructions, with the gates' own prompts and label
# strings, balanced per class, guarded against each task's test split. Output: outputs/klej.jsonl,
# klej_report.json (counts per task and class) and klej_report_guard.json (overlap per gate).
kind = "data.klej"
name = "klej-instructions"

per_task = 150                # examples per task, split equally over its classes (120-180 is the plan)
min_per_task = 120            # warn when a task yields fewer
per_class_cap = 0             # most examples of one class (0: per_task / classes)
format = "chat"               # chat: messages (trained in the chat template); plain: prompt/completion, the
                              # raw text the KLEJ gates score (train.sft warns when data and gates differ)
seed = 0                      # same seed and inputs: byte-identical output
guard_against = []            # more to guard against: suites ("core"), gates, "gate=FILE", test files
ngram = 13                    # guard n-gram length in words
out = "klej.jsonl"

# One table per task. Without `train` the gate's Hugging Face dataset (split train) is read; offline
# boxes set train = "FILE" and test = "FILE" (jsonl/json/csv/tsv/parquet with the gate's columns).
[tasks.psc]
[tasks.ppc]
[tasks.dyk]
[tasks.8tags]
[tasks.polemo2_in]
# [tasks.psc]
# train = "/data/klej-psc/train.tsv"
# test = "/data/klej-psc/test.tsv"
'''


@job_kind("data.klej", KlejJobConfig, "KLEJ train splits as chat or plain instructions (gate prompts, balanced)",
          KLEJ_EXAMPLE, needs_ml=False)
def run_klej(config: KlejJobConfig, ctx) -> None:
    from engine.data.klej import build_klej

    _build(ctx, build_klej, config, "klej", "klej_report")


REPLAY_EXAMPLE = '''# data.replay: the general replay set that anchors every axis the gates protect. Self-replay first:
# the base answers the shipped prompt grid (310 prompts over ten skills, CC0) through the hf backend or an
# OpenAI-compatible endpoint; open sets (Aya, Dolly-15k, OASST, OpenMathInstruct-2, or your own rows) fill
# what is left. Sets made of OpenAI/Anthropic outputs are refused; rows whose answers carry closed-model
# boilerplate are dropped; answers that hit max_new_tokens are dropped. The report shows per gated axis
# the examples that anchor it.
kind = "data.replay"
name = "replay"

seed = 0
allow_synthetic_override = false  # true: use OpenHermes/UltraChat/Alpaca/ShareGPT/GPT-4 sets anyway (recorded)
guard_against = ["core"]          # suites, gates, "gate=FILE" or test files the guard checks
gated = ["core"]                  # suites or gates whose axes the replay must anchor (shown in the report)
out = "replay.jsonl"

# [guard_files]                   # offline boxes: gate name -> local test file
# mmlu = "/data/mmlu/test.parquet"

[quotas]                          # skill -> examples wanted (default: the plan's grid, 310)
code = 50
math = 40
reasoning = 30
en_knowledge = 30
multilingual = 50
instruction = 30
summarisation = 20
structured_output = 20
safety = 20
chat = 20

[self_replay]
model = "Qwen/Qwen3-0.6B"         # the base model being adapted (HF id or local directory)
# prompts = "my_prompts.jsonl"    # rows: {"prompt": ..., "skill": ...}; default: the shipped grid
licence = "apache-2.0"            # licence of the base model's outputs
device = "cpu"                    # cuda on a GPU box
max_new_tokens = 512
drop_unfinished = true            # answers that reach max_new_tokens are dropped (counted in the report)
batch_size = 8
chat_template = true              # thinking off (enable_thinking = false)

# [self_replay.endpoint]          # vLLM / llama-server serving the base: much faster than hf generate
# url = "http://127.0.0.1:8000/v1"
# model = "qwen3.5-27b"           # the id the server knows (default: the first it lists)
# concurrency = 8                 # requests in flight (the server batches them)

[[sources]]
name = "dolly-15k"
hf = "databricks/databricks-dolly-15k"   # licence, provenance and category -> skill map come with the loader

# [[sources]]
# name = "aya"
# hf = "CohereForAI/aya_dataset"  # multilingual: rows kept for `languages` (default en, de, es, fr, uk)
# [[sources]]
# name = "oasst"
# hf = "OpenAssistant/oasst1"     # best-ranked assistant path of each tree
# [[sources]]
# name = "openmath"
# hf = "nvidia/OpenMathInstruct-2"  # streamed, first max_rows rows
# [[sources]]
# name = "team-set"
# file = "/data/team.jsonl"       # messages or prompt/response rows; offline copies of the sets above load too
# licence = "CC-BY-4.0"           # required for a set of your own
# provenance = "written by the team"
# skill = "chat"                  # for rows without a `skill` field
'''


@job_kind("data.replay", ReplayJobConfig, "general replay set per skill: self-replay of the base + licensed open sets",
          REPLAY_EXAMPLE)
def run_replay(config: ReplayJobConfig, ctx) -> None:
    from engine.data.replay import build_replay

    _build(ctx, build_replay, config, "replay", "replay_report")


MIX_EXAMPLE = '''# data.mix: style data + replay (default 20 %) + KLEJ (a capped minority), guarded and shuffled by
# seed. Output: outputs/train_v2_mix.jsonl, mix_report.json + mix_report.md (counts and tokens by
# source, task, class and skill) and mix_report_guard.json (overlap per gate).
kind = "data.mix"
name = "mix-v2"

style = "style.jsonl"             # the operator's style data (messages rows)
replay = "replay.jsonl"           # from data.replay
klej = "klej.jsonl"               # from data.klej (optional)
replay_share = 0.20               # 0.15-0.30
klej_max_share = 0.15             # KLEJ never takes more than this share
seed = 0
# tokenizer = "Qwen/Qwen3-0.6B"   # token counts with this tokenizer (default: whitespace tokens)
guard_against = ["core"]
gated = ["core"]                  # every general axis of these gates needs replay anchoring it
require_anchor_coverage = false   # true: refuse (write nothing) when one has none; false: a warning
out = "train_v2_mix.jsonl"
'''


@job_kind("data.mix", MixJobConfig, "the training mix: style + replay share + capped KLEJ, with a data report",
          MIX_EXAMPLE, needs_ml=False)
def run_mix(config: MixJobConfig, ctx) -> None:
    from engine.data.mix import build_mix

    _build(ctx, build_mix, config, "mix", "data_report")


GUARD_EXAMPLE = '''# data.guard: check a training file against test sets (word 13-grams + exact duplicates); the report
# (outputs/guard_report.json) states the overlap per gate; `clean` also writes the file without them.
kind = "data.guard"
name = "guard"

train = "train_v2_mix.jsonl"
against = ["core"]                # suites, gates, "gate=FILE" or plain test files
ngram = 13
clean = "train_clean.jsonl"       # optional
'''


@job_kind("data.guard", GuardJobConfig, "contamination check of a training file against gates and test files",
          GUARD_EXAMPLE, needs_ml=False)
def run_guard(config: GuardJobConfig, ctx) -> None:
    from engine.data.against import check_file

    report_path = ctx.outputs / "guard_report.json"
    clean = ctx.outputs / config.clean if config.clean else None
    report = check_file(config.train, config.against, config.guard_files, config.ngram, report_path, clean,
                        _progress(ctx))
    if clean is not None:
        ctx.artifact(clean, "data")
    ctx.artifact(report_path, "guard_report")
    for line in report["summary"]:
        ctx.log(f"guard: {line}")
