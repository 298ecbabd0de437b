"""The attack against planted models whose one-frequency flips are known (tests/attack_models.py).

Each case must come out right within the default budget (2,000 queries), and on every planted model
the budgeted attack must do as well as an exhaustive search of every single bin × the whole ladder.
The ladder alone (``continuous=False``, Alg 2 and #16's sources) must find the rung that flips; the
default attack (#29) must find the quietest flip itself: within 1 dB of the true boundary, which the
tests measure by bisecting every direction of the one bin that matters (:func:`boundary_snr`).
"""

from __future__ import annotations

import dataclasses
from functools import lru_cache

import numpy as np
import pytest

import freqrex_audit as fa
from freqrex_audit.engine import exhaustive_single
from freqrex_audit.engine.mutations import Mutation
from freqrex_audit.engine.subsets import rank_bins

from . import attack_models as am

LADDER = fa.AttackConfig(continuous=False)
BUDGET = fa.AttackConfig().query_budget  # the default attack's queries per clip


def label_of(clf: fa.Classifier, x: np.ndarray) -> int:
    return int(fa.QueryEngine(clf).query(x[None])[0].argmax())


@lru_cache(maxsize=None)
def case(name: str):
    """(classifier, clip, explanation) per planted case; the runner-up bin's responsibility is zeroed."""
    if name == "runner_up":
        clf, x = am.runner_up_model(), am.clip({1700: 0.01})
    elif name == "x100":
        clf, x = am.needs_x100_model(), am.clip({2500: 0.0005})
    elif name == "phase":
        clf, x = am.phase_model(), am.clip({}, cosine=True)
    else:
        clf, x = am.energy_model(), am.clip({})
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=0))
    if name == "runner_up":  # a bin with zero responsibility for the label, ranked by magnitude among the rest
        r = exp.responsibility.copy()
        r[am.bin_of(1700)] = 0.0
        exp = dataclasses.replace(exp, responsibility=r, ranking=rank_bins(r, np.abs(np.fft.rfft(x))))
    return clf, x, exp


@lru_cache(maxsize=None)
def attacked(name: str, continuous: bool = True) -> fa.FourierAttack:
    clf, x, exp = case(name)
    return fa.fourier_attack(clf, x, exp, None if continuous else LADDER)


def boundary_snr(clf: fa.Classifier, x: np.ndarray, b: int, margin: float = 0.05, angles: int = 72) -> float:
    """The true quietest flip that changes bin ``b`` alone: for each of ``angles`` directions of the complex
    change δ, scan |δ| on a fine geometric grid for the smallest radius that flips, then bisect (30 steps)
    between it and the grid point below; the best SNR over directions. Brute force, outside any budget:
    the ground truth the attack is held to (the scan, not a bisection from far away, so that a region of
    flips far out — clipped boosts — cannot hide the nearest boundary)."""
    n = len(x)
    spectrum = np.fft.rfft(x.astype(np.float64))
    power = float(np.sum(x.astype(np.float64) ** 2))
    unit = spectrum[b] / abs(spectrum[b])
    engine = fa.QueryEngine(clf, batch_size=512)
    turns = unit * np.exp(2j * np.pi * np.arange(angles) / angles)
    original = int(engine.query(x[None])[0].argmax())
    bound = max(1.0, float(np.abs(x).max()))

    def flips(radii: np.ndarray, directions: np.ndarray) -> np.ndarray:
        d = np.zeros((len(radii), len(spectrum)), complex)
        d[:, b] = radii * directions
        waves = np.clip(x[None] + np.fft.irfft(d, n), -bound, bound).astype(np.float32)  # the product's clip rule
        p = engine.query(waves)
        return (p.argmax(1) != original) & (p.max(1) - p[:, original] >= margin)

    grid = abs(spectrum[b]) * np.geomspace(1e-3, 1e4, 141)  # 0.5 dB of energy apart
    best = np.inf
    for t in turns:
        hit = np.flatnonzero(flips(grid, np.full(len(grid), t)))
        if not len(hit):
            continue
        i = hit[0]
        lo, hi = (grid[i - 1] if i else 0.0), grid[i]
        for _ in range(30):
            mid = (lo + hi) / 2
            lo, hi = (lo, mid) if flips(np.array([mid]), np.array([t]))[0] else (mid, hi)
        best = min(best, hi)
    return float(10 * np.log10(power / (2 * best ** 2 / n)))

def verified(clf, x, atk) -> None:
    assert atk.success and atk.adversarial is not None
    probs = fa.QueryEngine(clf).query(atk.adversarial[None])[0]
    assert int(probs.argmax()) == atk.new_label != atk.original_label
    assert probs.max() - probs[atk.original_label] >= atk.min_margin


def test_quiet_one_bin_flip_toward_the_runner_up_at_a_bin_with_no_responsibility():
    clf, x, exp = case("runner_up")
    b = am.bin_of(1700)
    assert exp.responsibility[b] == 0 and list(exp.ranking).index(b) > 500  # beyond any prefix or screen
    louder = np.abs(np.fft.rfft(x)) > np.abs(np.fft.rfft(x))[b]
    assert louder.sum() >= 58  # the distractors are louder: a magnitude order would not reach it first
    atk = attacked("runner_up", continuous=False)
    verified(clf, x, atk)
    assert atk.n_frequencies == 1 and atk.bins.tolist() == [b] and atk.new_label == atk.runner_up == 1
    # B's logit is 400·a = 4 against A's 10: ×2 gives 8 (no flip), ×3 gives 12: the ladder's quietest flip.
    assert atk.mutation == Mutation("scale", 3.0) and atk.quiet and atk.snr_db > 10
    assert atk.source == "runner_up" and atk.queries <= BUDGET
    assert sum(atk.queries_by_source.values()) == atk.queries
    # The default attack walks past the rung to the boundary (×2.5 and the margin): the same bin, quieter.
    best = attacked("runner_up")
    verified(clf, x, best)
    truth = boundary_snr(clf, x, b)
    assert best.bins.tolist() == [b] and truth - 1.0 <= best.snr_db <= truth + 0.05
    assert best.snr_db > atk.snr_db + 1 and 2.5 < best.mutation.value < 3.0
    assert best.queries <= BUDGET and sum(best.queries_by_source.values()) == best.queries


def test_a_flip_that_needs_x100():
    clf, x, exp = case("x100")
    atk = attacked("x100", continuous=False)
    verified(clf, x, atk)
    assert atk.bins.tolist() == [am.bin_of(2500)] and atk.mutation == Mutation("scale", 100.0)
    assert atk.quiet and atk.queries <= BUDGET
    # Capping the ladder at ×10 leaves no flip at that bin.
    capped = fa.fourier_attack(clf, x, exp, fa.AttackConfig(max_scale=10, continuous=False))
    assert not capped.success or capped.bins.tolist() != [am.bin_of(2500)]
    best = attacked("x100")
    verified(clf, x, best)
    truth = boundary_snr(clf, x, am.bin_of(2500))
    assert best.bins.tolist() == [am.bin_of(2500)] and truth - 1.0 <= best.snr_db <= truth + 0.05


def test_phase_only_sensitivity_is_found_and_a_tie_is_not_a_flip():
    clf, x, exp = case("phase")
    atk = attacked("phase", continuous=False)
    verified(clf, x, atk)
    assert atk.bins.tolist() == [am.bin_of(440)] and atk.mutation == Mutation("phase", 180.0)
    assert atk.queries <= BUDGET
    # Silencing the bin gives a 0.5 / 0.5 tie: a flip without the margin, which must not count.
    only_silence = fa.fourier_attack(clf, x, exp, fa.AttackConfig(mutations=(Mutation("scale", 0.0),),
                                                                  continuous=False))
    assert not only_silence.success
    # The quietest flip only pushes the real part just below zero: about 6 dB quieter than +180°.
    best = attacked("phase")
    verified(clf, x, best)
    truth = boundary_snr(clf, x, am.bin_of(440))
    assert am.bin_of(440) in best.bins.tolist() and truth - 1.0 <= best.snr_db <= truth + 0.05
    assert best.snr_db > atk.snr_db + 4


def test_unflippable_model_reports_what_it_searched():
    clf, x, exp = case("energy")
    for continuous in (False, True):
        atk = attacked("energy", continuous)
        assert not atk.success and atk.adversarial is None and not atk.quiet
        assert 0.9 * BUDGET <= atk.queries <= BUDGET and atk.candidates >= 800 and atk.pool_size >= 200
        assert atk.summary == f"no flip, searched {atk.candidates} candidates with {atk.queries} queries"
        assert {"ranking", "runner_up", "prefix"} <= set(atk.queries_by_source)
    assert {"gradient", "boundary"} <= set(atk.queries_by_source)  # #29's sources had their share


@pytest.mark.parametrize("name", ["runner_up", "x100", "phase", "energy"])
def test_budgeted_attack_finds_what_exhaustive_single_bin_search_finds(name):
    clf, x, exp = case(name)
    every = exhaustive_single(clf, x, exp, n=exp.n_bins)
    assert every.bins_tried == exp.n_bins and every.queries == exp.n_bins * len(fa.AttackConfig().ordered)
    atk, best = attacked(name, continuous=False), attacked(name)
    if not len(every.flip_bins):
        assert not atk.success or atk.n_frequencies > 1
        assert not best.success or best.n_frequencies > 1
        return
    assert atk.success and atk.n_frequencies == 1
    found = set(zip(every.flip_bins.tolist(), every.flip_mutations))
    assert (int(atk.bins[0]), atk.mutation) in found
    assert atk.snr_db >= every.best_snr_db - 0.1  # as quiet as the quietest single-bin flip there is
    assert best.success and best.snr_db >= every.best_snr_db - 0.1  # and the default never louder


def test_results_are_deterministic_whatever_the_batch_size_and_round_trip():
    clf, x, exp = case("runner_up")
    small = fa.fourier_attack(fa.QueryEngine(clf, batch_size=7), x, exp)
    large = fa.fourier_attack(fa.QueryEngine(clf, batch_size=500), x, exp)
    assert small.to_json() == large.to_json()
    assert fa.FourierAttack.from_json(small.to_json()).to_json() == small.to_json()


def test_degenerate_explanation_is_flagged_and_the_pool_widens():
    clf, x, exp = case("runner_up")
    tiny = dataclasses.replace(exp, sufficient=np.sort(exp.ranking[:1]))
    atk = fa.fourier_attack(clf, x, tiny)
    assert atk.degenerate and "1 bin(s)" in atk.degenerate_reason
    assert atk.pool_size > 1 and atk.success  # the other sources still find the runner-up bin
    assert not fa.fourier_attack(clf, x, exp).degenerate


def test_stft_stops_a_frame_size_after_one_query_when_all_frames_do_not_flip():
    clf, x, exp = case("phase")
    atk = attacked("phase")
    st = fa.stft_attack(clf, x, atk)
    verified(clf, x, st)
    assert sum(st.queries_by_frame.values()) == st.queries and list(st.queries_by_frame) == ["256"]
    # The same attack against a model nothing flips: one query per frame size, then the next size.
    energy, _, _ = case("energy")
    none = fa.stft_attack(energy, x, atk)
    assert not none.success and none.queries_by_frame == {"256": 1, "512": 1, "1024": 1} and none.queries == 3
    assert all("do not flip" in v for v in none.tried.values())
    assert fa.STFTAttack.from_json(st.to_json()).to_json() == st.to_json()


def test_the_quietest_flip_lies_between_two_rungs_and_is_found_within_1_db():
    """B's logit is gain·a·s against A's 10 with a = 0.01 at 1700 Hz: gain 315.6 puts the flip at ×3.2 (with
    the margin): ×3 does not flip, ×5 flips 5.2 dB louder than ×3.2. The ladder stops at ×5; the default
    attack must walk to ×3.2 and report a flip within 1 dB of the true boundary."""
    clf, x = am.runner_up_model(gain=315.6), am.clip({1700: 0.01})
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=0))
    b = am.bin_of(1700)
    ladder = fa.fourier_attack(clf, x, exp, LADDER)
    verified(clf, x, ladder)
    assert ladder.bins.tolist() == [b] and ladder.mutation == Mutation("scale", 5.0)
    best = fa.fourier_attack(clf, x, exp)
    verified(clf, x, best)
    truth = boundary_snr(clf, x, b)
    assert best.bins.tolist() == [b] and truth - 1.0 <= best.snr_db <= truth + 0.05
    assert 3.0 < best.mutation.value < 3.4 and best.snr_db > ladder.snr_db + 4
    assert ladder.snr_db < truth - 4  # the rung above is > 4 dB louder than the boundary
    assert best.queries <= BUDGET and sum(best.queries_by_source.values()) == best.queries


@pytest.mark.parametrize("name", ["runner_up", "x100", "phase", "energy"])
def test_the_budget_the_coverage_rule_names_covers_it(name):
    """``queries_needed`` is a budget that always covers the rule on this clip: given exactly that, the screen, the
    runner-up descent and the first prefixes are all asked, whatever the candidate sources outside the rule (the
    descent's leaves, screened before the prefixes) would have spent. Every flip is loud here (``min_snr_db``
    200), so only a complete search makes the answer evidence rather than "not measured"."""
    clf, x, exp = case(name)
    for continuous, climbs in ((False, 0), (True, 0), (True, 2)):
        config = fa.AttackConfig(continuous=continuous, min_snr_db=200.0, ladder_sets=climbs, query_budget=3)
        needed = fa.fourier_attack(clf, x, exp, config).coverage.queries_needed  # known before the first query
        atk = fa.fourier_attack(clf, x, exp, dataclasses.replace(config, query_budget=needed))
        assert atk.coverage.queries_needed == needed and atk.queries <= needed and not atk.quiet
        assert atk.coverage.complete, (continuous, atk.coverage.shortfall, atk.queries_by_source)
