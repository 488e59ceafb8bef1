"""train.dpo: preference pairs with TRL's DPOTrainer, the reference being the base (the adapter disabled); or ORPO.

The model reaches the trainer without an adapter and with `peft_config`, and no reference model is
given: TRL then computes the reference log-probabilities with the adapter disabled — the frozen base
(with any stacked stages merged in) anchors the adapter against drift, at no extra memory.
ORPO needs no reference at all; that is recorded in the checkpoint events and adapter metadata.
"""

from __future__ import annotations

from engine.train.config import DPOJobConfig
from engine.train.data import read_pairs

REFERENCE = {"dpo": "base (adapter disabled)", "orpo": "none (ORPO is reference-free)"}


def metadata(cfg: DPOJobConfig) -> dict:
    return {"objective": cfg.objective, "beta": cfg.beta, "reference": REFERENCE[cfg.objective]}


def build_trainer(cfg: DPOJobConfig, ctx, model, tok, peft_config, args: dict, callbacks: list, source: str):
    from datasets import Dataset

    dataset = Dataset.from_list(read_pairs(cfg.data))
    if cfg.objective == "orpo":
        from trl.experimental.orpo import ORPOConfig, ORPOTrainer

        return ORPOTrainer(model=model, processing_class=tok, peft_config=peft_config, callbacks=callbacks,
                           train_dataset=dataset, args=ORPOConfig(**args, beta=cfg.beta))
    from trl import DPOConfig, DPOTrainer

    return DPOTrainer(model=model, ref_model=None, processing_class=tok, peft_config=peft_config,
                      callbacks=callbacks, train_dataset=dataset, args=DPOConfig(**args, beta=cfg.beta))
