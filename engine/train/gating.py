"""Gate checkpoints while training goes on. This module: the mode (engine.plan picks `auto`), the base results
kept once per experiment, and the `process` mode — one `gate` job per checkpoint, run as its own process
(`in_process` lives in engine.train.inprocess).

Each gate job runs as `python -m engine run` in outputs/gates/ckpt-<step>/ (a run directory of its own);
its gate_result events are copied into the training run's events, so the store sees them with the
training run. A gate process dies with the thread that started it (PR_SET_PDEATHSIG): killing the
training job stops its gates, and a resumed run gates again whatever has no results yet.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from pathlib import Path
from typing import Callable

import engine
from engine.errors import SpecError
from engine.gates.settings import GateSettings
from engine.jobs import dumps_toml
from engine.train.config import CheckpointGating

ROOT = Path(engine.__file__).resolve().parents[1]
META = ("run", "seq", "ts", "type")
FANOUT_REQUEST = "fanout.toml"  # outputs/gates/ckpt-<step>/, read by remotes.gatefan


def _die_with_parent() -> None:
    """Runs in the child before exec: ask Linux to SIGTERM it when the launching thread ends."""
    ctypes.CDLL(None).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG = 1


def read_events(path: Path) -> list[dict]:
    """Complete lines of an events file (a half-written last line is not an event yet)."""
    if not path.is_file():
        return []
    data = path.read_bytes()
    return [json.loads(line) for line in data[: data.rfind(b"\n") + 1].splitlines() if line.strip()]


def check_gates(settings: CheckpointGating, source: str) -> set[str]:
    """The names of the gates each checkpoint is scored on (suite first, then the listed ones), checked before
    training starts: every gate exists, local files name gates of the run, code and judged gates are allowed."""
    from engine.gates.judge_client import judge_from_env
    from engine.gates.run import resolve_gates
    from engine.gates.scoring import get_scorer

    gates = resolve_gates(settings.suite, settings.gates, settings.chat_template)
    names = {g.name for g in gates}
    keys = names | {g.dataset.user_data_key for g in gates if g.dataset.user_data_key}
    for key in [*settings.files, *settings.fewshot_files]:
        if key not in (keys if key in settings.files else names):
            raise SpecError(f"{source}: [gates] has a local file for {key!r}, which is not one of the gates run "
                            f"({', '.join(sorted(names))})")
    for gate in gates:
        scorer = get_scorer(gate.scorer, str(gate.source))
        if scorer.runs_code and not settings.allow_code_exec:
            raise SpecError(f"{source}: gate {gate.name} runs model-generated code: set allow_code_exec = true "
                            "in [gates], or leave the gate out")
        if scorer.needs_judge and settings.judge is None and judge_from_env() is None:
            raise SpecError(f"{source}: gate {gate.name} needs a judge endpoint: add a [gates.judge] table "
                            "(url, model)")
    return names


def format_mismatch(data: str, settings: CheckpointGating) -> str | None:
    """A warning when the training data's prompt format (chat `messages`, or plain `prompt`/`completion`) differs
    from the one its Polish NLU gates score: the adapter would learn answers in one format and be judged in
    the other (e.g. after the chat template's assistant header vs straight after `Prawidłowa odpowiedź:`).
    In a mix (data.mix tags rows with their source) only the KLEJ rows' format counts."""
    from engine.gates.run import resolve_gates
    from engine.train.data import klej_format

    fmt = klej_format(data)
    other = [g.name for g in resolve_gates(settings.suite, settings.gates, settings.chat_template)
             if g.axis == "pl_nlu" and ("chat" if g.chat_template else "plain") != fmt]
    if not other:
        return None
    fix = ('data.klej format = "plain", or [gates] chat_template = true' if fmt == "chat"
           else 'data.klej format = "chat", or [gates] chat_template = false')
    return (f"{data}: the training data is in {fmt} format but gates {', '.join(other)} score "
            f"{'plain prompts (no chat template)' if fmt == 'chat' else 'prompts in the chat template'}; "
            f"to train what is scored use {fix}")


def recorded(subject: dict, table: dict) -> dict:
    """A gate job's [[subjects]] table that records the subject training made (its recipe: kl_to_base …), wherever
    and from whatever copy the gate job loads it."""
    from engine.subjects import Recipe

    return {**table, "recorded_as": Recipe.from_dict(subject["recipe"]).model_dump(mode="json", exclude_none=True)}


class CheckpointGater:
    """Runs gate jobs in the background, at most `max_parallel` at once; `close()` waits for all of them."""

    def __init__(self, settings: CheckpointGating, ctx, run_name: str, done: set[tuple[str, str]], source: str,
                 emit: Callable[[dict], None]):
        self.settings, self.ctx, self.run_name, self.emit = settings, ctx, run_name, emit
        self.done = set(done)  # (subject id, gate) pairs already in the training run's events
        self.expected = check_gates(settings, source)
        self._slots = threading.Semaphore(settings.max_parallel)
        self._lock = threading.Lock()
        self._threads: list[threading.Thread] = []
        self._procs: set[subprocess.Popen] = set()
        self._cancelled = False

    def missing(self, subject: dict) -> bool:
        return any((subject["id"], g) not in self.done for g in self.expected)

    def submit(self, step: int, subjects: list[tuple[dict, dict]]) -> None:
        """Gate these (subject record, gate-job subject table) pairs as the job for checkpoint `step`."""
        todo = [recorded(subject, table) for subject, table in subjects if self.missing(subject)]
        if todo:
            t = threading.Thread(target=self._run, args=(step, todo), name=f"gate-ckpt-{step}", daemon=True)
            self._threads.append(t)
            t.start()

    def _spec(self, step: int, tables: list[dict]) -> str:
        s = self.settings
        shared = s.model_dump(mode="json", exclude_none=True, include=set(GateSettings.model_fields))
        shared.update(device=resolve_device(s.device), files={k: _abs(v) for k, v in s.files.items()},
                      fewshot_files={k: _abs(v) for k, v in s.fewshot_files.items()})
        return dumps_toml({"kind": "gate", "name": f"{self.run_name}-gate-ckpt-{step}", **shared, "subjects": tables})

    def _run(self, step: int, tables: list[dict]) -> None:
        with self._slots:
            if self._cancelled:
                return
            run_dir = self.ctx.outputs / "gates" / f"ckpt-{step}"
            last = next((e for e in reversed(read_events(run_dir / "events.jsonl")) if e["type"] == "status"), {})
            if last.get("status") != "succeeded":
                shutil.rmtree(run_dir, ignore_errors=True)
                run_dir.mkdir(parents=True)
                (run_dir / "gate.toml").write_text(self._spec(step, tables), encoding="utf-8")
                cmd = [sys.executable, "-m", "engine", "run", str(run_dir / "gate.toml"), "--run-dir", str(run_dir),
                       "--run-id", f"{self.ctx.run_id}-gate-ckpt-{step}"]
                proc = subprocess.Popen(cmd, cwd=ROOT, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                                        stderr=subprocess.DEVNULL, preexec_fn=_die_with_parent)
                with self._lock:
                    self._procs.add(proc)
                proc.wait()
                with self._lock:
                    self._procs.discard(proc)
            self._copy_results(step, run_dir)

    def _copy_results(self, step: int, run_dir: Path) -> None:
        events = read_events(run_dir / "events.jsonl")
        for e in events:
            if e["type"] == "gate_result":
                key = (e["subject"]["id"], e["gate"])
                with self._lock:
                    if key in self.done:
                        continue
                    self.done.add(key)
                self.emit({k: v for k, v in e.items() if k not in META})
        status = next((e for e in reversed(events) if e["type"] == "status"), {})
        if status.get("status") != "succeeded" and not self._cancelled:
            self.ctx.log(f"gate job of checkpoint {step} ended {status.get('status', 'without a status')}: "
                         f"{status.get('error', 'see ' + str(run_dir / 'log.txt'))}", level="warning")

    def close(self) -> None:
        """Wait for every gate job (training is over; their results belong to this run)."""
        for t in self._threads:
            t.join()

    def cancel(self) -> None:
        self._cancelled = True
        with self._lock:
            for proc in self._procs:
                proc.terminate()
        self.close()


class BaseResults:
    """The base's gate results, kept once per experiment on this box (beside its run directories): a later
    training run of the experiment reuses them instead of scoring the base again. A result is reused only under
    the same settings (gate, items, limit, files, batch, dtype, loading, engine version)."""

    def __init__(self, folder: Path, experiment: str, settings: CheckpointGating, loading: dict):
        self.folder = folder
        self.key = {"experiment": experiment, "limit": settings.limit, "batch_size": settings.batch_size,
                    "chat_template": settings.chat_template, "fixtures": settings.fixtures,
                    "files": {k: _stamp(v) for k, v in sorted(settings.files.items())},
                    "fewshot_files": {k: _stamp(v) for k, v in sorted(settings.fewshot_files.items())},
                    "engine": engine.__version__, **loading}

    def _path(self, subject: dict, gate: str) -> Path:
        key = json.dumps({**self.key, "subject": subject["id"], "gate": gate}, sort_keys=True)
        return self.folder / f"{hashlib.sha256(key.encode()).hexdigest()[:24]}.json"

    def get(self, subject: dict, gate: str) -> dict | None:
        path = self._path(subject, gate)
        try:
            return json.loads(path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return None

    def put(self, result: dict) -> None:
        path = self._path(result["subject"], result["gate"])
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(result, ensure_ascii=False), encoding="utf-8")
        os.replace(tmp, path)


def _stamp(path: str) -> str:
    """A local gate file by its content: a changed file is a different key, a rewritten identical one is not."""
    from engine.events import sha256_file

    p = Path(path).expanduser()
    return sha256_file(p) if p.is_file() else path


def resolve_device(device: str) -> str:
    if device != "auto":
        return device
    from engine.train.adapter import has_cuda

    return "cuda" if has_cuda() else "cpu"


def _abs(path: str) -> str:
    p = Path(path).expanduser()
    return str(p.resolve()) if p.exists() else path


def choose_mode(cfg, source: str) -> str:
    """The gating mode of this run: as set, or for `auto` the memory plan's pick on this machine."""
    mode = cfg.gates.mode
    if mode == "in_process" and cfg.launcher == "accelerate" and cfg.distributed == "fsdp" and cfg.num_processes > 1:
        raise SpecError(f'{source}: [gates] mode = "in_process" cannot score a model FSDP shards over '
                        f'{cfg.num_processes} processes; use mode = "process"')
    if mode == "auto":
        from engine.plan import estimate_job, model_shape, this_machine

        mode = estimate_job(cfg, model_shape(cfg.model), this_machine()).gating_default
    if mode == "fanout" and cfg.base_adapter:
        raise SpecError(f'{source}: [gates] mode = "fanout" cannot gate a stacked run (its merged base is built on '
                        'the training box only); use mode = "in_process" or "process"')
    return mode


class FanoutRequests:
    """`mode = "fanout"`: the training process gates nothing. Each checkpoint's gate job is written to
    outputs/gates/ckpt-<step>/fanout.toml before the checkpoint event announces it; whoever follows the run
    (remotes.gatefan) uploads the adapter to one of [gates] boxes and runs the job there. The job is the one a
    `process` gater would run (same settings, so the same fingerprints), written portably: the model and the gate
    files as job.toml names them (tiny:/assets: references resolve on the gate box), the device left to the box
    when [gates] says auto, and each subject's recipe as it is here, so a result keeps the checkpoint's identity
    whatever path the adapter has on the gate box."""

    def __init__(self, ctx, run_name: str, head: dict):
        self.ctx, self.run_name = ctx, run_name
        self.done: set[tuple[str, str]] = set()  # results come back to the store, not to this run
        raw = CheckpointGating.model_validate(head["gates"])
        self.shared = raw.model_dump(mode="json", exclude_none=True, include=set(GateSettings.model_fields))
        self.shared.update(files={k: _abs(v) for k, v in raw.files.items()},
                           fewshot_files={k: _abs(v) for k, v in raw.fewshot_files.items()})
        if raw.device == "auto":
            del self.shared["device"]
        self.model = head["model"]

    def submit(self, step: int, pairs: list[tuple[dict, dict]]) -> None:
        tables = [{**recorded(subject, table), "model": self.model} for subject, table in pairs]
        out = self.ctx.outputs / "gates" / f"ckpt-{step}" / FANOUT_REQUEST
        out.parent.mkdir(parents=True, exist_ok=True)
        tmp = out.with_name(out.name + ".tmp")
        tmp.write_text(dumps_toml({"kind": "gate", "name": f"{self.run_name}-gate-ckpt-{step}", **self.shared,
                                   "subjects": tables}), encoding="utf-8")
        os.replace(tmp, out)

    def close(self) -> None:
        """Nothing runs here."""

    def cancel(self) -> None:
        """Nothing runs here."""


def gate_loading(cfg, mode: str) -> tuple[str, dict]:
    """(dtype, loading options) the gates score with: in process, the training model as it is; otherwise
    what [gates] asks for. Both go into the fingerprint."""
    from engine.gates.hf_backend import loading_fingerprint
    from engine.train.adapter import has_cuda

    cuda = has_cuda()
    if mode == "in_process":
        if cfg.quantization == "4bit":
            return "bfloat16", loading_fingerprint("4bit", "none")
        dtype = cfg.dtype if cfg.dtype != "auto" else ("bfloat16" if cuda else "float32")
        return dtype, {}
    g = cfg.gates
    on_gpu = resolve_device(g.device).startswith("cuda")
    dtype = "bfloat16" if on_gpu and (g.dtype == "auto" or g.quantization == "4bit") else g.dtype
    return (dtype if dtype != "auto" else "float32"), loading_fingerprint(g.quantization, g.device_map)
