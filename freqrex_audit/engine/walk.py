"""Walk a ladder flip to the decision boundary (#29, point 1).

The ladder's rungs are coarse (×3 then ×5: 4.4 dB apart on the bin); the quietest flip usually lies
between the last rung that did not flip and the first that did. For a flip of bins S with mutation m,
the walk bisects the one number that sets its energy — the scale for an amplitude change, the angle
for a phase turn — between the nearest quieter rung of the same direction that was asked and did not
flip (else no change at all) and m, until the two bracket the boundary to ``tol_db`` of perturbation
energy. Every step is an ordinary candidate (S, Mutation) of the search, so its flip is recorded with
its exact SNR and ``min_margin``. Then the set shrinks: each bin is dropped in turn while the rest
still flips with the walked mutation.
"""

from __future__ import annotations

import numpy as np

from .mutations import Mutation
from .search import BudgetedSearch, Flip

MAX_SHRINK = 16  # sets larger than this are not shrunk bin by bin (one query per bin)


def _mutation(kind: str, value: float) -> Mutation:
    return Mutation(kind, float(max(value, 0.0)) if kind == "scale" else float(value))


def _bracket(search: BudgetedSearch, flip: Flip) -> float:
    """The value of the quietest asked rung of the same kind and direction that did not flip (else identity)."""
    m = flip.mutation
    identity = 1.0 if m.kind == "scale" else 0.0
    best = identity
    for (bins, other), probs in search.asked.items():
        if bins != flip.bins or not isinstance(other, Mutation) or other.kind != m.kind or search.flipped(probs):
            continue
        if other.direction != m.direction or other.size >= m.size:
            continue
        if other.size > _mutation(m.kind, best).size:
            best = other.value
    return best


def walk(search: BudgetedSearch, flip: Flip, tol_db: float = 0.5, source: str = "walk") -> None:
    """Bisect ``flip``'s mutation toward the boundary (see the module docstring); flips land on ``search``."""
    if flip.mutation is None or search.remaining <= 0:
        return
    kind = flip.mutation.kind
    quiet, loud = _bracket(search, flip), flip.mutation.value
    ratio = 10 ** (tol_db / 20)  # energy ∝ |m − 1|², so sizes within this ratio are within tol_db
    while search.remaining > 0:
        small, large = _mutation(kind, quiet).size, _mutation(kind, loud).size
        if small > 0 and large / small <= ratio:
            break
        if kind == "scale":
            # geometric in |m − 1| (energy), on the side of 1 that the flip is on
            target = np.sqrt(max(small, large * 1e-3) * large) if small > 0 else large / 2
            mid = 1.0 + np.sign(loud - 1.0) * target
        else:
            mid = (quiet + loud) / 2
        candidate = (flip.bins, _mutation(kind, mid))
        answer = search.ask(source, [candidate])[0]
        if answer is None:
            break
        if search.flipped(answer):
            loud = mid
        else:
            quiet = mid
    shrink(search, flip.bins, _mutation(kind, loud), source)


def shrink(search: BudgetedSearch, bins: tuple[int, ...], mutation: Mutation, source: str = "walk") -> None:
    """Drop bins one at a time while the remaining set still flips with ``mutation`` (fewer and quieter)."""
    if len(bins) < 2 or len(bins) > MAX_SHRINK:
        return
    kept = list(bins)
    for b in list(bins):
        if len(kept) < 2 or search.remaining <= 0:
            return
        trial = tuple(x for x in kept if x != b)
        answer = search.ask(source, [(trial, mutation)])[0]
        if answer is not None and search.flipped(answer):
            kept = list(trial)


def walk_best(search: BudgetedSearch, n: int, tol_db: float) -> None:
    """Walk the ``n`` quietest distinct ladder flips (by bins and direction) to the boundary."""
    seen, chosen = set(), []
    for f in sorted(search.flips, key=lambda f: -f.snr_db):
        if f.mutation is None:
            continue
        key = (f.bins, f.mutation.kind, f.mutation.direction)
        if key not in seen:
            seen.add(key)
            chosen.append(f)
        if len(chosen) >= n:
            break
    for f in chosen:
        walk(search, f, tol_db)
