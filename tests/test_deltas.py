"""Delta statistics against hand-computed values, fingerprint-matched delta tables, Pareto, decisions."""

from __future__ import annotations

import math

import numpy as np
import pytest
from deltas_fixtures import flips, gate_event, ingest_events, subject

from engine.errors import SpecError
from store import Store, stats
from store.decisions import decide, decisions_for
from store.deltas import best, delta_table, pareto_frontier, rescore

Z = 1.959963984540054 + 0.8416212335729143  # z_{0.975} + z_{0.80}


# -- pure statistics ---------------------------------------------------------------------------------

def test_mcnemar_exact_and_mid_p_match_the_binomial_by_hand():
    # b=8, c=2: P(X ≤ 2 | Bin(10, ½)) = (1 + 10 + 45)/1024
    assert stats.mcnemar(8, 2) == pytest.approx((112 / 1024, 2 * (56 - 45 / 2) / 1024))
    # all 5 discordant pairs one way: exact 2/32 is not significant, mid-p 1/32 is
    assert stats.mcnemar(5, 0) == pytest.approx((1 / 16, 1 / 32))
    assert stats.mcnemar(0, 0) == (1.0, 1.0)
    assert stats.mcnemar(3, 3)[0] == 1.0


def test_detectable_drop_is_connor_with_a_rule_of_three_floor():
    assert stats.detectable_drop_binary(8, 2, 100) == pytest.approx(Z * math.sqrt(0.10 / 100))
    # no discordant pair seen: ψ is floored at 3/n, never a zero detectable drop
    assert stats.detectable_drop_binary(0, 0, 100) == pytest.approx(Z * math.sqrt(0.03 / 100))
    assert stats.detectable_drop(0.01) == pytest.approx(Z * 0.01)


def test_paired_bootstrap_agrees_with_the_analytic_paired_interval_and_is_seeded():
    base, cand = flips(100, 80, 8, 2)
    delta, lo, hi, se, _ = stats.paired_bootstrap(base, cand)
    assert delta == pytest.approx(-0.06)
    # Var(d) = ψ − δ² = 0.10 − 0.0036 for the paired difference d ∈ {−1, 0, 1}
    se_hand = math.sqrt((0.10 - 0.06**2) / 100)
    assert se == pytest.approx(se_hand, rel=0.08)
    assert lo == pytest.approx(-0.06 - 1.96 * se_hand, abs=0.012) and hi == pytest.approx(-0.06 + 1.96 * se_hand, abs=0.012)
    assert stats.paired_bootstrap(base, cand) == (delta, lo, hi, se, _)
    # every item lost: no sampling uncertainty at all
    assert stats.paired_bootstrap([1] * 10, [0] * 10)[:3] == (-1.0, -1.0, -1.0)


def test_bootstrap_by_item_type_equals_resampling_items():
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 300).astype(float)
    cand = np.where(rng.random(300) < 0.15, 1 - base, base)
    _, lo, hi, se, _ = stats.paired_bootstrap(list(base), list(cand), B=4000)
    idx = rng.integers(0, 300, (4000, 300))
    boot = (cand[idx] - base[idx]).mean(axis=1)
    assert se == pytest.approx(boot.std(ddof=1), rel=0.06)
    assert (lo, hi) == pytest.approx(tuple(np.quantile(boot, [0.025, 0.975])), abs=0.006)


def test_f1_delta_is_recomputed_from_preds_and_golds():
    golds = [1, 1, 1, 1, 0, 0, 0, 0] * 10
    base = list(golds)  # F1 = 1
    cand = [1, 1, 0, 0, 1, 0, 0, 0] * 10  # tp=2 fp=1 fn=2 per block: F1 = 4/7
    outcomes_b = [int(p == g) for p, g in zip(base, golds)]
    outcomes_c = [int(p == g) for p, g in zip(cand, golds)]
    st = stats.compare(outcomes_b, outcomes_c, base, cand, golds, f1=True)
    assert st.method == "bootstrap-f1" and st.delta == pytest.approx(4 / 7 - 1)
    assert st.ci_low < st.delta < st.ci_high < 0 and st.p_value < 0.05 and st.n == 80


def test_verdicts_know_the_direction_of_the_metric():
    assert stats.verdict(-0.4, 0.001, 0.5) == "PASS"  # within tolerance
    assert stats.verdict(-0.5, 0.001, 0.5) == "PASS"  # exactly at tolerance
    assert stats.verdict(+3.0, 0.001, 0.5) == "PASS"  # a gain
    assert stats.verdict(-3.0, 0.20, 0.5) == "WARN"  # beyond tolerance, not significant
    assert stats.verdict(-3.0, 0.01, 0.5) == "FAIL"
    # grammar errors per 100 words: more errors is the regression
    assert stats.verdict(+1.0, 0.01, 0.5, higher_is_better=False) == "FAIL"
    assert stats.verdict(-1.0, 0.01, 0.5, higher_is_better=False) == "PASS"


# -- delta tables from the store ---------------------------------------------------------------------

BASE, REF = subject("Qwen-base", "base"), subject("bielik", "reference")
CKPT = subject("ckpt-800", "checkpoint", adapter="runs/x/ckpt-800")


def _campaign(store):
    """base, a reference and a checkpoint on six gates (what each shows is in the asserts)."""
    gsm_b, gsm_c = flips(200, 160, 20, 2)  # significant math regression: b=20, c=2
    small_b, small_c = flips(20, 20, 3, 0)  # -15 pp on n=20: mid-p 0.125 → WARN
    style_b, style_c = flips(100, 50, 0, 12)  # +12 pp style
    gram_b = [2.0, 1.0, 3.0, 2.0, 2.0] * 8
    gram_c = [1.0, 1.0, 2.0, 2.0, 1.0] * 8  # fewer errors per 100 words: a gain
    ev = []
    for subj, gsm, small, style, gram in ((BASE, gsm_b, small_b, style_b, gram_b), (REF, gsm_b, small_b, style_b, gram_b),
                                          (CKPT, gsm_c, small_c, style_c, gram_c)):
        ev += [gate_event(subj, "gsm8k", "math", gsm), gate_event(subj, "arc_small", "reasoning", small),
               gate_event(subj, "pref", "pl_style", style),
               gate_event(subj, "grammar", "pl_grammar", gram, metric="errors_per_100w", higher_is_better=False)]
    ev += [gate_event(BASE, "mbpp", "code", [1, 0] * 20), gate_event(CKPT, "mbpp", "code", [1, 0] * 20,
                                                                     fingerprint={"backend": "llama_cpp"})]
    ingest_events(store, "run-gates", "exp", ev)


@pytest.fixture
def store(store_url):
    s = Store.open(store_url)
    _campaign(s)
    yield s
    s.close()


def test_delta_cells_match_hand_computed_statistics(store):
    table = delta_table(store, "exp")
    assert table.base_subject_id == BASE["id"] and table.rows[0].verdict == "BASE"
    assert [a for _, a in table.gates] == ["pl_style", "pl_grammar", "reasoning", "math", "code"]
    row = table.row(CKPT["id"])
    gsm = row.cells["gsm8k"]
    assert gsm.delta_pp == pytest.approx(-9.0) and gsm.n == 200
    assert gsm.p_value == pytest.approx(2 * ((1 + 22 + 231) - 231 / 2) / 2**22)
    assert gsm.detectable_pp == pytest.approx(100 * Z * math.sqrt(22 / 200 / 200))
    assert gsm.ci_low_pp < -9.0 < gsm.ci_high_pp < 0 and gsm.verdict == "FAIL"
    small = row.cells["arc_small"]
    assert small.delta_pp == pytest.approx(-15.0) and small.p_value == pytest.approx(0.125)
    assert small.verdict == "WARN" and small.detectable_pp > 15.0  # too few items to tell
    gram = row.cells["grammar"]
    assert gram.delta_pp == pytest.approx(-0.6) and gram.verdict == "PASS" and gram.gain_pp == pytest.approx(0.6)
    assert row.cells["pref"].delta_pp == pytest.approx(12.0)
    assert row.style_gain_pp == pytest.approx(12.0)
    assert row.worst_regression_pp == pytest.approx(15.0)  # reasoning and math are general; grammar is not
    assert row.score == pytest.approx(12.0 - 15.0) and row.verdict == "FAIL"
    assert table.row(REF["id"]).cells["gsm8k"].delta_pp == 0 and table.row(REF["id"]).verdict == "PASS"


def test_a_fingerprint_mismatch_is_shown_never_compared(store):
    cell = delta_table(store, "exp").row(CKPT["id"]).cells["mbpp"]
    assert cell.verdict == "MISMATCH" and cell.delta_pp is None and cell.p_value is None
    assert "backend llama_cpp≠hf" in cell.note
    # gated again on the base's fingerprint: now compared, with the newest matching result
    ingest_events(store, "run-regate", "exp", [gate_event(CKPT, "mbpp", "code", [1, 1] * 20)])
    cell = delta_table(store, "exp").row(CKPT["id"]).cells["mbpp"]
    assert cell.verdict == "PASS" and cell.delta_pp == pytest.approx(50.0)


def test_rescore_changes_verdicts_and_scores_without_redoing_the_statistics(store):
    table = delta_table(store, "exp")
    loose = rescore(table, lam=0.5, tolerance_pp=20.0)
    row = loose.row(CKPT["id"])
    assert row.cells["gsm8k"].verdict == "PASS" and row.verdict == "MISMATCH"  # mbpp was not compared
    assert row.cells["gsm8k"].p_value == table.row(CKPT["id"]).cells["gsm8k"].p_value
    assert row.score == pytest.approx(12.0 - 0.5 * 15.0)
    assert rescore(loose, 1.0, None).row(CKPT["id"]) == table.row(CKPT["id"])
    assert delta_table(store, "exp", lam=0.5, tolerance_pp=20.0).row(CKPT["id"]) == row


def test_comparing_against_a_reference(store):
    table = delta_table(store, "exp", reference="bielik")
    assert table.against == "reference" and table.base_subject_id == REF["id"]
    assert table.row(CKPT["id"]).cells["gsm8k"].delta_pp == pytest.approx(-9.0)
    assert table.row(CKPT["id"]).cells["mbpp"].verdict == "NA"  # the reference never ran mbpp


def _pareto_experiment(store):
    base_style, base_math = [0] * 100, [1] * 50 + [0] * 50
    cands = {"A": (10, (7, 2)), "B": (5, (0, 0)), "C": (4, (3, 1))}  # style gain, math (lost, gained)
    ev = [gate_event(BASE, "pref", "pl_style", base_style), gate_event(BASE, "gsm8k", "math", base_math)]
    for name, (gain, (lost, gained)) in cands.items():
        s = subject(name, "checkpoint")
        ev += [gate_event(s, "pref", "pl_style", [1] * gain + [0] * (100 - gain)),
               gate_event(s, "gsm8k", "math", flips(100, 50, lost, gained)[1])]
    ingest_events(store, "run-pareto", "pareto", ev)


def test_pareto_frontier_and_best_follow_lambda(store):
    _pareto_experiment(store)
    table = delta_table(store, "pareto")
    assert {r.name: (r.style_gain_pp, r.worst_regression_pp) for r in table.rows[1:]} == \
        pytest.approx({"A": (10.0, 5.0), "B": (5.0, 0.0), "C": (4.0, 2.0)})
    assert [r.name for r in pareto_frontier(table)] == ["A", "B"]  # C is dominated by B
    assert best(rescore(table, 0.5)).name == "A"  # 10 − 2.5 > 5
    assert best(rescore(table, 2.0)).name == "B"  # 10 − 10 < 5
    # A's 5 pp drop is a WARN at n=100; with a tolerance of 1 pp a significant drop would be excluded
    assert table.row(subject("A", "checkpoint")["id"]).verdict == "WARN"


def test_best_never_picks_a_fail(store):
    table = delta_table(store, "exp", lam=0.0)
    assert table.row(CKPT["id"]).verdict == "FAIL" and best(table).name == "bielik"


# -- decisions ----------------------------------------------------------------------------------------

def test_accepting_a_fail_needs_override_and_a_reason_that_says_so(store):
    with pytest.raises(SpecError, match="FAIL on .*gsm8k.*--override"):
        decide(store, "ckpt-800", "accept", "looks fine")
    with pytest.raises(SpecError, match="must say 'override'"):
        decide(store, "ckpt-800", "accept", "looks fine", override=True)
    assert decisions_for(store, "exp") == []
    d = decide(store, CKPT["id"][:8], "accept", "Override: gsm8k drop is a known template artefact",
               override=True, actor="ana@gb10")
    assert d.override and d.actor == "ana@gb10" and d.subject_id == CKPT["id"]
    assert d.snapshot["row"]["verdict"] == "FAIL" and d.snapshot["row"]["cells"]["gsm8k"]["delta_pp"] == -9.0
    rejected = decide(store, "bielik", "reject", "reference only")
    assert "@" in rejected.actor and not rejected.override
    assert [(x.name, x.verdict) for x in decisions_for(store, "exp")] == [("ckpt-800", "accept"), ("bielik", "reject")]
    assert delta_table(store, "exp").row(REF["id"]).decision == "reject"


def test_decision_input_errors_are_one_line(store):
    with pytest.raises(SpecError, match="ambiguous"):
        decide(store, "s-", "reject", "x")
    with pytest.raises(SpecError, match="no subject 'nope'"):
        decide(store, "nope", "reject", "x", experiment="exp")
    with pytest.raises(SpecError, match="reason is required"):
        decide(store, "bielik", "reject", "  ")
    with pytest.raises(SpecError, match="no such experiment"):
        delta_table(store, "missing")
