"""Planted models whose truth is known, for "gates that cannot lie" (issue #28); importable as tests.gate_models:NAME.

* ``nan_for_b``: classes "a" / "b" by the share of energy below 1 kHz (like ``audit_models.robust``), but its
  answer for any input holding the 3004 Hz marker tone is NaN. The "b" clips carry the marker; the "a" clips
  are tones at multiples of 20 Hz, periodic in 1/20 s, so no mutation, boost or clipping of them can put energy
  in the marker's bin (3004 Hz is not a multiple of 20): the truth is that every "b" clip errors, no "a" clip does.
* ``nan_when_clipped``: the same, except that only a marked input with a sample at full scale (a clipped
  boost, what the attack's ×1000 rung makes) answers NaN: the "b" clips predict and explain, then error under
  attack; the "a" clips never error.
* ``quiet_bin``: "on" iff the 440 Hz bin's amplitude is above 0.3; its clips hold 0.35 there, so ×0.75 on
  that one bin flips it at 14 dB SNR. The truth: one quiet one-frequency flip per clip, which the default
  search finds in about 40 queries and ``attack.query_budget: 12`` cannot.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import soundfile as sf
import torch

from freqrex_audit import Classifier
from tests.audit_models import SR, robust

SECONDS = 0.25
MARKER_HZ = 3004.0


def _amplitude(x: torch.Tensor, hz: float) -> torch.Tensor:
    n = x.shape[-1]
    return torch.fft.rfft(x)[:, int(round(hz * n / SR))].abs() * 2 / n


def nan_for_b(device: str = "cpu") -> Classifier:
    inner = robust(device)

    def fn(x: torch.Tensor) -> torch.Tensor:
        probs = inner.predict(x)
        return torch.where((_amplitude(x, MARKER_HZ) > 0.05)[:, None], torch.nan, probs)

    return Classifier.from_callable(fn, ["a", "b"], SR, device=device, name="nan-for-b")


def nan_when_clipped(device: str = "cpu") -> Classifier:
    inner = robust(device)

    def fn(x: torch.Tensor) -> torch.Tensor:
        probs = inner.predict(x)
        broken = (x.abs().amax(-1) >= 0.999) & (_amplitude(x, MARKER_HZ) > 0.05)
        return torch.where(broken[:, None], torch.nan, probs)

    return Classifier.from_callable(fn, ["a", "b"], SR, device=device, name="nan-when-clipped")


def quiet_bin(device: str = "cpu") -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        score = (_amplitude(x, 440.0) - 0.3) * 40
        return torch.softmax(torch.stack([score, -score], dim=-1), dim=-1)

    return Classifier.from_callable(fn, ["on", "off"], SR, device=device, name="quiet-bin")


def _clip(freqs_amps: dict[float, float], seed: int) -> np.ndarray:
    """Tones at exact bin centres (4 Hz apart at 0.25 s), random phases, no noise: a bin without a tone
    holds only float32 rounding."""
    t = np.arange(int(SECONDS * SR)) / SR
    rng = np.random.default_rng(seed)
    x = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in freqs_amps.items())
    return np.asarray(x, dtype=np.float32)


def _write(root: Path, label: str, i: int, x: np.ndarray) -> None:
    (root / label).mkdir(parents=True, exist_ok=True)
    sf.write(root / label / f"{i:03d}.wav", x, SR, subtype="FLOAT")


def write_marker_dataset(root: Path, per_class: int = 3) -> Path:
    """"a": 20 tones 100–860 Hz; "b": 20 tones 1200–1960 Hz plus the marker (every clip peaks below 0.9, so
    only a boosted, clipped input reaches full scale)."""
    for i in range(per_class):
        low = {f: 0.3 / np.sqrt(20) for f in np.arange(100.0, 900.0, 40.0)}
        high = {f: 0.3 / np.sqrt(20) for f in np.arange(1200.0, 2000.0, 40.0)}
        for label, x in (("a", _clip(low, seed=i)), ("b", _clip({**high, MARKER_HZ: 0.1}, seed=100 + i))):
            assert np.abs(x).max() < 0.9, (label, i, np.abs(x).max())
            _write(root, label, i, x)
    return root


def write_quiet_bin_dataset(root: Path, per_class: int = 2) -> Path:
    """"on" clips: 0.35 at 440 Hz (just above the 0.3 threshold) under 0.2 at 1 and 2 kHz."""
    for i in range(per_class):
        _write(root, "on", i, _clip({440.0: 0.35, 1000.0: 0.2, 2000.0: 0.2}, seed=i))
    return root


def knife_edge(device: str = "cpu") -> Classifier:
    """``bench.planted.any_loss_model`` for the clip :func:`write_knife_dataset` writes: the label flips on any
    energy loss, so no proper mutant passes and the responsibility map cannot converge."""
    from freqrex_audit.bench.planted import any_loss_model, knife_edge_clip

    return any_loss_model(knife_edge_clip())


def write_knife_dataset(root: Path) -> Path:
    from freqrex_audit.bench.planted import knife_edge_clip

    _write(root, "A", 0, knife_edge_clip())  # float32 WAV: the model sees exactly its reference clip
    return root


def fails_to_load(device: str = "cpu") -> Classifier:
    """A factory that imports fine and raises when called: a model that fails to load (not a spec error)."""
    raise RuntimeError("weights file is corrupt")
