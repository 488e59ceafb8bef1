"""`run_gates`: score subjects × gates under one set of settings; write one result file per pair.

Results go to OUT/results/gate_<name>.json, or OUT/results/<subject id>/gate_<name>.json when the run
has several subjects. A result holds aggregates, per-item outcomes in dataset order and a fingerprint,
never item text. For an F1-primary gate the outcomes are per-item correctness (F1 is not a mean);
`preds` and `golds` carry what a paired F1 comparison needs. Pairwise gates (style_judge, en_chat) compare
every subject with the run's one subject of kind "base", which is therefore scored first.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path
from typing import Callable

import engine
from engine.errors import SpecError
from engine.events import GateResultEvent
from engine.gates.backend import SubjectSpec, check_device, open_backend
from engine.gates.code_exec import refuse_unless_allowed
from engine.gates.data import GateItems, load_items
from engine.gates.judge_client import MODEL_ENV, URL_ENV, JudgeSettings, judge_from_env
from engine.gates.scoring import ScoreSettings, get_scorer
from engine.gates.spec import Gate, load_gate, load_suite

# The keys of a gate_result event (engine.events); the result file adds `breakdown`, `stats`, `source`.
EVENT_KEYS = tuple(GateResultEvent.model_fields)  # what of a result goes into its gate_result event


def resolve_gates(suite: str | None, names: list[str], chat_template: bool | None = None) -> list[Gate]:
    """The suite's gates, then the named ones (names or .toml paths), each once, in that order; a gate whose
    scorer cannot run here is replaced by its fallback (see available_gate). `chat_template` set: every gate
    renders its prompts that way (lm-eval's --apply_chat_template for the whole run)."""
    gates = load_suite(suite) if suite else []
    for name in names:
        gates.append(load_gate(name))
    gates = [available_gate(g) for g in gates]
    if chat_template is not None:
        gates = [with_chat_template(g, chat_template) for g in gates]
    seen, unique = set(), []
    for gate in gates:
        if gate.name not in seen:
            seen.add(gate.name)
            unique.append(gate)
    if not unique:
        raise SpecError("no gates to run: name a suite or at least one gate")
    return unique


def with_chat_template(gate: Gate, on: bool) -> Gate:
    """The gate with its prompts in (or out of) the chat template; its template hash, so its fingerprint, follows."""
    if gate.chat_template == on:
        return gate
    return gate.model_copy(update={"chat_template": on, "fewshot_as_multiturn": gate.fewshot_as_multiturn and on})


def available_gate(gate: Gate) -> Gate:
    """The gate, or its `options.fallback` gate when the gate's scorer cannot run on this machine
    (pl_grammar without a LanguageTool → pl_spelling): a different gate name, metric and fingerprint."""
    fallback = gate.options.get("fallback")
    check = get_scorer(gate.scorer, str(gate.source)).unavailable
    if fallback and check and check(gate):
        return available_gate(load_gate(fallback))
    return gate


def base_first(subjects: list[SubjectSpec], gates: list[str]) -> list[SubjectSpec]:
    """The run's one base subject, then the others: pairwise gates compare every subject with the base."""
    bases = [s for s in subjects if s.kind == "base"]
    if len(bases) != 1:
        found = f"{len(bases)} ({', '.join(s.name for s in bases)})" if bases else "none"
        raise SpecError(f"gate {gates[0]} compares every subject with the base: the run needs exactly one subject "
                        f"with kind = \"base\" (found {found})")
    return bases + [s for s in subjects if s is not bases[0]]


def write_json(path: Path, data) -> None:
    """Write whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(data, ensure_ascii=False, indent=1) + "\n", encoding="utf-8")
    os.replace(tmp, path)


def result_path(out_dir: Path, subject: dict, gate: str, several: bool) -> Path:
    folder = Path(out_dir) / "results" / (subject["id"] if several else "")
    return folder / f"gate_{gate}.json"


def _breakdown(items: GateItems, outcomes: list[float]) -> dict:
    groups: dict[str, list[float]] = {}
    for row, outcome in zip(items.rows, outcomes):
        groups.setdefault(str(row.get(items.gate.breakdown)), []).append(outcome)
    return {key: {"n": len(v), "mean": sum(v) / len(v)} for key, v in sorted(groups.items())}


def score_gate(items: GateItems, backend, subject: dict, batch_size: int, allow_code_exec: bool,
               progress: Callable[[int, int], None], *, judge=None, is_base: bool = False,
               shared: dict | None = None) -> tuple[dict, list[dict]]:
    """One gate on one loaded subject: (the result, the per-item audit records).

    `judge` (JudgeSettings) is the run's judge endpoint, `is_base` says this subject is the run's base,
    `shared` is the run's dict that pairwise scorers keep the base's answers in.
    """
    gate = items.gate
    scorer = get_scorer(gate.scorer, str(gate.source))
    started = time.perf_counter()
    out = scorer.run(items, backend, ScoreSettings(batch_size, allow_code_exec, progress, judge, subject, is_base,
                                                   {} if shared is None else shared))
    elapsed = time.perf_counter() - started
    n = len(items.rows)
    outcomes = out.per_item.get(gate.primary) or out.per_item.get("acc") or []
    fingerprint = {"dataset_hash": items.content_hash, "n": n, "seed": gate.seed, "template_hash": gate.template_hash(),
                   "scorer": gate.scorer, "scorer_version": scorer.version, "backend": backend.name,
                   "chat_template": gate.chat_template,
                   "dtype": backend.dtype, "batch_size": batch_size, "bos": gate.bos, "fewshot": gate.fewshot.k,
                   "harness_version": engine.__version__, **getattr(backend, "fingerprint", {}),
                   **({"fixture": True} if items.fixture else {}), **out.fingerprint}
    result = {"subject": subject, "gate": gate.name, "axis": gate.axis, "scorer": gate.scorer,
              "metrics": {m: out.metrics[m] for m in gate.metrics}, "primary": gate.primary,
              "higher_is_better": gate.higher_is_better, "stderr": {m: out.stderr.get(m, 0.0) for m in gate.metrics},
              "n": n, "outcomes": outcomes, "preds": out.preds, "golds": out.golds, "fingerprint": fingerprint,
              "tolerance_pp": gate.tolerance_pp, "elapsed_s": round(elapsed, 3),
              "items_per_s": round(n / elapsed, 3) if elapsed > 0 else None,
              "stats": out.stats, "source": items.source}
    if gate.breakdown:
        result["breakdown"] = _breakdown(items, outcomes)
    samples = [{"subject": subject["id"], "gate": gate.name, **s} for s in out.samples]
    return result, samples


def gate_file(gate: Gate, files: dict[str, str]) -> str | None:
    """The run's local file for the gate: named by the gate's name, else by its user-data key."""
    key = gate.dataset.user_data_key
    return files.get(gate.name) or (files.get(key) if key else None)


def check_subjects(subjects: list[SubjectSpec], device: str) -> None:
    """Loading options this machine cannot honour are refused before any model or data is loaded."""
    from engine.gates.hf_backend import check_loading

    for spec in subjects:
        if spec.backend == "hf":
            check_loading(spec.quantization, spec.device_map, device, spec.adapter, spec.scale, f"subject {spec.name}")


def prepare_items(gates: list[Gate], files: dict[str, str] | None = None,
                  fewshot_files: dict[str, str] | None = None, limit: int = 0, allow_code_exec: bool = False,
                  device: str = "cpu", judge=None, fixtures: bool = False) -> list[GateItems]:
    """Check the run's settings and load every gate's items (SpecError on the first problem). `fixtures`: gates
    with no file named score their tiny shipped fixture (tests, the demo) instead of the real data."""
    check_device(device)
    files, fewshot_files = files or {}, fewshot_files or {}
    names = {g.name for g in gates}
    keys = names | {g.dataset.user_data_key for g in gates if g.dataset.user_data_key}
    for key in files:
        if key not in keys:
            raise SpecError(f"local file given for {key!r}, which no gate of this run reads (known: "
                            f"{', '.join(sorted(keys))})")
    for key in fewshot_files:
        if key not in names:
            raise SpecError(f"local file given for gate {key!r}, which is not in this run ({', '.join(sorted(names))})")
    for gate in gates:
        if get_scorer(gate.scorer, str(gate.source)).runs_code:
            refuse_unless_allowed(gate, allow_code_exec)
        if get_scorer(gate.scorer, str(gate.source)).needs_judge and (judge or judge_from_env()) is None:
            raise SpecError(f"gate {gate.name}: needs a judge endpoint: set [judge] url and model in the job "
                            f"(or {URL_ENV} and {MODEL_ENV} in the environment)")
    return [load_items(g, gate_file(g, files), limit, fewshot_files.get(g.name), fixtures) for g in gates]


def check_local_files(subjects: list[SubjectSpec]) -> None:
    """Every subject's local model, adapter and GGUF path exists: the cheapest check, made before any data set
    or server is asked for anything. A model or adapter written as a Hugging Face id (`org/name`) is left
    to the loader; one written as a path (absolute, `./`, `../`, `~`) must be there."""
    def looks_local(value: str) -> bool:
        return value.startswith(("/", "./", "../", "~"))

    for spec in subjects:
        named = [("model", spec.model), ("adapter", spec.adapter)]
        for field, value in named:
            if value and looks_local(value) and not Path(value).expanduser().exists():
                raise SpecError(f"subject {spec.name!r}: {field} {value} does not exist")
        if spec.file and not Path(spec.file).expanduser().is_file():
            raise SpecError(f"subject {spec.name!r}: GGUF file {spec.file} does not exist")


def check_endpoints(subjects: list[SubjectSpec], gates: list[Gate]) -> None:
    """Every endpoint subject's server is there with its model, and returns prompt log-probabilities when a gate
    scores likelihoods: else one line (SpecError), before any model is loaded or result written."""
    from engine.gates.endpoint import EndpointBackend

    likelihood = any(get_scorer(g.scorer, str(g.source)).likelihood for g in gates)
    for spec in subjects:
        if spec.backend == "endpoint":
            backend = EndpointBackend(spec.endpoint)
            if likelihood:
                backend.check_likelihood()


def run_gates(subjects: list[SubjectSpec], gates: list[Gate], out_dir: str | os.PathLike, *,
              files: dict[str, str] | None = None, fewshot_files: dict[str, str] | None = None, limit: int = 0,
              device: str = "cpu", batch_size: int = 8, allow_code_exec: bool = False,
              samples_path: str | os.PathLike | None = None,
              progress: Callable[[int, int, str], None] | None = None,
              on_result: Callable[[dict], None] | None = None,
              log: Callable[[str], None] | None = None, judge: JudgeSettings | None = None,
              fixtures: bool = False) -> list[dict]:
    """Score every subject on every gate; returns the results (also written under OUT/results/).

    Every gate's data is loaded and checked before any model, so a bad file fails in seconds.
    `progress(done, total, label)` is called once per batch, `on_result(result)` once per pair.
    `judge` defaults to SLAYER_JUDGE_URL / SLAYER_JUDGE_MODEL from the environment. With a pairwise gate
    (style_judge, en_chat) the subject with kind = "base" is scored first and the others are compared with it.
    """
    judge = judge or judge_from_env()
    check_local_files(subjects)
    check_device(device)
    check_subjects(subjects, device)
    loaded = prepare_items(gates, files, fewshot_files, limit, allow_code_exec, device, judge, fixtures)
    check_endpoints(subjects, gates)
    pairwise = [i.gate.name for i in loaded if get_scorer(i.gate.scorer).pairwise]
    if pairwise:
        subjects = base_first(subjects, pairwise)
    results, audit, shared = [], [], {}
    for spec in subjects:
        subject = spec.subject()
        backend = open_backend(spec, device)
        try:
            for items in loaded:
                label = f"{spec.name} · {items.gate.name}"
                report = (lambda done, total, label=label: progress(done, total, label)) if progress else \
                    (lambda done, total: None)
                result, samples = score_gate(items, backend, subject, batch_size, allow_code_exec, report, judge=judge,
                                             is_base=spec.kind == "base", shared=shared)
                write_json(result_path(Path(out_dir), subject, items.gate.name, len(subjects) > 1), result)
                results.append(result)
                if samples_path:
                    audit.extend(samples)
                    _write_lines(Path(samples_path), audit)
                if on_result:
                    on_result({k: result[k] for k in EVENT_KEYS})
                if log:
                    m = result["metrics"][items.gate.primary]
                    log(f"{label}: {items.gate.primary} = {m:.4f} (n = {result['n']}, "
                        f"{result['items_per_s']} items/s)")
        finally:
            backend.close()
    return results


def _write_lines(path: Path, records: list[dict]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        for record in records:
            f.write(json.dumps(record, ensure_ascii=False) + "\n")
    os.replace(tmp, path)
