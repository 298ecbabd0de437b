"""Planted white-box models for the explainer tests: torch modules whose causal band is known by construction.

:class:`BandNet` says ``band`` iff the ±``width`` Hz band around ``centre`` holds energy: it computes the clip's
log STFT power (its ``frontend`` layer, which L-MAC's decoder reads through a forward hook) and scores the
mean log power of the band's STFT bins against a threshold. Nothing outside the band can change its decision,
so an explainer is right when its kept part holds the band. :func:`band_clip` hides a quiet causal tone under
loud distractor tones: a mask that keeps the loudest cells (magnitude only) misses the band, and a random
mask keeps only its share of it.
"""

from __future__ import annotations

import math

import numpy as np
import torch

from freqrex_audit.models.classifier import Classifier, FunctionClassifier

SR = 16000
FRAME = 512
CENTRE = 1000.0
WIDTH = 50.0
DISTRACTORS = {300.0: 0.4, 2200.0: 0.4, 3500.0: 0.4}
LABELS = ["band", "other"]


class LogPower(torch.nn.Module):
    """log(|STFT|² + 1e-6) per frequency bin and frame: [B, T] → [B, F, frames] (Hann, hop frame/4)."""

    def __init__(self, frame: int = FRAME):
        super().__init__()
        self.frame = frame
        self.register_buffer("window", torch.hann_window(frame), persistent=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        spec = torch.stft(x.float(), self.frame, self.frame // 4, window=self.window, return_complex=True)
        return torch.log(spec.abs() ** 2 + 1e-6)


class BandScore(torch.nn.Module):
    """Logits [s, −s], s = sharpness · (log of the band's mean power over frames − log threshold)."""

    def __init__(self, bins: torch.Tensor, threshold: float, sharpness: float = 2.0):
        super().__init__()
        self.register_buffer("bins", bins, persistent=False)
        self.log_threshold, self.sharpness = float(np.log(threshold)), sharpness

    def forward(self, log_power: torch.Tensor) -> torch.Tensor:
        band = torch.logsumexp(log_power[:, self.bins, :], dim=1)  # log of the band's power per frame
        score = self.sharpness * (torch.logsumexp(band, dim=-1) - math.log(band.shape[-1]) - self.log_threshold)
        return torch.stack([score, -score], dim=-1)


class BandNet(torch.nn.Module):
    """``band`` iff the band around ``centre`` holds more than a tone of amplitude ``floor`` would give."""

    def __init__(self, centre: float = CENTRE, width: float = WIDTH, sr: int = SR, floor: float = 0.03):
        super().__init__()
        frame = FRAME * sr // SR  # the same 31 Hz bins at any rate
        hz = np.fft.rfftfreq(frame, 1 / sr)
        bins = torch.as_tensor(np.flatnonzero(np.abs(hz - centre) <= width))
        peak = (floor * torch.hann_window(frame).sum().item() / 2) ** 2  # a tone's power in its STFT bin
        self.frontend = LogPower(frame)
        self.head = BandScore(bins, threshold=peak)
        self.band_bins = bins.tolist()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.head(self.frontend(x))


def band_model(centre: float = CENTRE, sr: int = SR) -> FunctionClassifier:
    """The planted band model as a classifier (a torch module: white-box through a forward hook)."""
    return Classifier.from_callable(BandNet(centre, sr=sr), LABELS, sr, name=f"band-{centre:g}Hz-{sr}",
                                    outputs="logits")


def tones(freqs_amps: dict[float, float], seconds: float = 0.5, noise: float = 0.003, seed: int = 0,
          sr: int = SR) -> np.ndarray:
    n = int(seconds * sr)
    t = np.arange(n) / sr
    rng = np.random.default_rng(seed)
    x = sum(a * np.sin(2 * np.pi * f * t + rng.uniform(0, 2 * np.pi)) for f, a in freqs_amps.items())
    return np.asarray(x + noise * rng.standard_normal(n), dtype=np.float32)


def band_clip(seed: int = 0, amplitude: float = 0.1, sr: int = SR) -> np.ndarray:
    """The quiet causal tone (``amplitude``) at CENTRE under loud distractor tones the model ignores."""
    return tones({CENTRE: amplitude, **DISTRACTORS}, seed=seed, sr=sr)


def training_clips(n: int = 64, seed: int = 1, sr: int = SR, seconds: float = 0.5) -> np.ndarray:
    """Clips for L-MAC's decoder: random distractor tones (never in the band), half with the causal tone."""
    rng = np.random.default_rng(seed)
    clips = []
    for i in range(n):
        freqs = {}
        while len(freqs) < int(rng.integers(2, 5)):
            f = float(rng.uniform(150, min(5000, sr / 2 - 200)))
            if abs(f - CENTRE) > 3 * WIDTH:
                freqs[f] = float(rng.uniform(0.1, 0.5))
        if i % 2 == 0:
            freqs[CENTRE + float(rng.uniform(-10, 10))] = float(rng.uniform(0.05, 0.2))
        clips.append(tones(freqs, seconds, seed=int(rng.integers(1 << 30)), sr=sr))
    return np.stack(clips)


def band_energy_share(kept: np.ndarray, original: np.ndarray, sr: int = SR) -> float:
    """Share of the original's energy in the causal band that the kept signal still has."""
    def band(x: np.ndarray) -> float:
        power = np.abs(np.fft.rfft(np.asarray(x, np.float64))) ** 2
        hz = np.fft.rfftfreq(len(x), 1 / sr)
        return float(power[np.abs(hz - CENTRE) <= WIDTH].sum())
    return band(kept) / band(original)


def band_model_8k(device: str = "cpu") -> FunctionClassifier:
    """``tests.explainer_models:band_model_8k``: the planted band model at 8 kHz, for specs."""
    return band_model(sr=8000)


def band_model_scripted(device: str = "cpu") -> FunctionClassifier:
    """The same model traced to TorchScript: a black box to gradient explainers."""
    import warnings

    with warnings.catch_warnings():  # the band's frame count is a constant of the trace (clips are 0.5 s)
        warnings.simplefilter("ignore", torch.jit.TracerWarning)
        warnings.simplefilter("ignore", DeprecationWarning)  # torch 2.9+ deprecates tracing; the point is a TorchScript model
        module = torch.jit.trace(BandNet(sr=8000), torch.zeros(1, 4000))
    return Classifier.from_callable(module, LABELS, 8000, name="band-scripted", outputs="logits")


def write_clips(folder, clips: dict[str, list[np.ndarray]], sr: int = 8000) -> None:
    """Class folders of WAV files (``folder/<label>/<label>_<i>.wav``)."""
    import soundfile as sf

    for label, items in clips.items():
        (folder / label).mkdir(parents=True, exist_ok=True)
        for i, x in enumerate(items):
            sf.write(folder / label / f"{label}_{i}.wav", x, sr, subtype="FLOAT")
