"""Small training data and job specs for the train.* tests (tiny model, a few steps, files in tmp)."""

from __future__ import annotations

import json
from pathlib import Path

from engine.jobs import dumps_toml, parse_spec
from engine.runner import run_job

ROOT = Path(__file__).resolve().parents[1]
QUESTIONS = ["Ile to dwa plus dwa?", "Jak się masz?", "Podaj stolicę Polski.", "Co to jest kot?",
             "Przetłumacz: dog", "Napisz krótki wiersz."]
ANSWERS = ["Cztery.", "Dobrze, dziękuję.", "Warszawa.", "Kot to zwierzę domowe.", "Pies.", "Cisza nad jeziorem."]
FAST = {"batch_size": 4, "logging_steps": 1, "gradient_checkpointing": False, "learning_rate": 1e-3, "warmup": 0}


def tiny_model() -> str:
    from engine.tiny.build import tiny_model_dir

    return str(tiny_model_dir(arch="qwen3", seed=0))


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def chat_file(path: Path, n: int = 16) -> Path:
    return write_jsonl(path, [
        {"messages": [{"role": "user", "content": QUESTIONS[i % 6]}, {"role": "assistant", "content": ANSWERS[i % 6]}],
         "source": {"dataset": "test", "id": i}} for i in range(n)])


def psc_file(path: Path, n: int = 8) -> Path:
    """Rows with polish_psc's columns, for gating offline."""
    return write_jsonl(path, [{"extract_text": f"Tekst {i} o kotach i psach.", "label": i % 2,
                               "summary_text": ["O kotach.", "O samochodach."][(i // 2) % 2]} for i in range(n)])


def spec_file(path: Path, kind: str, **fields) -> Path:
    """A job TOML; `training` values are merged over FAST."""
    fields["training"] = {**FAST, **fields.get("training", {})}
    path.write_text(dumps_toml({"kind": kind, **fields}), encoding="utf-8")
    return path


def run_in_process(run_dir: Path, kind: str, **fields) -> tuple[str, list[dict]]:
    """Run a job in this process (heavy imports are paid once per test session); returns (status, events)."""
    spec = parse_spec({"kind": kind, **fields, "training": {**FAST, **fields.get("training", {})}}, "test spec")
    status = run_job(spec, run_dir)
    return status, read_events(run_dir)


def read_events(run_dir: Path) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "events.jsonl").read_text().splitlines()]


def of_type(events: list[dict], type: str) -> list[dict]:
    return [e for e in events if e["type"] == type]
