"""One result type for every explainer (FreqReX, L-MAC, latent-space IG), judged by the same numbers.

Each method keeps part of a clip in the representation it works in — FreqReX rfft bins, L-MAC linear-STFT
cells, the latent method a codec's latent features — and so produces a *kept* (masked-in) waveform and a
*removed* (masked-out) one. :func:`judge` asks the model about the original, the kept and the removed signal
(three queries, one batch, through the :class:`~freqrex_audit.models.classifier.QueryEngine`) and
:func:`~freqrex_audit.engine.metrics.faithfulness` turns the three probability rows into AI, AD, AG, FF and
Fid-In: the same function FreqReX's own faithfulness uses, for every method. :func:`summarize` does the same
over many clips, with k/n and 95 % intervals.

A method that cannot run on a model (gradients needed from a TorchScript, ONNX or TFLite model; no codec at
the model's rate) returns a :class:`MethodExplanation` with ``available=False`` and the reason, never a number.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np

from ..models.classifier import QueryEngine
from .codec import Result, timing_field
from .configs import METHODS
from .metrics import faithfulness, wilson

__all__ = ["METHODS", "MethodExplanation", "ExplainerUnavailable", "judge", "unavailable", "summarize",
           "energy_share", "freqrex_method"]

class ExplainerUnavailable(RuntimeError):
    """A method cannot run on this model or clip; the message says why in the user's words."""


@dataclass(frozen=True)
class MethodExplanation(Result):
    """What one explainer kept of one clip, what that sounds like, and how faithful it is.

    ``mask`` is boolean over ``representation`` (its shape is the representation's: [K] rfft bins, [F, frames]
    STFT cells, [D, frames] latent features); ``kept`` / ``removed`` are the masked-in / masked-out waveforms
    at the model's rate. ``probs`` holds the model's probability rows for the original, kept and removed
    signals ([3, C]); ``faithfulness`` is this clip's AI, AD, AG, FF, Fid-In from them (n = 1). ``kept_share``
    is the share of the representation kept, ``energy_share`` the share of its energy (|X|², |STFT|², z²).
    ``queries`` counts model queries (forward calls through the QueryEngine, the three judging ones included),
    ``gradient_calls`` backward passes (batched IG steps count one per step). ``details`` holds what is
    particular to a method (decoder, codec, threshold, the FreqReX subset sizes…).
    """

    method: str
    available: bool
    reason: str | None = None
    representation: str = ""
    target: int | None = None
    target_label: str | None = None
    labels: tuple[str, ...] = ()
    sample_rate: int = 0
    mask: np.ndarray | None = None
    kept: np.ndarray | None = None
    removed: np.ndarray | None = None
    probs: np.ndarray | None = None
    faithfulness: dict[str, float] = field(default_factory=dict)
    kept_share: float | None = None
    energy_share: float | None = None
    queries: int = 0
    gradient_calls: int = 0
    seed: int = 0
    details: dict[str, Any] = field(default_factory=dict)
    seconds: float = timing_field()

    @property
    def kept_label(self) -> str | None:
        """The model's label for the kept signal."""
        return None if self.probs is None else self.labels[int(np.argmax(self.probs[1]))]

    @property
    def removed_label(self) -> str | None:
        """The model's label for the removed signal."""
        return None if self.probs is None else self.labels[int(np.argmax(self.probs[2]))]


def unavailable(method: str, reason: str, labels: Sequence[str] = (), sample_rate: int = 0) -> MethodExplanation:
    """The result of a method that cannot run here: no numbers, the reason."""
    return MethodExplanation(method=method, available=False, reason=reason, labels=tuple(labels),
                             sample_rate=int(sample_rate))


def energy_share(energy: np.ndarray, mask: np.ndarray) -> float:
    """Share of ``energy`` (same shape as ``mask``) that the mask keeps (0 for a silent representation)."""
    total = float(np.sum(energy))
    return float(np.sum(energy[mask]) / total) if total > 0 else 0.0


def judge(engine: QueryEngine, x: np.ndarray, kept: np.ndarray, removed: np.ndarray,
          target: int | None = None) -> tuple[np.ndarray, dict[str, float]]:
    """Probabilities of (original, kept, removed) in one batch of 3 queries, and this clip's faithfulness.

    ``target`` defaults to the model's top class on the original.
    """
    batch = np.stack([np.asarray(x, np.float32), np.asarray(kept, np.float32), np.asarray(removed, np.float32)])
    probs = engine.query(batch)
    t = int(np.argmax(probs[0])) if target is None else int(target)
    f = faithfulness(probs[0:1], probs[1:2], probs[2:3], np.array([t]))
    return probs, {"ai": f.ai, "ad": f.ad, "ag": f.ag, "ff": f.ff, "fid_in": f.fid_in}


def _mean_interval(values: np.ndarray, low: float, high: float) -> tuple[float, float, float]:
    """Mean and a normal-approximation 95 % interval of the mean, clipped to the metric's range [low, high]
    (the interval collapses for n = 1)."""
    mean = float(np.mean(values))
    if len(values) < 2:
        return mean, mean, mean
    half = 1.96 * float(np.std(values, ddof=1)) / math.sqrt(len(values))
    return mean, max(low, mean - half), min(high, mean + half)


def summarize(results: Sequence[MethodExplanation], timings: bool = True) -> dict[str, Any]:
    """Faithfulness of one method over clips: AI, AD, AG, FF, Fid-In from the stacked probability rows.

    AI and Fid-In are rates (``k`` of ``n`` with a Wilson interval); AD, AG and FF are means with a 95 %
    interval. Also the mean kept share, energy share, queries, gradient calls and (with ``timings``: wall
    clock, so not in deterministic results) seconds, and how many clips the method could not measure
    (``not_measured``, with the first reason).
    """
    ran = [r for r in results if r.available and r.probs is not None]
    missing = [r for r in results if not r.available]
    out: dict[str, Any] = {"n": len(ran), "not_measured": len(missing),
                           "reason": missing[0].reason if missing else None}
    if not ran:
        return out
    p = np.stack([r.probs[0] for r in ran])
    q = np.stack([r.probs[1] for r in ran])
    o = np.stack([r.probs[2] for r in ran])
    t = np.array([r.target for r in ran])
    total = faithfulness(p, q, o, t)  # the engine's one definition, over all clips at once
    for name in ("ai", "ad", "ag", "ff", "fid_in"):  # per clip: the same function on each clip's three rows
        values = np.array([r.faithfulness[name] for r in ran], dtype=np.float64)
        if name in ("ai", "fid_in"):
            k = int(np.sum(values > 0.5))
            low, high = wilson(k, len(ran))
            out[name] = {"value": getattr(total, name), "k": k, "n": len(ran), "low": low, "high": high}
        else:
            _, low, high = _mean_interval(values, -1.0 if name == "ff" else 0.0, 1.0)
            out[name] = {"value": getattr(total, name), "n": len(ran), "low": low, "high": high}
    for name in ("kept_share", "energy_share"):
        values = [getattr(r, name) for r in ran if getattr(r, name) is not None]
        out[name] = float(np.mean(values)) if values else None
    out["queries"] = float(np.mean([r.queries for r in ran]))
    out["gradient_calls"] = float(np.mean([r.gradient_calls for r in ran]))
    if timings:
        out["seconds"] = float(np.mean([r.seconds for r in ran]))
    return out


def freqrex_method(engine: QueryEngine, x: np.ndarray, exp: Any, seconds: float = 0.0) -> MethodExplanation:
    """FreqReX's sufficient set as a method result: the mask over the clip's rfft bins, the sufficient signal
    as kept, the clip without those bins as removed, judged like every other method (3 queries on top of the
    explanation's own). ``exp`` is the clip's :class:`~freqrex_audit.engine.explain.Explanation`."""
    import torch

    from ..audio import spectrum as spec

    bins = exp.bins("sufficient")
    if bins is None:
        return unavailable("freqrex", "FreqReX found no sufficient set for this clip", exp.labels, exp.sample_rate)
    x = np.asarray(x, np.float32)
    mask = np.zeros(exp.n_bins, dtype=bool)
    mask[np.asarray(bins, dtype=np.int64)] = True
    spectrum = spec.rfft(torch.as_tensor(x[None]))
    removed = spec.masked_waveforms(spectrum, torch.as_tensor(~mask)[None], len(x))[0].numpy()
    q0 = engine.queries
    probs, faith = judge(engine, x, exp.signal("sufficient"), removed, exp.target)
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    return MethodExplanation(
        method="freqrex", available=True, representation=f"rfft bins ({exp.n_bins} bins of the whole clip)",
        target=int(exp.target), target_label=exp.target_label, labels=tuple(exp.labels), sample_rate=exp.sample_rate,
        mask=mask, kept=np.asarray(exp.signal("sufficient"), np.float32), removed=removed, probs=probs,
        faithfulness=faith, kept_share=float(mask.mean()), energy_share=energy_share(power, mask),
        queries=int(exp.queries) + engine.queries - q0, gradient_calls=0, seed=int(exp.config.seed),
        details={"subset": "sufficient", "bins": int(mask.sum()),
                 "minimal_bins": None if exp.minimal is None else len(exp.minimal),
                 "necessary_bins": None if exp.necessary is None else len(exp.necessary)},
        seconds=seconds)
