"""A byte-level BPE tokenizer built the way Qwen3.5's is, trained on the spot on the packaged corpus.

Same pipeline as the released tokenizer (transformers' `Qwen3_5Tokenizer`: NFC, Qwen3.5's pre-tokenizer split
regex, byte-level bytes-to-unicode, no BOS), the same special tokens and ids after the learned vocabulary,
and Qwen3.5's own chat template (thinking on by default; `enable_thinking=False` closes an empty `<think>`
block), taken from TRL, which ships the released template to recognise it. Only the merges differ, so
llama.cpp's converter, which identifies BPE pre-tokenizers by hashing their output, does not recognise it:
`PRE_TOKENIZER` names the known one it uses (engine.export reads it from the model folder).
"""

from __future__ import annotations

import json

# llama.cpp's name for Qwen3.5's pre-tokenizer (LLAMA_VOCAB_PRE_TYPE_QWEN35: the same split regex)
PRE_TOKENIZER = "qwen35"
ENDOFTEXT, IM_START, IM_END = "<|endoftext|>", "<|im_start|>", "<|im_end|>"
# Qwen3.5's special tokens, in the order (and so with the relative ids) of the released tokenizer
SPECIAL = [ENDOFTEXT, IM_START, IM_END, "<|object_ref_start|>", "<|object_ref_end|>", "<|box_start|>",
           "<|box_end|>", "<|quad_start|>", "<|quad_end|>", "<|vision_start|>", "<|vision_end|>",
           "<|vision_pad|>", "<|image_pad|>", "<|video_pad|>"]
# …and its added tokens that are ordinary text (tool calls, reasoning)
ADDED = ["<tool_call>", "</tool_call>", "<tool_response>", "</tool_response>", "<think>", "</think>"]


def chat_template() -> str:
    from trl.chat_template_utils import qwen3_5_think_chat_template

    return qwen3_5_think_chat_template


def train_qwen_bpe(lines: list[str], vocab_size: int):
    """A `Qwen3_5Tokenizer` of `vocab_size` tokens in all: learned merges first, then SPECIAL and ADDED."""
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import AddedToken
    from transformers.models.qwen3_5.tokenization_qwen3_5 import Qwen3_5Tokenizer

    template = Qwen3_5Tokenizer()  # the released pipeline, empty vocabulary
    learner = Tokenizer(models.BPE())
    learner.normalizer = template.backend_tokenizer.normalizer
    learner.pre_tokenizer = template.backend_tokenizer.pre_tokenizer
    learned = vocab_size - len(SPECIAL) - len(ADDED)
    learner.train_from_iterator(lines, trainers.BpeTrainer(
        vocab_size=learned, initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False))
    model = json.loads(learner.to_str())["model"]
    learned_ids = len(model["vocab"])
    vocab = {**model["vocab"], **{t: learned_ids + i for i, t in enumerate(SPECIAL + ADDED)}}  # after the learned
    tok = Qwen3_5Tokenizer(vocab=vocab, merges=[tuple(m.split(" ")) if isinstance(m, str) else tuple(m)
                                                for m in model["merges"]],
                           unk_token=None, eos_token=IM_END, pad_token=ENDOFTEXT)
    tok.add_tokens([AddedToken(t, special=True, normalized=False) for t in SPECIAL], special_tokens=True)
    tok.add_tokens([AddedToken(t, special=False, normalized=False) for t in ADDED])
    tok.chat_template = chat_template()
    return tok
