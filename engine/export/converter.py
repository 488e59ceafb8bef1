"""llama.cpp's Python converters: found in the operator's checkout, or fetched once from the llama-cpp-python sdist.

The default copy comes from the source distribution of the installed llama-cpp-python version (so the
converter writes what the installed runtime reads), via `pip download`, and is cached under
$SLAYER_HOME/cache (else ~/.cache/slayer). Only the converters, `conversion/` and `gguf-py/` are unpacked.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
from pathlib import Path

from engine.errors import SpecError

SDIST = "llama-cpp-python"
VENDOR = "vendor/llama.cpp/"
HF_SCRIPT = "convert_hf_to_gguf.py"
LORA_SCRIPT = "convert_lora_to_gguf.py"


def cache_root() -> Path:
    home = os.environ.get("SLAYER_HOME")
    return Path(home) / "cache" if home else Path.home() / ".cache" / "slayer"


def _installed_version() -> str | None:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(SDIST)
    except PackageNotFoundError:
        return None


def _wanted(member: str) -> str | None:
    """The path under vendor/llama.cpp/ of an sdist member worth unpacking, else None."""
    _, _, rest = member.partition("/")
    if not rest.startswith(VENDOR):
        return None
    rel = rest[len(VENDOR):]
    if ("/" not in rel and rel.endswith(".py")) or rel.startswith(("conversion/", "gguf-py/")):
        return rel
    return None


def fetch_converters(log=print) -> Path:
    """The cached llama.cpp converter folder for the installed llama-cpp-python; downloaded on first use."""
    version = _installed_version()
    target = cache_root() / "llama.cpp" / (version or "latest")
    if (target / HF_SCRIPT).is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    requirement = f"{SDIST}=={version}" if version else SDIST
    log(f"fetching llama.cpp's converters from the {requirement} source distribution (once; cached in {target})")
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        done = subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:",
                               "--dest", tmp, requirement], capture_output=True, text=True)
        archives = list(Path(tmp).glob("*.tar.gz"))
        if done.returncode != 0 or not archives:
            raise SpecError(f"pip download {requirement}: failed ({_tail(done.stderr or done.stdout)}); set "
                            f"`converter` to a llama.cpp checkout instead")
        unpacked = Path(tmp) / "llama.cpp"
        with tarfile.open(archives[0]) as tar:
            for member in tar.getmembers():
                rel = _wanted(member.name)
                if rel and member.isfile():
                    dest = unpacked / rel
                    dest.parent.mkdir(parents=True, exist_ok=True)
                    with tar.extractfile(member) as src, open(dest, "wb") as out:
                        shutil.copyfileobj(src, out)
        if not (unpacked / HF_SCRIPT).is_file():
            raise SpecError(f"{archives[0].name}: no {VENDOR}{HF_SCRIPT} inside; set `converter` to a llama.cpp checkout")
        try:
            os.replace(unpacked, target)
        except OSError:  # another job cached it first
            if not (target / HF_SCRIPT).is_file():
                raise
    return target


def converter_dir(configured: str | None, log=print) -> Path:
    """The llama.cpp folder whose converters run: `configured` (checked) or the cached sdist copy."""
    if configured is None:
        return fetch_converters(log)
    path = Path(configured).expanduser()
    if not (path / HF_SCRIPT).is_file():
        raise SpecError(f"{path}: not a llama.cpp checkout (no {HF_SCRIPT})")
    return path


def _tail(text: str, lines: int = 3) -> str:
    return " | ".join(line.strip() for line in text.strip().splitlines()[-lines:]) or "no output"


# Runs a converter script with llama.cpp's BPE pre-tokenizer lookup extended: a tokenizer whose hash it does
# not know (a retrained Qwen-style BPE) gets the named known pre-tokenizer, and the fallback is noted in a file.
PRE_TOKENIZER_SHIM = """
import json, os, runpy, sys
script, pre, note = sys.argv[1:4]
sys.argv = [script, *sys.argv[4:]]
sys.path.insert(0, os.path.dirname(script))
from conversion.base import TextModel
by_hash = TextModel.get_vocab_base_pre
def get_vocab_base_pre(self, tokenizer):
    try:
        return by_hash(self, tokenizer)
    except NotImplementedError:
        with open(note, "w") as f:
            json.dump({"pre_tokenizer": pre, "hash_recognised": False}, f)
        return pre
TextModel.get_vocab_base_pre = get_vocab_base_pre
runpy.run_path(script, run_name="__main__")
"""


def run_converter(llama_cpp: Path, script: str, args: list[str], log_file: Path,
                  pre_tokenizer: str | None = None) -> dict | None:
    """Run one of llama.cpp's converter scripts with its own gguf-py first on the path; output to `log_file`.

    With `pre_tokenizer`, a BPE tokenizer whose hash the converter does not recognise is converted with that
    known pre-tokenizer; returns {"pre_tokenizer": …, "hash_recognised": False} when that happened.
    """
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(llama_cpp / "gguf-py"), env.get("PYTHONPATH")) if p)
    log_file.parent.mkdir(parents=True, exist_ok=True)
    note = log_file.with_name(log_file.name + ".pre.json")
    note.unlink(missing_ok=True)
    command = [sys.executable, str(llama_cpp / script), *args]
    if pre_tokenizer:
        command = [sys.executable, "-c", PRE_TOKENIZER_SHIM, str(llama_cpp / script), pre_tokenizer, str(note), *args]
    with open(log_file, "w", encoding="utf-8") as out:
        done = subprocess.run(command, stdout=out, stderr=subprocess.STDOUT, env=env)
    if done.returncode != 0:
        raise RuntimeError(f"{script} failed (exit {done.returncode}): "
                           f"{_tail(log_file.read_text(encoding='utf-8', errors='replace'))}")
    if not note.is_file():
        return None
    fallback = json.loads(note.read_text(encoding="utf-8"))
    note.unlink()
    return fallback
