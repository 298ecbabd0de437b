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
    from freqrex_audit.bench.timing import bench_model, format_table
    from tests.scale_models import WINDOW, windowed

    row = bench_model("windowed", windowed(), seconds=0.5, batch_size=32)
    assert row.window_s == WINDOW / SR and row.n_bins == WINDOW // 2 + 1  # the 0.25 s the model reads
    assert row.precision == "fp32" and row.queries == sum(row.queries_by_phase.values())
    assert "window s" in format_table([row])


def test_bench_counts_queries_on_the_planted_models():
    """``freqrex-audit bench --queries`` rows (a short clip and one conjunction, to stay fast)."""
    from freqrex_audit.bench.queries import format_query_table, query_rows

    rows = query_rows([0.25], [0], conjunctions=(2,))
    assert [r.case for r in rows] == ["single band, 0.25 s", "AND of 2 bands, 0.5 s"]
    assert all(r.bands_found and r.sufficient_valid and r.queries == sum(r.queries_by_phase.values()) for r in rows)
    assert "bands found" in format_query_table(rows)


def test_bench_replays_the_engines_own_calls_as_its_floor():
    """The forward floor is the model alone on the batch sizes the explanation used (FreqReX asks adaptively,
    so most calls are smaller than batch_size); the full-batch floor is reported beside it."""
    from freqrex_audit.bench.timing import bench_model, format_table, full_batches
    from tests.scale_models import windowed

    row = bench_model("windowed", windowed(), seconds=0.5, batch_size=32)
    assert 0 < row.calls <= row.queries and row.forward_s > 0 and row.forward_full_s > 0
    assert row.overhead_full_batches == pytest.approx(row.explain_s / row.forward_full_s)
    assert full_batches(70, 32) == [32, 32, 6] and full_batches(64, 32) == [32, 32]
    assert "overhead vs full batches" in format_table([row])
    assert row.mean_clips_per_call == pytest.approx(row.queries / row.calls) and "clips/call" in format_table([row])


def test_query_engine_records_every_calls_batch_size():
    engine = fa.QueryEngine(ratio_model(), batch_size=4)
    engine.query(np.zeros((10, 800), dtype=np.float32))
    assert engine.call_sizes == [4, 4, 2] and engine.queries == 10 and engine.calls == 3


def test_bench_sizes_rebuild_a_zoo_family_wider_with_its_window():
    from freqrex_audit.bench.sizes import parameter_count, sized_classifier
    from freqrex_audit.cli.clip import classifier_from_arg

    zoo = classifier_from_arg("zoo://instruments/whisper", "cpu")
    small = sized_classifier("zoo://instruments/whisper", "small", "cpu")
    assert small.labels == zoo.labels and small.input_window == zoo.input_window
    assert parameter_count(small) > 10 * parameter_count(zoo)
    assert small.predict(np.zeros((2, 16000), dtype=np.float32)).shape == (2, len(zoo.labels))
    with pytest.raises(ValueError, match="not one"):
        sized_classifier("zoo://instruments/eval", "small", "cpu")


def test_bench_repeats_keep_the_fastest_of_identical_explanations():
    from freqrex_audit.bench.timing import bench_model
    from tests.scale_models import windowed

    once = bench_model("windowed", windowed(), seconds=0.5, batch_size=32, attacks=False)
    twice = bench_model("windowed", windowed(), seconds=0.5, batch_size=32, attacks=False, repeats=2)
    assert (twice.queries, twice.calls) == (once.queries, once.calls)  # deterministic: the same calls each time
    assert twice.attack_queries == 0 and twice.explain_s > 0
