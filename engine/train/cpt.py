"""train.cpt: continued pre-training (next-token loss on plain text) with a share of replay text against forgetting."""

from __future__ import annotations

from engine.train.config import CPTJobConfig
from engine.train.data import mix_replay, read_texts


def metadata(cfg: CPTJobConfig) -> dict:
    return {"replay_share": cfg.replay_share if cfg.replay else 0.0}


def build_trainer(cfg: CPTJobConfig, ctx, model, tok, peft_config, args: dict, callbacks: list, source: str):
    from datasets import Dataset
    from trl import SFTConfig, SFTTrainer

    docs = read_texts(cfg.data)
    if cfg.replay:
        def count(text: str) -> int:
            return len(tok(text, add_special_tokens=False)["input_ids"])

        docs, share = mix_replay(docs, read_texts(cfg.replay), cfg.replay_share, count, cfg.training.seed)
        ctx.log(f"replay: {share:.1%} of {len(docs)} documents' tokens come from {cfg.replay}")
    # Documents are concatenated (each ends with EOS) and cut into max_length blocks: every token is a target.
    return SFTTrainer(
        model=model, processing_class=tok, peft_config=peft_config, callbacks=callbacks,
        train_dataset=Dataset.from_list([{"text": d} for d in docs]),
        args=SFTConfig(**args, packing=True, packing_strategy="wrapped", dataset_text_field="text"))
