"""The `export.gguf` job kind: merge a subject into its base, convert to GGUF, quantise, verify every file."""

from __future__ import annotations

import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

from engine.export.config import ExportConfig
from engine.jobs import job_kind
from engine.subjects import Recipe, make_subject

EXAMPLE = '''# export.gguf: the chosen subject (base + adapter at a scale, or a TIES / DARE merge) as GGUF files.
# Merged HF weights go to outputs/merged, GGUF files and verify.json to outputs/gguf. Every file is loaded
# in llama-cpp-python and compared with the HF model on a fixed probe set (KL divergence, top-1 agreement).
kind = "export.gguf"
name = "slayer-gguf"

model = "tiny:qwen3"                  # base model: a local HF directory with safetensors weights (tiny:qwen3:
                                      # the embedded tiny model), e.g. "/models/Qwen3.5-27B"
# adapter = "runs/sft/outputs/adapter" # PEFT LoRA / DoRA adapter; without one the base itself is exported
# scale = 0.5                         # adapter scale: W + scale·(W_adapted − W)
outtype = "f16"                       # the converted file: f16 | bf16 | f32 (quants are made from it)
quants = ["Q8_0"]                     # llama.cpp quantisations, e.g. ["Q8_0", "Q4_K_M"]
verify = true                         # KL and top-1 of every file against the HF model
probe_tokens = 64                     # each probe is cut to this many tokens
device = "cpu"                        # where the HF reference runs (cuda on a GPU box)
threads = 0                           # llama.cpp threads (0: its default)
lora_gguf = false                     # also write the adapter as a llama.cpp LoRA GGUF (plain LoRA only, not DoRA)
# converter = "/opt/llama.cpp"        # a llama.cpp checkout; default: the llama-cpp-python sdist copy (cached)
# converter_args = []                 # extra convert_hf_to_gguf.py arguments (MTP needs none: a checkpoint's
                                      # MTP head goes into the GGUF as its NextN block, --no-mtp when it has none)
# pre_tokenizer = "qwen35"            # for a BPE tokenizer llama.cpp does not know by hash (default: declared
                                      # by the model folder); tokenizer_match in verify.json checks it
# probes = "my_probes.txt"            # one probe per line (default: assets/export/probes.txt)

# [merge]                             # a TIES / DARE merge instead of a plain scale
# method = "ties"                     # ties | dare_ties | dare_linear | task_arithmetic
# density = 0.5                       # fraction of the task vector kept
# seed = 0                            # DARE's random drop
'''


@contextmanager
def _timed(timings: dict, key: str):
    started = time.perf_counter()
    yield
    timings[key] = round(time.perf_counter() - started, 3)


def _recipe(config: ExportConfig) -> Recipe:
    """The recipe of the exported subject (base + adapter at a scale, or a merge), as the hf backend sees it."""
    return Recipe.hf(config.model, config.adapter, config.scale, merge=config.merge)


def _gguf_subject(name: str, kind: str, path: Path) -> dict:
    """The subject a `gate` job scoring this file with the llama_cpp backend records, so its results join it."""
    from engine.gates.backend import SubjectSpec

    return SubjectSpec(name=name, kind=kind, backend="llama_cpp", file=str(path.resolve())).subject()


@dataclass
class _File:
    """One written GGUF file: what it is, which HF model it must match, how llama.cpp loads it."""

    path: Path
    quant: str
    kind: str
    reference: Path
    subject: dict | None = None
    llama_args: dict = field(default_factory=dict)
    extra: dict = field(default_factory=dict)


@job_kind("export.gguf", ExportConfig, "Merge a subject into its base, convert to GGUF, quantise, and verify "
          "every file against the HF model (KL, top-1)", EXAMPLE)
def run_export(config: ExportConfig, ctx) -> None:
    from engine.export.converter import HF_SCRIPT, converter_dir, run_converter
    from engine.export.lora import check_lora_exportable, export_lora
    from engine.export.quantize import quantize
    from engine.export.source import conversion_plan
    from engine.export.verify import fidelity, hf_reference, read_probes
    from engine.gates.backend import check_device
    from engine.gates.run import write_json
    from engine.merge.adapter import load_adapter
    from engine.merge.shards import local_model_dir
    from engine.merge.stream import merge_model

    check_device(config.device)
    stem, base = config.file_stem or Path(config.model).name, local_model_dir(config.model)
    if config.lora_gguf:
        check_lora_exportable(config.adapter)
    texts, probes_sha = read_probes(config.probes) if config.verify else ([], None)
    llama_dir = converter_dir(config.converter, ctx.log)
    out = ctx.outputs / "gguf"
    out.mkdir(parents=True, exist_ok=True)
    outtype = config.outtype.upper()
    timings: dict[str, float] = {}
    steps = ["merge"] * bool(config.adapter) + ["convert"] + config.quants + ["lora"] * config.lora_gguf + \
        ["verify"] * config.verify
    done = iter(range(1, len(steps) + 1))

    def convert(model_dir: Path, target: Path) -> tuple[Path, dict]:
        """The converted file and how: MTP and pre-tokenizer decisions (engine.export.source)."""
        tmp = target.with_name(target.name + ".tmp")
        extra, how = conversion_plan(model_dir, config.converter_args, config.pre_tokenizer)
        # None when the converter recognised the tokenizer itself (by its hash, or it is not BPE)
        how["pre_tokenizer"] = run_converter(
            llama_dir, HF_SCRIPT, [str(model_dir), "--outtype", config.outtype, "--outfile", str(tmp),
                                   *config.converter_args, *extra], target.with_suffix(".log"), how["pre_tokenizer"])
        if how["pre_tokenizer"]:
            ctx.log(f"{target.name}: llama.cpp's converter does not know this tokenizer's hash; converted with the "
                    f"declared pre-tokenizer {how['pre_tokenizer']['pre_tokenizer']!r} (tokenizer_match checks it)")
        return tmp.replace(target), how

    source = base
    if config.adapter:
        merge = config.merge
        with _timed(timings, "merge_s"):
            source = merge_model(base, load_adapter(config.adapter), ctx.outputs / "merged",
                                 merge.method if merge else "task_arithmetic", config.scale,
                                 merge.density if merge else 1.0, merge.seed if merge else 0)
        ctx.artifact(source, "hf_model", subject=make_subject(f"{stem} merged", "merge", _recipe(config)))
        ctx.progress(next(done), len(steps), "steps", "merged")
    def quant_file(quant: str) -> _File:
        path = out / f"{stem}-{quant}.gguf"
        return _File(path, quant, "gguf", source, _gguf_subject(f"{stem} {quant}", "quant", path),
                     extra={"source": _recipe(config).as_dict()})

    files = [quant_file(outtype)]
    with _timed(timings, "convert_s"):
        _, conversion = convert(source, files[0].path)
    files[0].extra["conversion"] = conversion
    ctx.progress(next(done), len(steps), "steps", f"converted to {config.outtype}")
    for quant in config.quants:
        files.append(quant_file(quant))
        with _timed(timings, f"quantize_{quant}_s"):
            quantize(files[0].path, files[-1].path, quant, config.threads)
        ctx.progress(next(done), len(steps), "steps", f"quantised {quant}")
    if config.lora_gguf:
        # llama.cpp applies the adapter at load time, so it is checked on a GGUF of the unmerged base
        base_file, _ = convert(base, out / f"{base.name}-base-{outtype}.gguf")
        files.append(_File(base_file, outtype, "gguf", base, _gguf_subject(f"{base.name} {outtype}", "base", base_file),
                           extra={"source": Recipe.hf(config.model).as_dict()}))
        lora = export_lora(llama_dir, base, config.adapter, out / f"{stem}-lora-{outtype}.gguf", config.outtype)
        files.append(_File(lora, f"LORA-{outtype}", "gguf_lora", source,
                           llama_args={"lora_path": str(lora), "lora_scale": config.scale},
                           extra={"base_file": base_file.name, "lora_scale": config.scale}))
        ctx.progress(next(done), len(steps), "steps", "adapter GGUF written")

    checks: dict[Path, dict] = {}
    if config.verify:
        references = {}
        with _timed(timings, "verify_s"):
            for f in files:
                if f.reference not in references:
                    references[f.reference] = hf_reference(f.reference, texts, config.probe_tokens, config.device)
                loaded = base_file if f.kind == "gguf_lora" else f.path
                checks[f.path] = fidelity(loaded, references[f.reference], config.threads, **f.llama_args)
        ctx.progress(next(done), len(steps), "steps", "verified")

    report = {"reference": str(source), "probes": {"file": config.probes or "assets/export/probes.txt",
                                                   "sha256": probes_sha, "count": len(texts),
                                                   "max_tokens": config.probe_tokens},
              "conversion": conversion, "timings_s": timings, "files": []}
    for f in files:
        entry = {"file": f.path.name, "quant": f.quant, "bytes": f.path.stat().st_size, "reference": str(f.reference),
                 "subject": f.subject["id"] if f.subject else None, **f.extra, **checks.get(f.path, {})}
        report["files"].append(entry)
        ctx.artifact(f.path, f.kind, quant=f.quant, kl=entry.get("kl"), top1=entry.get("top1"), subject=f.subject,
                     verification={k: entry[k] for k in ("kl_max", "positions", "tokenizer_match") if k in entry},
                     **f.extra)
        if "kl" in entry:
            ctx.log(f"{f.path.name}: {entry['bytes'] / 2**20:.2f} MiB, KL {entry['kl']:.2e}, top-1 "
                    f"{entry['top1']:.3f}, tokenizer match {entry['tokenizer_match']:.2f}")
    for key, seconds in timings.items():
        ctx.metric(f"export/{key}", seconds)
    write_json(out / "verify.json", report)
    ctx.artifact(out / "verify.json", "gguf_report")
