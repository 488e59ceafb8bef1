"""Quantise a GGUF file through llama-cpp-python's binding of llama.cpp's quantiser (`llama_model_quantize`)."""

from __future__ import annotations

import os
from pathlib import Path

# Quant names as llama.cpp's `llama-quantize` spells them; each is LLAMA_FTYPE_MOSTLY_<name> in the binding.
QUANT_TYPES = ("Q8_0", "Q6_K", "Q5_K_M", "Q5_K_S", "Q5_1", "Q5_0", "Q4_K_M", "Q4_K_S", "Q4_1", "Q4_0",
               "Q3_K_L", "Q3_K_M", "Q3_K_S", "Q2_K", "IQ4_XS", "IQ4_NL")


def quantize(src: str | os.PathLike, dst: str | os.PathLike, quant: str, threads: int = 0) -> Path:
    """Write `dst`, the `quant` quantisation of GGUF `src` (f16/bf16/f32), whole or not at all."""
    import ctypes

    import llama_cpp

    params = llama_cpp.llama_model_quantize_default_params()
    params.ftype = getattr(llama_cpp, f"LLAMA_FTYPE_MOSTLY_{quant}")
    params.nthread = threads
    dst = Path(dst)
    tmp = dst.with_name(dst.name + ".tmp")
    code = llama_cpp.llama_model_quantize(str(src).encode(), str(tmp).encode(), ctypes.byref(params))
    if code != 0 or not tmp.is_file():
        tmp.unlink(missing_ok=True)
        raise RuntimeError(f"llama_model_quantize {quant} of {src} failed (code {code})")
    os.replace(tmp, dst)
    return dst
