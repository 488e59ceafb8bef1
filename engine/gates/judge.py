"""The `judge` scorer: pairwise win rate of a subject's answers against the run's base, decided by a judge model.

Every item is judged twice, the subject's answer first (as A) and second (as B), so the judge's position
bias cancels. Per order: win 1, tie ½, loss 0; an item scores the mean of its parsed verdicts (½ when
neither parses). A reply that holds no verdict is counted in `unparseable_rate`, never an error. The base
itself scores ½ on every item without calls (a self-comparison is a tie), so its row in a delta table is
the reference the win rate moves from. Prompts come from the gate: `options.judge_system` and
`options.judge_prompt` with {{question}}, {{answer_a}}, {{answer_b}}.
"""

from __future__ import annotations

from engine.gates.answers import generate_answers
from engine.gates.judge_client import JudgeClient, chat_messages, judge_fingerprint, judge_prompts, parse_choice
from engine.gates.metrics import summarize
from engine.gates.scoring import ScoreOutput, ScoreSettings, scorer
from engine.gates.template import render

METRICS = {"win_rate", "tie_rate", "unparseable_rate"}
SCHEMA = {"type": "object", "properties": {"verdict": {"type": "string", "enum": ["A", "B", "tie"]}},
          "required": ["verdict"], "additionalProperties": False}
NAMES = {"a": "A", "b": "B", "c": "tie", "tie": "tie"}


def parse_verdict(reply: str | None) -> str | None:
    """"A", "B" or "tie" from a judge reply ({"verdict": …}, the last [[A]]/[[B]]/[[C]], a bare word); else None."""
    return parse_choice(reply, "verdict", NAMES)


def messages(system: str, prompt: str, question: str, answer_a: str, answer_b: str) -> list[dict]:
    return chat_messages(system, render(prompt, {"question": question, "answer_a": answer_a, "answer_b": answer_b}))


def order_score(verdict: str | None, subject_is: str) -> float | None:
    if verdict is None:
        return None
    return 0.5 if verdict == "tie" else float(verdict == subject_is)


@scorer("judge", version="1", metrics=lambda gate: METRICS, pairwise=True, needs_judge=True)
def score_judge(items, backend, settings: ScoreSettings) -> ScoreOutput:
    gate, n = items.gate, len(items.rows)
    answers = generate_answers(items, backend, settings)
    system, prompt = judge_prompts(gate)
    fingerprint = judge_fingerprint(settings.judge, system, prompt, SCHEMA)
    if settings.is_base:
        settings.shared[("answers", gate.name)] = (settings.subject["id"], answers)
        per_item = {"win_rate": [0.5] * n, "tie_rate": [1.0] * n, "unparseable_rate": [0.0] * n}
        metrics, stderr = summarize(per_item)
        return ScoreOutput(metrics, stderr, per_item, samples=[{"index": i, "self": True} for i in items.indices],
                           stats={"self_comparison": True},
                           fingerprint={**fingerprint, "versus": settings.subject["id"]})
    base_id, base_answers = settings.shared[("answers", gate.name)]
    client = JudgeClient(settings.judge)
    bodies = []
    for question, mine, theirs in zip(items.prompts(), answers, base_answers):
        bodies.append(client.body(messages(system, prompt, question, mine, theirs), SCHEMA))  # subject is A
        bodies.append(client.body(messages(system, prompt, question, theirs, mine), SCHEMA))  # subject is B
    replies = client.complete_all(bodies, lambda done: settings.progress(done * n // len(bodies), n))
    verdicts = [parse_verdict(r) for r in replies]
    per_item: dict[str, list[float]] = {"win_rate": [], "tie_rate": [], "unparseable_rate": []}
    samples = []
    for k, index in enumerate(items.indices):
        pair = verdicts[2 * k:2 * k + 2]
        scores = [s for s in (order_score(pair[0], "A"), order_score(pair[1], "B")) if s is not None]
        per_item["win_rate"].append(sum(scores) / len(scores) if scores else 0.5)
        per_item["tie_rate"].append(pair.count("tie") / 2)
        per_item["unparseable_rate"].append(pair.count(None) / 2)
        samples.append({"index": index, "verdicts": pair, "win": per_item["win_rate"][-1]})
    metrics, stderr = summarize(per_item)
    tally = {order: {str(v): verdicts[start::2].count(v) for v in ("A", "B", "tie", None)}
             for order, start in (("subject_as_A", 0), ("subject_as_B", 1))}
    stats = {"unparseable": verdicts.count(None), "verdicts": tally,
             **{f"judge_{k}": v for k, v in client.counts.items()}}
    return ScoreOutput(metrics, stderr, per_item, samples=samples, stats=stats,
                       fingerprint={**fingerprint, "versus": base_id})
