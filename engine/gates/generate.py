"""The `generate` scorer: greedy completion, cut at stop strings, answers extracted by regex, exact match.

Extraction and comparison follow lm-eval: the first (or last) regex match, its first non-empty
group; `ignore` regexes are deleted from answer and target alike (GSM8K: commas, `$`, everything up
to `#### `, a trailing `.`) before comparing. Gates with choices (the leaderboard's `_regex`
variants) also report which choice the answer names (-1 for none: always wrong).
"""

from __future__ import annotations

from engine.gates import answers as prompting
from engine.gates.extract import choice_index, extract, normalize
from engine.gates.metrics import summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer


def metric_name(extractor) -> str:
    return f"exact_match_{extractor.name}" if extractor.name else "exact_match"


def metric_names(gate) -> set[str]:
    if gate.generate is None:
        return set()
    return {metric_name(e) for e in gate.generate.extract} or {"exact_match"}


@scorer("generate", version="1", metrics=metric_names)
def score_generate(items, backend, settings: ScoreSettings) -> ScoreOutput:
    gate, spec = items.gate, items.gate.generate
    start_tokens = backend.tokens_computed
    completions = prompting.completions(items, backend, settings)
    targets = [normalize(gate.label_text(row), spec.ignore, spec.ignore_case) for row in items.rows]
    per_item: dict[str, list[float]] = {}
    answers: dict[str, list[str]] = {}
    for extractor in spec.extract:
        name = metric_name(extractor)
        answers[name] = [extract(c, extractor.regex, extractor.take) for c in completions]
    if not spec.extract:
        answers["exact_match"] = [c.strip() for c in completions]
    for name, found in answers.items():
        per_item[name] = [float(normalize(a, spec.ignore, spec.ignore_case) == t) for a, t in zip(found, targets)]
    preds = golds = None
    if gate.has_choices:
        first = next(iter(answers.values()))
        preds = [choice_index(a, gate.choices_for(row)) for a, row in zip(first, items.rows)]
        golds = items.golds()
    metrics, stderr = summarize(per_item)
    samples = []
    for k, index in enumerate(items.indices):
        record = {"index": index, "correct": {name: per_item[name][k] for name in per_item}}
        if spec.extract:  # extracted answers are short (a number, a letter); raw completions never leave
            record["answers"] = {name: answers[name][k] for name in answers}
        if preds is not None:
            record.update(pred=preds[k], gold=golds[k])
        samples.append(record)
    return ScoreOutput(metrics, stderr, per_item, preds, golds, samples,
                       {"tokens_computed": backend.tokens_computed - start_tokens})
