"""spectrum.py: round trips, linearity of masks, STFT reconstruction, bin ↔ Hz."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from freqrex_audit.audio import spectrum as spec

signals = arrays(np.float32, st.integers(16, 600), elements=st.floats(-1, 1, width=32))


@settings(max_examples=60, deadline=None)
@given(signals)
def test_irfft_of_rfft_is_identity(x):
    t = torch.from_numpy(x)
    assert torch.allclose(spec.irfft(spec.rfft(t), len(x)), t, atol=1e-5)


@settings(max_examples=60, deadline=None)
@given(signals, st.integers(0, 2**32 - 1))
def test_union_of_disjoint_bin_sets_is_sum_of_waveforms(x, seed):
    t = torch.from_numpy(x)
    X = spec.rfft(t)
    labels = torch.from_numpy(np.random.default_rng(seed).integers(0, 3, size=X.shape[-1]))
    masks = torch.stack([labels == 0, labels == 1, labels != 2])
    waves = spec.masked_waveforms(X, masks, len(x))
    assert torch.allclose(waves[0] + waves[1], waves[2], atol=1e-5)


@settings(max_examples=30, deadline=None)
@given(signals)
def test_all_true_mask_gives_original(x):
    t = torch.from_numpy(x)
    X = spec.rfft(t)
    wave = spec.masked_waveforms(X, torch.ones(1, X.shape[-1], dtype=torch.bool), len(x))[0]
    assert torch.allclose(wave, t, atol=1e-5)


@settings(max_examples=20, deadline=None)
@given(arrays(np.float32, st.integers(1100, 4000), elements=st.floats(-1, 1, width=32)),
       st.sampled_from([256, 512, 1024]))
def test_stft_round_trip_relative_error_below_1e5(x, frame):
    t = torch.from_numpy(x).double()
    back = spec.istft(spec.stft(t, frame), frame, len(x))
    assert float(torch.linalg.norm(back - t) / max(torch.linalg.norm(t), 1e-12)) < 1e-5


def test_stft_round_trip_float32_batch():
    x = torch.randn(3, 8000)
    back = spec.istft(spec.stft(x, 512), 512, 8000)
    assert float(torch.linalg.norm(back - x) / torch.linalg.norm(x)) < 1e-5


def test_bins_and_hz():
    n, sr = 16000, 16000
    assert spec.n_bins(n) == 8001
    assert spec.bin_to_hz(440, n, sr) == 440.0
    assert spec.hz_to_bin(440.4, n, sr) == 440
    assert spec.hz_to_bin(1e9, n, sr) == 8000
    # 1000 Hz in a 1 s clip is rfft bin 1000; in a 512-sample frame at 16 kHz it is bin 32.
    assert list(spec.nearest_stft_bins(np.array([1000, 1001, 3000]), n, 512)) == [32, 96]


def test_masked_waveforms_rejects_wrong_mask_width():
    X = spec.rfft(torch.randn(100))
    try:
        spec.masked_waveforms(X, torch.ones(1, 10, dtype=torch.bool), 100)
    except ValueError as exc:
        assert "10 bins" in str(exc)
    else:  # pragma: no cover
        raise AssertionError("expected ValueError")


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 3000), st.integers(1, 40), st.integers(0, 2**32 - 1), st.sampled_from([1, 2]))
def test_each_synthesised_row_is_independent_of_its_batch(n, batch, seed, threads):
    """The waveform a search queried (in a batch of any size, on any thread count) is bit for bit the one
    synthesised alone: a quantising model must not see a different clip than the one handed out."""
    rng = np.random.default_rng(seed)
    X = spec.rfft(torch.from_numpy(rng.standard_normal(n).astype(np.float32)))
    masks = torch.from_numpy(rng.random((batch, X.shape[-1])) < 0.5)
    before = torch.get_num_threads()
    torch.set_num_threads(threads)
    try:
        together = spec.masked_waveforms(X, masks, n)
    finally:
        torch.set_num_threads(before)
    pick = int(rng.integers(batch))
    assert together.dtype == torch.float32 and together.shape == (batch, n)
    assert torch.equal(together[pick], spec.masked_waveforms(X, masks[pick:pick + 1], n)[0])


@pytest.mark.parametrize("n", [24000, 24001, 160000])
def test_a_clips_spectrum_is_the_same_on_any_thread_count(n):
    """The spectrum every search starts from is bit for bit the same on 1, 2 or 4 threads and alone or in a batch:
    torch's CPU FFT split a 1.5-s clip's transform over its threads (1e-4 apart between 1 and 2), and okay-nabu's
    int8 model then answered differently (one clip's explanation took 503 queries at 2 threads, 535 at 1)."""
    x = torch.from_numpy(np.random.default_rng(n).standard_normal((3, n)).astype(np.float32))
    before = torch.get_num_threads()
    spectra = []
    try:
        for threads in (1, 2, 4):
            torch.set_num_threads(threads)
            spectra.append(spec.rfft(x[1]))
    finally:
        torch.set_num_threads(before)
    assert spectra[0].dtype == torch.complex64 and spectra[0].shape == (n // 2 + 1,)
    assert all(torch.equal(spectra[0], other) for other in spectra[1:])
    assert torch.equal(spec.rfft(x)[1], spectra[0])
