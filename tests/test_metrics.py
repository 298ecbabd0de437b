"""metrics.py: hand-computed values for signal metrics and faithfulness, properties for the rest."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import freqrex_audit as fa
from freqrex_audit.engine import (ClassResponsibility, Faithfulness, FrequencyHistogram, InsertionDeletion,
                                  InverseHistogram, class_responsibility, explanation_faithfulness, faithfulness,
                                  insertion_deletion, inverse_histogram, linf, mann_whitney, necessary_histogram,
                                  snr_db, spectral_entropy, welch_psd)

from .conftest import tone_mix
from .planted import peak_model


@pytest.fixture(scope="module")
def clf():
    return peak_model()


@pytest.fixture(scope="module")
def explanations(clf):
    """Two "low" clips of different lengths and one "high" clip, explained on the peak model."""
    config = fa.FreqReXConfig(seed=0, iterations=4)
    clips = [tone_mix({400: 1.0, 1500: 0.6}, 0.25, noise=0.05, seed=1),
             tone_mix({300: 1.0, 1500: 0.6}, 0.3, noise=0.05, seed=2),
             tone_mix({1500: 1.0, 400: 0.5}, 0.25, noise=0.05, seed=3)]
    return [fa.explain(clf, x, config) for x in clips]


def round_trips(result):
    restored = type(result).from_json(result.to_json())
    return restored.to_json() == result.to_json()


def test_snr_of_known_perturbations():
    x = tone_mix({440: 1.0}, 0.25)
    assert snr_db(x, 1.1 * x) == pytest.approx(20.0, abs=1e-4)  # ‖0.1x‖² = ‖x‖²/100
    ones = np.ones(100)
    assert snr_db(ones, ones + 0.01) == pytest.approx(40.0)
    assert snr_db(x, x) == float("inf")
    assert linf(ones, ones + np.r_[np.zeros(99), -0.3]) == pytest.approx(0.3)
    with pytest.raises(ValueError, match="shape"):
        snr_db(ones, ones[:5])


def test_spectral_entropy_of_tone_noise_and_two_tones():
    tone = tone_mix({500: 1.0}, 0.25)
    noise = np.random.default_rng(0).standard_normal(2000)
    assert spectral_entropy(tone) < 1e-6
    assert spectral_entropy(noise) > 0.9
    assert spectral_entropy(tone, 8000, method="welch") < spectral_entropy(noise, 8000, method="welch")
    two = tone_mix({500: 1.0, 1000: 1.0}, 0.25)  # two equal bins: exactly 1 bit
    assert spectral_entropy(two, normalise=False) == pytest.approx(1.0, abs=1e-6)
    assert spectral_entropy(two) == pytest.approx(1.0 / np.log2(1001), abs=1e-6)
    assert np.isnan(spectral_entropy(np.zeros(100)))


def test_welch_psd_peaks_at_the_tone():
    psd = welch_psd(tone_mix({1000: 1.0}, 0.5), 8000)
    assert abs(psd.hz[psd.power.argmax()] - 1000) <= 8000 / 256
    assert psd.nperseg == 256 and round_trips(psd)


def test_mann_whitney_matches_scipy_and_handles_empty():
    a, b = [1.0, 2.0, 3.0, np.nan], [4.0, 5.0, 6.0]
    result = mann_whitney(a, b)
    expected = scipy.stats.mannwhitneyu([1, 2, 3], b, alternative="two-sided")
    assert result.statistic == 0.0 and result.effect == -1.0 and result.n_a == 3
    assert result.pvalue == pytest.approx(expected.pvalue)
    assert np.isnan(mann_whitney([], b).pvalue)


def test_faithfulness_on_constructed_probabilities():
    p_orig = np.array([[0.8, 0.2], [0.6, 0.4]])
    p_in = np.array([[0.9, 0.1], [0.3, 0.7]])
    p_out = np.array([[0.1, 0.9], [0.5, 0.5]])
    f = faithfulness(p_orig, p_in, p_out)
    assert f.ai == pytest.approx(0.5)     # only the first rises
    assert f.ad == pytest.approx(0.25)    # (0 + 0.3 / 0.6) / 2
    assert f.ag == pytest.approx(0.25)    # (0.1 / 0.2 + 0) / 2
    assert f.ff == pytest.approx(0.4)     # (0.7 + 0.1) / 2
    assert f.fid_in == pytest.approx(0.5) and f.n == 2
    assert np.isnan(faithfulness(p_orig, p_in).ff)
    certain = faithfulness(np.array([[1.0, 0.0]]), np.array([[1.0, 0.0]]), target=[0])
    assert certain.ag == 0.0 and certain.ad == 0.0
    assert round_trips(f) and isinstance(f, Faithfulness)


def test_explanation_faithfulness_of_necessary_sets(clf, explanations):
    engine = fa.QueryEngine(clf)
    f = explanation_faithfulness(engine, explanations, kind="necessary")
    assert f.n == 3 and f.skipped == 0 and engine.queries == 9
    assert f.fid_in == 1.0   # the necessary set keeps the class ...
    assert f.ff > 0.5        # ... and removing it loses it


def test_insertion_beats_deletion_along_the_ranking(clf, explanations):
    engine = fa.QueryEngine(clf)
    exp = explanations[0]
    curve = insertion_deletion(engine, exp, n_points=17)
    assert curve.queries == engine.queries == 2 * len(curve.fractions)
    assert curve.fractions[0] == 0.0 and curve.fractions[-1] == 1.0
    assert curve.insertion[-1] == pytest.approx(exp.confidence, abs=1e-5)
    assert curve.deletion[0] == pytest.approx(exp.confidence, abs=1e-5)
    assert curve.insertion_auc > curve.deletion_auc
    assert round_trips(curve) and isinstance(curve, InsertionDeletion)


def test_inverse_histogram_counts_labels(explanations):
    # Expected counts written out by hand for planted inverse labels (not recomputed with the same loop).
    import dataclasses

    a, b, c = explanations
    planted = [dataclasses.replace(a, inverse_label=2, complete_inverse_label=1),
               dataclasses.replace(b, inverse_label=2, complete_inverse_label=None),
               dataclasses.replace(c, inverse_label=None, complete_inverse_label=1)]
    names = a.labels
    hist = inverse_histogram(planted)
    assert hist.counts == {names[2]: 2} and hist.missing == 1
    assert hist.by_class == {a.target_label: {names[2]: 1 + (b.target_label == a.target_label)}} | (
        {} if b.target_label == a.target_label else {b.target_label: {names[2]: 1}})
    complete = inverse_histogram(planted, "inverse_complete")
    assert complete.counts == {names[1]: 2} and complete.missing == 1
    assert round_trips(hist) and isinstance(hist, InverseHistogram)


def test_necessary_histogram_counts_every_necessary_frequency(explanations):
    hist = necessary_histogram(explanations, bins_hz=[0, 1000, 2000, 4001])
    total = sum(len(e.necessary) for e in explanations if e.necessary is not None)
    assert hist.counts.sum() == total and hist.n_explanations + hist.missing == 3
    low = sum(np.sum(e.hz("necessary") < 1000) for e in explanations if e.target_label == "low")
    assert hist.by_class["low"][0] == low
    even = necessary_histogram(explanations, 8)
    assert len(even.edges_hz) == 9 and even.edges_hz[-1] == 4000 and even.counts.sum() == total
    assert round_trips(hist) and isinstance(hist, FrequencyHistogram)


def test_class_responsibility_puts_clips_of_different_lengths_on_one_grid(explanations):
    avg = class_responsibility(explanations, n_points=201)
    assert {len(e.waveform) for e in explanations} == {2000, 2400}  # different K
    assert avg.hz[0] == 0.0 and avg.hz[-1] == 4000 and avg.hz.shape == (201,)
    assert avg.counts == {"high": 1, "low": 2}
    assert all(curve.shape == (201,) and curve.max() <= 1.0 + 1e-9 for curve in avg.by_class.values())
    # The peak model's causal frequencies for "low" sit in its low band.
    assert 200 <= avg.hz[avg.by_class["low"].argmax()] < 600
    assert round_trips(avg) and isinstance(avg, ClassResponsibility)
    with pytest.raises(ValueError, match="normalise"):
        class_responsibility(explanations, normalise="zscore")
