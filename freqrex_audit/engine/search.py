"""The Fourier attack's candidate sources, all spending one per-clip query budget.

A candidate is a set of bins with one mutation. ``BudgetedSearch`` asks candidates in fixed chunks
(never the model's batch size, so results and query counts do not depend on hardware), skips any it
already asked, stops at the budget, counts queries per source and keeps every flip (with the margin
and the SNR). The sources feed it:

- ``ranking``: single bins of the target's responsibility ranking (the screen, and later the rest of
  the ranking one bin at a time);
- ``runner_up``: a descent over bands toward the bins that most raise the runner-up (or the inverse
  classification's class) against the original label, ending in single bins;
- ``prefix``: the paper's Alg 2, prefixes of the sufficient set (of the whole ranking when asked, or
  when the explanation is degenerate);
- ``sets``: small sets of the bins that moved the margin most one at a time;
- ``ladder``: every mutation of the ladder on a set that flipped, to find the quietest.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import torch

from ..audio import spectrum as spec
from ..models.classifier import QueryEngine
from .coverage import prefix_rows, prefix_step
from .mutations import Mutation, Nudge, flip_margin

Candidate = tuple[tuple[int, ...], Mutation]


@dataclass(frozen=True)
class Flip:
    """A candidate that changed the top class by at least the margin."""

    bins: tuple[int, ...]
    mutation: Mutation | None  # None: additive changes ``delta`` from the boundary search
    source: str
    label: int
    margin: float
    snr_db: float
    order: int
    delta: tuple[complex, ...] | None = None  # per bin, in rfft units (boundary search only)

    def key(self, min_snr_db: float) -> tuple:
        """Preference: quiet before loud, then fewer bins, then quieter, then found first."""
        return (self.snr_db < min_snr_db, len(self.bins), -self.snr_db, self.order)


class BudgetedSearch:
    """Evaluates candidates under one query budget and remembers every answer and flip."""

    def __init__(self, engine: QueryEngine, x: torch.Tensor, spectrum: torch.Tensor, original: int, *,
                 budget: int, chunk: int, min_margin: float, min_snr_db: float, max_frequencies: int,
                 bound: float, climbs: int):
        self.engine, self.x, self.spectrum, self.original = engine, x, spectrum, original
        self.budget, self.chunk, self.min_margin, self.min_snr_db = budget, chunk, min_margin, min_snr_db
        self.max_frequencies, self.bound = max_frequencies, bound
        self.asked: dict[Candidate, np.ndarray] = {}
        self.energy: dict[Candidate, float] = {}
        self.queries_by_source: dict[str, int] = {}
        self.flips: list[Flip] = []
        self.pool: set[int] = set()
        self.spent = 0
        self.n_asked = 0  # candidates asked by every source (orders flips)
        self.power = float(torch.linalg.vector_norm(x, dtype=torch.float64)) ** 2
        self.climbs_left, self.climbed = climbs, set()

    @property
    def remaining(self) -> int:
        return self.budget - self.spent

    @property
    def settled(self) -> bool:
        """A quiet one-bin flip whose whole ladder was tried is the best answer there is: stop searching."""
        return any(len(f.bins) == 1 and f.snr_db >= self.min_snr_db and f.bins in self.climbed for f in self.flips)

    @property
    def quietest_snr(self) -> float | None:
        """SNR of the quietest flip so far (None before any)."""
        return max((f.snr_db for f in self.flips), default=None)

    @property
    def quiet(self) -> bool:
        """Some flip so far is quiet (SNR ≥ min_snr_db)."""
        return any(f.snr_db >= self.min_snr_db for f in self.flips)

    def flipped(self, probs: np.ndarray | None) -> bool:
        """A different top class, ahead of the original label by at least the margin."""
        return (probs is not None and int(probs.argmax()) != self.original
                and flip_margin(probs, self.original) >= self.min_margin)

    def build(self, rows: Sequence[Candidate]) -> torch.Tensor:
        return perturbed(self.spectrum, self.x.shape[-1], rows, self.bound)

    def ask(self, source: str, candidates: Sequence[Candidate], pool: bool = True) -> list[np.ndarray | None]:
        """Probabilities per candidate (None when the budget ran out before it); new ones are queried.

        ``pool``: the candidates are attack candidates (their bins join the pool); band probes of the
        runner-up descent are not.
        """
        fresh = list(dict.fromkeys(c for c in candidates if c not in self.asked))[: max(0, self.remaining)]
        for start in range(0, len(fresh), self.chunk):
            rows = fresh[start:start + self.chunk]
            waves = self.build(rows)
            q0 = self.engine.queries
            probs = self.engine.query(waves)
            self.spent += len(rows)
            self.queries_by_source[source] = self.queries_by_source.get(source, 0) + self.engine.queries - q0
            hits = np.flatnonzero([self.flipped(p) for p in probs])
            energies = torch.linalg.vector_norm(waves - self.x[None], dim=-1, dtype=torch.float64).cpu().numpy() ** 2
            with np.errstate(divide="ignore"):
                snrs = 10.0 * np.log10(self.power / energies)
            for i, snr in zip(hits, snrs[hits]):
                bins, mutation = rows[i]
                if len(bins) <= self.max_frequencies and isinstance(mutation, Mutation):
                    self.flips.append(Flip(bins, mutation, source, int(probs[i].argmax()),
                                           flip_margin(probs[i], self.original),
                                           float(snr), self.n_asked + int(i)))
            self.n_asked += len(rows)
            for row, p, e in zip(rows, probs, energies):
                self.asked[row] = p
                self.energy[row] = float(e)
                if pool:
                    self.pool.update(row[0])
        return [self.asked.get(c) for c in candidates]

    def best(self) -> list[Flip]:
        return sorted(self.flips, key=lambda f: f.key(self.min_snr_db))


def screen(search: BudgetedSearch, source: str, bins: Sequence[int], mutations: Sequence[Mutation],
           ladder: Sequence[Mutation], ladder_sets: int) -> None:
    """Try each bin alone with each mutation, in chunks; the ladder on every newly flipping bin."""
    step = max(1, search.chunk // max(1, len(mutations)))
    for start in range(0, len(bins), step):
        if search.settled or search.remaining <= 0:
            return
        search.ask(source, [((int(b),), m) for b in bins[start:start + step] for m in mutations])
        climb(search, source, [f.bins for f in search.best() if len(f.bins) == 1], ladder, ladder_sets)


def climb(search: BudgetedSearch, source: str, sets: Sequence[tuple[int, ...]], ladder: Sequence[Mutation],
          limit: int) -> None:
    """Every ladder mutation on each set that flipped (at most ``limit`` sets per call and
    ``search.climbs_left`` per clip), so the quietest flipping mutation of each is found."""
    for bins in [b for b in dict.fromkeys(sets) if b not in search.climbed][:limit]:
        if search.settled or search.climbs_left <= 0 or search.remaining <= 0:
            return
        search.climbs_left -= 1
        search.climbed.add(bins)
        search.ask(source, [(bins, m) for m in ladder])


def score(probs: np.ndarray | None, original: int, towards: Sequence[int]) -> float:
    """How far a candidate moved toward the other classes: best of p(c) − p(original)."""
    if probs is None:
        return -np.inf
    return float(max(probs[c] for c in towards) - probs[original])


def log_odds(probs: np.ndarray | None, original: int, towards: Sequence[int]) -> float:
    """Best of log p(c) − log p(original): unlike the probabilities, it does not saturate near 1."""
    if probs is None:
        return -np.inf
    return float(max(np.log(probs[c] + 1e-30) for c in towards) - np.log(probs[original] + 1e-30))


def runner_up_descent(search: BudgetedSearch, n_bins: int, towards: Sequence[int], nudge: float,
                      base: np.ndarray, *, branch: int, beam: int, tolerance: float = 0.01) -> list[int]:
    """Bins ranked by how much they support ``towards`` (the runner-up, inverse class) over the label.

    Probes are nudges (:class:`Nudge`): every bin of a group moves in magnitude by ±``nudge``·max|X|, so
    the response measures the group's sensitivity, not its loudness. Split all bins into ``branch``
    bands, nudge each up and down, keep the ``beam`` bands that bought the most log-odds toward the
    other class (changes under ``tolerance`` are float noise), split them again, down to single bins;
    returns the single bins reached, best first, for the screen to try with the real mutations. Costs
    about 2·levels·beam·branch queries (≈ 100–150 for K = 2,001–8,001).
    """
    start = log_odds(base, search.original, towards)
    amount = nudge * float(search.spectrum.abs().max())
    probes = (Nudge(amount), Nudge(-amount))

    def gain(row) -> float:
        answer = search.asked.get(row)
        if answer is None:
            return -np.inf
        change = log_odds(answer, search.original, towards) - start
        return change if change > tolerance else 0.0

    groups = [g for g in np.array_split(np.arange(n_bins), min(branch, n_bins)) if len(g)]
    leaves: list[tuple[float, int]] = []
    while groups and search.remaining > 0:
        rows = [[(tuple(int(b) for b in g), m) for m in probes] for g in groups]
        search.ask("runner_up", [r for group in rows for r in group], pool=False)
        scores = [max(gain(r) for r in group) for group in rows]
        order = sorted(range(len(groups)), key=lambda i: -scores[i])
        leaves += [(scores[i], int(groups[i][0])) for i in order if len(groups[i]) == 1]
        keep = [groups[i] for i in order if len(groups[i]) > 1 and scores[i] > 0][:beam]
        groups = [g for parent in keep for g in np.array_split(parent, min(branch, len(parent))) if len(g)]
    leaves.sort(key=lambda s: -s[0])
    for _, b in leaves:
        search.pool.add(b)
    return [b for _, b in leaves]


def prefix_search(search: BudgetedSearch, pool: np.ndarray, mutations: Sequence[Mutation],
                  ladder: Sequence[Mutation]) -> None:
    """Alg 2: the smallest prefix of ``pool`` that flips with some direction's extreme, then the ladder on it."""
    limit = min(len(pool), search.max_frequencies)
    for start in range(1, limit + 1, prefix_step(search.chunk, mutations)):
        if search.remaining <= 0:
            return
        rows = prefix_rows(pool, mutations, search.chunk, search.max_frequencies, start)
        answers = search.ask("prefix", rows)
        flipped = [r[0] for r, p in zip(rows, answers) if search.flipped(p)]
        if flipped:
            climb(search, "prefix", flipped[:1], ladder, 1)
            return


def grow_sets(search: BudgetedSearch, mutations: Sequence[Mutation], ladder: Sequence[Mutation], max_set: int,
              towards: Sequence[int]) -> None:
    """Sets of 2…``max_set`` of the bins that, alone, moved the margin most under each extreme."""
    for m in mutations:
        singles = [(score(p, search.original, towards), bins[0]) for (bins, mm), p in search.asked.items()
                   if len(bins) == 1 and mm == m]
        ranked = [b for _, b in sorted(singles, key=lambda s: (-s[0], s[1]))]
        sizes = [k for k in range(2, min(max_set, search.max_frequencies, len(ranked)) + 1)]
        rows = [(tuple(sorted(ranked[:k])), m) for k in sizes]
        answers = search.ask("sets", rows)
        flipped = [r[0] for r, p in zip(rows, answers) if search.flipped(p)]
        climb(search, "sets", flipped[:1], ladder, 1)
        if search.settled:
            return


def perturbed(spectrum: torch.Tensor, n: int, rows: Sequence[tuple[Sequence[int], Mutation | Nudge]],
              bound: float) -> torch.Tensor:
    """Waveforms [B, n]: row i multiplies the bins ``rows[i][0]`` by ``rows[i][1]`` (boosts clipped)."""
    factors = torch.ones((len(rows), spectrum.shape[-1]), dtype=spectrum.dtype, device=spectrum.device)
    if all(len(bins) == 1 and isinstance(m, Mutation) for bins, m in rows):  # the screens: one scatter
        index = torch.as_tensor([bins[0] for bins, _ in rows], dtype=torch.long, device=spectrum.device)
        values = torch.tensor([m.multiplier for _, m in rows], dtype=spectrum.dtype, device=spectrum.device)
        factors[torch.arange(len(rows), device=spectrum.device), index] = values
        rows_left: Sequence = ()
    else:
        rows_left = rows
    for i, (bins, mutation) in enumerate(rows_left):
        index = torch.as_tensor(np.asarray(bins, dtype=np.int64), device=spectrum.device)
        if isinstance(mutation, Nudge):
            size = spectrum[index].abs()
            factors[i, index] = torch.where(size > 0, (size + mutation.amount).clamp_min(0) / size.clamp_min(1e-30),
                                            torch.ones_like(size)).to(spectrum.dtype)
        else:
            factors[i, index] = mutation.multiplier
    waves = spec.mutated_waveforms(spectrum, factors, n)
    boosted = [m.boost for _, m in rows]
    if not any(boosted):
        return waves
    mask = torch.tensor(boosted, device=spectrum.device)
    return torch.where(mask[:, None], waves.clamp(-bound, bound), waves)
