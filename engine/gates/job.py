"""The `gate` job kind: subjects × gates under identical settings, through `engine.gates.run_gates`."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, model_validator

from engine.gates.backend import SubjectSpec
from engine.gates.settings import GateSettings
from engine.jobs import job_kind


class GateJobConfig(GateSettings):
    subjects: list[SubjectSpec] = Field(min_length=1, description="what to evaluate ([[subjects]] tables)")
    samples: str | None = Field(None, description="per-item audit file (JSONL), relative to outputs/")
    out: str | None = Field(None, description="write results/ here instead of under the run's outputs/")

    @model_validator(mode="after")
    def _names(self):
        names = [s.name for s in self.subjects]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"two subjects are named {dup!r}")
        return self


EXAMPLE = '''# gate: score subjects on gates, every subject under the same settings.
# Results: outputs/results/gate_<name>.json (one subject) or outputs/results/<subject id>/gate_<name>.json.
kind = "gate"
name = "psc-smoke"

gates = ["polish_psc"]        # gate names from `slayer gates`; or: suite = "core"
limit = 20                    # first 20 items only (0: the gate's full n)
device = "cpu"                # cuda on a GPU box
batch_size = 8
allow_code_exec = false       # mbpp / humaneval run generated code only when true
# chat_template = true        # every gate's prompt in the subject's chat template (lm-eval's --apply_chat_template)
samples = "samples.jsonl"     # per-item audit lines (log-likelihoods, pred, gold), under outputs/

# [judge]                     # judged gates (style_judge, en_chat; xstest's classifier): any OpenAI-compatible API
# url = "http://127.0.0.1:8000/v1"
# model = "Qwen/Qwen3.5-122B-A10B"
# api_key_env = "SLAYER_JUDGE_API_KEY"   # the key is read from this variable, never stored
# concurrency = 8

[files]                       # local jsonl/json/csv/tsv/parquet files (docs/gate_data.md has the columns)
polish_psc = "assets:examples/psc.jsonl"         # rows shipped with slayer; drop the line for the gate's dataset
# polish_psc = "/data/klej-psc/test.parquet"     # offline boxes: a copy of a public test split
# style_prompts = "data/holdout_v1.jsonl"        # your held-out Polish style prompts (style_judge, pl_grammar)
# style_pairs = "data/style_pl_pref_v3.jsonl"    # your held-out style preference pairs (style_pref)

[[subjects]]
name = "base"
kind = "base"                 # base | reference | checkpoint | merge | quant
model = "tiny:qwen3"          # HF id, a local HF-format directory, or tiny:qwen3 (the embedded tiny model)
backend = "hf"                # hf | llama_cpp (then: file = "model.gguf") | endpoint
dtype = "auto"                # bfloat16 on cuda, float32 on cpu
quantization = "none"         # "4bit": NF4 as QLoRA trains (CUDA only; recorded in the fingerprint)
device_map = "none"           # "auto": spread a big model over every GPU (CUDA only; recorded too)

# [[subjects]]                # a model behind an OpenAI-compatible server (vLLM, llama-server, llama-swap)
# name = "served"
# kind = "reference"
# backend = "endpoint"
# [subjects.endpoint]
# url = "http://127.0.0.1:8080/v1"
# model = "qwen3.5-27b"       # the server's model id (default: the first it lists)
# concurrency = 8             # requests in flight; the server batches them

# [[subjects]]                # an adapter checkpoint, at half strength
# name = "ckpt-800 x0.5"
# kind = "merge"
# model = "tiny:qwen3"
# adapter = "runs/sft/outputs/checkpoints/checkpoint-4"
# scale = 0.5
'''


@job_kind("gate", GateJobConfig, "Score models, adapters and GGUF files on gates; one gate_result per pair.",
          EXAMPLE, needs_ml=lambda config: any(s.backend != "endpoint" for s in config.subjects))
def run_gate_job(config: GateJobConfig, ctx) -> None:
    from engine.gates.run import resolve_gates, result_path, run_gates

    gates = resolve_gates(config.suite, config.gates, config.chat_template)
    samples = None
    if config.samples:
        samples = Path(config.samples) if Path(config.samples).is_absolute() else ctx.outputs / config.samples
    out = Path(config.out) if config.out else ctx.outputs
    results = run_gates(
        config.subjects, gates, out, **config.run_settings(), samples_path=samples,
        progress=lambda done, total, label: ctx.progress(done, total, "items", label),
        on_result=ctx.gate_result, log=ctx.log)
    several = len(config.subjects) > 1
    for result in results:
        ctx.artifact(result_path(out, result["subject"], result["gate"], several).resolve(), "gate_result")
