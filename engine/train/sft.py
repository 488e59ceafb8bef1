"""train.sft: supervised fine-tuning with TRL's SFTTrainer on chat JSONL (loss on the assistant tokens) or on plain
prompt/completion JSONL (loss on the completion)."""

from __future__ import annotations

from engine.train.config import SFTJobConfig
from engine.train.data import chat_tokenizer, data_format, plain_tokenizer, read_examples


def metadata(cfg: SFTJobConfig) -> dict:
    return {}


def chat_dataset(path: str, tok):
    """Tokenised examples with `assistant_masks`; TRL turns the mask into labels (-100 elsewhere)."""
    from datasets import Dataset

    encode = chat_tokenizer(tok) if data_format(path) == "chat" else plain_tokenizer(tok)
    return Dataset.from_list([encode(example) for example in read_examples(path)])


def build_trainer(cfg: SFTJobConfig, ctx, model, tok, peft_config, args: dict, callbacks: list, source: str):
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(
        model=model, processing_class=tok, peft_config=peft_config, callbacks=callbacks,
        train_dataset=chat_dataset(cfg.data, tok),
        args=SFTConfig(**args))
