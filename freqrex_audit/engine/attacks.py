"""Algorithms 2 and 3: flip the label by mutating the most responsible sufficient frequencies.

The Fourier attack (Alg 2) multiplies the top-n sufficient bins (or, with ``pool: ranking``, the top-n
of the whole responsibility ranking) by a complex factor (an amplitude
scaling or a phase rotation); it finds the smallest n with the largest mutation, then the smallest
mutation that still works with that n. The STFT attack (Alg 3) applies the same mutation to the
matching STFT bins in as few frames as it can, so the change is short in time.
"""

from __future__ import annotations

import cmath
import math
import time
from dataclasses import dataclass, field

import numpy as np
import torch

from .. import spectrum as spec
from ..audio import int16_roundtrip, validate_waveform
from ..classifier import Classifier, QueryEngine
from ..results import Result, timing_field
from .explain import Explanation, as_engine
from .metrics import linf, snr_db

DEFAULT_SCALES = (1.1, 0.9, 1.25, 0.75, 1.5, 0.5, 2.0, 0.0, 3.0, 5.0, 10.0)
ATTACK_POOLS = ("sufficient", "ranking")


@dataclass(frozen=True, order=True)
class Mutation(Result):
    """A multiplier for a bin: ``scale`` multiplies the amplitude, ``phase`` rotates by degrees.

    ``size`` = |m − 1|, the relative change of the bin's complex value, orders mutations of both kinds.
    """

    kind: str
    value: float

    def __post_init__(self) -> None:
        if self.kind not in ("scale", "phase"):
            raise ValueError(f"mutation kind must be 'scale' or 'phase', not {self.kind!r}")
        if self.kind == "scale" and self.value < 0:
            raise ValueError(f"amplitude scale must be ≥ 0, got {self.value}")

    @property
    def multiplier(self) -> complex:
        return complex(self.value) if self.kind == "scale" else cmath.exp(1j * math.radians(self.value))

    @property
    def size(self) -> float:
        return abs(self.multiplier - 1)

    def __str__(self) -> str:
        return f"×{self.value:g}" if self.kind == "scale" else f"{self.value:+g}°"


def default_mutations() -> tuple[Mutation, ...]:
    return tuple(Mutation("scale", s) for s in DEFAULT_SCALES)


@dataclass(frozen=True)
class AttackConfig(Result):
    """Algorithm 2's knobs: the mutations (any order; sorted by size) and the budget of frequencies.

    ``pool``: which bins may be mutated, most responsible first. ``"sufficient"`` (the paper) takes
    the sufficient set; ``"ranking"`` takes the whole responsibility ranking, which also flips models
    whose decision has redundant causes (an OR of bands: one band is sufficient, so mutating it alone
    leaves the other deciding). ``search_chunk``: candidate counts asked together while searching n
    (fixed, not the batch size, so query counts do not depend on hardware).
    """

    mutations: tuple[Mutation, ...] = field(default_factory=default_mutations)
    budget: int = 1000
    pool: str = "sufficient"
    search_chunk: int = 32
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if self.budget < 1:
            raise ValueError(f"AttackConfig: budget must be ≥ 1, got {self.budget}")
        if self.pool not in ATTACK_POOLS:
            raise ValueError(f"AttackConfig: pool must be one of {', '.join(ATTACK_POOLS)}, got {self.pool!r}")
        if not self.mutations:
            raise ValueError("AttackConfig: at least one mutation is needed")

    @property
    def extremes(self) -> tuple[Mutation, ...]:
        """The largest mutation in each direction (amplitude up, amplitude down, phase).

        Algorithm 2 searches n with "the largest mutation"; amplitude scalings go two ways and ×10
        cannot flip a model that needs a bin turned down, so n is searched with each direction's
        extreme and the smallest n that any of them flips wins.
        """
        groups: dict[str, Mutation] = {}
        for m in self.ordered:
            direction = m.kind if m.kind == "phase" else ("up" if m.value > 1 else "down")
            if m.size > 0:
                groups[direction] = m
        return tuple(groups.values()) or self.ordered[-1:]

    @property
    def ordered(self) -> tuple[Mutation, ...]:
        """Mutations from the smallest perturbation to the largest (ties: lower value first)."""
        return tuple(sorted(set(self.mutations), key=lambda m: (m.size, m.kind, m.value)))


@dataclass(frozen=True)
class STFTAttackConfig(Result):
    """Algorithm 3's knobs: frame sizes tried in order, and the most frames changed per size.

    ``neighbours``: STFT bins on each side of the nearest one that are mutated too. A Hann-windowed
    sinusoid spreads over the nearest bin and one on each side, so mutating the nearest bin alone
    leaves much of the frequency's energy untouched (0 reproduces the paper's nearest-bin rule).
    """

    frame_sizes: tuple[int, ...] = (256, 512, 1024)
    frame_budget: int | None = None
    neighbours: int = 1
    search_chunk: int = 32
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not self.frame_sizes or any(w < 4 or w % 4 for w in self.frame_sizes):
            raise ValueError(f"STFTAttackConfig: frame sizes must be multiples of 4, got {self.frame_sizes}")
        if self.neighbours < 0:
            raise ValueError(f"STFTAttackConfig: neighbours must be ≥ 0, got {self.neighbours}")
        if self.frame_budget is not None and self.frame_budget < 1:
            raise ValueError(f"STFTAttackConfig: frame_budget must be ≥ 1, got {self.frame_budget}")


@dataclass(frozen=True)
class FourierAttack(Result):
    """The outcome of Algorithm 2 on one clip (``adversarial`` is None when it failed)."""

    success: bool
    original_label: int
    new_label: int | None
    new_confidence: float | None
    n_frequencies: int | None
    bins: np.ndarray
    hz: np.ndarray
    mutation: Mutation | None
    adversarial: np.ndarray | None
    snr_db: float | None
    linf: float | None
    survives_int16: bool | None
    int16_label: int | None
    queries: int
    budget: int
    sample_rate: int
    seconds: float = timing_field()


@dataclass(frozen=True)
class STFTAttack(Result):
    """The outcome of Algorithm 3 on one clip: which frame size worked and which frames changed."""

    success: bool
    original_label: int
    new_label: int | None
    new_confidence: float | None
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
    reconstruction_error: float | None
    queries: int
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


def _first_flip(engine: QueryEngine, count: int, build: callable, original: int,
                chunk: int) -> tuple[int | None, np.ndarray | None]:
    """Index of the first candidate (in order, ``chunk`` at a time) whose top-1 is not ``original``."""
    for start in range(0, count, chunk):
        rows = range(start, min(start + chunk, count))
        probs = engine.query(build(rows))
        flipped = np.flatnonzero(probs.argmax(axis=1) != original)
        if len(flipped):
            return start + int(flipped[0]), probs[flipped[0]]
    return None, None


def _int16_check(engine: QueryEngine, adversarial: np.ndarray, sample_rate: int, original: int) -> tuple[bool, int]:
    """Does the attack survive being written as 16-bit PCM? (one query)"""
    label = int(engine.query(int16_roundtrip(adversarial, sample_rate)[None])[0].argmax())
    return label != original, label


def fourier_attack(classifier: Classifier | QueryEngine, x: np.ndarray, explanation: Explanation,
                   config: AttackConfig | None = None) -> FourierAttack:
    """Algorithm 2: the fewest top-ranked bins of the pool (``config.pool``), then the smallest mutation of
    them, that flip the label."""
    config = config or AttackConfig()
    engine = as_engine(classifier, config.batch_size)
    began, q0 = time.perf_counter(), engine.queries
    x = validate_waveform(x)
    n, rate, original = len(x), explanation.sample_rate, explanation.target
    spectrum = spec.rfft(spec.as_tensor(x, engine.device))
    if config.pool == "ranking":
        ranked = explanation.ranking
    else:
        ranked = explanation.ranking[: len(explanation.sufficient) if explanation.sufficient is not None else 0]
    limit = min(config.budget, len(ranked))
    ordered = config.ordered
    position = torch.full((spectrum.shape[-1],), limit + 1, dtype=torch.long, device=engine.device)
    position[torch.from_numpy(np.asarray(ranked[:limit], dtype=np.int64)).to(engine.device)] = torch.arange(
        limit, device=engine.device)

    def with_mutation(counts: torch.Tensor, multipliers: torch.Tensor) -> torch.Tensor:
        factors = torch.where(position[None, :] < counts[:, None], multipliers[:, None].to(spectrum.dtype),
                              torch.ones((), dtype=spectrum.dtype, device=engine.device))
        return spec.mutated_waveforms(spectrum, factors, n)

    strongest = config.extremes
    extremes = torch.tensor([m.multiplier for m in strongest], dtype=torch.complex64, device=engine.device)

    def top_n(rows: range) -> torch.Tensor:  # row r: the top (r // E + 1) bins, extreme mutation r % E
        index = torch.arange(rows.start, rows.stop, device=engine.device)
        return with_mutation(index // len(strongest) + 1, extremes[index % len(strongest)])

    def failure() -> FourierAttack:
        return FourierAttack(False, original, None, None, None, np.zeros(0, np.int64), np.zeros(0), None, None,
                             None, None, None, None, engine.queries - q0, config.budget, rate,
                             time.perf_counter() - began)

    found, _ = _first_flip(engine, limit * len(strongest), top_n, original, config.search_chunk)
    if found is None:
        return failure()
    found //= len(strongest)
    count = found + 1
    multipliers = torch.tensor([m.multiplier for m in ordered], dtype=torch.complex64, device=engine.device)
    candidates = with_mutation(torch.full((len(ordered),), count, device=engine.device), multipliers)
    probs = engine.query(candidates)
    flips = np.flatnonzero(probs.argmax(axis=1) != original)
    if not len(flips):  # the model answered differently to the same input: report, don't pretend
        return failure()
    best = int(flips[0])
    adversarial = candidates[best].cpu().numpy().astype(np.float32)
    survives, int16_label = _int16_check(engine, adversarial, rate, original)
    bins = np.asarray(ranked[:count], dtype=np.int64)
    return FourierAttack(
        success=True, original_label=original, new_label=int(probs[best].argmax()),
        new_confidence=float(probs[best].max()), n_frequencies=count, bins=bins,
        hz=spec.bin_to_hz(bins, n, rate), mutation=ordered[best], adversarial=adversarial,
        snr_db=snr_db(x, adversarial), linf=linf(x, adversarial), survives_int16=survives,
        int16_label=int16_label, queries=engine.queries - q0, budget=config.budget, sample_rate=rate,
        seconds=time.perf_counter() - began)


def stft_attack(classifier: Classifier | QueryEngine, x: np.ndarray, fourier: FourierAttack,
                config: STFTAttackConfig | None = None) -> STFTAttack:
    """Algorithm 3: apply the Fourier attack's mutation to its bins in the fewest STFT frames."""
    config = config or STFTAttackConfig()
    engine = as_engine(classifier, config.batch_size)
    began, q0 = time.perf_counter(), engine.queries
    x = validate_waveform(x)
    n, rate, original = len(x), fourier.sample_rate, fourier.original_label
    tried: dict[str, str] = {}

    def failure(error: float | None = None) -> STFTAttack:
        return STFTAttack(False, original, None, None, None, np.zeros(0, np.int64), None, None,
                          np.zeros(0, np.int64), fourier.mutation, None, None, None, None, None, tried, error,
                          engine.queries - q0, rate, time.perf_counter() - began)

    if not fourier.success or fourier.mutation is None:
        tried["all"] = "skipped: the Fourier attack did not succeed"
        return failure()
    signal = spec.as_tensor(x, engine.device)
    multiplier = torch.tensor(fourier.mutation.multiplier, dtype=torch.complex64, device=engine.device)
    worst_error = 0.0
    for frame in config.frame_sizes:
        if frame > n:
            tried[str(frame)] = f"skipped: the clip has {n} samples, fewer than one {frame}-sample frame"
            continue
        stft = spec.stft(signal, frame)
        error = float(torch.linalg.norm(spec.istft(stft, frame, n) - signal) / torch.linalg.norm(signal))
        worst_error = max(worst_error, error)
        nearest = spec.nearest_stft_bins(fourier.bins, n, frame)
        spread = (nearest[:, None] + np.arange(-config.neighbours, config.neighbours + 1)[None, :]).ravel()
        bins = np.unique(np.clip(spread, 0, frame // 2))
        bins_t = torch.from_numpy(bins).to(engine.device)
        order = torch.argsort(stft[bins_t].abs().sum(dim=0), descending=True, stable=True)
        frames_total = stft.shape[-1]
        limit = min(frames_total, config.frame_budget or frames_total)
        rank = torch.empty(frames_total, dtype=torch.long, device=engine.device)
        rank[order] = torch.arange(frames_total, device=engine.device)
        in_bins = torch.zeros(stft.shape[0], dtype=torch.bool, device=engine.device)
        in_bins[bins_t] = True

        def top_m(rows: range) -> torch.Tensor:
            counts = torch.arange(rows.start + 1, rows.stop + 1, device=engine.device)
            chosen = in_bins[None, :, None] & (rank[None, None, :] < counts[:, None, None])
            mutated = torch.where(chosen, stft[None] * multiplier, stft[None])
            return spec.istft(mutated, frame, n)

        found, probs = _first_flip(engine, limit, top_m, original, config.search_chunk)
        if found is None:
            tried[str(frame)] = f"failed within {limit} frames"
            continue
        tried[str(frame)] = f"succeeded with {found + 1} frames"
        frames = np.sort(order[: found + 1].cpu().numpy())
        adversarial = top_m(range(found, found + 1))[0].cpu().numpy().astype(np.float32)
        hop = frame // 4
        survives, int16_label = _int16_check(engine, adversarial, rate, original)
        return STFTAttack(
            success=True, original_label=original, new_label=int(probs.argmax()),
            new_confidence=float(probs.max()), frame_size=frame, frames=frames,
            start_s=max(0.0, (frames.min() * hop - frame / 2) / rate), end_s=min(n, frames.max() * hop + frame / 2) / rate,
            stft_bins=bins, mutation=fourier.mutation, adversarial=adversarial, snr_db=snr_db(x, adversarial),
            linf=linf(x, adversarial), survives_int16=survives, int16_label=int16_label, tried=tried,
            reconstruction_error=error, queries=engine.queries - q0, sample_rate=rate,
            seconds=time.perf_counter() - began)
    return failure(worst_error)


def summarize_attacks(fourier: list[FourierAttack], stft: list[STFTAttack] | None = None,
                      frame_sizes: tuple[int, ...] = (256, 512, 1024)) -> dict[str, float | int | dict]:
    """Dataset-level figures in the paper's shape (Tables 3 and 4) plus int16 survival and median SNR."""
    total = len(fourier)
    wins = [a for a in fourier if a.success]

    def rate(count: int, of: int) -> float:
        return count / of if of else float("nan")

    summary: dict[str, float | int | dict] = {
        "attacked": total,
        "success_rate": rate(len(wins), total),
        "single_rate": rate(sum(a.n_frequencies == 1 for a in wins), total),
        "five_rate": rate(sum((a.n_frequencies or 0) <= 5 for a in wins), total),
        "int16_survival_rate": rate(sum(bool(a.survives_int16) for a in wins), len(wins)),
        "median_snr_db": float(np.median([a.snr_db for a in wins])) if wins else float("nan"),
        "median_frequencies": float(np.median([a.n_frequencies for a in wins])) if wins else float("nan"),
        "queries": int(sum(a.queries for a in fourier)),
    }
    if stft is not None:
        attempted = [s for s, f in zip(stft, fourier) if f.success and s.attempted]
        done = [s for s in attempted if s.success]
        summary["stft"] = {
            "attempted": len(attempted),
            "success_rate": rate(len(done), len(attempted)),
            "per_frame_size": {str(w): rate(sum(s.frame_size == w for s in done), len(attempted)) for w in frame_sizes},
            "int16_survival_rate": rate(sum(bool(s.survives_int16) for s in done), len(done)),
            "median_snr_db": float(np.median([s.snr_db for s in done])) if done else float("nan"),
            "median_frames": float(np.median([s.frames_changed for s in done])) if done else float("nan"),
            "queries": int(sum(s.queries for s in stft)),
        }
    return summary
