"""Algorithm 1, lines 10–21: sufficient, necessary and complete prefixes of the responsibility ranking.

``P_k`` is the first k bins of the ranking. Prefix sizes are searched on a geometric grid (batched),
then refined on a linear sub-grid just below the grid point that was found. A prefix counts as
sufficient only if it and the next ``chain_length - 1`` prefixes — bins, one per iteration of the
paper's final loop — all keep the target with confidence ≥ δ·conf(x), so a non-monotone model cannot
stop the search at a lucky early hit. (Counted over grid points, as before, the chain asked the label
to hold up to ~2.2× the prefix for K ≈ 240k.) :func:`prune` then removes, in batches, the bins of the
sufficient prefix the label does not need: the paper's prefix set and this minimal set are both kept.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from ..models.classifier import QueryEngine

TIE_MARGIN = 1e-5
"""How far the target must lead (or trail) the best other class to count as kept (or lost): float
noise between two syntheses of the same signal must not decide a tie (observed: a 0.5/0.5 output
read as the target in one query and as the other class when the signal was rebuilt)."""


def margin(probs: np.ndarray, target: int) -> float:
    """Target probability minus the best other class's."""
    others = np.delete(probs, target)
    return float(probs[target] - (others.max() if len(others) else 0.0))


def is_complete(conf: float, original: float, decimals: int) -> bool:
    """The one completeness criterion (engine, gates, report, tests): the subset's confidence for the
    target equals the clip's to ``decimals`` places, read as |conf − original| ≤ ½·10^−decimals.

    Rounding both sides (the earlier engine rule) splits 0.6949 and 0.6951 although they differ by 2e-4;
    the tolerance form is what "agree to d decimals" means and is continuous in the confidences.
    """
    return abs(float(conf) - float(original)) <= 0.5 * 10.0 ** (-decimals) + 1e-12


def rank_bins(responsibility: np.ndarray, magnitude: np.ndarray) -> np.ndarray:
    """Bins by responsibility, highest first; ties broken by larger |X| first, then lower bin."""
    return np.lexsort((np.arange(len(responsibility)), -magnitude, -responsibility))


def prefix_grid(n_bins: int, points: int) -> np.ndarray:
    """Geometric grid of prefix sizes from 1 to K (always including K)."""
    grid = np.unique(np.rint(np.geomspace(1, n_bins, max(2, points))).astype(np.int64))
    return grid[(grid >= 1) & (grid <= n_bins)]


class PrefixOracle:
    """Queries ``P_k`` (keep the top-k bins) and its complement, caching every answer."""

    def __init__(self, engine: QueryEngine, spectrum: torch.Tensor, n_samples: int, ranking: np.ndarray):
        self.engine = engine
        self.spectrum = spectrum
        self.n_samples = n_samples
        position = np.empty(len(ranking), dtype=np.int64)
        position[ranking] = np.arange(len(ranking))
        self.position = position  # masks are built on the host (numpy: cheaper than torch there, #33)
        self.kept: dict[int, np.ndarray] = {}
        self.dropped: dict[int, np.ndarray] = {}

    def keep(self, ks: list[int] | np.ndarray, also_drop: list[int] | np.ndarray = ()) -> list[np.ndarray]:
        """P_k for each k (and, in the same model call, the complements of ``also_drop``, cached)."""
        return self.both(ks, also_drop)[0]

    def drop(self, ks: list[int] | np.ndarray, also_keep: list[int] | np.ndarray = ()) -> list[np.ndarray]:
        """The complement of P_k for each k (and, in the same model call, ``also_keep``'s prefixes, cached)."""
        return self.both(also_keep, ks)[1]

    def both(self, keep: list[int] | np.ndarray, drop: list[int] | np.ndarray) -> tuple[list[np.ndarray], list[np.ndarray]]:
        """Prefixes ``keep`` and complements ``drop``, every missing one asked in one model call (#33: the
        searches ask keep and drop of the same candidates; one call instead of two, the same queries)."""
        keep, drop = [int(k) for k in keep], [int(k) for k in drop]
        want_keep = sorted({k for k in keep if k not in self.kept})
        want_drop = sorted({k for k in drop if k not in self.dropped})
        if want_keep or want_drop:
            sizes = np.asarray(want_keep + want_drop, dtype=np.int64)[:, None]
            masks = self.position[None, :] < sizes
            masks[len(want_keep):] = ~masks[len(want_keep):]
            probs = self.engine.query_spectral(self.spectrum, torch.from_numpy(masks), self.n_samples)
            self.kept.update(zip(want_keep, probs[:len(want_keep)]))
            self.dropped.update(zip(want_drop, probs[len(want_keep):]))
        return [self.kept[k] for k in keep], [self.dropped[k] for k in drop]


@dataclass(frozen=True)
class SubsetSearch:
    """Prefix sizes found (None when not found) and the probabilities that decided them."""

    sufficient: int | None
    necessary: int | None
    complete: int | None
    sufficient_probs: np.ndarray | None
    necessary_probs: np.ndarray | None
    complete_probs: np.ndarray | None
    inverse_probs: np.ndarray | None
    inverse_rule: str | None = None
    complete_inverse_probs: np.ndarray | None = None


INVERSE_RULES = ("necessary-complement", "sufficient-complement", "complete-complement")


def find_subsets(oracle: PrefixOracle, target: int, confidence: float, *, min_confidence: float,
                 chain_length: int, grid_points: int, refine_points: int, decimals: int,
                 search_chunk: int = 8) -> SubsetSearch:
    """Smallest stable sufficient, necessary and complete prefixes (DESIGN.md §4)."""
    n_bins = len(oracle.position)
    grid = prefix_grid(n_bins, grid_points)
    floor = min_confidence * confidence

    def keeps(probs: np.ndarray) -> bool:
        return margin(probs, target) > TIE_MARGIN and probs[target] >= floor

    def loses(probs: np.ndarray) -> bool:
        return margin(probs, target) < -TIE_MARGIN

    def matches(probs: np.ndarray) -> bool:
        return is_complete(probs[target], confidence, decimals)

    known: dict[int, bool] = {}

    def kept(i: int) -> bool:
        """Whether grid point i keeps the target; asked lazily, ``search_chunk`` grid points at a time in
        ascending order (the searches below only climb the grid, so points above the answers are never
        asked: on a single-band model the whole 48-point grid cost ~40 queries for a 1-bin answer)."""
        if i not in known:
            batch = list(range(i, min(i + search_chunk, len(grid))))
            known.update(zip(batch, (keeps(p) for p in oracle.keep(grid[batch]))))
        return known[i]

    def chain_from(k: int) -> int | None:
        """k itself if P_k .. P_{k+L-1} all keep the target, else the first later k worth trying (None: none).

        The same call also asks the complements the necessary search asks first if the chain holds (its
        first batch of grid points from k's, as far as the grid is known), when the window needs a call at all:
        speculative, counted, and wasted only when the chain fails and the search never comes back (#33)."""
        window = [j for j in range(k, min(k + chain_length, n_bins + 1))]
        ahead, j = [], int(np.searchsorted(grid, k))  # the necessary search's first batch, as far as known
        calls = any(w not in oracle.kept for w in window)  # only ride along a call that happens anyway
        while calls and j < len(grid) and j in known and len(ahead) < search_chunk:
            if known[j]:
                ahead.append(int(grid[j]))
            j += 1
        ok = [keeps(p) for p in oracle.keep(window, also_drop=ahead)]
        if all(ok):
            return k
        failed = window[ok.index(False)]
        return failed + 1 if failed < n_bins else None

    def first_grid_index(start: int, extra: Callable[[int], bool] | None) -> int | None:
        """First grid index ≥ start that keeps the target and meets ``extra`` (complements asked in batches)."""
        i = start
        while i < len(grid):
            batch = []
            while i < len(grid) and len(batch) < search_chunk:
                if kept(i):
                    batch.append(i)
                i += 1
            if extra is not None and batch:
                oracle.drop(grid[batch])
            for j in batch:
                if extra is None or extra(j):
                    return j
        return None

    def refine(i: int, lower: int, extra: Callable[[int], bool] | None) -> int:
        """Smallest k in (grid[i-1], grid[i]] keeping the target at every sub-grid point above it."""
        low = max(lower, int(grid[i - 1]) + 1 if i > 0 else 1)
        high = int(grid[i])
        if high - low < 1:
            return high
        sub = np.unique(np.rint(np.linspace(low, high - 1, min(refine_points, high - low))).astype(np.int64))
        ok = [keeps(p) for p in oracle.keep(sub, also_drop=sub if extra is not None else ())]
        best = high
        for j in range(len(sub) - 1, -1, -1):
            if not ok[j]:
                break
            if extra is None or extra(int(sub[j])):
                best = int(sub[j])
        return best

    drop_loses = lambda k: loses(oracle.drop([k])[0])  # noqa: E731
    complete_ok = lambda k: drop_loses(k) and matches(oracle.keep([k])[0])  # noqa: E731

    k_s, lowest = None, 1
    for tries, i in enumerate(i for i in range(len(grid)) if grid[i] >= lowest and kept(i)):
        if tries >= 8:
            break
        k: int | None = refine(i, lowest, None)
        for _attempt in range(chain_length):  # a failing chain moves past the failure, a few times at most
            nxt = chain_from(k)
            if nxt == k:
                k_s = k
                break
            k = nxt
            if k is None:
                break
        if k_s is not None or k is None:
            break
        lowest = k
    i_s = None if k_s is None else int(np.searchsorted(grid, k_s))
    i_n = first_grid_index(i_s, lambda i: drop_loses(int(grid[i]))) if i_s is not None else None
    k_n = refine(i_n, k_s, drop_loses) if i_n is not None else None
    i_c = first_grid_index(i_n, lambda i: complete_ok(int(grid[i]))) if i_n is not None else None
    k_c = refine(i_c, k_n, complete_ok) if i_c is not None else None

    inverse_k = k_n if k_n is not None else k_s
    inverse_rule = None if inverse_k is None else INVERSE_RULES[0] if k_n is not None else INVERSE_RULES[1]
    return SubsetSearch(
        sufficient=k_s, necessary=k_n, complete=k_c,
        sufficient_probs=oracle.keep([k_s])[0] if k_s else None,
        necessary_probs=oracle.keep([k_n])[0] if k_n else None,
        complete_probs=oracle.keep([k_c])[0] if k_c else None,
        inverse_probs=oracle.drop([inverse_k])[0] if inverse_k else None, inverse_rule=inverse_rule,
        complete_inverse_probs=oracle.drop([k_c])[0] if k_c else None,  # asked by the complete search: free
    )


def prune(engine: QueryEngine, spectrum: torch.Tensor, n_samples: int, ranked: np.ndarray, probs: np.ndarray,
          holds: Callable[[np.ndarray], bool], *, budget: int, groups: int = 8) -> tuple[np.ndarray, np.ndarray]:
    """Batched pruning of a sufficient set: remove the bins the label does not need (Def. 1's minimality).

    ``ranked`` is the sufficient prefix in ranking order and ``probs`` its output. Each round splits the
    kept bins into groups (least responsible first), asks for the set without each group (one batch),
    then for the cumulative removals of the groups that could go (a second batch) and drops the longest
    run that still ``holds``. Groups halve each round down to single bins; the rounds stop when single
    bins no longer go or ``budget`` queries are spent. Returns the kept bins (ranking order) and their output.
    """
    keep = [int(b) for b in ranked]
    spent, size = 0, max(1, -(-len(keep) // groups))

    def ask(removals: list[set[int]]) -> np.ndarray:
        masks = np.zeros((len(removals), spectrum.shape[-1]), dtype=bool)
        kept = np.asarray(keep, dtype=np.int64)
        for row, gone in enumerate(removals):
            masks[row, kept] = True
            masks[row, np.fromiter(gone, dtype=np.int64, count=len(gone))] = False
        return engine.query_spectral(spectrum, torch.from_numpy(masks), n_samples)

    while len(keep) > 1 and spent < budget:
        order = keep[::-1]
        chunks = [set(order[at:at + size]) for at in range(0, len(order), size)]
        chunks = [c for c in chunks if len(c) < len(keep)][: budget - spent]
        answers = ask(chunks) if chunks else []
        spent += len(chunks)
        removable = [c for c, p in zip(chunks, answers) if holds(p)]
        removed = False
        if len(removable) == 1:
            keep = [b for b in keep if b not in removable[0]]
            probs, removed = answers[[holds(p) for p in answers].index(True)], True
        elif removable and spent < budget:
            cumulative = [set().union(*removable[:j + 1]) for j in range(min(len(removable), budget - spent))]
            answers = ask(cumulative)
            spent += len(cumulative)
            ok = [holds(p) for p in answers]
            run = ok.index(False) if False in ok else len(ok)
            if run:
                keep = [b for b in keep if b not in cumulative[run - 1]]
                probs, removed = answers[run - 1], True
        if size == 1 and not removed:
            break
        size = max(1, size // 2)
    return np.asarray(keep, dtype=np.int64), probs
