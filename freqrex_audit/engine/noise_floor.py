"""The noise floor (#29, point 4): does plain noise at the spec's SNR already flip the clip?

Before any attack a clip gets a few draws of white and of pink (1/f power) noise scaled to exactly
``snr_db`` against the clip's own energy, each a query through the same engine. A clip that noise
flips is *fragile*: any attack claim about it must be read against that, and an attack whose quietest
flip is louder than the floor (a lower SNR than noise that flips) did worse than no search at all — a
defect the report names. The draws come from a seeded generator, so the floor is deterministic.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from ..audio.io import validate_waveform
from ..models.classifier import Classifier, QueryEngine
from .codec import Result, timing_field
from .explanation import as_engine
from .mutations import flip_margin

NOISE_KINDS = ("white", "pink")


@dataclass(frozen=True)
class NoiseFloor(Result):
    """Flips by ``draws`` noise draws per kind at ``snr_db``; ``fragile`` when any draw flipped the clip."""

    snr_db: float
    draws: int
    flips: dict[str, int]
    labels: dict[str, list[int]]
    original_label: int
    min_margin: float
    queries: int
    seed: int
    seconds: float = timing_field()

    @property
    def fragile(self) -> bool:
        return any(self.flips.values())

    @property
    def kinds_that_flip(self) -> list[str]:
        return [k for k, n in self.flips.items() if n]

    @property
    def summary(self) -> str:
        parts = ", ".join(f"{k} {n}/{self.draws}" for k, n in self.flips.items())
        word = "FRAGILE: plain noise flips it" if self.fragile else "noise does not flip it"
        return f"{word} at {self.snr_db:g} dB SNR ({parts}; {self.queries} queries)"


def noise(kind: str, n: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance white noise, or pink noise (power ∝ 1/f, DC left at zero), ``n`` samples."""
    white = rng.standard_normal(n)
    if kind == "white":
        return white
    if kind != "pink":
        raise ValueError(f"noise kind must be one of {', '.join(NOISE_KINDS)}, got {kind!r}")
    spectrum = np.fft.rfft(white)
    f = np.arange(len(spectrum), dtype=np.float64)
    f[0] = np.inf
    return np.fft.irfft(spectrum / np.sqrt(f), n)


def noise_floor(classifier: Classifier | QueryEngine, x: np.ndarray, original: int, snr_db: float, draws: int = 4,
                min_margin: float = 0.05, seed: int = 0, kinds: tuple[str, ...] = NOISE_KINDS,
                batch_size: int | None = None) -> NoiseFloor:
    """Ask ``draws`` noisy copies of ``x`` per kind at exactly ``snr_db``; count those that flip ``original``."""
    if draws < 1:
        raise ValueError(f"draws must be ≥ 1, got {draws}")
    engine = as_engine(classifier, batch_size)
    began, q0 = time.perf_counter(), engine.queries
    x = validate_waveform(x).astype(np.float64)
    power = float(np.sum(x ** 2))
    rng = np.random.default_rng(seed)
    flips: dict[str, int] = {}
    labels: dict[str, list[int]] = {}
    for kind in kinds:
        waves = []
        for _ in range(draws):
            z = noise(kind, len(x), rng)
            z *= np.sqrt(power / 10 ** (snr_db / 10) / max(float(np.sum(z ** 2)), 1e-300))
            waves.append((x + z).astype(np.float32))
        probs = engine.query(np.stack(waves))
        hits = [p for p in probs if int(p.argmax()) != original and flip_margin(p, original) >= min_margin]
        flips[kind] = len(hits)
        labels[kind] = [int(p.argmax()) for p in probs]
    return NoiseFloor(snr_db=float(snr_db), draws=draws, flips=flips, labels=labels, original_label=int(original),
                      min_margin=min_margin, queries=engine.queries - q0, seed=seed,
                      seconds=time.perf_counter() - began)
