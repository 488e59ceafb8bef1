"""The Trainer callback that turns training into events: metrics, progress, and a checkpoint every epoch too.

Only the world's process zero emits; every process takes part in the extra end-of-epoch save, because a
save may be collective (FSDP).
"""

from __future__ import annotations

import time
from typing import Callable

# Trainer log keys → metric names; other numeric keys keep their names. Skipped: the Trainer's own
# running averages over the whole run (tokens_per_s is measured between two logs instead) and duplicates.
RENAMED = {"learning_rate": "lr", "train_loss": "train_loss_mean", "num_input_tokens_seen": "tokens"}
SKIPPED = {"epoch", "step", "total_flos", "num_tokens", "train_runtime", "train_tokens_per_second",
           "train_samples_per_second", "train_steps_per_second"}


NEAR = 2  # steps: an epoch-end save this close to a step save would be the same subject twice


def near_a_save(step: int, last_saved: int, save_steps: int, max_steps: int) -> bool:
    """Whether an epoch ending at `step` is within NEAR steps of a step save already made (`last_saved`, 0 for
    none) or due next (the next multiple of save_steps, or the final step, which is always saved)."""
    due = min(max_steps, (step // save_steps + 1) * save_steps) if save_steps > 0 else max_steps
    return (last_saved > 0 and step - last_saved <= NEAR) or 0 <= due - step <= NEAR


def events_callback(ctx, on_checkpoint: Callable[[int, float, str], None]):
    """A TrainerCallback: loss / lr / grad_norm / tokens_per_s / gpu_mem (GiB, CUDA only) metrics, step progress,
    a save at the end of every epoch (unless a step save is within NEAR steps of it), and `on_checkpoint(step, epoch, path)` after every save."""
    from transformers import TrainerCallback

    class EventsCallback(TrainerCallback):
        def __init__(self):
            self.saved_step = -1
            self.clock = (time.perf_counter(), 0)

        def on_train_begin(self, args, state, control, **kwargs):
            self.saved_step = state.global_step  # a resumed run starts at a saved step
            self.clock = (time.perf_counter(), state.num_input_tokens_seen)

        def on_step_end(self, args, state, control, **kwargs):
            if state.is_world_process_zero:
                ctx.progress(state.global_step, state.max_steps, unit="steps", label=f"epoch {state.epoch:.2f}")

        def on_epoch_end(self, args, state, control, **kwargs):
            if not near_a_save(state.global_step, self.saved_step, state.save_steps, state.max_steps):
                control.should_save = True

        def on_save(self, args, state, control, **kwargs):
            if state.global_step == self.saved_step:
                return
            self.saved_step = state.global_step
            if state.is_world_process_zero:
                path = f"{args.output_dir}/checkpoint-{state.global_step}"
                on_checkpoint(state.global_step, round(state.epoch or 0.0, 4), path)

        def on_log(self, args, state, control, logs=None, **kwargs):
            if not state.is_world_process_zero or not logs:
                return
            step = state.global_step
            for key, value in logs.items():
                if key not in SKIPPED and isinstance(value, (int, float)):
                    ctx.metric(RENAMED.get(key, key), value, step=step)
            now, tokens = time.perf_counter(), state.num_input_tokens_seen
            then, seen = self.clock
            if tokens > seen and now > then:
                ctx.metric("tokens_per_s", (tokens - seen) / (now - then), step=step)
            self.clock = (now, tokens)
            import torch

            if torch.cuda.is_available():
                ctx.metric("gpu_mem", torch.cuda.max_memory_allocated() / 2**30, step=step, unit="GiB")

    return EventsCallback()
