"""Shared fixtures: tones and band-energy classifiers whose causal frequencies are known."""

from __future__ import annotations

import numpy as np
import numpy.fft  # noqa: F401  (imported once here: pytester's in-process runs cannot load its C module twice)
import pytest

SR = 8000


def tone_mix(freqs_amps: dict[float, float], seconds: float = 0.5, sr: int = SR, noise: float = 0.0,
             seed: int = 0) -> np.ndarray:
    """A sum of sinusoids at exact bin centres (plus optional white noise), float32."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = sum(a * np.sin(2 * np.pi * f * t) for f, a in freqs_amps.items())
    if noise:
        x = x + noise * np.random.default_rng(seed).standard_normal(n)
    return np.asarray(x, dtype=np.float32)


@pytest.fixture
def sr() -> int:
    return SR
