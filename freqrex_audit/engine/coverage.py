"""What the Fourier attack really searched: the record a "no flip" must show before it counts as measured.

A search that found no flip says something about the model only if it looked where a flip would be. The
rule scales with the clip and the attack's own settings, not with the budget it happened to have:

- **screen**: every one of the top ``min(screen_bins, ranked bins)`` bins of the explanation's ranking was
  tried alone with every direction of the ladder (its extremes: the largest attenuation, boost and phase
  turn; quieter rungs are climbed only on bins that flip);
- **runner-up descent**: when there is another class to move toward, the descent over bands ran to its end
  (single bins, or no band left that moved the margin) instead of being cut by the budget;
- **prefix**: the paper's Algorithm 2 asked its first step, the prefixes of 1 … ``chunk // directions`` bins
  of its pool with every direction;
- a quiet flip is a finding whatever the search covered; no flip, or only a loud one (below ``min_snr_db``),
  needs the three parts above. ``ladder_climbed`` (the loud winner's whole ladder was asked) and
  ``budget_left`` are recorded beside them: a flip found in the last chunk before the budget ended is not
  climbed to its quietest rung (the screens climb each flipping bin right after its chunk, so one among the
  top bins is, whenever the budget reached past it).

:func:`search_coverage` reads what was asked from the search's own record of candidates (nothing in the
search changes for it), so it holds for any search that keeps that record; ``queries_needed`` is a budget
that always covers the rule on this clip (the original query, the screen, the descent's most probes, the
prefixes, the ladder climbs the search may spend on flipping bins on the way, and the verification), for the
"not measured" message.
``freqrex_audit.audit.evidence`` reads :attr:`SearchCoverage.complete`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .codec import Result

__all__ = ["SearchCoverage", "search_coverage", "descent_bound", "prefix_rows", "prefix_step", "DESCENT_STATES"]

DESCENT_STATES = ("done", "cut", "not run", "none")
"""The runner-up descent: ran to its end, cut by the budget, never started, or not needed (no other class)."""


@dataclass(frozen=True)
class SearchCoverage(Result):
    """What one Fourier attack searched, against what the coverage rule asks of a "no flip" on this clip."""

    bins: int
    top_bins: int
    directions: int
    screened: int
    descent: str
    prefixes: int
    prefixes_asked: int
    queries_needed: int
    ladder_climbed: bool | None = None
    budget_left: int = 0

    @property
    def complete(self) -> bool:
        """Every part of the rule was searched (module docstring)."""
        return (self.screened >= self.top_bins and self.descent in ("done", "none")
                and self.prefixes_asked >= self.prefixes)

    def settles(self, success: bool, quiet: bool) -> bool:
        """Whether the attack's answer is evidence about this clip: a quiet flip always is; no flip, or only a
        loud one, only when the search was :attr:`complete`."""
        return (success and quiet) or self.complete

    @property
    def shortfall(self) -> str:
        """What the search left out, in words ("" when complete)."""
        parts = []
        if self.screened < self.top_bins:
            parts.append(f"screened {self.screened} of the top {self.top_bins} bins × {self.directions} directions")
        if self.descent not in ("done", "none"):
            parts.append(f"the runner-up descent was {'cut by the budget' if self.descent == 'cut' else 'not run'}")
        if self.prefixes_asked < self.prefixes:
            parts.append(f"asked {self.prefixes_asked} of the first {self.prefixes} prefix candidates")
        return "; ".join(parts)

    @property
    def rule(self) -> str:
        """The rule on this clip, in words."""
        return (f"every one of the top {self.top_bins} bins × {self.directions} directions, the runner-up descent "
                f"to its end and the first {self.prefixes} prefix candidates")


def descent_bound(n_bins: int, branch: int, beam: int) -> int:
    """Most queries the runner-up descent can ask on ``n_bins`` bins: 2 probes per band, ``beam`` bands kept
    and split ``branch``-way per level (the largest bands, the worst case), down to single bins."""
    queries, sizes = 0, [len(g) for g in np.array_split(np.arange(n_bins), min(branch, n_bins)) if len(g)]
    while sizes:
        queries += 2 * len(sizes)
        kept = sorted((s for s in sizes if s > 1), reverse=True)[:beam]
        sizes = [len(g) for s in kept for g in np.array_split(np.arange(s), min(branch, s)) if len(g)]
    return queries


def prefix_step(chunk: int, directions: Sequence) -> int:
    """How many prefix sizes one chunk of the prefix search asks (each with every direction)."""
    return max(1, chunk // max(1, len(directions)))


def prefix_rows(pool: np.ndarray, directions: Sequence, chunk: int, max_frequencies: int, start: int = 1
                ) -> list[tuple]:
    """One chunk of the paper's Algorithm 2: the prefixes of ``start`` … ``start + prefix_step − 1`` bins of
    ``pool`` (at most ``max_frequencies``) with every direction. The first chunk (``start`` 1) is the rule's."""
    limit = min(len(pool), max_frequencies)
    sizes = range(start, min(start + prefix_step(chunk, directions), limit + 1))
    return [(tuple(int(b) for b in pool[:k]), m) for k in sizes for m in directions]


def search_coverage(asked: dict, ranking: np.ndarray, pool: np.ndarray, directions: Sequence, *, screen_bins: int,
                    chunk: int, max_frequencies: int, branch: int, beam: int, descent: str, reserve: int,
                    ladder: Sequence = (), winner: tuple[int, ...] | None = None, budget_left: int = 0,
                    climbs: int = 0) -> SearchCoverage:
    """The coverage of one search from ``asked`` (its candidates: ``(bins tuple, mutation)`` keys).

    ``pool``: the prefix source's bins; ``directions``: the ladder's extremes the screens try; ``descent``: one
    of :data:`DESCENT_STATES`; ``reserve``: queries kept back to verify a flip (counted in ``queries_needed``);
    ``ladder`` and ``winner``: the whole ladder and the returned flip's bins (None: no flip); ``budget_left``:
    the search's queries not spent; ``climbs``: flipping sets whose whole ladder the search may climb.
    """
    if descent not in DESCENT_STATES:
        raise ValueError(f"descent must be one of {DESCENT_STATES}, not {descent!r}")
    top = [int(b) for b in ranking[:screen_bins]]
    screened = sum(all(((b,), m) in asked for m in directions) for b in top)
    prefixes = prefix_rows(pool, directions, chunk, max_frequencies)
    new_rows = [r for r in prefixes if not (len(r[0]) == 1 and r[0][0] in top)]  # the screen asks those
    descent_queries = 0 if descent == "none" else descent_bound(len(ranking), branch, beam)
    needed = 1 + len(top) * len(directions) + descent_queries + len(new_rows) + climbs * len(ladder) + reserve
    return SearchCoverage(bins=len(ranking), top_bins=len(top), directions=len(directions), screened=screened,
                          descent=descent, prefixes=len(prefixes),
                          prefixes_asked=sum(r in asked for r in prefixes), queries_needed=needed,
                          ladder_climbed=None if winner is None else all((winner, m) in asked for m in ladder),
                          budget_left=max(0, int(budget_left)))
