"""Load a GGUF file in llama-cpp-python on plain CPU buffers (shared by the export verifier and the gates)."""

from __future__ import annotations

import os
import threading

_DEFAULTS_SWAP = threading.Lock()


def load_llama(path: str | os.PathLike, **llama_args):
    """A llama_cpp.Llama over `path` with llama.cpp's extra buffer types (AMX / repacked weights) off.

    On CPUs that advertise AMX without granting it, the repacked buffers die with SIGILL on quantised
    files; scores and fidelity are properties of the file, so they are turned off. `Llama()` takes no
    argument for `use_extra_bufts` (llama-cpp-python 0.3.x): its constructor starts from
    `llama_model_default_params()` and loads the model before returning, so the only place to set the
    field is that function. It is swapped for one that clears the field for the duration of this one
    constructor call, under a lock, so two threads loading at once never see each other's swap or
    restore the wrong function. Loads that bypass this function meanwhile would get plain buffers too,
    which changes speed, never results.
    """
    import llama_cpp
    import llama_cpp.llama_cpp as binding

    with _DEFAULTS_SWAP:
        library_defaults = binding.llama_model_default_params

        def plain_buffers():
            params = library_defaults()
            params.use_extra_bufts = False
            return params

        binding.llama_model_default_params = plain_buffers
        try:
            return llama_cpp.Llama(str(path), **llama_args)
        finally:
            binding.llama_model_default_params = library_defaults
