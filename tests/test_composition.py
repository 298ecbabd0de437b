"""composition.py: greedy sufficient superposition (FreqReX §6.1, Table 2) on planted signals."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex_audit as fa
from freqrex_audit.engine import CompositionResult, common_length, compose, compose_explanations

from .conftest import tone_mix
from .planted import peak_model

SECONDS = 0.25


@pytest.fixture(scope="module")
def clf():
    return peak_model()


def test_signals_sharing_the_causal_band_compose_fully(clf):
    # Every signal peaks at 400 Hz (the low band); what else they carry differs.
    signals = [tone_mix({400: 1.0, f: 0.6}, SECONDS) for f in (1500, 1300, 3000, 700, 2500)]
    engine = fa.QueryEngine(clf)
    result = compose(engine, signals, "low", confidences=[0.5, 0.9, 0.7, 0.8, 0.6])
    assert result.ratio == 1.0 and result.available == 5
    assert result.kept == (1, 3, 2, 4, 0)  # highest confidence first
    assert result.composite_label == 0 and result.label_name == "low"
    assert np.allclose(result.composite, np.mean(signals, axis=0), atol=1e-6)
    assert engine.queries == result.queries


def test_conflicting_causal_bands_compose_partially(clf):
    # Each is "low" alone (its own low tone beats the shared 1500 Hz one), but their causal tones
    # sit in different bins: averaged, each halves while the shared high tone stays → "high".
    signals = [tone_mix({f: 1.0, 1500: 0.9}, SECONDS) for f in (300, 400, 500)]
    assert (fa.QueryEngine(clf).query(np.stack(signals)).argmax(1) == 0).all()
    result = compose(clf, signals, 0, confidences=[0.9, 0.8, 0.7])
    assert result.ratio == pytest.approx(1 / 3)
    assert result.kept == (0,) and result.tried == (0, 1, 2) and result.accepted == (True, False, False)
    assert np.allclose(result.composite, signals[0])
    reversed_order = compose(clf, signals, "low", confidences=[0.1, 0.2, 0.3])
    assert reversed_order.kept == (2,)


def _sequential(clf, signals, label, confidences):
    """Reference: one query per decision, no speculation."""
    engine = fa.QueryEngine(clf)
    order = sorted(range(len(signals)), key=lambda i: (-confidences[i], i))
    kept, total = [], np.zeros(len(signals[0]))
    for i in order:
        candidate = (total + signals[i]) / (len(kept) + 1)
        if engine.query(candidate[None].astype(np.float32))[0].argmax() == label:
            kept.append(i)
            total = total + signals[i]
    return tuple(kept)


def test_speculative_batching_decides_like_one_at_a_time(clf):
    rng = np.random.default_rng(3)
    signals = []
    for _ in range(12):
        low = float(rng.choice([300, 400, 500]))
        signals.append(tone_mix({low: 1.0, 1500: float(rng.uniform(0.2, 0.9))}, SECONDS, noise=0.01,
                                seed=int(rng.integers(1000))))
    confidences = list(rng.uniform(0.5, 1.0, len(signals)))
    result = compose(clf, signals, 0, confidences=confidences)
    assert result.kept == _sequential(clf, signals, 0, confidences)
    assert 0 < result.ratio < 1


def test_consistent_class_needs_few_model_calls(clf):
    calls = []
    engine = fa.QueryEngine(clf)
    original = engine.query
    engine.query = lambda w: (calls.append(len(w)), original(w))[1]
    signals = [tone_mix({400: 1.0, 1500: 0.3}, SECONDS, noise=0.01, seed=i) for i in range(15)]
    result = compose(engine, signals, 0)
    assert result.ratio == 1.0
    assert calls == [1, 2, 4, 8, 1]  # doubling windows, then the composite itself


def test_common_length_pads_or_trims():
    a, b = np.ones(5, np.float32), np.ones(3, np.float32)
    assert common_length([a, b]).tolist() == [[1] * 5, [1, 1, 1, 0, 0]]
    assert common_length([a, b], "min").shape == (2, 3)
    assert common_length([a, b], 4).tolist() == [[1] * 4, [1, 1, 1, 0]]
    with pytest.raises(ValueError, match="length"):
        common_length([a], "longest")


def test_different_lengths_are_padded_to_the_longest(clf):
    signals = [tone_mix({400: 1.0}, 0.25), tone_mix({400: 1.0}, 0.3)]
    result = compose(clf, signals, "low")
    assert result.length == 2400 and result.composite.shape == (2400,) and result.ratio == 1.0


def test_bad_label_and_empty_input(clf):
    with pytest.raises(ValueError, match="not one of"):
        compose(clf, [np.zeros(10)], "mid")
    empty = compose(clf, [], "low")
    assert empty.available == 0 and np.isnan(empty.ratio) and empty.queries == 0


def test_compose_explanations_groups_by_class_and_round_trips(clf, tmp_path):
    config = fa.FreqReXConfig(seed=0, iterations=4)
    clips = [tone_mix({f: 1.0, 1500: 0.6}, SECONDS, noise=0.05, seed=f) for f in (300, 400)]
    clips.append(tone_mix({1500: 1.0, 400: 0.5}, SECONDS, noise=0.05, seed=9))
    explanations = [fa.explain(clf, x, config) for x in clips]
    results = compose_explanations(clf, explanations)
    assert set(results) == {"low", "high"}
    assert results["low"].available == 2 and results["high"].available == 1
    assert results["low"].ratio == 1.0 and results["low"].composite_label == 0
    assert results["low"].kind == "sufficient"
    restored = CompositionResult.from_json(results["low"].to_json())
    assert restored.to_json() == results["low"].to_json() and restored.kept == results["low"].kept
    path = results["low"].save(tmp_path / "composition.json")
    assert CompositionResult.load(path).to_json() == results["low"].to_json()
    with pytest.raises(ValueError, match="labels"):
        compose_explanations(peak_model(labels=("a", "b", "c")), explanations)


def test_composite_spectra_and_entropy_tests_ship_the_papers_analyses(clf):
    from freqrex_audit.engine.composition import composite_spectra, entropy_tests

    engine = fa.QueryEngine(clf)
    tonal = compose(engine, [tone_mix({400: 1.0}, SECONDS) for _ in range(3)], "low")
    noisy = compose(engine, [tone_mix({1500: 1.0}, SECONDS, noise=0.5, seed=s) for s in range(3)], "high")
    spectra = composite_spectra({"low": tonal, "high": noisy}, [])
    low, high = spectra["low"], spectra["high"]
    assert low["psd_hz"][int(np.argmax(low["psd_power"]))] == pytest.approx(400, abs=8000 / 256)
    assert low["composite_entropy"] < 0.05 < 0.15 < high["composite_entropy"]  # a pure tone vs a noisy one
    tests = entropy_tests({"a": {"signal_entropies": [0.1, 0.2, 0.15, 0.12, 0.18]},
                           "b": {"signal_entropies": [0.8, 0.9, 0.85, 0.95, 0.7]}})
    ab = tests["a vs b"]
    assert ab["effect"] == -1.0 and ab["statistic"] == 0.0 and ab["pvalue"] < 0.01  # every a below every b
    assert entropy_tests({"a": {"signal_entropies": []}, "b": {}})["a vs b"]["pvalue"] is None
