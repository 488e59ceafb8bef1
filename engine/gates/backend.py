"""What a scorer talks to: a loaded subject (model + adapter) behind one small interface, and the subject spec.

A backend offers `encode(text, special)`, `loglikelihoods(groups, batch_size, on_batch)` (each group is a
shared context and its continuations, as token ids; it returns one summed log-probability per
continuation), `generate(prompts, stop, max_new_tokens, special, batch_size, on_batch)`, `max_length`,
the counters `tokens_computed` / `tokens_padded`, and `close()`. The endpoint backend scores text pairs instead
(`loglikelihood_texts`, no `encode`), answers chats itself (`generate_chat`) and adds its server to the
fingerprint (`fingerprint`); scorers check for those.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from engine.errors import SpecError
from engine.gates.endpoint import EndpointSettings
from engine.jobs import JobConfig
from engine.subjects import SUBJECT_KINDS, Recipe, make_subject

DTYPES = ("auto", "float32", "bfloat16", "float16")


class SubjectSpec(JobConfig):
    """One thing to evaluate: a base model, optionally with a PEFT adapter at a scale, a GGUF file, or a model
    behind an OpenAI-compatible server."""

    name: str = Field(description="how tables and reports call it")
    kind: Literal[SUBJECT_KINDS] = Field("base", description="base | reference | checkpoint | merge | quant")
    model: str | None = Field(None, description="base model: a local HF-format directory or a Hugging Face id")
    adapter: str | None = Field(None, description="PEFT adapter directory (LoRA or DoRA), hf backend")
    scale: float = Field(1.0, description="adapter scale: weights become W + scale·(W_adapted − W)")
    backend: Literal["hf", "llama_cpp", "endpoint"] = "hf"
    dtype: Literal[DTYPES] = Field("auto", description="hf: auto = bfloat16 on cuda, float32 on cpu")
    file: str | None = Field(None, description="GGUF file (llama_cpp backend)")
    endpoint: EndpointSettings | None = Field(None, description="the server (endpoint backend): url, model, "
                                                                "concurrency, …")
    quantization: Literal["none", "4bit"] = Field(
        "none", description="hf on CUDA: 4bit loads the base in NF4 as QLoRA trains it (recorded in the fingerprint)")
    device_map: Literal["none", "auto"] = Field(
        "none", description="hf on CUDA: auto spreads the layers over every visible GPU (recorded in the fingerprint)")
    recorded_as: Recipe | None = Field(
        None, description="the recipe it is recorded under, when it is evaluated from a copy (a merge written to "
                          "disk; a checkpoint gated on another box keeps the identity the training box gave it)")

    @model_validator(mode="after")
    def _complete(self):
        if self.backend == "hf" and not self.model:
            raise ValueError(f"subject {self.name!r}: the hf backend needs `model`")
        if self.backend == "llama_cpp" and not self.file:
            raise ValueError(f"subject {self.name!r}: the llama_cpp backend needs `file` (a .gguf)")
        if self.backend == "endpoint" and (self.endpoint is None or self.adapter):
            raise ValueError(f"subject {self.name!r}: the endpoint backend needs an [endpoint] table (url, model) "
                             "and takes no adapter (serve the adapter on the server)")
        if self.backend != "hf" and (self.quantization != "none" or self.device_map != "none"):
            raise ValueError(f"subject {self.name!r}: quantization and device_map are hf backend options")
        if self.backend == "llama_cpp" and self.adapter:
            raise ValueError(f"subject {self.name!r}: adapters are supported on the hf backend; "
                             "export a merged GGUF for llama_cpp")
        return self

    def recipe(self) -> Recipe:
        """What is evaluated; loading settings (dtype, device_map …) are the fingerprint's, not the recipe's."""
        if self.recorded_as is not None:
            return self.recorded_as
        if self.backend == "endpoint":
            return Recipe.endpoint(self.endpoint.model or self.endpoint.url)
        if self.backend == "llama_cpp":
            return Recipe.gguf(self.file, self.model)
        return Recipe.hf(self.model, self.adapter, self.scale)

    def subject(self) -> dict:
        """The subject record ({id, name, kind, recipe}); the id depends only on what is evaluated."""
        return make_subject(self.name, self.kind, self.recipe())


def open_backend(spec: SubjectSpec, device: str = "cpu"):
    """Load the subject (or connect to its server); the caller closes it."""
    if spec.backend == "endpoint":
        from engine.gates.endpoint import EndpointBackend

        return EndpointBackend(spec.endpoint)
    if spec.backend == "llama_cpp":
        from engine.gates.gguf_backend import LlamaCppBackend

        return LlamaCppBackend(spec.file, device)
    from engine.gates.hf_backend import HFBackend

    return HFBackend(spec.model, spec.adapter, spec.scale, device, spec.dtype, spec.quantization, spec.device_map)


def check_device(device: str) -> None:
    if device not in ("cpu", "cuda") and not device.startswith("cuda:"):
        raise SpecError(f"device must be cpu, cuda or cuda:N, got {device!r}")
