"""Algorithm 1 on classifiers whose causes are known: the engine must find them, and only them."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

import freqrex_audit as fa
from freqrex_audit.audio import spectrum as spec
from freqrex_audit.engine.responsibility import partition_bins
from freqrex_audit.engine.subsets import is_complete

from . import known_models as km

CONFIG = fa.FreqReXConfig(seed=0)


def label_and_confidence(clf: fa.Classifier, x: np.ndarray) -> tuple[int, float]:
    probs = fa.QueryEngine(clf).query(x[None])[0]
    return int(probs.argmax()), float(probs.max())


def assert_valid(clf: fa.Classifier, exp: fa.Explanation) -> None:
    """The properties every explanation must have, checked by asking the model again."""
    delta = exp.config.min_confidence
    label, conf = label_and_confidence(clf, exp.signal("sufficient"))
    assert label == exp.target and conf >= delta * exp.confidence
    if exp.necessary is not None:
        assert set(exp.sufficient) <= set(exp.necessary)
        assert label_and_confidence(clf, exp.signal("necessary"))[0] == exp.target
        assert label_and_confidence(clf, exp.signal("inverse"))[0] != exp.target
        assert exp.inverse_label != exp.target
    if exp.complete is not None:
        assert set(exp.necessary) <= set(exp.complete)
        label, conf = label_and_confidence(clf, exp.signal("complete"))
        assert label == exp.target and is_complete(conf, exp.confidence, exp.config.decimals)


def precision_recall(found: np.ndarray, causal: set[int]) -> tuple[float, float]:
    hits = len(set(found.tolist()) & causal)
    return hits / len(found), hits / len(causal)


# Every clip has distractor tones LOUDER than the causal ones: a ranking by loudness puts them first, so
# these tests pass only when the responsibility (not |X|) finds the causes — see the mutation test below.


def test_ratio_model_sufficient_bins_are_all_in_the_440_band():
    clf, x = km.ratio_model(), km.tones({440: 0.5, 1000: 0.2, 2200: 2.0, 3100: 2.0})
    exp = fa.explain(clf, x, CONFIG)
    assert exp.target == 0
    assert_valid(clf, exp)
    band = km.band_bins(440, len(x))
    precision, _ = precision_recall(exp.sufficient, band)
    assert precision == 1.0, exp.hz("sufficient")
    # Necessary: removing it must lose 'A', so it must take the 440 Hz tone bin itself.
    assert km.band_bins(440, len(x), width=0) <= set(exp.necessary.tolist())
    assert exp.fraction("sufficient") < 0.01


def test_and_model_needs_both_bands():
    clf, x = km.and_model(), km.tones({300: 0.5, 1200: 0.5, 2000: 2.0, 3300: 2.0})
    exp = fa.explain(clf, x, CONFIG)
    assert exp.target == 0
    assert_valid(clf, exp)
    found = set(exp.sufficient.tolist())
    low, high = km.band_bins(300, len(x)), km.band_bins(1200, len(x))
    assert found & low and found & high, "both bands must be in the sufficient set"
    precision, _ = precision_recall(exp.sufficient, low | high)
    assert precision == 1.0, exp.hz("sufficient")


def test_or_model_one_band_suffices():
    clf, x = km.or_model(), km.tones({300: 0.5, 1200: 0.5, 2000: 2.0, 3300: 2.0})
    exp = fa.explain(clf, x, CONFIG)
    assert_valid(clf, exp)
    low, high = km.band_bins(300, len(x)), km.band_bins(1200, len(x))
    found = set(exp.sufficient.tolist())
    assert found <= low or found <= high, exp.hz("sufficient")
    # Necessary must take away both bands: either one alone keeps 'A'.
    kept = set(range(exp.n_bins)) - set(exp.necessary.tolist())
    assert not (kept & km.band_bins(300, len(x), width=0)) and not (kept & km.band_bins(1200, len(x), width=0))


def test_non_monotone_model_chain_does_not_stop_at_first_hit():
    clf, x = km.parity_model(), km.tones({300: 0.5, 1200: 0.5, 2500: 0.5, 700: 2.0, 3300: 2.0})
    exp = fa.explain(clf, x, CONFIG)
    assert exp.target == 0
    assert_valid(clf, exp)
    bands = km.band_bins(300, len(x)) | km.band_bins(1200, len(x)) | km.band_bins(2500, len(x))
    assert precision_recall(exp.sufficient, bands)[0] == 1.0, exp.hz("sufficient")
    # The chain: P_k .. P_{k+L-1} (L prefixes, counted in bins as the paper does) all keep 'A'.
    later = np.arange(len(exp.sufficient), len(exp.sufficient) + CONFIG.chain_length)
    engine = fa.QueryEngine(clf)
    X = spec.rfft(torch.from_numpy(x))
    position = np.empty(exp.n_bins, dtype=np.int64)
    position[exp.ranking] = np.arange(exp.n_bins)
    masks = torch.from_numpy(position[None, :] < later[:, None])
    assert (engine.query_spectral(X, masks, len(x)).argmax(1) == 0).all()
    short = fa.explain(clf, x, fa.FreqReXConfig(seed=0, chain_length=1))
    assert len(short.sufficient) <= len(exp.sufficient)


def test_lowpass_model_never_blames_frequencies_above_4khz():
    clf = km.lowpass_model()
    x = km.tones({440: 0.5, 1000: 0.2, 5000: 2.0, 6500: 2.0}, sr=16000)
    exp = fa.explain(clf, x, CONFIG)
    assert_valid(clf, exp)
    assert exp.hz("sufficient").max() < 4000 and exp.hz("necessary").max() < 4000
    hz = spec.bin_to_hz(np.arange(exp.n_bins), len(x), 16000)
    assert exp.responsibility[hz < 4000].mean() > exp.responsibility[hz >= 4000].mean()


@pytest.mark.parametrize("n_bands,seed", [(2, 0), (8, 1)])
def test_conjunction_of_narrow_bands_gives_a_near_minimal_set(n_bands, seed):
    """The label needs energy in every one of n narrow bands; loud distractors are ignored by the model.
    The pruned (minimal) set must keep every band, stay sufficient and be ≤ 2× the causal bins."""
    centres = km.CONJUNCTION_CENTRES[:n_bands]
    clf, x = km.conjunction_model(centres), km.conjunction_clip(centres)
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=seed))
    assert exp.target == 0
    assert_valid(clf, exp)
    bands = [km.band_bins(c, len(x), width=km.NARROW) for c in centres]
    causal = set().union(*bands)
    minimal = set(exp.minimal.tolist())
    assert all(minimal & band for band in bands), exp.hz("minimal")
    assert len(minimal) <= 2 * len(causal), (len(minimal), len(causal))
    assert minimal <= set(exp.sufficient.tolist())
    label, conf = label_and_confidence(clf, exp.signal("minimal"))
    assert label == exp.target and conf >= exp.config.min_confidence * exp.confidence
    assert conf == exp.minimal_confidence
    # the map, not loudness, points at the causes
    loud = set().union(*[km.band_bins(f, len(x), width=0) for f in km.LOUD_DISTRACTORS])
    assert exp.responsibility[sorted(causal)].mean() > exp.responsibility[sorted(loud)].mean()


GROUND_TRUTH = [test_ratio_model_sufficient_bins_are_all_in_the_440_band, test_and_model_needs_both_bands,
                test_or_model_one_band_suffices, test_non_monotone_model_chain_does_not_stop_at_first_hit,
                test_lowpass_model_never_blames_frequencies_above_4khz,
                lambda: test_conjunction_of_narrow_bands_gives_a_near_minimal_set(2, 0)]


@pytest.mark.parametrize("check", GROUND_TRUTH, ids=lambda f: getattr(f, "__name__", "conjunction"))
def test_a_magnitude_only_ranking_fails_the_ground_truth_checks(check, monkeypatch):
    """Mutation test: with the responsibility replaced by zeros the ranking is |X| alone (the tie-break);
    every ground-truth check above must then fail, or it could not tell causal from loud."""
    import importlib

    from freqrex_audit.engine.responsibility import ResponsibilityRun

    explain_module = importlib.import_module("freqrex_audit.engine.explanation")

    monkeypatch.setattr(explain_module, "compute_responsibility",
                        lambda engine, spectrum, *a, **k: ResponsibilityRun(np.zeros(spectrum.shape[-1]), (), 1))
    with pytest.raises(AssertionError):
        check()


@pytest.mark.parametrize("model,clip", [
    (km.ratio_model, {440: 1.0, 1000: 0.6}),
    (km.and_model, {300: 1.0, 1200: 1.0}),
    (km.or_model, {300: 1.0, 1200: 0.5}),
])
def test_same_seed_same_result_and_batch_size_does_not_matter(model, clip):
    clf, x = model(), km.tones(clip)
    a = fa.explain(clf, x, fa.FreqReXConfig(seed=3, batch_size=64))
    b = fa.explain(clf, x, fa.FreqReXConfig(seed=3, batch_size=64))
    c = fa.explain(clf, x, fa.FreqReXConfig(seed=3, batch_size=1))
    assert a.to_json() == b.to_json()
    for kind in ("sufficient", "necessary", "complete"):
        assert np.array_equal(getattr(a, kind), getattr(c, kind))
    assert np.allclose(a.responsibility, c.responsibility)
    assert a.queries == c.queries


def test_query_counts_are_exact_and_budgets_hold():
    counting = km.CountingClassifier(km.ratio_model())
    config = fa.FreqReXConfig(seed=1, iterations=6, min_iterations=6, iteration_budget=40)
    exp = fa.explain(counting, km.tones({440: 1.0, 1000: 0.6}), config)
    assert counting.seen == exp.queries
    assert exp.iterations == 6
    assert exp.queries_by_phase["responsibility"] <= 6 * 40
    assert exp.queries_by_phase["original"] == 1


def test_early_stopping_happens_and_keeps_results_valid():
    clf, x = km.ratio_model(), km.tones({440: 0.5, 1000: 0.2, 2200: 2.0, 3100: 2.0})
    early = fa.explain(clf, x, CONFIG)
    full = fa.explain(clf, x, fa.FreqReXConfig(seed=0, epsilon=0.0))
    assert early.iterations < full.iterations == CONFIG.iterations
    assert early.emd_trace[-1] <= CONFIG.epsilon
    assert early.queries < full.queries
    assert_valid(clf, early)
    assert precision_recall(early.sufficient, km.band_bins(440, len(x)))[0] == 1.0


def test_explanation_round_trips_through_json(tmp_path):
    exp = fa.explain(km.ratio_model(), km.tones({440: 1.0, 1000: 0.6}), CONFIG)
    again = fa.Explanation.from_json(exp.to_json())
    assert again.to_json() == exp.to_json()
    assert np.array_equal(again.signal("sufficient"), exp.signal("sufficient"))
    exp.save(tmp_path / "exp.json")
    loaded = fa.Explanation.load(tmp_path / "exp.json")
    assert (tmp_path / "exp.npz").exists() and loaded.to_json() == exp.to_json()


def test_interleaved_partitions_find_the_band_too():
    clf, x = km.ratio_model(), km.tones({440: 0.5, 1000: 0.2, 2200: 2.0, 3100: 2.0})
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=0, partition="interleaved"))
    assert_valid(clf, exp)
    assert precision_recall(exp.sufficient, km.band_bins(440, len(x)))[0] == 1.0


def test_config_rejects_nonsense():
    with pytest.raises(ValueError, match="parts=1"):
        fa.FreqReXConfig(parts=1)
    with pytest.raises(ValueError, match="min_confidence"):
        fa.FreqReXConfig(min_confidence=1.5)


@settings(max_examples=80, deadline=None)
@given(st.integers(1, 3000), st.integers(2, 8), st.sampled_from(["contiguous", "interleaved"]), st.integers(0, 10**6))
def test_partitions_cover_every_bin_exactly_once(n, p, mode, seed):
    bins = np.arange(n) * 3 + 7
    parts = partition_bins(bins, p, np.random.default_rng(seed), mode)
    assert len(parts) == min(p, n) and all(len(part) > 0 for part in parts)
    assert np.array_equal(np.sort(np.concatenate(parts)), bins)


@settings(max_examples=15, deadline=None)
@given(st.integers(0, 10**6), st.floats(0.2, 2.0), st.floats(0.2, 2.0))
def test_responsibility_is_non_negative_and_subsets_are_prefixes(seed, a, b):
    clf, x = km.ratio_model(), km.tones({440: a, 1000: b}, seconds=0.25, seed=seed % 100)
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=seed, iterations=3))
    assert (exp.responsibility >= 0).all()
    for kind in ("sufficient", "necessary", "complete"):
        bins = getattr(exp, kind)
        if bins is not None:
            assert set(bins.tolist()) == set(exp.ranking[: len(bins)].tolist())


def test_a_map_that_never_saw_a_passing_mutant_is_not_converged():
    """The real function on a knife edge: the planted model flips on ANY energy loss, so no proper mutant can
    keep its label. Every iteration then holds only "every part is needed" credit, which moved the running
    map and read as convergence (3 iterations, 0 empty, converged). It must say it never converged and why."""
    from freqrex_audit.bench.planted import any_loss_model, knife_edge_clip

    x = knife_edge_clip()
    exp = fa.explain(any_loss_model(x), x, fa.FreqReXConfig(seed=0))
    assert exp.converged is False and exp.stopped == "nothing passed" and exp.saw_a_pass is False
    assert exp.empty_iterations == exp.iterations == 3  # min_iterations of nothing, then it stops asking
    assert exp.emd_trace == ()  # no iteration was a convergence step
    ratio = fa.explain(km.ratio_model(), km.tones({440: 1.0, 1000: 0.6}), CONFIG)  # a model with a cause does
    assert ratio.converged is True and ratio.stopped == "epsilon" and ratio.emd_trace[-1] <= CONFIG.epsilon
    again = fa.Explanation.from_json(exp.to_json())
    assert (again.converged, again.stopped, again.cut_nodes) == (False, "nothing passed", exp.cut_nodes)


def test_a_node_the_budget_cut_short_gets_no_credit():
    """With 5 queries an iteration asks the root's 4 single children and one pair: not every union, so the
    root is not known to need every child. It used to be credited 1/p per child all the same, so the map
    changed with the budget; now it gets nothing and the cut is counted."""
    from freqrex_audit.audio import spectrum as spec
    from freqrex_audit.bench.planted import any_loss_model, knife_edge_clip
    from freqrex_audit.engine import responsibility as resp

    x = knife_edge_clip()
    engine = fa.QueryEngine(any_loss_model(x))
    spectrum = spec.rfft(spec.as_tensor(x, "cpu"))
    options = dict(parts=4, partition="contiguous", max_depth=8, min_part_size=4, refine_top=1)
    short = resp.responsibility_iteration(engine, spectrum, len(x), 0, np.random.default_rng(0), query_budget=5,
                                          **options)
    assert (short.passed, short.cut) == (0, 1) and not short.responsibility.any()
    full = resp.responsibility_iteration(engine, spectrum, len(x), 0, np.random.default_rng(0), query_budget=14,
                                         **options)  # all 14 unions of the root asked, none passed
    assert full.passed == 0 and np.allclose(full.responsibility, 0.25)  # 1/p to every bin of the 4 children
    assert full.cut == 4  # the next level's 4 nodes got no query, so no credit


def test_literal_convergence_compares_the_iteration_map_with_the_running_map(monkeypatch):
    from freqrex_audit.engine import responsibility as resp

    a, b = np.eye(1, 50, 10)[0], np.eye(1, 50, 40)[0]
    assert resp.convergence_distance(a, np.zeros(50), "literal") is None
    assert resp.convergence_distance(a, b, "literal") == pytest.approx(0.6)  # R_i at bin 40, R_g at bin 10
    assert resp.convergence_distance(a, b, "running") == pytest.approx(resp.emd_1d(a, a + b))
    # literally, an iteration that keeps finding the same band is at distance 0 from the running map
    assert resp.convergence_distance(a, a, "literal") == 0.0
    clf, x = km.ratio_model(), km.tones({440: 1.0, 1000: 0.6, 2200: 3.0})
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=0, convergence="literal"))
    assert_valid(clf, exp)
    with pytest.raises(ValueError, match="convergence"):
        fa.FreqReXConfig(convergence="sometimes")


def test_batched_and_single_synthesis_give_the_identical_waveform():
    x = torch.from_numpy(km.tones({440: 1.0, 1000: 0.6}, seconds=1.0, sr=16000))  # T where batched FFTs differed
    X = spec.rfft(x)
    masks = torch.rand(16, X.shape[-1], generator=torch.Generator().manual_seed(0)) < 0.3
    batched = spec.masked_waveforms(X, masks, len(x))
    for row in range(16):
        assert torch.equal(batched[row], spec.masked_waveforms(X, masks[row:row + 1], len(x))[0])


def test_recorded_confidences_are_those_of_the_handed_out_signals():
    clf, x = km.lowpass_model(), km.tones({440: 1.0, 1000: 0.6, 5000: 2.0}, sr=16000)
    exp = fa.explain(clf, x, CONFIG)
    engine = fa.QueryEngine(clf)
    for kind in ("sufficient", "necessary", "complete"):
        if getattr(exp, kind) is not None:
            assert engine.query(exp.signal(kind)[None])[0][exp.target] == getattr(exp, f"{kind}_confidence")
    assert not exp.requeried  # same device: the search's waveforms are bit for bit the handed-out ones


def test_knife_edge_subsets_are_flagged_fragile_and_robust_ones_are_not():
    clf, x = km.knife_edge_model(), km.tones({440: 1.0, 1000: 0.6, 2200: 0.8}, noise=0.0)
    exp = fa.explain(clf, x, CONFIG)
    assert_valid(clf, exp)
    assert set(exp.fragile["sufficient"]) == {"noise_1e-6", "int16"} and exp.is_fragile("sufficient")
    robust = fa.explain(km.ratio_model(), km.tones({440: 0.5, 1000: 0.3, 2200: 0.4}), CONFIG)
    assert robust.fragile["sufficient"] == () and not robust.is_fragile("sufficient")
    assert robust.queries_by_phase["fragility"] == 2 * sum(getattr(robust, k) is not None
                                                        for k in ("sufficient", "minimal", "necessary", "complete"))
    unchecked = fa.explain(clf, x, fa.FreqReXConfig(seed=0, fragility_check=False))
    assert unchecked.queries_by_phase["fragility"] == 0 and not unchecked.is_fragile("sufficient")


@pytest.mark.parametrize("conf,original,decimals,expected", [
    (0.6951, 0.6949, 2, True),    # rounding both sides said 0.70 vs 0.69: not complete
    (0.700, 0.694, 2, False), (0.7049, 0.700, 2, True), (0.7051, 0.700, 2, False), (0.5, 0.5, 0, True),
])
def test_one_completeness_rule(conf, original, decimals, expected):
    assert is_complete(conf, original, decimals) is expected


def test_inverse_classification_records_its_rule_and_offers_the_complete_removal():
    clf, x = km.and_model(), km.tones({300: 0.5, 1200: 0.5, 2000: 2.0, 3300: 2.0})
    exp = fa.explain(clf, x, CONFIG)
    assert exp.inverse_rule == "necessary-complement"
    assert np.array_equal(exp.bins("inverse"), np.setdiff1d(np.arange(exp.n_bins), exp.necessary))
    engine = fa.QueryEngine(clf)
    assert int(engine.query(exp.signal("inverse")[None])[0].argmax()) == exp.inverse_label
    # the transferability paper removes the complete set: label of that remainder, at no extra query
    assert exp.complete is not None
    assert np.array_equal(exp.bins("inverse_complete"), np.setdiff1d(np.arange(exp.n_bins), exp.complete))
    probs = engine.query(exp.signal("inverse_complete")[None])[0]
    assert int(probs.argmax()) == exp.complete_inverse_label != exp.target
    # without a necessary set the fallback is named, not silent
    fallback = dataclasses.replace(exp, necessary=None, inverse_rule="sufficient-complement")
    assert np.array_equal(fallback.bins("inverse"), np.setdiff1d(np.arange(exp.n_bins), exp.sufficient))


def test_chain_never_accepts_a_prefix_it_did_not_check():
    """Regression: after the chain had moved past failures L times, the last unchecked k was accepted
    (a HuBERT clip got a 'sufficient' set at 0.028 confidence). Scripted oracle: P_k keeps the target only
    for k in {3..6, 8, 10, 12, 14} and k ≥ 20; with L = 5 the first stable prefix is 20."""
    from freqrex_audit.engine.subsets import find_subsets

    def keeps(k: int) -> bool:
        return 3 <= k <= 6 or k in (8, 10, 12, 14) or k >= 20

    class ScriptedOracle:
        position = np.arange(200)
        kept: dict = {}  # PrefixOracle's protocol (#33): its cache, and complements asked in the same call

        def keep(self, ks, also_drop=()):
            return [np.array([0.9, 0.1]) if keeps(int(k)) else np.array([0.1, 0.9]) for k in ks]

        def drop(self, ks, also_keep=()):
            return [np.array([0.1, 0.9]) for _ in ks]

    found = find_subsets(ScriptedOracle(), 0, 0.9, min_confidence=0.5, chain_length=5, grid_points=48,
                         refine_points=16, decimals=2)
    assert found.sufficient == 20
    assert found.sufficient_probs[0] >= 0.45
