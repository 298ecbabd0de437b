"""Planted classifiers whose causal frequencies are known by construction, and clips to explain.

Each model reads band energies from the batch's rfft, so which bins can change its decision is known
exactly. The tests check the engine against them (tests/known_models.py re-exports them), and
``freqrex-audit bench --queries`` counts an explanation's queries on them, so anyone can re-measure.
"""

from __future__ import annotations

import numpy as np
import torch

from ..models.classifier import Classifier

SR = 8000
HALF_WIDTH = 6.0  # Hz either side of a band's centre


def band_energy(x: torch.Tensor, centre: float, sr: int = SR, width: float = HALF_WIDTH) -> torch.Tensor:
    """Energy per clip in |f − centre| ≤ width, normalised by clip length."""
    power = torch.fft.rfft(x).abs() ** 2 / x.shape[-1]
    hz = torch.fft.rfftfreq(x.shape[-1], 1 / sr).to(x.device)
    return power[:, (hz - centre).abs() <= width].sum(-1)


def band_bins(centre: float, n: int, sr: int = SR, width: float = HALF_WIDTH) -> set[int]:
    """The rfft bins a model reads for the band at ``centre``."""
    hz = np.fft.rfftfreq(n, 1 / sr)
    return set(np.flatnonzero(np.abs(hz - centre) <= width).tolist())


def two_class(score: torch.Tensor, sharpness: float = 4.0) -> torch.Tensor:
    """Probabilities of [A, B] from a score that is positive for A."""
    z = sharpness * score
    return torch.softmax(torch.stack([z, -z], dim=-1), dim=-1)


def log_ratio(a: torch.Tensor, b: torch.Tensor | float) -> torch.Tensor:
    return torch.log(a + 1e-6) - torch.log(torch.as_tensor(b) + 1e-6)


def ratio_model(sr: int = SR) -> Classifier:
    """A iff the 440 Hz band holds more than e times the energy of the 1000 Hz band."""
    return Classifier.from_callable(
        lambda x: two_class(log_ratio(band_energy(x, 440, sr), band_energy(x, 1000, sr)) - 1.0),
        ["A", "B"], sr, name="ratio-440-vs-1000")


def tones(freqs_amps: dict[float, float], seconds: float = 0.5, sr: int = SR, noise: float = 0.02,
          seed: int = 0) -> np.ndarray:
    """Sum of sinusoids plus a little white noise, float32."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    x = sum(a * np.sin(2 * np.pi * f * t) for f, a in freqs_amps.items())
    x = x + noise * np.random.default_rng(seed).standard_normal(n)
    return np.asarray(x, dtype=np.float32)


CONJUNCTION_CENTRES = (310.0, 530.0, 770.0, 1130.0, 1470.0, 1910.0, 2330.0, 2810.0)
LOUD_DISTRACTORS = {420.0: 3.0, 990.0: 3.0, 1650.0: 3.0, 2600.0: 3.0, 3300.0: 3.0}
NARROW = 2.0  # Hz either side: one tone's bin and its two neighbours at 2 Hz resolution


def conjunction_model(centres: tuple[float, ...], threshold: float = 0.02) -> Classifier:
    """A iff every narrow band (±2 Hz) around ``centres`` holds energy: a conjunction, as real models need."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        energy = torch.stack([band_energy(x, c, width=NARROW) for c in centres], -1)
        return two_class(torch.log(energy + 1e-6).min(-1).values - float(np.log(threshold)))
    return Classifier.from_callable(fn, ["A", "B"], SR, name=f"and-of-{len(centres)}-bands")


def conjunction_clip(centres: tuple[float, ...], seed: int = 1) -> np.ndarray:
    """Quiet causal tones (0.5) under loud distractors (3.0) that the model ignores."""
    return tones({**{c: 0.5 for c in centres}, **LOUD_DISTRACTORS}, seed=seed)


def knife_edge_clip(seconds: float = 0.5, sr: int = SR, seed: int = 0) -> np.ndarray:
    """White noise (every bin holds energy), float32: the clip :func:`any_loss_model` is planted for."""
    rng = np.random.default_rng(seed)
    return (0.2 * rng.standard_normal(int(seconds * sr))).astype(np.float32)


def any_loss_model(reference: np.ndarray, sr: int = SR) -> Classifier:
    """A iff no rfft bin of ``reference`` lost more than half its magnitude: the label flips on ANY
    energy loss, so no proper subset of the bins is sufficient and only the whole clip keeps A.

    The truth an explanation must report: no proper mutant ever passes, so the responsibility map cannot
    converge (README: "Honest convergence"). Inputs of another length read as B.
    """
    floor = 0.5 * torch.from_numpy(np.abs(np.fft.rfft(np.asarray(reference, np.float64)))).float()

    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.shape[-1] != len(reference):
            return two_class(torch.full((x.shape[0],), -1.0, device=x.device))
        kept = (torch.fft.rfft(x).abs() / floor.to(x.device).clamp_min(1e-12)).amin(-1)
        return two_class(torch.log(kept.clamp_min(1e-6)), sharpness=8.0)
    return Classifier.from_callable(fn, ["A", "B"], sr, name="any-loss")
