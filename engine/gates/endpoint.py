"""The `endpoint` backend: a model behind an OpenAI-compatible server (vLLM, llama.cpp's llama-server, llama-swap,
llama-cpp-python), called with many requests in flight so the server batches them.

Python API, usable outside gates too (self-replay answers, teachers):

    from engine.gates.endpoint import EndpointSettings, complete_chats, complete_prompts
    settings = EndpointSettings(url="http://127.0.0.1:8080/v1", model="qwen", concurrency=8)
    done = complete_chats(settings, [[{"role": "user", "content": "Napisz haiku."}]], max_tokens=256)
    done[0].text, done[0].finish_reason     # "stop", or "length" when max_tokens cut it short
    complete_prompts(settings, ["Question: 2+2?\\nAnswer:"], max_tokens=16, stop=["\\n"])   # raw text, no template

Every request is greedy (temperature 0, repeat penalty 1: llama-cpp-python's server defaults to 1.1), results
come back in input order, `on_done(count)` reports progress, transient errors are retried
(engine.gates.http_api). Chats go to /chat/completions, so the server applies the model's own chat template
(with `chat_template_kwargs`, by default thinking off, as the hf backend renders chat gates).

As a gate backend: generation and judged gates send their prompts as above; likelihood gates ask
/completions for the prompt's log-probabilities (`echo` + `logprobs` + one generated token, what lm-eval's
completions models use; vLLM answers it) and sum those of the continuation's tokens: those whose
`text_offset` is at or after the context's end (without offsets: the prompt's last tokens, as many as it
takes to spell the continuation, which undercounts characters split over byte tokens). A server that does not return them, or returns
them misaligned, is refused in one line before any gate is scored: llama-server ("Only no echo is
supported"), and llama-cpp-python's server (it echoes one value short, each shifted by a position; its
`logits_all = false` refuses logprobs outright). Results carry the backend and the server's model id in
their fingerprint.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from typing import Callable

from pydantic import Field

from engine.errors import SpecError
from engine.gates.hf_backend import cut_at_stop
from engine.gates.http_api import ApiError, ApiSettings, get_json, map_concurrently, post_json

GREEDY = {"temperature": 0.0, "repeat_penalty": 1.0}


class EndpointSettings(ApiSettings):
    """An OpenAI-compatible server and how to call it."""

    api_key_env: str = Field("SLAYER_ENDPOINT_API_KEY",
                             description="environment variable holding the API key (unset: no key is sent)")
    model: str | None = Field(None, description="model id on the server (default: the first one /models lists)")
    tokenizer: str | None = Field(None, description="Hugging Face tokenizer (id or directory) of the served model: "
                                                    "raw prompts go as token ids (the gate's own BOS setting, "
                                                    "vLLM and llama-server take them); chat-template likelihood "
                                                    "gates need it")
    chat_template_kwargs: dict = Field(default_factory=lambda: {"enable_thinking": False},
                                       description="sent with chat requests (vLLM, llama-server read it)")
    extra_body: dict = Field(default_factory=dict, description="more request fields, e.g. {top_k = 1}")


@dataclass
class Completion:
    text: str
    finish_reason: str | None  # "stop", "length" (max_tokens reached), …
    prompt_tokens: int = 0
    completion_tokens: int = 0


def server_model(settings: EndpointSettings) -> tuple[str, str]:
    """(model id, owner) of `settings.model` on the server, or of the first model it lists; SpecError naming
    the URL when the server is not there or does not serve that model."""
    listed = get_json(settings, "/models").get("data") or []
    ids = [m.get("id") for m in listed if isinstance(m, dict)]
    if settings.model is None:
        if not ids:
            raise SpecError(f"{settings.url}: the server lists no model; set the endpoint's `model`")
        return ids[0], str(listed[0].get("owned_by", ""))
    if ids and settings.model not in ids:  # llama-swap lists every model it can start; others list what they serve
        raise SpecError(f"{settings.url}: no model {settings.model!r} on the server (it has: {', '.join(ids)})")
    owner = next((str(m.get("owned_by", "")) for m in listed if m.get("id") == settings.model), "")
    return settings.model, owner


def _body(settings: EndpointSettings, max_tokens: int, stop: list[str] | None, temperature: float) -> dict:
    body = {**GREEDY, "temperature": temperature, "max_tokens": max_tokens, **settings.extra_body}
    if settings.model:
        body["model"] = settings.model
    if stop:
        body["stop"] = [s for s in stop if s][:4]  # OpenAI's limit; the caller still cuts at every stop string
    return body


def _completion(reply: dict, text: str) -> Completion:
    usage = reply.get("usage") or {}
    return Completion(text or "", reply["choices"][0].get("finish_reason"), int(usage.get("prompt_tokens") or 0),
                      int(usage.get("completion_tokens") or 0))


def complete_chats(settings: EndpointSettings, chats: list[list[dict]], max_tokens: int, *,
                   stop: list[str] | None = None, temperature: float = 0.0,
                   on_done: Callable[[int], None] = lambda done: None) -> list[Completion]:
    """One completion per chat (a list of {role, content}), in order, through /chat/completions."""
    base = {**_body(settings, max_tokens, stop, temperature), "chat_template_kwargs": settings.chat_template_kwargs}

    def one(messages: list[dict]) -> Completion:
        reply = post_json(settings, "/chat/completions", {**base, "messages": messages},
                          check=lambda r: r["choices"][0]["message"])
        return _completion(reply, reply["choices"][0]["message"].get("content"))

    return map_concurrently(one, chats, settings.concurrency, on_done)


def complete_prompts(settings: EndpointSettings, prompts: list[str] | list[list[int]], max_tokens: int, *,
                     stop: list[str] | None = None, temperature: float = 0.0,
                     on_done: Callable[[int], None] = lambda done: None) -> list[Completion]:
    """One completion per raw prompt (text, or token ids; no chat template), in order, through /completions."""
    base = _body(settings, max_tokens, stop, temperature)

    def one(prompt: str | list[int]) -> Completion:
        reply = post_json(settings, "/completions", {**base, "prompt": prompt}, check=lambda r: r["choices"][0]["text"])
        return _completion(reply, reply["choices"][0]["text"])

    return map_concurrently(one, prompts, settings.concurrency, on_done)


class NoPromptLogprobs(SpecError):
    """The server does not return log-probabilities of prompt tokens."""


class EndpointBackend:
    """A gate backend (see engine.gates.backend) over an OpenAI-compatible server."""

    name = "endpoint"
    dtype = "server"

    def __init__(self, settings: EndpointSettings):
        model, owner = server_model(settings)
        self.settings = settings.model_copy(update={"model": model})
        self.fingerprint = {"server_model": model, "server_owner": owner,
                            "prompts": "token ids" if settings.tokenizer else "text"}
        self.tokenizer = None
        if settings.tokenizer:
            from transformers import AutoTokenizer

            try:
                self.tokenizer = AutoTokenizer.from_pretrained(settings.tokenizer)
            except OSError as e:
                raise SpecError(f"{settings.tokenizer}: cannot load the tokenizer ({str(e)[:200]})") from None
        self.tokens_computed = 0
        self.tokens_padded = 0
        self._lock = threading.Lock()
        self._likelihood_checked = False

    def close(self) -> None:
        pass

    def _count(self, done: list[Completion]) -> None:
        with self._lock:
            used = sum(c.prompt_tokens + c.completion_tokens for c in done)
            self.tokens_computed += used
            self.tokens_padded += used

    # ---- generation --------------------------------------------------------------------------------

    def generate(self, prompts: list[str], stop: list[str], max_new_tokens: int, special: bool, batch_size: int,
                 on_batch: Callable[[int], None]) -> list[str]:
        """Greedy completions of raw prompts: token ids encoded here with the gate's BOS setting when the endpoint
        has a tokenizer, else text (the server then adds a BOS if its model's metadata says so: llama-server does
        for SentencePiece GGUFs that the leaderboard scores without one)."""
        sent = [self.tokenizer.encode(p, add_special_tokens=special) for p in prompts] if self.tokenizer else prompts
        done = complete_prompts(self.settings, sent, max_new_tokens, stop=stop, on_done=lambda n: on_batch(1))
        self._count(done)
        return [cut_at_stop(c.text, stop) for c in done]

    def generate_chat(self, chats: list[list[dict]], stop: list[str], max_new_tokens: int,
                      on_batch: Callable[[int], None]) -> list[str]:
        """Greedy answers to chats, in the server's chat template for its model."""
        done = complete_chats(self.settings, chats, max_new_tokens, stop=stop, on_done=lambda n: on_batch(1))
        self._count(done)
        return [cut_at_stop(c.text, stop) for c in done]

    # ---- likelihoods -------------------------------------------------------------------------------

    def _refusal(self, why: str) -> NoPromptLogprobs:
        return NoPromptLogprobs(f"{self.settings.url}: the server ({self.settings.model}) does not return prompt "
                                f"log-probabilities ({why}); likelihood gates need them: score them with the hf or "
                                "llama_cpp backend, or serve the model with vLLM")

    def _loglikelihood(self, context: str, continuation: str, settings: EndpointSettings) -> tuple[float, int]:
        body = {**_body(settings, 1, None, 0.0), "prompt": context + continuation, "echo": True, "logprobs": 1}
        try:
            reply = post_json(settings, "/completions", body, check=lambda r: r["choices"][0])
        except (SpecError, ApiError) as e:
            raise self._refusal(str(e).split(": ", 1)[-1][:160]) from None
        logprobs = reply["choices"][0].get("logprobs") or {}
        tokens, values = logprobs.get("tokens"), logprobs.get("token_logprobs")
        if not tokens or not values or len(tokens) != len(values):
            raise self._refusal("no echoed token_logprobs in the reply")
        usage = reply.get("usage") or {}
        generated = int(usage.get("completion_tokens") or 0)
        expected = int(usage.get("prompt_tokens") or 0) + generated
        if len(values) != expected:  # llama-cpp-python's server drops one and shifts the rest by a position
            raise self._refusal(f"{len(values)} echoed log-probabilities for {expected} tokens do not line up "
                                "with the prompt")
        prompt_tokens, prompt_values = tokens[:len(tokens) - generated], values[:len(values) - generated]
        offsets = (logprobs.get("text_offset") or [])[:len(prompt_tokens)]
        if len(offsets) == len(prompt_tokens) and offsets[0] == 0 and offsets == sorted(offsets) \
                and offsets[-1] < len(context) + len(continuation):
            picked = [v for o, v in zip(offsets, prompt_values) if o >= len(context)]  # tokens from the context's end
        else:  # no usable offsets: the prompt's last tokens, as many as spell the continuation
            count = covered = 0
            while covered < len(continuation) and count < len(prompt_tokens) - 1:
                count += 1
                covered += len(prompt_tokens[-count])
            picked = prompt_values[len(prompt_values) - count:]
        if not picked or any(v is None for v in picked):
            raise self._refusal("the echoed log-probabilities do not cover the continuation")
        return float(sum(picked)), len(prompt_tokens)

    def check_likelihood(self) -> None:
        """One small request: raises NoPromptLogprobs (one line) when the server cannot score prompts."""
        if not self._likelihood_checked:
            self._loglikelihood("Question: 1 + 1 =", " 2", self.settings.model_copy(update={"retries": 0}))
            self._likelihood_checked = True

    def loglikelihood_texts(self, requests: list[tuple[str, str]], on_done: Callable[[int], None]) -> list[float]:
        """Summed log-probability of each (context, continuation): the continuation's tokens in the joint
        tokenization, as lm-eval's completions models take them."""
        self.check_likelihood()
        found = map_concurrently(lambda r: self._loglikelihood(r[0], r[1], self.settings), requests,
                                 self.settings.concurrency, on_done)
        with self._lock:
            self.tokens_computed += sum(t for _, t in found)
            self.tokens_padded += sum(t for _, t in found)
        return [value for value, _ in found]
