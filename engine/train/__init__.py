"""Training jobs: PEFT adapters (LoRA/DoRA, QLoRA) by SFT, CPT and DPO, each checkpoint a gated subject."""
