"""Gate checkpoints inside the training process, with the model it already holds: no second copy of the base.

Each saved checkpoint's adapter is read back from disk as a second adapter of the live PEFT model (a few MB),
made active, scored, and dropped; the base is the same model with every adapter disabled. Scores and
fingerprints are those of a `gate` job loading the same checkpoint: same backend code, same dtype and
quantisation. Training waits meanwhile (the model is in eval mode) and its random state is left untouched.
"""

from __future__ import annotations

from pathlib import Path
from typing import Callable

from engine.gates.hf_backend import HFBackend
from engine.train.config import CheckpointGating

GATE_ADAPTER = "slayer_gate"  # the checkpoint's adapter while it is scored, beside the one training


class InProcessGater:
    """`submit(step, pairs)` scores at once; `emit(result)` receives every gate_result event."""

    def __init__(self, settings: CheckpointGating, ctx, done: set[tuple[str, str]], emit: Callable[[dict], None],
                 loading: dict, dtype: str):
        from engine.gates.judge_client import judge_from_env
        from engine.gates.run import prepare_items, resolve_gates
        from engine.train.gating import resolve_device

        self.settings, self.ctx, self.emit = settings, ctx, emit
        self.judge = settings.judge or judge_from_env()
        self.done = set(done)
        self.device = resolve_device(settings.device)
        self.loading, self.dtype = loading, dtype
        gates = resolve_gates(settings.suite, settings.gates, settings.chat_template)
        self.expected = {g.name for g in gates}
        # the items are read once for the whole run
        self.items = prepare_items(gates, settings.files, settings.fewshot_files, settings.limit,
                                   settings.allow_code_exec, self.device, self.judge, settings.fixtures)
        self.shared: dict = {}  # pairwise gates keep the base's answers here, for every later checkpoint
        self.model = self.tokenizer = None

    def attach(self, model, tokenizer) -> None:
        """The trainer's PEFT model (unwrapped: no DDP hooks, so only this process runs the forwards)."""
        self.model, self.tokenizer = model, tokenizer

    def missing(self, subject: dict) -> bool:
        return any((subject["id"], g) not in self.done for g in self.expected)

    def submit(self, step: int, pairs: list[tuple[dict, dict]]) -> None:
        import torch

        todo = [(s, t) for s, t in pairs if self.missing(s)]
        if not todo:
            return
        was_training = self.model.training
        self.model.eval()
        cuda = self.device.startswith("cuda")
        try:
            # the same bf16 autocast training runs under (a QLoRA model mixes float32 norms and bf16 weights)
            with torch.random.fork_rng(devices=[self.device] if cuda else []), \
                    torch.autocast("cuda", dtype=torch.bfloat16, enabled=cuda and self.dtype == "bfloat16"):
                for subject, table in todo:
                    self._score(step, subject, table)
        finally:
            self.model.train(was_training)

    def _score(self, step: int, subject: dict, table: dict) -> None:
        model = self.model
        if table.get("adapter"):
            active = model.active_adapter
            model.load_adapter(table["adapter"], adapter_name=GATE_ADAPTER, is_trainable=False)
            model.set_adapter(GATE_ADAPTER, inference_mode=True)
            try:
                self._run(step, subject, model)
            finally:
                model.set_adapter(active)  # also makes the training adapter trainable again
                model.delete_adapter(GATE_ADAPTER)
        else:
            with model.disable_adapter():
                self._run(step, subject, model)

    def _run(self, step: int, subject: dict, model) -> None:
        from engine.gates.run import EVENT_KEYS, result_path, score_gate, write_json

        backend = HFBackend.wrap(model, self.tokenizer, self.device, self.dtype, self.loading)
        out = self.ctx.outputs / "gates" / f"ckpt-{step}"
        for items in self.items:
            if (subject["id"], items.gate.name) in self.done:
                continue
            result, _ = score_gate(items, backend, subject, self.settings.batch_size, self.settings.allow_code_exec,
                                   lambda done, total: None, judge=self.judge,
                                   is_base=subject["kind"] == "base", shared=self.shared)
            write_json(result_path(Path(out), subject, items.gate.name, True), result)
            self.done.add((subject["id"], items.gate.name))
            self.ctx.log(f"{subject['name']} · {items.gate.name}: {result['primary']} = "
                         f"{result['metrics'][result['primary']]:.4f} (in process, n = {result['n']})")
            self.emit({k: result[k] for k in EVENT_KEYS})

    def close(self) -> None:
        """Nothing runs in the background."""

    def cancel(self) -> None:
        """Nothing runs in the background."""
