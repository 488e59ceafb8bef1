"""Delta statistics against hand-computed values, fingerprint-matched delta tables, Pareto, decisions."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
from deltas_fixtures import flips, gate_event, ingest_events, subject

from engine.errors import NotFound, SpecError
from store import Store, stats
from store.decisions import decide, decisions_for
from store.deltas import best, delta_table, pareto_frontier, rescore
from store.experiment_config import ExperimentConfig

Z = 1.959963984540054 + 0.8416212335729143  # z_{0.975} + z_{0.80}

# A small table: a 0/1 gate (n=200), a graded judge gate (n=60), an F1 gate (n=80), each with 3 candidates.
ACC_BASE = flips(200, 120, 0, 0)[0]
ACC = [flips(200, 120, lost, gained)[1] for lost, gained in ((2, 9), (14, 3), (6, 6))]
JUDGE_BASE = [(i * 3 % 11) / 10 for i in range(60)]
JUDGE = [[min(1.0, x + 0.1 * k) if i % 3 == 0 else max(0.0, x - 0.1) if i % 7 == k else x
          for i, x in enumerate(JUDGE_BASE)] for k in (1, 2, 3)]
GOLDS = [1, 0] * 40
PSC_BASE = [g if i % 9 else 1 - g for i, g in enumerate(GOLDS)]
PSC = [[g if i % k else 1 - g for i, g in enumerate(GOLDS)] for k in (5, 12, 30)]


def _right(preds: list[int]) -> list[int]:
    return [int(p == g) for p, g in zip(preds, GOLDS)]


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
    st = stats.compare(base, cand)
    assert st.delta == pytest.approx(-0.06) and st.method == "mcnemar" and st.discordant == (8, 2)
    # Var(d) = ψ − δ² = 0.10 − 0.0036 for the paired difference d ∈ {−1, 0, 1}
    se_hand = math.sqrt((0.10 - 0.06**2) / 100)
    assert st.se == pytest.approx(se_hand, rel=0.08)
    assert st.ci_low == pytest.approx(-0.06 - 1.96 * se_hand, abs=0.012)
    assert st.ci_high == pytest.approx(-0.06 + 1.96 * se_hand, abs=0.012)
    assert stats.compare(base, cand) == st
    # every item lost: no sampling uncertainty at all
    lost = stats.compare([1] * 10, [0] * 10)
    assert (lost.delta, lost.ci_low, lost.ci_high) == (-1.0, -1.0, -1.0)


def test_shared_weights_are_the_ordinary_item_bootstrap():
    # the weight matrix counts the very draws an index-resampling bootstrap makes with the same generator
    rng = np.random.default_rng(0)
    base = rng.integers(0, 2, 300).astype(float)
    cands = np.where(rng.random((5, 300)) < 0.15, 1 - base, base)
    seed = (stats.SEED, 7)
    draws = np.random.default_rng(seed)
    idx = np.vstack([draws.integers(0, 300, size=(stats.BLOCK, 300)) for _ in range(0, 2000, stats.BLOCK)])
    by_index = (cands[:, idx] - base[idx]).mean(axis=2)
    batch = stats.compare_many(base, cands, seed=seed)
    assert np.array_equal(batch.boot, by_index)
    assert [(s.ci_low, s.ci_high) for s in batch.stats] == \
        [tuple(np.quantile(b, [0.025, 0.975])) for b in by_index]


def test_a_gate_batch_equals_its_pairs_one_by_one():
    """The table computes a gate's candidates in one batch; each pair gets the numbers it gets alone."""
    seed = (stats.SEED, 3)
    batch = stats.compare_many(ACC_BASE, ACC, seed=seed)
    assert batch.stats == [stats.compare(ACC_BASE, c, seed=seed) for c in ACC]
    f1 = stats.compare_f1(PSC_BASE, PSC, GOLDS, seed=seed)
    assert f1.stats == [stats.compare(_right(PSC_BASE), _right(c), PSC_BASE, c, GOLDS, f1=True, seed=seed) for c in PSC]
    # graded scores are summed in float64 by BLAS, whose summation order may depend on the batch size
    graded = stats.compare_many(JUDGE_BASE, JUDGE, seed=seed)
    for st, c in zip(graded.stats, JUDGE):
        alone = stats.compare(JUDGE_BASE, c, seed=seed)
        assert dataclasses.astuple(st) == pytest.approx(dataclasses.astuple(alone), rel=1e-12)


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
    # the reference equals the base: within tolerance, but 200 items cannot see a 0.5 pp drop
    assert table.row(REF["id"]).cells["gsm8k"].delta_pp == 0 and table.row(REF["id"]).verdict == "UNDERPOWERED"


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


def test_rows_and_the_grids_axis_cells_rank_verdicts_alike(store):
    from slayer_console.widgets.delta_grid import worst_cell

    table = delta_table(store, "exp")
    for t, expected in ((table, "FAIL"), (rescore(table, 1.0, 20.0), "MISMATCH")):
        row = t.row(CKPT["id"])
        assert row.verdict == worst_cell(list(row.cells.values())).verdict == expected


def test_comparing_against_a_reference(store):
    table = delta_table(store, "exp", reference="bielik")
    assert table.against == "reference" and table.base_subject_id == REF["id"]
    assert table.row(CKPT["id"]).cells["gsm8k"].delta_pp == pytest.approx(-9.0)
    assert table.row(CKPT["id"]).cells["mbpp"].verdict == "NA"  # the reference never ran mbpp


# The small table as the previous algorithm (one binomial-chain bootstrap per pair, seeded 20240501) gave it:
# gate → per candidate (delta, ci_low, ci_high, p, detectable, verdict), fractions.
PREVIOUS = {
    "acc": [(0.035, 0.005, 0.07, 0.038574, 0.046459, "PASS"), (-0.055, -0.095, -0.015, 0.007538, 0.057756, "FAIL"),
            (0.0, -0.035, 0.035, 1.0, 0.048525, "PASS")],
    "judge": [(0.021667, 0.008333, 0.035, 0.003, 0.020204, "PASS"), (0.048333, 0.025, 0.073333, 0.0, 0.034059, "PASS"),
              (0.07, 0.036667, 0.103333, 0.0, 0.048092, "PASS")],
    "psc": [(-0.086076, -0.204298, 0.024111, 0.137, 0.16256, "WARN"), (0.018034, -0.070386, 0.103712, 0.708, 0.122694,
                                                                       "PASS"),
            (0.074963, -0.002025, 0.163593, 0.067, 0.11743, "PASS")],
}
# The same cells now (shared weights per gate, seed (20240501, crc32(gate))): (ci_low, ci_high) — pinned so
# that the same store always shows the same intervals.
PINNED = {"acc": [(0.5, 7.0), (-10.0, -2.0), (-3.0, 3.5)],
          "judge": [(0.6666666666666667, 3.666666666666666), (2.5, 7.333333333333335), (3.6666666666666665, 10.5)],
          "psc": [(-20.872456064190978, 2.6441181525980055), (-6.621877735225583, 10.334449302842627),
                  (-0.2504813863928109, 16.359964432215694)]}


def _small_table(store):
    ev = [gate_event(BASE, "acc", "math", ACC_BASE), gate_event(BASE, "judge", "pl_style", JUDGE_BASE, metric="score"),
          gate_event(BASE, "psc", "pl_nlu", _right(PSC_BASE), metric="f1", preds=PSC_BASE, golds=GOLDS)]
    for i, (acc, judge, psc) in enumerate(zip(ACC, JUDGE, PSC)):
        s = subject(f"c{i}", "checkpoint")
        ev += [gate_event(s, "acc", "math", acc), gate_event(s, "judge", "pl_style", judge, metric="score"),
               gate_event(s, "psc", "pl_nlu", _right(psc), metric="f1", preds=psc, golds=GOLDS)]
    ingest_events(store, "run-small", "small", ev)
    return delta_table(store, "small")


def test_the_vectorised_table_agrees_with_the_previous_algorithm(store):
    """Estimates, McNemar p-values, detectable drops and verdicts are the previous ones exactly; the bootstrap
    intervals are a different draw from the same bootstrap distribution (its resampling is now shared by a
    gate's subjects), so they agree within Monte Carlo error — and are pinned for the same seed."""
    table = _small_table(store)
    for gate, previous in PREVIOUS.items():
        for row, (delta, lo, hi, p, detectable, verdict) in zip(table.rows[1:], previous):
            cell = row.cells[gate]
            assert cell.delta_pp == pytest.approx(100 * delta, abs=1e-4)
            # the verdict as the previous rule (no power check) gives it from this cell's numbers
            assert stats.verdict(cell.delta_pp, cell.p_value, cell.tolerance_pp, cell.higher_is_better) == verdict
            assert (cell.ci_low_pp, cell.ci_high_pp) == pytest.approx((100 * lo, 100 * hi), abs=1.0)
            if cell.method == "mcnemar":
                assert cell.p_value == pytest.approx(p, abs=1e-6) and cell.detectable_pp == pytest.approx(100 * detectable, abs=1e-4)
            else:
                assert cell.p_value == pytest.approx(p, abs=0.05)  # ≈ 2.5 Monte Carlo SDs of a p near 0.7
                assert cell.detectable_pp == pytest.approx(100 * detectable, rel=0.06)
    now = [(r.cells[g].ci_low_pp, r.cells[g].ci_high_pp) for g in PINNED for r in table.rows[1:]]
    assert np.allclose(now, [ci for g in PINNED for ci in PINNED[g]], rtol=0, atol=1e-9)


def test_a_pass_that_n_cannot_see_is_underpowered():
    # within tolerance, but a 0.5 pp drop is below what 200 items can detect
    assert stats.verdict(-0.2, 0.9, 0.5, detectable_pp=2.4) == "UNDERPOWERED"
    assert stats.verdict(-0.2, 0.9, 0.5, detectable_pp=0.4) == "PASS"
    assert stats.verdict(+6.0, 0.001, 0.5, detectable_pp=2.4) == "PASS"  # a significant gain needs no power
    assert stats.verdict(+1.0, 0.30, 0.5, detectable_pp=2.4) == "UNDERPOWERED"
    assert stats.verdict(-3.0, 0.01, 0.5, detectable_pp=2.4) == "FAIL"  # beyond tolerance: as before
    assert stats.verdict(-3.0, 0.20, 0.5, detectable_pp=9.0) == "WARN"


def test_an_axis_pools_its_gates_paired_items(store):
    """Two 600-item gates of one axis: each alone cannot see 0.5 pp; pooled (1,200 items) they can."""
    a_base, a_cand = flips(600, 480, 1, 1)
    b_base, b_cand = flips(600, 300, 1, 0)
    ev = [gate_event(BASE, "mmlu", "en_knowledge", a_base), gate_event(BASE, "arc", "en_knowledge", b_base),
          gate_event(CKPT, "mmlu", "en_knowledge", a_cand), gate_event(CKPT, "arc", "en_knowledge", b_cand)]
    ingest_events(store, "run-pool", "pool", ev)
    row = delta_table(store, "pool").row(CKPT["id"])
    assert {g: c.verdict for g, c in row.cells.items()} == {"arc": "UNDERPOWERED", "mmlu": "UNDERPOWERED"}
    assert row.cells["arc"].detectable_pp == pytest.approx(100 * Z * math.sqrt(3 / 600 / 600))
    axis = row.axes["en_knowledge"]
    assert axis.gates == ("arc", "mmlu") and axis.n == 1200 and axis.method == "pooled-mcnemar"
    assert axis.gain_pp == pytest.approx(100 * (0 - 1) / 1200)
    assert axis.p_value == pytest.approx(stats.mcnemar(2, 1)[1])  # the pooled discordant pairs: 2 lost, 1 gained
    assert axis.detectable_pp == pytest.approx(100 * Z * math.sqrt(3 / 1200 / 1200)) and axis.detectable_pp < 0.5
    assert axis.ci_low_pp < axis.gain_pp < axis.ci_high_pp and axis.verdict == "PASS"
    assert row.verdict == "UNDERPOWERED"  # the row shows its weakest link
    # a tolerance for the axis from the experiment's config judges the axis and its cells
    strict = delta_table(store, "pool", config=ExperimentConfig(tolerance_pp={"en_knowledge": 0.3}))
    assert strict.row(CKPT["id"]).axes["en_knowledge"].verdict == "UNDERPOWERED"
    assert strict.row(CKPT["id"]).axes["en_knowledge"].tolerance_pp == 0.3
    assert rescore(strict, tolerance_pp=1.0).row(CKPT["id"]).verdict == "PASS"


def test_an_axis_turns_lower_is_better_gates_into_gains(store):
    row = delta_table(store, "exp").row(CKPT["id"])
    gram = row.axes["pl_grammar"]  # one gate, errors per 100 words: fewer is the gain
    assert gram.gain_pp == pytest.approx(0.6) and gram.method == "pooled-bootstrap" and gram.verdict == "PASS"
    assert row.axes["code"].verdict == "MISMATCH"  # its only gate was scored on another backend


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
    with pytest.raises(NotFound, match="no subject 'nope'"):
        decide(store, "nope", "reject", "x", experiment="exp")
    with pytest.raises(SpecError, match="reason is required"):
        decide(store, "bielik", "reject", "  ")
    with pytest.raises(NotFound, match="not found in any experiment"):
        decide(store, "nope", "reject", "x")
    with pytest.raises(NotFound, match="no such experiment"):
        delta_table(store, "missing")
