"""Fewer queries (#21): binary splits below the first level find the same band for fewer queries."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex_audit as fa
from tests.known_models import SR, CountingClassifier, band_bins, ratio_model


def single_band_clip(seconds: float) -> np.ndarray:
    n = int(seconds * SR)
    t = np.arange(n) / SR
    return (np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1000 * t)
            + 0.02 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_a_single_band_explanation_at_1s_takes_at_most_300_queries(seed):
    """Query counts are deterministic (fixed seeds and chunks): this is a count, not a timing."""
    x = single_band_clip(1.0)
    counting = CountingClassifier(ratio_model())
    exp = fa.explain(counting, x, fa.FreqReXConfig(seed=seed))
    assert counting.seen == exp.queries <= 300, exp.queries_by_phase
    band = band_bins(440, len(x))
    assert exp.target == 0 and set(exp.minimal.tolist()) <= band  # the band found (the prefix may hold tied bins)
    probs = fa.QueryEngine(ratio_model()).query(exp.signal("sufficient")[None])[0]
    assert probs.argmax() == exp.target and probs[exp.target] >= 0.5 * exp.confidence


def test_binary_refinement_still_finds_the_band():
    x = single_band_clip(0.5)
    binary = fa.explain(ratio_model(), x, fa.FreqReXConfig(seed=0, refine_parts=2, max_depth=20))
    assert binary.sufficient is not None and set(binary.sufficient.tolist()) <= band_bins(440, len(x))
    assert binary.sufficient_confidence >= 0.5 * binary.confidence


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


def test_bench_counts_queries_on_the_planted_models():
    """``freqrex-audit bench --queries`` rows (a short clip and one conjunction, to stay fast)."""
    from freqrex_audit.bench_queries import format_query_table, query_rows

    rows = query_rows([0.25], [0], conjunctions=(2,))
    assert [r.case for r in rows] == ["single band, 0.25 s", "AND of 2 bands, 0.5 s"]
    assert all(r.bands_found and r.sufficient_valid and r.queries == sum(r.queries_by_phase.values()) for r in rows)
    assert "bands found" in format_query_table(rows)
