"""#33: the engine's cheaper host masks and its speculative calls change calls, never results."""

from __future__ import annotations

import dataclasses

import numpy as np
import torch

from freqrex_audit.audio import spectrum as spec
from freqrex_audit.bench import planted
from freqrex_audit.bench.queries import single_band_clip
from freqrex_audit.engine import FreqReXConfig, explain
from freqrex_audit.models.classifier import QueryEngine


def test_numpy_masking_is_torchs_product_bit_for_bit():
    rng = np.random.default_rng(0)
    x = torch.from_numpy(rng.standard_normal(1601).astype(np.float32))
    s = spec.rfft(x)
    masks = torch.from_numpy(rng.random((9, s.shape[-1])) < 0.5)
    masks[0] = False  # all bins dropped: the signs of zeros must match too
    masks[1] = True
    fast = spec.masked_waveforms(s, masks, len(x))
    slow = spec.irfft(s * masks.to(dtype=s.real.dtype), len(x))
    assert fast.dtype == slow.dtype == torch.float32
    assert np.array_equal(fast.numpy().view(np.uint32), slow.numpy().view(np.uint32))


def _run(clf, x, **config):
    engine = QueryEngine(clf, batch_size=config.pop("batch_size", 64))
    exp = explain(engine, x, FreqReXConfig(seed=0, **config))
    return exp, engine


def _same_results(a, b):
    for field in ("responsibility", "ranking", "sufficient", "necessary", "complete", "minimal"):
        assert np.array_equal(getattr(a, field), getattr(b, field)), field
    assert a.emd_trace == b.emd_trace and a.iterations == b.iterations
    assert a.sufficient_confidence == b.sufficient_confidence


def test_speculation_keeps_results_and_queries_and_fills_calls():
    centres = planted.CONJUNCTION_CENTRES[:4]
    clf, x = planted.conjunction_model(centres), planted.conjunction_clip(centres)
    plain, plain_engine = _run(clf, x, speculate=0)
    fast, fast_engine = _run(clf, x, speculate=2)  # the measured width; the default (0) keeps the old calls
    assert FreqReXConfig().speculate == 0
    _same_results(plain, fast)
    assert plain.queries <= fast.queries <= 1.10 * plain.queries  # speculation wasted ≤ 10 %
    assert fast_engine.calls < plain_engine.calls
    assert fast.queries / fast_engine.calls > plain.queries / plain_engine.calls


def test_speculative_query_counts_do_not_depend_on_batch_size():
    clf, x = planted.ratio_model(), single_band_clip(1.0)
    big, _ = _run(clf, x, batch_size=64, speculate=2)
    small, small_engine = _run(clf, x, batch_size=3, speculate=2)
    _same_results(big, small)
    assert big.queries_by_phase == small.queries_by_phase
    assert max(small_engine.call_sizes) <= 3


def test_speculation_off_is_the_old_engine_exactly():
    """speculate=0 asks what the engine asked before #33 here (counts pinned in README's query table); the
    chain call's ride-along (not under ``speculate``) wastes nothing on this clip."""
    exp, _ = _run(planted.ratio_model(), single_band_clip(1.0), speculate=0)
    assert exp.queries == 128 and dataclasses.asdict(exp.config)["speculate"] == 0
