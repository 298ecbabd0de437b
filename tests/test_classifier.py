"""classifier.py: exact query counts, batch-size independence, OOM back-off, output checks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit import Classifier, ClassifierError, QueryEngine
from freqrex_audit.audio import spectrum as spec


def energy_ratio(x: torch.Tensor) -> torch.Tensor:
    """Two classes from the share of spectral energy below 1 kHz (at 8 kHz)."""
    power = torch.fft.rfft(x).abs() ** 2
    k = power.shape[-1] * 1000 // 4000
    low = power[:, :k].sum(-1) / power.sum(-1).clamp_min(1e-12)
    return torch.stack([low, 1 - low], dim=-1)


@pytest.fixture
def clf():
    return Classifier.from_callable(energy_ratio, ["low", "high"], 8000)


@pytest.mark.parametrize("n,batch", [(1, 1), (7, 3), (64, 64), (65, 64), (200, 17)])
def test_counts_are_exact(clf, n, batch):
    engine = QueryEngine(clf, batch_size=batch)
    probs = engine.query(torch.randn(n, 400))
    assert probs.shape == (n, 2) and engine.queries == n


def test_results_do_not_depend_on_batch_size(clf):
    x = torch.randn(50, 400)
    a = QueryEngine(clf, batch_size=1).query(x)
    b = QueryEngine(clf, batch_size=64).query(x)
    assert np.allclose(a, b, atol=1e-6)


def test_query_spectral_matches_explicit_waveforms(clf):
    x = torch.randn(400)
    X = spec.rfft(x)
    masks = torch.rand(10, X.shape[-1]) > 0.5
    engine = QueryEngine(clf, batch_size=3)
    via_masks = engine.query_spectral(X, masks, 400)
    explicit = QueryEngine(clf).query(spec.masked_waveforms(X, masks, 400))
    assert np.allclose(via_masks, explicit) and engine.queries == 10


def test_out_of_memory_halves_batch_and_keeps_results(clf):
    calls = []

    def fragile(x):
        calls.append(x.shape[0])
        if x.shape[0] > 8:
            raise torch.OutOfMemoryError("CUDA out of memory (simulated)")
        return energy_ratio(x)

    engine = QueryEngine(Classifier.from_callable(fragile, ["low", "high"], 8000), batch_size=64)
    x = torch.randn(30, 400)
    probs = engine.query(x)
    assert engine.batch_size == 8 and engine.queries == 30
    assert np.allclose(probs, QueryEngine(clf).query(x))


@pytest.mark.parametrize("bad,message", [
    (lambda x: torch.ones(x.shape[0], 3), "shape"),
    (lambda x: torch.full((x.shape[0], 2), float("nan")), "NaN"),
])
def test_bad_outputs_raise_naming_the_model(bad, message):
    engine = QueryEngine(Classifier.from_callable(bad, ["a", "b"], 8000, name="broken-model"))
    with pytest.raises(ClassifierError, match=f"broken-model.*{message}"):
        engine.query(torch.randn(2, 100))


def test_logits_are_softmaxed():
    clf = Classifier.from_callable(lambda x: torch.zeros(x.shape[0], 4), list("abcd"), 8000, outputs="logits")
    assert np.allclose(QueryEngine(clf).query(torch.randn(2, 10)), 0.25)


def test_fingerprint_tells_apart_closures_with_different_settings():
    def make(threshold):
        return Classifier.from_callable(lambda x: energy_ratio(x) * 0 + threshold, ["low", "high"], 8000)

    assert make(0.3).fingerprint != make(0.7).fingerprint
    assert make(0.3).fingerprint == make(0.3).fingerprint
