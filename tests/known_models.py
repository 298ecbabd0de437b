"""Classifiers whose causal frequencies are known by construction, and clips to explain with them.

Each model reads band energies from the batch's rfft, so which bins can change its decision is known
exactly; the engine is right when it finds those bins and only those.
"""

from __future__ import annotations

import numpy as np
import torch

from freqrex_audit import Classifier
from freqrex_audit.bench.planted import (CONJUNCTION_CENTRES, HALF_WIDTH, LOUD_DISTRACTORS, NARROW, SR, band_bins,
                                         band_energy, conjunction_clip, conjunction_model, log_ratio, ratio_model,
                                         tones, two_class)



def and_model(threshold: float = 0.05) -> Classifier:
    """A iff both the 300 Hz and the 1200 Hz bands are present."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        low, high = band_energy(x, 300), band_energy(x, 1200)
        return two_class(torch.minimum(log_ratio(low, threshold), log_ratio(high, threshold)))
    return Classifier.from_callable(fn, ["A", "B"], SR, name="and-300-1200")


def or_model(threshold: float = 0.05) -> Classifier:
    """A iff the 300 Hz band or the 1200 Hz band is present."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        low, high = band_energy(x, 300), band_energy(x, 1200)
        return two_class(torch.maximum(log_ratio(low, threshold), log_ratio(high, threshold)))
    return Classifier.from_callable(fn, ["A", "B"], SR, name="or-300-1200")


def parity_model(threshold: float = 0.05) -> Classifier:
    """A iff an odd number of the 300, 1200 and 2500 Hz bands is present: non-monotone by design."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        present = sum((band_energy(x, f) > threshold).long() for f in (300, 1200, 2500))
        score = torch.where(present % 2 == 1, 1.0, -1.0)
        return two_class(score)
    return Classifier.from_callable(fn, ["A", "B"], SR, name="parity-300-1200-2500")


def lowpass_model(sr: int = 16000) -> Classifier:
    """The 440-vs-1000 ratio model at 16 kHz: nothing above 4 kHz can matter to it."""
    return ratio_model(sr)


def amplitude_threshold_model(hz: float, threshold: float, n: int, sr: int = SR) -> Classifier:
    """A iff the amplitude of the sinusoid at ``hz`` (one bin) exceeds ``threshold``."""
    k = int(round(hz * n / sr))

    def fn(x: torch.Tensor) -> torch.Tensor:
        amplitude = torch.fft.rfft(x).abs()[:, k] / (x.shape[-1] / 2)
        return two_class(amplitude - threshold, sharpness=50.0)
    return Classifier.from_callable(fn, ["A", "B"], sr, name=f"threshold-{hz:g}Hz")


def three_bin_model(freqs: tuple[float, float, float], n: int, sr: int = SR) -> Classifier:
    """A unless the three bins' amplitudes sum below 1.5 (one bin alone can't drop it below 1.5)."""
    bins = [int(round(f * n / sr)) for f in freqs]

    def fn(x: torch.Tensor) -> torch.Tensor:
        amplitude = torch.fft.rfft(x).abs()[:, bins] / (x.shape[-1] / 2)
        return two_class(amplitude.sum(-1) - 1.5, sharpness=50.0)
    return Classifier.from_callable(fn, ["A", "B"], sr, name="three-bins")


def segment_model(start_s: float, end_s: float, hz: float = 440.0, sr: int = SR, threshold: float = 100.0
                  ) -> Classifier:
    """A iff the ``hz`` tone is loud inside [start_s, end_s): only that time segment decides.

    A unit sinusoid filling the segment has band energy ≈ len/4 (≈ 1000 for 0.5 s at 8 kHz).
    """
    def fn(x: torch.Tensor) -> torch.Tensor:
        segment = x[:, int(start_s * sr):int(end_s * sr)]
        return two_class(log_ratio(band_energy(segment, hz, sr, width=20.0), threshold), sharpness=8.0)
    return Classifier.from_callable(fn, ["A", "B"], sr, name="segment")


def unflippable_model() -> Classifier:
    """A iff the clip has any energy at all: no frequency mutation within budget can remove it all."""
    return Classifier.from_callable(
        lambda x: two_class(log_ratio((x ** 2).mean(-1), torch.tensor(1e-8))), ["A", "B"], SR, name="energy")




class CountingClassifier(Classifier):
    """Wraps a classifier and counts the waveforms it is really asked about."""

    def __init__(self, inner: Classifier):
        self.inner = inner
        self.labels, self.sample_rate, self.device, self.name = inner.labels, inner.sample_rate, inner.device, inner.name
        self.seen = 0

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        self.seen += waveforms.shape[0]
        return self.inner.predict(waveforms)


def knife_edge_model(sr: int = SR) -> Classifier:
    """A iff the 440 Hz band is present and the clip is numerically clean above 3.5 kHz (relative energy
    < 1e-13): float32 synthesis passes, 1e-6 relative noise or 16-bit quantisation does not — the kind
    of quantising front end that makes a recorded subset knife-edge."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        power = torch.fft.rfft(x.double()).abs() ** 2
        hz = torch.fft.rfftfreq(x.shape[-1], 1 / sr).to(x.device)
        dirt = power[:, hz > 3500].sum(-1) / power.sum(-1).clamp_min(1e-30)
        clean = torch.log(torch.tensor(1e-13, dtype=torch.float64)) - torch.log(dirt + 1e-30)
        return two_class(torch.minimum(log_ratio(band_energy(x, 440, sr), 0.05).double(), clean).float())
    return Classifier.from_callable(fn, ["A", "B"], sr, name="knife-edge")

