"""Planted classifiers whose one-frequency flips are known exactly, for the attack's ground-truth tests.

Each model reads the amplitude (or the real part) of single rfft bins, so which bin and which mutation
flips it is known by construction. The clips carry LOUD distractor tones the models ignore, so that
ordering bins by magnitude cannot stumble on the answer.
"""

from __future__ import annotations

import numpy as np
import torch

from freqrex_audit import Classifier

SR = 8000
N = 2000  # 0.25 s: bin spacing 4 Hz, K = 1001
DISTRACTORS = tuple(range(512, 3990, 60))  # 58 tones on exact bins that the models never read
LABELS = ["A", "B", "C"]


def bin_of(hz: float) -> int:
    return int(round(hz * N / SR))


def amplitude(x: torch.Tensor, hz: float) -> torch.Tensor:
    """Amplitude of the sinusoid at ``hz`` (one rfft bin)."""
    return torch.fft.rfft(x).abs()[:, bin_of(hz)] / (x.shape[-1] / 2)


def clip(quiet: dict[float, float], distractor_amp: float = 0.05, noise: float = 0.002, cosine: bool = False,
         seed: int = 0) -> np.ndarray:
    """440 Hz at 0.5, the planted tones ``quiet`` and 58 louder distractors, plus a little noise."""
    t = np.arange(N) / SR
    wave = np.cos if cosine else np.sin
    x = 0.5 * wave(2 * np.pi * 440 * t)
    rng = np.random.default_rng(seed)
    for hz in DISTRACTORS:
        x = x + distractor_amp * np.sin(2 * np.pi * hz * t + rng.uniform(0, 2 * np.pi))
    for hz, a in quiet.items():
        x = x + a * np.sin(2 * np.pi * hz * t)
    x = x + noise * rng.standard_normal(N)
    return np.asarray(x, dtype=np.float32)


def _three(fn, name: str) -> Classifier:
    return Classifier.from_callable(lambda x: torch.softmax(fn(x), -1), LABELS, SR, name=name)


def runner_up_model(hz: float = 1700.0, gain: float = 400.0) -> Classifier:
    """A from the 440 Hz tone (logit 20·a₄₄₀ = 10), B from the quiet ``hz`` bin (logit gain·a), C = 0.

    With a = 0.01 B is the runner-up (logit 4); ×3 makes it 12 > 10: the quietest flip is ×3 on that one
    bin, which does nothing at all for A.
    """
    return _three(lambda x: torch.stack([20 * amplitude(x, 440), gain * amplitude(x, hz),
                                         torch.zeros(x.shape[0])], -1), f"runner-up-{hz:g}")


def needs_x100_model(hz: float = 2500.0) -> Classifier:
    """B from the ``hz`` bin at amplitude 0.0005: ×10 gives logit 2 < 10, ×100 gives 20 > 10."""
    return runner_up_model(hz, gain=400.0)


def phase_model() -> Classifier:
    """A iff the real part of the 440 Hz bin is positive (a cosine): only a phase turn past 90° flips it.

    Silencing the bin gives a 0.5 / 0.5 tie, which the margin rule does not count as a flip.
    """
    def fn(x: torch.Tensor) -> torch.Tensor:
        real = torch.fft.rfft(x)[:, bin_of(440)].real / (x.shape[-1] / 2)
        s = 20 * real
        return torch.stack([s, -s, torch.full_like(s, -30.0)], -1)
    return _three(fn, "phase-440")


def energy_model() -> Classifier:
    """A while the clip has any energy at all: no frequency mutation can flip it."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        e = torch.log((x ** 2).mean(-1) + 1e-12) - np.log(1e-8)
        return torch.stack([e, torch.zeros_like(e), -e], -1)
    return _three(fn, "energy")
