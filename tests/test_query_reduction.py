"""Fewer queries (#21): binary splits below the first level find the same band for fewer queries."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex_audit as fa
from tests.known_models import SR, band_bins, ratio_model


def test_binary_refinement_finds_the_band_with_fewer_queries():
    n = SR // 2
    t = np.arange(n) / SR
    x = (np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1000 * t)
         + 0.02 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)
    default = fa.explain(ratio_model(), x, fa.FreqReXConfig(seed=0))
    binary = fa.explain(ratio_model(), x, fa.FreqReXConfig(seed=0, refine_parts=2, max_depth=20))
    band = band_bins(440, n)
    for exp in (default, binary):
        assert exp.sufficient is not None and set(exp.sufficient.tolist()) <= band
        assert exp.sufficient_confidence >= 0.5 * exp.confidence  # the handed-out signal really is sufficient
    assert binary.queries < default.queries


def test_refine_parts_is_validated():
    with pytest.raises(ValueError, match="refine_parts"):
        fa.FreqReXConfig(refine_parts=1)


def test_bench_explains_the_models_window_and_says_which():
    from freqrex_audit.bench import bench_model, format_table
    from tests.scale_models import WINDOW, windowed

    row = bench_model("windowed", windowed(), seconds=0.5, batch_size=32)
    assert row.window_s == WINDOW / SR and row.n_bins == WINDOW // 2 + 1  # the 0.25 s the model reads
    assert row.precision == "fp32" and row.queries == sum(row.queries_by_phase.values())
    assert "window s" in format_table([row])
