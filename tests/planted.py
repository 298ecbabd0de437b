"""Planted classifiers for the cross-model tests: the band holding the strongest frequency decides.

``peak_model(low, high)`` has labels ("low", "high", "none"): "low" when the largest rfft magnitude
lies in the ``low`` band (Hz), "high" when it lies in ``high``, "none" otherwise. Computed on the
whole batch with torch.fft; ``gain`` sets how peaked (low-entropy) the softmax output is.
"""

from __future__ import annotations

import torch

from freqrex_audit import Classifier

LABELS = ("low", "high", "none")


def peak_model(low: tuple[float, float] = (200, 600), high: tuple[float, float] = (1200, 1800), sr: int = 8000,
               gain: float = 10.0, labels=LABELS, name: str | None = None) -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        mag = torch.fft.rfft(x).abs()
        hz = torch.fft.rfftfreq(x.shape[-1], 1.0 / sr).to(x.device)
        top = mag.amax(-1).clamp_min(1e-12)
        in_low = (hz >= low[0]) & (hz < low[1])
        in_high = (hz >= high[0]) & (hz < high[1])
        scores = [(mag * band).amax(-1) / top for band in (in_low, in_high, ~(in_low | in_high))]
        scores[2] = scores[2] + 1e-3  # silence is "none", not a tie
        return torch.softmax(gain * torch.stack(scores, -1), -1)

    return Classifier.from_callable(fn, list(labels), sr, name=name or f"peak{low}{high}")
