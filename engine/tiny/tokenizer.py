"""Train a SentencePiece BPE tokenizer (byte fallback) on packaged Polish + English text; wrap it for transformers.

SentencePiece rather than a `tokenizers` BPE because llama.cpp's converter accepts a `tokenizer.model` for Qwen3
but refuses BPE vocabularies it does not recognise. The HF side is built from the same model proto in the legacy
Llama/Mistral way (a "▁" is prepended to the text and to each chunk after a special token) because that is exactly
how llama.cpp tokenizes an SPM vocabulary, so HF and GGUF see the same token ids.
"""

from __future__ import annotations

import hashlib
import io
from importlib import resources
from pathlib import Path

from engine.errors import SpecError

UNK, BOS, EOS, PAD = "<unk>", "<s>", "</s>", "<pad>"
IM_START, IM_END = "<|im_start|>", "<|im_end|>"
CHAT_MARKERS = (IM_START, IM_END)

# Qwen-style ChatML; the assistant turn ends with <|im_end|>, which is also the tokenizer's eos.
CHAT_TEMPLATE = (
    "{%- for message in messages %}"
    "{{- '<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n' }}"
    "{%- endfor %}"
    "{%- if add_generation_prompt %}{{- '<|im_start|>assistant\\n' }}{%- endif %}"
)


def corpus_files(extra: str | None = None) -> list[Path]:
    """The packaged corpus (assets/corpus/*.txt), then the user's extra file or folder of .txt files."""
    packaged = resources.files("assets") / "corpus"
    files = sorted(Path(str(packaged)).glob("*.txt"))
    if extra:
        path = Path(extra).expanduser()
        if path.is_file():
            files.append(path)
        elif path.is_dir():
            found = sorted(path.rglob("*.txt"))
            if not found:
                raise SpecError(f"{path}: corpus folder holds no .txt files")
            files += found
        else:
            raise SpecError(f"{path}: corpus file or folder not found")
    return files


def corpus_lines(files: list[Path]) -> list[str]:
    lines = []
    for f in files:
        try:
            text = f.read_text(encoding="utf-8")
        except UnicodeDecodeError:
            raise SpecError(f"{f}: corpus file is not UTF-8 text") from None
        lines += [line for line in text.splitlines() if line.strip()]
    return lines


def corpus_digest(files: list[Path]) -> str:
    h = hashlib.sha256()
    for f in files:
        h.update(f.read_bytes())
        h.update(b"\0")
    return h.hexdigest()


def train_sentencepiece(lines: list[str], vocab_size: int) -> bytes:
    """A serialized SentencePiece BPE model: ids 0-3 are <unk> <s> </s> <pad>, then <|im_start|> <|im_end|>."""
    import sentencepiece as spm

    out = io.BytesIO()
    try:
        spm.SentencePieceTrainer.train(
            sentence_iterator=iter(lines), model_writer=out, model_type="bpe", vocab_size=vocab_size,
            byte_fallback=True, character_coverage=1.0, split_digits=True,
            # Identity normalisation and kept whitespace: text (code indentation too) round-trips exactly,
            # and llama.cpp, which does not normalise, tokenizes the same way.
            normalization_rule_name="identity", remove_extra_whitespaces=False, add_dummy_prefix=True,
            user_defined_symbols=list(CHAT_MARKERS),
            unk_id=0, bos_id=1, eos_id=2, pad_id=3, unk_piece=UNK, bos_piece=BOS, eos_piece=EOS, pad_piece=PAD,
            num_threads=1, minloglevel=2)
    except RuntimeError as e:
        raise SpecError(f"vocab_size: SentencePiece cannot train {vocab_size} pieces on this corpus: {e}") from None
    return out.getvalue()


def hf_tokenizer(sp_model: bytes):
    """A transformers fast tokenizer equivalent to `sp_model`, with the chat template and special tokens set."""
    from transformers import PreTrainedTokenizerFast
    from transformers.convert_slow_tokenizer import SpmConverter, import_protobuf

    proto = import_protobuf().ModelProto()
    proto.ParseFromString(sp_model)
    vocab = {piece.piece: i for i, piece in enumerate(proto.pieces)}
    backend = SpmConverter.build_tokenizer_from_spm_proto(proto, vocab, legacy=True)
    tok = PreTrainedTokenizerFast(
        tokenizer_object=backend, unk_token=UNK, bos_token=BOS, eos_token=IM_END, pad_token=PAD,
        additional_special_tokens=[IM_START, IM_END, EOS], clean_up_tokenization_spaces=False)
    tok.chat_template = CHAT_TEMPLATE
    return tok
