"""The `llama_cpp` backend: a GGUF file through llama-cpp-python, scored the same way as the hf backend.

Likelihoods decode each context once, keep its KV cache, and decode only the continuation tails after
it (trimming the cache back to the context between choices). Recurrent and hybrid models cannot trim
their state, so for them each continuation is decoded after a fresh copy of the context.
"""

from __future__ import annotations

from typing import Callable

import numpy as np

from engine.errors import SpecError
from engine.gates.hf_backend import cut_at_stop


def log_softmax(logits: np.ndarray) -> np.ndarray:
    x = logits.astype(np.float64)
    x = x - x.max(axis=-1, keepdims=True)
    return x - np.log(np.exp(x).sum(axis=-1, keepdims=True))


class LlamaCppBackend:
    name = "llama_cpp"

    def __init__(self, file: str, device: str, n_ctx: int = 4096):
        try:
            import llama_cpp  # noqa: F401
        except ImportError:
            raise SpecError(f"{file}: the llama_cpp backend needs llama-cpp-python (pip install "
                            "'slayer-console[gguf]')") from None
        from engine.llama_load import load_llama

        try:
            self.llm = load_llama(file, n_ctx=n_ctx, n_batch=512, n_gpu_layers=-1 if device != "cpu" else 0,
                                  logits_all=False, verbose=False, seed=0)
        except ValueError as e:
            raise SpecError(f"{file}: cannot load the GGUF model ({e})") from None
        self.dtype = "gguf"
        self.max_length = min(n_ctx - 1, self.llm._model.n_ctx_train())
        self.n_vocab = self.llm.n_vocab()
        self.tokens_computed = 0
        self.tokens_padded = 0

    def encode(self, text: str, special: bool) -> list[int]:
        return self.llm.tokenize(text.encode("utf-8"), add_bos=special, special=False)

    def close(self) -> None:
        self.llm.close()

    def _decode(self, tokens: list[int], n_past: int, all_logits: bool) -> np.ndarray:
        """Run `tokens` at positions n_past…; the logits of every token (all_logits) or of the last one."""
        ctx, batch, step = self.llm._ctx, self.llm._batch, self.llm.n_batch
        if all_logits and len(tokens) > step:
            raise SpecError(f"a continuation of {len(tokens)} tokens is longer than the llama.cpp batch ({step})")
        for start in range(0, len(tokens), step):
            chunk = tokens[start:start + step]
            batch.set_batch(batch=chunk, n_past=n_past + start, logits_all=all_logits)
            ctx.decode(batch)
        self.tokens_computed += len(tokens)
        self.tokens_padded += len(tokens)
        rows = len(tokens) if all_logits else 1
        return np.ctypeslib.as_array(ctx.get_logits(), shape=(rows * self.n_vocab,)).reshape(rows, -1).copy()

    def _score_group(self, ctx_tokens: list[int], conts: list[list[int]]) -> list[float]:
        kv = self.llm._ctx
        kv.kv_cache_seq_rm(-1, 0, -1)
        first = log_softmax(self._decode(ctx_tokens, 0, False)[-1])
        scores = []
        for cont in conts:
            score = float(first[cont[0]])
            if len(cont) > 1:
                if not kv.kv_cache_seq_rm(-1, len(ctx_tokens), -1):  # recurrent state: start over
                    kv.kv_cache_seq_rm(-1, 0, -1)
                    self._decode(ctx_tokens, 0, False)
                rest = log_softmax(self._decode(cont[:-1], len(ctx_tokens), True))
                score += float(sum(rest[i, t] for i, t in enumerate(cont[1:])))
            scores.append(score)
        return scores

    def loglikelihoods(self, groups: list[tuple[list[int], list[list[int]]]], batch_size: int,
                       on_batch: Callable[[int], None]) -> list[list[float]]:
        out = []
        for start in range(0, len(groups), batch_size):
            chunk = groups[start:start + batch_size]
            out.extend(self._score_group(ctx, conts) for ctx, conts in chunk)
            on_batch(len(chunk))
        return out

    def generate(self, prompts: list[str], stop: list[str], max_new_tokens: int, special: bool, batch_size: int,
                 on_batch: Callable[[int], None]) -> list[str]:
        """Greedy completions (temperature 0, no repetition penalty), cut before the first stop string."""
        out = []
        for i, prompt in enumerate(prompts):
            self.llm.reset()
            self.llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            done = self.llm.create_completion(self.encode(prompt, special), max_tokens=max_new_tokens,
                                              temperature=0.0, top_k=1, repeat_penalty=1.0, stop=stop or None)
            out.append(cut_at_stop(done["choices"][0]["text"], stop))
            self.tokens_computed += done["usage"]["total_tokens"]
            if (i + 1) % batch_size == 0 or i + 1 == len(prompts):
                on_batch((i % batch_size) + 1)
        return out
