"""Algorithm 3: apply the Fourier attack's mutation to the matching STFT bins in as few frames as it can.

Per frame size, one query first mutates every frame (within ``frame_budget``); when even that does not
flip the label, no smaller number of frames is searched for that size. Otherwise the fewest frames
(ordered by the attacked bins' magnitude) are searched in fixed chunks, the flip needs the same
margin as the Fourier attack, and the returned clip is re-verified by a fresh query.
"""

from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass

import numpy as np
import torch

from ..audio import spectrum as spec
from ..audio.io import int16_roundtrip, validate_waveform
from ..models.classifier import Classifier, QueryEngine
from .codec import Result, timing_field
from .configs import STFTAttackConfig
from .explanation import as_engine
from .metrics import linf, snr_db
from .mutations import Mutation, clip_bound, flip_margin


@dataclass(frozen=True)
class STFTAttack(Result):
    """The outcome of Algorithm 3 on one clip: which frame size worked and which frames changed."""

    success: bool
    quiet: bool
    original_label: int
    new_label: int | None
    new_confidence: float | None
    margin: float | None
    frame_size: int | None
    frames: np.ndarray
    start_s: float | None
    end_s: float | None
    stft_bins: np.ndarray
    mutation: Mutation | None
    adversarial: np.ndarray | None
    snr_db: float | None
    linf: float | None
    survives_int16: bool | None
    int16_label: int | None
    tried: dict[str, str]
    queries_by_frame: dict[str, int]
    reconstruction_error: float | None
    queries: int
    min_margin: float
    min_snr_db: float
    sample_rate: int
    seconds: float = timing_field()

    @property
    def frames_changed(self) -> int:
        return len(self.frames)

    @property
    def attempted(self) -> bool:
        """Whether any frame size was actually tried (not when the Fourier attack failed or the clip is
        shorter than every frame); Table 4's rates count only attempted clips."""
        return self.success or any(not str(v).startswith("skipped") for v in self.tried.values())


def _flipped(probs: np.ndarray, original: int, min_margin: float) -> bool:
    return int(probs.argmax()) != original and flip_margin(probs, original) >= min_margin


def _ladder_flip(fourier):
    """Alg 3 starts from Alg 2's answer: the ladder's flip (bins, mutation) when the attack reports one,
    which localises better in time than a flip walked to the very boundary; else the attack's own flip."""
    if getattr(fourier, "ladder_mutation", None) is None:
        return fourier
    return dataclasses.replace(fourier, bins=np.asarray(fourier.ladder_bins, np.int64), mutation=fourier.ladder_mutation,
                               gain=None, phase_deg=None)


def _factors(fourier) -> np.ndarray | None:
    """The complex multiplier per attacked rfft bin: the uniform mutation, or the per-bin gains of a
    boundary-search flip (bins the clip had no energy in have no finite multiplier and are left out)."""
    if fourier.mutation is not None:
        return np.full(len(fourier.bins), complex(fourier.mutation.multiplier))
    if fourier.gain is None:
        return None
    gain = np.asarray(fourier.gain, dtype=np.float64)
    if len(gain) != len(fourier.bins):
        return None
    factors = gain * np.exp(1j * np.radians(np.asarray(fourier.phase_deg, dtype=np.float64)))
    return np.where(np.isfinite(factors), factors, 1.0 + 0j)


def stft_attack(classifier: Classifier | QueryEngine, x: np.ndarray, fourier, config: STFTAttackConfig | None = None
                ) -> STFTAttack:
    """Algorithm 3: apply the Fourier attack's mutation to its bins in the fewest STFT frames."""
    config = config or STFTAttackConfig()
    engine = as_engine(classifier, config.batch_size)
    began, q0 = time.perf_counter(), engine.queries
    x = validate_waveform(x)
    n, rate, original = len(x), fourier.sample_rate, fourier.original_label
    tried: dict[str, str] = {}
    spent: dict[str, int] = {}

    def failure(error: float | None = None) -> STFTAttack:
        return STFTAttack(False, False, original, None, None, None, None, np.zeros(0, np.int64), None, None,
                          np.zeros(0, np.int64), fourier.mutation, None, None, None, None, None, tried, spent, error,
                          engine.queries - q0, config.min_margin, config.min_snr_db, rate, time.perf_counter() - began)

    if not fourier.success:
        tried["all"] = "skipped: the Fourier attack did not succeed"
        return failure()
    signal = spec.as_tensor(x, engine.device)
    bound = clip_bound(signal)
    fourier = _ladder_flip(fourier)
    factors = _factors(fourier)
    if factors is None:
        tried["all"] = "skipped: the Fourier attack's change has no multiplier to apply"
        return failure()
    boost = bool(np.any(np.abs(factors) > 1))
    worst_error = 0.0
    for frame in config.frame_sizes:
        if frame > n:
            tried[str(frame)] = f"skipped: the clip has {n} samples, fewer than one {frame}-sample frame"
            continue
        f0 = engine.queries
        stft = spec.stft(signal, frame)
        error = float(torch.linalg.norm(spec.istft(stft, frame, n) - signal) / torch.linalg.norm(signal))
        worst_error = max(worst_error, error)
        nearest = spec.nearest_stft_bins(fourier.bins, n, frame)
        offsets = np.arange(-config.neighbours, config.neighbours + 1)
        spread = (nearest[:, None] + offsets[None, :]).ravel()
        bins = np.unique(np.clip(spread, 0, frame // 2))
        multiplier = torch.ones(stft.shape[0], dtype=torch.complex64, device=engine.device)
        for b, m in sorted(zip(np.clip(spread, 0, frame // 2), np.repeat(factors, len(offsets))),
                           key=lambda t: abs(t[1] - 1)):  # a shared STFT bin takes its largest change
            multiplier[int(b)] = complex(m)
        bins_t = torch.from_numpy(bins).to(engine.device)
        order = torch.argsort(stft[bins_t].abs().sum(dim=0), descending=True, stable=True)
        frames_total = stft.shape[-1]
        limit = min(frames_total, config.frame_budget or frames_total)
        rank = torch.empty(frames_total, dtype=torch.long, device=engine.device)
        rank[order] = torch.arange(frames_total, device=engine.device)
        in_bins = torch.zeros(stft.shape[0], dtype=torch.bool, device=engine.device)
        in_bins[bins_t] = True

        def top_m(counts: list[int]) -> torch.Tensor:
            m = torch.as_tensor(counts, device=engine.device)
            chosen = in_bins[None, :, None] & (rank[None, None, :] < m[:, None, None])
            waves = spec.istft(torch.where(chosen, stft[None] * multiplier[None, :, None], stft[None]), frame, n)
            return waves.clamp(-bound, bound) if boost else waves

        found = None
        if _flipped(engine.query(top_m([limit]))[0], original, config.min_margin):
            for start in range(1, limit, config.search_chunk):
                counts = list(range(start, min(start + config.search_chunk, limit)))
                probs = engine.query(top_m(counts))
                hits = [c for c, p in zip(counts, probs) if _flipped(p, original, config.min_margin)]
                if hits:
                    found = hits[0]
                    break
            found = found or limit
            adversarial = top_m([found])[0].cpu().numpy().astype(np.float32)
            probs = engine.query(adversarial[None])[0]  # re-verified on exactly the clip returned
            if not _flipped(probs, original, config.min_margin):
                found = None
        else:
            tried[str(frame)] = f"failed within {limit} frames: even all {limit} mutated do not flip the label"
        if found is None:
            tried.setdefault(str(frame), f"failed within {limit} frames: the flip did not re-verify")
            spent[str(frame)] = engine.queries - f0
            continue
        tried[str(frame)] = f"succeeded with {found} frames"
        frames = np.sort(order[:found].cpu().numpy())
        hop = frame // 4
        restored = int(engine.query(int16_roundtrip(adversarial, rate)[None])[0].argmax())
        spent[str(frame)] = engine.queries - f0
        snr = snr_db(x, adversarial)
        return STFTAttack(
            success=True, quiet=snr >= config.min_snr_db, original_label=original, new_label=int(probs.argmax()),
            new_confidence=float(probs.max()), margin=flip_margin(probs, original), frame_size=frame, frames=frames,
            start_s=max(0.0, (frames.min() * hop - frame / 2) / rate), end_s=min(n, frames.max() * hop + frame / 2) / rate,
            stft_bins=bins, mutation=fourier.mutation, adversarial=adversarial, snr_db=snr,
            linf=linf(x, adversarial), survives_int16=restored != original, int16_label=restored, tried=tried,
            queries_by_frame=spent, reconstruction_error=error, queries=engine.queries - q0,
            min_margin=config.min_margin, min_snr_db=config.min_snr_db, sample_rate=rate, seconds=time.perf_counter() - began)
    return failure(worst_error)
