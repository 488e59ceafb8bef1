"""Typed configs of the `serve` and `bench.serve` jobs: the GGUF subject, the server settings, where to serve."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, model_validator

from engine.gates.backend import SubjectSpec
from engine.jobs import JobConfig
from engine.subjects import SUBJECT_KINDS, Recipe, make_subject


class ServerSettings(JobConfig):
    """How llama-server runs a GGUF file; bench.serve serves every subject with the same settings."""

    binary: str = Field("auto", description="llama.cpp's `llama-server` (a path or a name on PATH); "
                                            "`llama_cpp.server` = llama-cpp-python's server; auto: the first found")
    host: str = Field("127.0.0.1", description="listen address")
    port: int = Field(8080, ge=1, le=65535, description="listen port (direct mode; llama-swap assigns ${PORT})")
    ctx_size: int = Field(4096, ge=16, description="context size in tokens (-c)")
    gpu_layers: int = Field(99, ge=0, description="layers offloaded to the GPU (-ngl; 0 on CPU boxes)")
    threads: int = Field(0, ge=0, description="CPU threads (0: the server's default)")
    parallel: int = Field(4, ge=1, description="request slots served at once (llama-server --parallel; the slots "
                                               "share ctx_size, so each gets ctx_size / parallel)")
    extra_args: list[str] = Field(default_factory=list, description="more llama-server arguments, as given")
    start_timeout_s: float = Field(300.0, gt=0, description="how long the model may take to load")


class GGUFSubject(JobConfig):
    """The GGUF file to serve and the name it is served (and recorded) under."""

    name: str = Field(description="the model id clients send, and the subject's name in the store")
    kind: Literal[SUBJECT_KINDS] = Field("quant", description="base | reference | checkpoint | merge | quant")
    file: str | None = Field(None, description="the .gguf file on the box (an export.gguf output)")
    url: str | None = Field(None, description="bench.serve: an endpoint already serving it (…/v1), e.g. llama-swap; "
                                              "omitted: the job starts llama-server on `file` itself")
    model: str | None = Field(None, description="with `url`: the model id to request (default: name)")

    def resolved_file(self) -> Path | None:
        return Path(self.file).expanduser().resolve() if self.file else None

    def subject(self) -> dict:
        """The same subject record a `gate` job scoring this file with llama_cpp writes, so results join it."""
        f = self.resolved_file()
        if f is None:  # only an endpoint: the same subject as the gates' endpoint backend on that server
            return make_subject(self.name, self.kind, Recipe.endpoint(self.model or self.url))
        return SubjectSpec(name=self.name, kind=self.kind, backend="llama_cpp", file=str(f)).subject()


class LlamaSwapSettings(JobConfig):
    config: str = Field("~/llama-swap/config.yaml", description="llama-swap's config.yaml on the box (must exist)")
    ttl: int = Field(600, ge=0, description="unload the model after this many idle seconds (0: never)")
    backups: int = Field(5, ge=1, description="dated copies of the previous config kept beside it")


class VLLMSettings(JobConfig):
    """vLLM on a GPU box: the base model with the LoRA adapter hot-loaded (not merged)."""

    model: str = Field(description="base model: HF id or local directory")
    adapter: str = Field(description="PEFT LoRA adapter directory (DoRA adapters: serve the merged GGUF instead)")
    adapter_name: str | None = Field(None, description="model id of the adapter in requests (default: the "
                                                       "subject's name)")
    max_lora_rank: int = Field(16, ge=1, description="--max-lora-rank: at least the adapter's rank")
    max_model_len: int = Field(8192, ge=16, description="--max-model-len")
    gpu_memory_utilization: float = Field(0.9, gt=0, le=1, description="--gpu-memory-utilization")
    tensor_parallel_size: int = Field(1, ge=1, description="GPUs the model is split over")
    dtype: str = Field("auto", description="--dtype")
    port: int = Field(8000, ge=1, le=65535)


class ServeConfig(JobConfig):
    mode: Literal["llama-swap", "direct", "vllm"] = Field(
        "llama-swap", description="llama-swap: write/update the model's entry in llama-swap's config; direct: run "
                                  "llama-server until the job is cancelled; vllm: write (and with start, run) a vLLM "
                                  "command with the adapter hot-loaded")
    subject: GGUFSubject = Field(description="what to serve ([subject] table)")
    server: ServerSettings = Field(default_factory=ServerSettings, description="llama-server settings")
    llama_swap: LlamaSwapSettings = Field(default_factory=LlamaSwapSettings, description="[llama_swap] table")
    vllm: VLLMSettings | None = Field(None, description="[vllm] table (mode = vllm)")
    start: bool = Field(True, description="vllm: start the server after writing the command (false: recipe only)")
    hold_s: float = Field(0.0, ge=0, description="direct / vllm: stop serving after this many seconds (0: until "
                                                 "the job is cancelled)")

    @model_validator(mode="after")
    def _consistent(self):
        if self.mode == "vllm" and self.vllm is None:
            raise ValueError("mode = \"vllm\" needs a [vllm] table (model, adapter)")
        if self.mode != "vllm" and not self.subject.file:
            raise ValueError(f"subject {self.subject.name!r} has no GGUF `file` to serve")
        return self


class BenchServeConfig(JobConfig):
    subjects: list[GGUFSubject] = Field(min_length=1, description="[[subjects]]: the shipped file, the base, "
                                                                  "references")
    server: ServerSettings = Field(default_factory=ServerSettings, description="settings for every started server")
    concurrency: list[int] = Field(default_factory=lambda: [1, 4, 8], description="requests in flight at once")
    prompts: str | None = Field(None, description="JSONL of {lang, prompt} (default: assets/serve/prompts.jsonl)")
    max_tokens: int = Field(128, ge=2, description="output tokens per request")
    ignore_eos: bool = Field(True, description="generate exactly max_tokens (llama.cpp's ignore_eos): equal work "
                                               "for every subject")
    repeats: int = Field(1, ge=1, description="each prompt is sent this many times per concurrency")
    warmup: int = Field(2, ge=0, description="unmeasured requests before each subject")
    timeout_s: float = Field(300.0, gt=0, description="per request")
    tolerance_tok_s: float = Field(1.0, ge=0, description="a slowdown in decode tokens/s within this is PASS")

    @model_validator(mode="after")
    def _unique(self):
        names = [s.name for s in self.subjects]
        dup = next((n for n in names if names.count(n) > 1), None)
        if dup:
            raise ValueError(f"two subjects are named {dup!r}")
        for s in self.subjects:
            if not s.file and not s.url:
                raise ValueError(f"subject {s.name!r}: give `file` (a GGUF this job serves) or `url` (an endpoint)")
        return self
