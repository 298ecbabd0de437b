"""Tiny classifiers and datasets for the harness's end-to-end tests (importable as tests.audit_models:NAME).

* ``fragile``: "loud" when the 440 Hz bin's amplitude passes a threshold, else "quiet" — a single
  frequency decides, so the Fourier attack flips it with one bin.
* ``robust``: "low" / "high" by the share of energy below 1 kHz over many tones — no handful of
  frequencies can move that share across 1/2.
"""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from freqrex_audit import Classifier

SR = 8000


def _tone_bin_amplitude(x: torch.Tensor, hz: float) -> torch.Tensor:
    n = x.shape[-1]
    k = int(round(hz * n / SR))
    return torch.fft.rfft(x)[:, k].abs() * 2 / n


def fragile(device: str = "cpu") -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        score = (_tone_bin_amplitude(x, 440.0) - 0.2) * 40
        return torch.softmax(torch.stack([-score, score], dim=-1), dim=-1)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="fragile")


def robust(device: str = "cpu") -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        power = torch.fft.rfft(x).abs() ** 2
        k = power.shape[-1] * 1000 // (SR // 2)
        low = power[:, :k].sum(-1) / power.sum(-1).clamp_min(1e-12)
        score = (low - 0.5) * 12
        return torch.softmax(torch.stack([score, -score], dim=-1), dim=-1)

    return Classifier.from_callable(fn, ["low", "high"], SR, device=device, name="robust")


def _tones(freqs: np.ndarray, amps: np.ndarray, seconds: float, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SR)) / SR
    x = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in zip(freqs, amps))
    return (x + 0.005 * rng.standard_normal(len(t))).astype(np.float32)


def write_fragile_dataset(root: Path, per_class: int = 2, seconds: float = 0.25) -> Path:
    for i in range(per_class):
        for label, amp in (("loud", 0.5), ("quiet", 0.05)):
            x = _tones(np.array([440.0, 1000.0, 2000.0]), np.array([amp, 0.2, 0.1]), seconds, seed=i)
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(root / label / f"{i:03d}.wav", x, SR, subtype="FLOAT")
    return root


def write_robust_dataset(root: Path, per_class: int = 2, seconds: float = 0.25) -> Path:
    for i in range(per_class):
        for label, (lo, hi) in (("low", (100, 900)), ("high", (1200, 3600))):
            freqs = np.arange(lo, hi, 40.0)
            x = _tones(freqs, np.full(len(freqs), 0.4 / np.sqrt(len(freqs))), seconds, seed=10 + i)
            (root / label).mkdir(parents=True, exist_ok=True)
            sf.write(root / label / f"{i:03d}.wav", x, SR, subtype="FLOAT")
    return root


def single_bin(device: str = "cpu", hz: float = 500.0) -> Classifier:
    """Same labels as ``robust`` but decided by one bin: a fragile "new version" for regression tests."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        score = (_tone_bin_amplitude(x, hz) - 0.03) * 200
        return torch.softmax(torch.stack([score, -score], dim=-1), dim=-1)

    return Classifier.from_callable(fn, ["low", "high"], SR, device=device, name="single_bin")


def hanging(device: str = "cpu", after_calls: int = 0) -> Classifier:
    """``robust`` for its first ``after_calls`` calls, then every call blocks for good: a hung model."""
    inner = robust(device)
    calls = [0]

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] > after_calls:
            threading.Event().wait()  # never set
        return inner.predict(x)

    return Classifier.from_callable(fn, inner.labels, SR, device=device, name="hanging")


def slow(device: str = "cpu", seconds: float = 0.3) -> Classifier:
    """``robust`` that takes ``seconds`` per call: a spec long enough to interrupt in the middle."""
    import time

    inner = robust(device)

    def fn(x: torch.Tensor) -> torch.Tensor:
        time.sleep(seconds)
        return inner.predict(x)

    return Classifier.from_callable(fn, inner.labels, SR, device=device, name="slow")
