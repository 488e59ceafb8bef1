"""The `ifeval` scorer: IFEval prompt- and instruction-level accuracy, strict and loose, by lm-eval's own checkers.

Rows have IFEval's columns (key, prompt, instruction_id_list, kwargs). The subject answers in its chat
template; `lm_eval.tasks.ifeval.utils.process_results` judges each answer. The checkers count sentences
with nltk's Punkt `punkt_tab`, which is a download: we train one instead, with nltk's Punkt trainer on
text shipped in assets/gates/data, cache it, and put it first on nltk's data path (NLTK_DATA), so every
box splits sentences the same way, online or not. langdetect (the response-language check) is seeded.
"""

from __future__ import annotations

import hashlib
import os
from importlib import resources
from pathlib import Path

from engine.errors import SpecError
from engine.gates.answers import generate_answers, rows_hash
from engine.gates.metrics import mean, mean_stderr, summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer

COLUMNS = ["key", "prompt", "instruction_id_list", "kwargs"]
PROMPT_METRICS = ("prompt_level_strict_acc", "prompt_level_loose_acc")
INSTRUCTION_METRICS = ("inst_level_strict_acc", "inst_level_loose_acc")
PUNKT_TEXT = "punkt_train_en.txt"
PUNKT_FILES = ("collocations.tab", "sent_starters.txt", "abbrev_types.txt", "ortho_context.tab")


def punkt_training_text() -> str:
    return (Path(str(resources.files("assets"))) / "gates" / "data" / PUNKT_TEXT).read_text(encoding="utf-8")


def build_punkt(root: Path, text: str) -> None:
    """Train Punkt on `text` and write nltk's punkt_tab files under root/tokenizers/punkt_tab/english/."""
    from nltk.tabdata import TabEncoder
    from nltk.tokenize.punkt import PunktTrainer

    trainer = PunktTrainer()
    trainer.INCLUDE_ALL_COLLOCS = True
    trainer.train(text, finalize=True)
    params, enc = trainer.get_params(), TabEncoder()
    contents = (enc.tups2tab(params.collocations), enc.set2txt(params.sent_starters),
                enc.set2txt(params.abbrev_types), enc.ivdict2tab(params.ortho_context))
    target = root / "tokenizers" / "punkt_tab" / "english"
    tmp = target.with_name(f".english-{os.getpid()}")
    tmp.mkdir(parents=True, exist_ok=True)
    for name, content in zip(PUNKT_FILES, contents):
        (tmp / name).write_text(content, encoding="utf-8", newline="")
    try:
        os.replace(tmp, target)
    except OSError:  # another process built it first
        if not (target / PUNKT_FILES[-1]).is_file():
            raise


def use_trained_punkt() -> str:
    """Make nltk find our punkt_tab first (built once per training text); returns its fingerprint name."""
    import nltk

    from engine.export.converter import cache_root

    text = punkt_training_text()
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    root = cache_root() / "nltk_data" / digest
    if not (root / "tokenizers" / "punkt_tab" / "english" / PUNKT_FILES[-1]).is_file():
        build_punkt(root, text)
    if str(root) not in nltk.data.path:
        nltk.data.path.insert(0, str(root))
    os.environ["NLTK_DATA"] = os.pathsep.join(p for p in (str(root), os.environ.get("NLTK_DATA")) if p)
    return f"trained:{digest}"


def checkers():
    """lm-eval's IFEval module, imported only after our punkt_tab is on the path (its import looks for one)."""
    import langdetect

    from lm_eval.tasks.ifeval import instructions_registry, utils

    langdetect.DetectorFactory.seed = 0
    return utils, instructions_registry.INSTRUCTION_DICT


def check_rows(items, known) -> None:
    for index, row in zip(items.indices, items.rows):
        where = f"{items.source}: gate {items.gate.name}: row {index + 1}"
        missing = [c for c in COLUMNS if c not in row]
        if missing:
            raise SpecError(f"{where}: missing column {missing[0]!r}")
        ids, kwargs = row["instruction_id_list"], row["kwargs"]
        if not isinstance(ids, list) or not isinstance(kwargs, list) or len(ids) != len(kwargs):
            raise SpecError(f"{where}: instruction_id_list and kwargs must be lists of the same length")
        unknown = [i for i in ids if i not in known]
        if unknown:
            raise SpecError(f"{where}: unknown instruction {unknown[0]!r}")


@scorer("ifeval", version="1", metrics=lambda gate: set(PROMPT_METRICS) | set(INSTRUCTION_METRICS),
        columns=tuple(COLUMNS))
def score_ifeval(items, backend, settings: ScoreSettings) -> ScoreOutput:
    from importlib.metadata import version

    punkt = use_trained_punkt()
    utils, known = checkers()
    check_rows(items, known)
    answers = generate_answers(items, backend, settings)
    results = [utils.process_results(row, [answer]) for row, answer in zip(items.rows, answers)]
    per_item = {m: [float(r[m]) for r in results] for m in PROMPT_METRICS}
    metrics, stderr = summarize(per_item)
    for name in INSTRUCTION_METRICS:  # over all instructions pooled, as lm-eval aggregates them
        flat = [float(v) for r in results for v in r[name]]
        metrics[name], stderr[name] = mean(flat), mean_stderr(flat)
    samples = [{"index": i, "strict": r["inst_level_strict_acc"], "loose": r["inst_level_loose_acc"]}
               for i, r in zip(items.indices, results)]
    return ScoreOutput(metrics, stderr, per_item, samples=samples,
                       stats={"instructions": sum(len(r["inst_level_strict_acc"]) for r in results),
                              "empty_answers": sum(1 for a in answers if not a)},
                       fingerprint={"dataset_hash": rows_hash(items.rows, COLUMNS), "punkt": punkt,
                                    "lm_eval": version("lm_eval"), "chat_template": items.gate.chat_template})
