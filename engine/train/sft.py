"""train.sft: supervised fine-tuning with TRL's SFTTrainer on chat rows (loss on the assistant tokens) and/or plain
prompt/completion rows (loss on the completion)."""

from __future__ import annotations

from engine.train.config import SFTJobConfig
from engine.train.data import example_tokenizer, read_examples


def metadata(cfg: SFTJobConfig) -> dict:
    return {"kl_to_base": cfg.kl_to_base} if cfg.kl_to_base else {}


def chat_dataset(path: str, tok):
    """Tokenised examples with `assistant_masks`, each row chat or plain as it is; TRL turns the mask into labels
    (-100 elsewhere)."""
    from datasets import Dataset

    encode = example_tokenizer(tok)
    return Dataset.from_list([encode(example) for example in read_examples(path)])


def kl_trainer(beta: float):
    """SFTTrainer whose loss adds β · KL(base ‖ adapted) over the assistant tokens (engine.train.drift). TRL's fused
    LM head never builds the logits the KL needs, so this loss takes the full logits: the cross-entropy as TRL
    computes it, plus the KL against one forward of the base (adapter disabled, no gradients)."""
    import torch
    import torch.nn.functional as F
    from trl import SFTTrainer

    from engine.train.drift import base_model, kl_to_base

    class KLSFTTrainer(SFTTrainer):
        def compute_loss(self, model, inputs, return_outputs=False, num_items_in_batch=None):
            labels = inputs["labels"][:, 1:]
            forward = {k: v for k, v in inputs.items() if k != "labels"}
            logits = model(**forward, use_cache=False).logits[:, :-1]
            with base_model(self.accelerator.unwrap_model(model)):
                base = model(**forward, use_cache=False).logits[:, :-1]
            mask = labels != -100
            count = torch.as_tensor(mask.sum() if num_items_in_batch is None else num_items_in_batch).clamp(min=1)
            ce = F.cross_entropy(logits[mask].float(), labels[mask], reduction="sum") / count
            kl = kl_to_base(logits[mask], base[mask]).sum() / count
            loss = ce + beta * kl
            if self.args.average_tokens_across_devices and num_items_in_batch is not None:
                loss = loss * self.accelerator.num_processes  # as TRL: DDP averages what was summed over ranks
            mode = "train" if model.training else "eval"
            self._metrics[mode]["kl_to_base"].append(self.accelerator.gather_for_metrics(
                kl.detach() * count / mask.sum().clamp(min=1)).mean().item())
            return (loss, {"logits": logits}) if return_outputs else loss

    return KLSFTTrainer


def build_trainer(cfg: SFTJobConfig, ctx, model, tok, peft_config, args: dict, callbacks: list, source: str):
    from trl import SFTConfig, SFTTrainer

    trainer = kl_trainer(cfg.kl_to_base) if cfg.kl_to_base else SFTTrainer
    return trainer(
        model=model, processing_class=tok, peft_config=peft_config, callbacks=callbacks,
        train_dataset=chat_dataset(cfg.data, tok),
        args=SFTConfig(**args))
