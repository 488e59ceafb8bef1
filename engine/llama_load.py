"""Load a GGUF file in llama-cpp-python on plain CPU buffers (shared by the export verifier and the gates)."""

from __future__ import annotations

import os


def load_llama(path: str | os.PathLike, **llama_args):
    """A llama_cpp.Llama over `path` with llama.cpp's extra buffer types (AMX / repacked weights) off.

    `Llama()` has no switch for them; on CPUs that advertise AMX without granting it they die with SIGILL
    on quantised files, and scores and fidelity are properties of the file, so they are turned off
    through the default model params the constructor starts from.
    """
    from unittest import mock

    import llama_cpp
    import llama_cpp.llama_cpp as binding

    defaults = binding.llama_model_default_params

    def plain_buffers():
        params = defaults()
        params.use_extra_bufts = False
        return params

    with mock.patch.object(binding, "llama_model_default_params", plain_buffers):
        return llama_cpp.Llama(str(path), **llama_args)
