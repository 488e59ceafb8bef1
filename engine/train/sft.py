"""train.sft: supervised fine-tuning on chat JSONL with TRL's SFTTrainer; loss on the assistant tokens only."""

from __future__ import annotations

from engine.train.config import SFTJobConfig
from engine.train.data import chat_tokenizer, read_chats


def metadata(cfg: SFTJobConfig) -> dict:
    return {}


def chat_dataset(path: str, tok):
    """Tokenised conversations with `assistant_masks`; TRL turns the mask into labels (-100 elsewhere)."""
    from datasets import Dataset

    encode = chat_tokenizer(tok)
    return Dataset.from_list([encode(messages) for messages in read_chats(path)])


def build_trainer(cfg: SFTJobConfig, ctx, model, tok, peft_config, args: dict, callbacks: list, source: str):
    from trl import SFTConfig, SFTTrainer

    return SFTTrainer(
        model=model, processing_class=tok, peft_config=peft_config, callbacks=callbacks,
        train_dataset=chat_dataset(cfg.data, tok),
        args=SFTConfig(**args))
