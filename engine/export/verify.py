"""Fidelity of GGUF files against the HF model they were made from: next-token KL divergence and top-1 agreement.

The probe set is a fixed text file, one probe per line, `\\n` standing for a newline (default:
assets/export/probes.txt). Both models read the same token ids (the HF tokenizer's) and every position is
compared, so the numbers measure the weights and kernels; whether llama.cpp's own tokenizer agrees is
reported separately (`tokenizer_match`).
"""

from __future__ import annotations

import hashlib
import os
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from engine.errors import SpecError

PROBES_FILE = Path(__file__).resolve().parents[2] / "assets" / "export" / "probes.txt"


def read_probes(path: str | os.PathLike | None = None) -> tuple[list[str], str]:
    """(the probe texts, the file's sha256)."""
    path = Path(path) if path else PROBES_FILE
    try:
        raw = path.read_bytes()
    except OSError:
        raise SpecError(f"{path}: cannot read the probe file") from None
    texts = [line.replace("\\n", "\n") for line in raw.decode("utf-8").splitlines() if line.strip()]
    if not texts:
        raise SpecError(f"{path}: no probes (one text per line)")
    return texts, hashlib.sha256(raw).hexdigest()


@dataclass
class Reference:
    """The HF model's next-token logits on the probes: one float32 array [tokens, vocab] per probe."""

    texts: list[str]
    token_ids: list[list[int]]
    logits: list


def hf_reference(model_dir: str | os.PathLike, texts: list[str], max_tokens: int, device: str = "cpu") -> Reference:
    """The HF model's logits on each probe, truncated to `max_tokens` tokens: float32 arithmetic, but the
    weights are streamed from the checkpoint a block at a time (engine.export.layered), so neither a float32
    model nor a whole bf16 one is ever in memory."""
    from transformers import AutoTokenizer

    from engine.export.layered import probe_logits

    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    ids = [tokenizer.encode(t, add_special_tokens=False)[:max_tokens] for t in texts]
    return Reference(texts, ids, probe_logits(model_dir, ids, device))


@contextmanager
def open_gguf(path: str | os.PathLike, n_ctx: int, threads: int = 0, **llama_args):
    """A llama_cpp.Llama over `path` that keeps every position's logits, on plain CPU buffers
    (see engine.llama_load). `llama_args` go to `Llama()` (e.g. `lora_path`, `lora_scale`)."""
    from engine.llama_load import load_llama

    llm = load_llama(path, n_ctx=n_ctx, n_batch=n_ctx, n_ubatch=n_ctx, logits_all=True,
                     n_threads=threads or None, verbose=False, **llama_args)
    try:
        yield llm
    finally:
        llm.close()


def _log_softmax(x):
    import numpy as np

    x = x.astype(np.float64)
    x = x - x.max(-1, keepdims=True)
    return x - np.log(np.exp(x).sum(-1, keepdims=True))


def fidelity(gguf: str | os.PathLike, ref: Reference, threads: int = 0, **llama_args) -> dict:
    """KL(P_hf ‖ P_gguf) per position (mean and max, nats), top-1 agreement, tokenizer agreement."""
    import numpy as np

    kls, agree, same_tokens = [], [], 0
    n_ctx = max(len(row) for row in ref.token_ids) + 8
    with open_gguf(gguf, n_ctx, threads, **llama_args) as llm:
        for text, row, hf_logits in zip(ref.texts, ref.token_ids, ref.logits):
            same_tokens += llm.tokenize(text.encode("utf-8"), add_bos=False, special=True) == row
            if not row:
                continue
            llm.reset()
            llm.eval(row)
            vocab = min(hf_logits.shape[-1], llm.n_vocab())
            p_log = _log_softmax(hf_logits[:, :vocab])
            q_log = _log_softmax(np.asarray(llm.scores[: len(row), :vocab]))
            kls.append((np.exp(p_log) * (p_log - q_log)).sum(-1))
            agree.append(p_log.argmax(-1) == q_log.argmax(-1))
    kl, top1 = np.concatenate(kls), np.concatenate(agree)
    return {"kl": float(kl.mean()), "kl_max": float(kl.max()), "top1": float(top1.mean()), "positions": int(kl.size),
            "tokenizer_match": same_tokens / len(ref.texts)}
