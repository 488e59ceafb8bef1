"""The `style` scorer: does the subject prefer the natural answer of a style pair over the stiff one?

Rows hold `prompt`, `chosen` (natural) and `rejected` (stiff, calqued or bureaucratic). Each answer is
scored as the continuation of the prompt (in the subject's chat template with `options.chat`), as the
likelihood scorer scores a choice; the preference compares log-likelihoods per character of the answer,
so long and short answers and different tokenizers compare fairly. acc = share of pairs where the
chosen answer wins; margin = mean (chosen − rejected) in nats per character.
"""

from __future__ import annotations

from engine.errors import SpecError
from engine.gates.answers import gate_prompts, rows_hash
from engine.gates.likelihood import continuation_loglikelihoods
from engine.gates.metrics import summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer

COLUMNS = ["prompt", "chosen", "rejected"]


@scorer("style", version="1", metrics=lambda gate: {"acc", "margin"}, likelihood=True, columns=tuple(COLUMNS))
def score_style(items, backend, settings: ScoreSettings) -> ScoreOutput:
    gate = items.gate
    for index, row in zip(items.indices, items.rows):
        missing = [c for c in COLUMNS if not isinstance(row.get(c), str)]
        if missing:
            raise SpecError(f"{items.source}: gate {gate.name}: row {index + 1}: missing text column {missing[0]!r}")
    answers = [[gate.choice_delimiter + row["chosen"], gate.choice_delimiter + row["rejected"]] for row in items.rows]
    lls = continuation_loglikelihoods(gate_prompts(items, backend), answers, backend, gate.bos, settings)
    per_char = [(c / max(1, len(row["chosen"])), r / max(1, len(row["rejected"])))
                for (c, r), row in zip(lls, items.rows)]
    per_item = {"acc": [float(c > r) for c, r in per_char], "margin": [c - r for c, r in per_char]}
    metrics, stderr = summarize(per_item)
    samples = [{"index": idx, "loglikelihoods": ll, "preferred": int(p)}
               for idx, ll, p in zip(items.indices, lls, per_item["acc"])]
    return ScoreOutput(metrics, stderr, per_item, samples=samples,
                       stats={"tokens_computed": backend.tokens_computed},
                       fingerprint={"dataset_hash": rows_hash(items.rows, COLUMNS), "normalisation": "per_character",
                                    "chat_template": gate.chat_template})
