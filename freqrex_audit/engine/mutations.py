"""The attacks' mutation ladder and how a mutated clip is built and judged.

A mutation multiplies rfft bins by a complex factor (an amplitude scale or a phase rotation). Its
perturbation energy on a bin is |m − 1|²·|X_k|², so ordering by ``size`` = |m − 1| orders the ladder
quietest first for any bin. Boosted clips are clipped to the clip's range (at least [−1, 1]) so that
×100 and ×1000 stay playable; a flip counts only with a margin between the new top class and the
original label.
"""

from __future__ import annotations

import cmath
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from .codec import Result

if TYPE_CHECKING:
    import torch

DEFAULT_SCALES = (0.75, 0.5, 0.25, 0.0, 1.5, 2.0, 3.0, 5.0, 10.0, 100.0, 1000.0)
DEFAULT_PHASES = (90.0, 180.0)


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

    @property
    def boost(self) -> bool:
        """Amplitude raised: the clip may leave its range and is clipped back."""
        return self.kind == "scale" and self.value > 1

    @property
    def direction(self) -> str:
        return "phase" if self.kind == "phase" else ("up" if self.value > 1 else "down")

    def __str__(self) -> str:
        return f"×{self.value:g}" if self.kind == "scale" else f"{self.value:+g}°"


@dataclass(frozen=True)
class Nudge:
    """A ranking probe, not an attack: every chosen bin's magnitude moves by the same ``amount`` (phase kept).

    Equal absolute changes make a group's response the sum of its bins' sensitivities, whatever their
    loudness, so a quiet bin that moves the model is not hidden by loud neighbours.
    """

    amount: float
    boost: bool = False


def default_mutations() -> tuple[Mutation, ...]:
    """Attenuations ×0.75…×0, boosts ×1.5…×10, ×100, ×1000 and phase turns of 90° and 180°."""
    return tuple(Mutation("scale", s) for s in DEFAULT_SCALES) + tuple(Mutation("phase", p) for p in DEFAULT_PHASES)


def ladder(mutations: Sequence[Mutation], max_scale: float | None = None) -> tuple[Mutation, ...]:
    """Distinct mutations quietest first (by |m − 1|; ties: kind, then value), boosts above ``max_scale`` dropped."""
    kept = {m for m in mutations if not (m.boost and max_scale is not None and m.value > max_scale)}
    return tuple(sorted(kept, key=lambda m: (m.size, m.kind, m.value)))


def extremes(ordered: Sequence[Mutation]) -> tuple[Mutation, ...]:
    """The largest mutation of each direction (down, up, phase), in ladder order.

    Algorithm 2 searches with "the largest mutation"; ×1000 cannot flip a model that needs a bin turned
    down, so every direction's extreme is tried.
    """
    largest: dict[str, Mutation] = {}
    for m in ordered:
        if m.size > 0:
            largest[m.direction] = m
    chosen = set(largest.values())
    return tuple(m for m in ordered if m in chosen) or tuple(ordered[-1:])


def clip_bound(x: "torch.Tensor") -> float:
    """Boosted clips are clipped to ±max(1, peak of the original)."""
    return max(1.0, float(x.abs().max()))


def flip_margin(probs: np.ndarray, original: int) -> float:
    """New top class's probability minus the original label's (≤ 0 while the original is still on top)."""
    return float(probs.max() - probs[original])
