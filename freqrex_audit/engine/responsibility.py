"""Algorithm 1, lines 1–9: approximate causal responsibility of every rfft bin.

One iteration splits the bins into ``p`` parts, queries every non-empty proper union of them (one
batch), credits 1/k to each part of a passing k-part mutant, then refines the smallest passing
mutant by splitting each of its parts into ``p`` children and querying unions of the children while
the rest of that mutant stays in. Iterations repeat with fresh seeds until the running map settles
(Earth Mover's Distance, computed as POT computes it).

Honest convergence: an iteration reports how many *proper* mutants passed (:class:`IterationMap`); one
in which none did is no convergence step, whatever credit the "every part is needed" rule gave, and a
node the iteration budget cut before all its unions were asked gets no credit at all (it would make the
map depend on the budget silently). :class:`ResponsibilityRun` says whether the loop converged and why.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np
import torch

from ..models.classifier import QueryEngine
from .configs import CONVERGENCE_RULES


@dataclass(frozen=True)
class _Node:
    """A set of bins to split, with the bins (``context``) that stay in while its children are tested."""

    bins: np.ndarray
    context: np.ndarray


def partition_bins(bins: np.ndarray, p: int, rng: np.random.Generator, mode: str = "contiguous") -> list[np.ndarray]:
    """Split ``bins`` into min(p, len(bins)) non-empty parts covering each bin exactly once.

    ``contiguous``: random contiguous bands (random cut points); ``interleaved``: a random assignment
    into parts of equal size, each part spread over the whole range.
    """
    n = len(bins)
    p = max(1, min(p, n))
    if mode == "contiguous":
        cuts = np.sort(rng.choice(np.arange(1, n), size=p - 1, replace=False)) if p > 1 else np.array([], int)
        return np.split(bins, cuts)
    if mode == "interleaved":
        order = rng.permutation(n)
        return [np.sort(bins[order[i::p]]) for i in range(p)]
    raise ValueError(f"partition must be 'contiguous' or 'interleaved', not {mode!r}")


def proper_unions(p: int) -> list[tuple[int, ...]]:
    """All non-empty proper subsets of ``range(p)``, smallest first (14 for p = 4)."""
    return [c for k in range(1, p) for c in itertools.combinations(range(p), k)] or [(0,)]


def emd_1d(u: np.ndarray, v: np.ndarray) -> float:
    """Earth Mover's Distance between two maps over bins, each normalised to sum 1, positions = bin / K."""
    total_u, total_v = float(u.sum()), float(v.sum())
    if total_u <= 0 or total_v <= 0:
        return float("inf")
    positions = np.arange(len(u), dtype=np.float64) / len(u)
    return wasserstein_1d_sorted(positions, u / total_u, v / total_v)


def wasserstein_1d_sorted(positions: np.ndarray, u: np.ndarray, v: np.ndarray) -> float:
    """W1 between weights ``u`` and ``v`` on the same sorted ``positions``: POT's ``ot.wasserstein_1d(positions,
    positions, u, v, p=1)`` with its numpy backend, the same operations in the same order, so bit for bit its
    value (tests/test_gpu_benchmark.py checks it). Not POT itself: ``import ot`` takes 2–3 s (it imports
    scikit-learn), paid by every audit process for one cumulative sum."""
    cu, cv = np.cumsum(u, 0), np.cumsum(v, 0)
    qs = np.sort(np.concatenate((cu, cv), 0), 0)
    last = len(positions) - 1
    u_quantiles = positions[np.clip(np.searchsorted(cu, qs), 0, last)]
    v_quantiles = positions[np.clip(np.searchsorted(cv, qs), 0, last)]
    qs = np.pad(qs, [(1, 0)], constant_values=0)
    return float(np.sum((qs[1:] - qs[:-1]) * np.abs(u_quantiles - v_quantiles), 0))


def spread_budget(per_node: list[list], budget: int) -> list:
    """Up to ``budget`` items taken round-robin across nodes (each node's list smallest first), so a
    budget too small for the whole level still tests every node's smallest unions instead of starving
    the later nodes (cutting the concatenated list did: with 8 bands, the last bands got nothing)."""
    taken: list = []
    for rank in range(max((len(items) for items in per_node), default=0)):
        for items in per_node:
            if rank < len(items):
                taken.append(items[rank])
    return taken[:max(0, budget)]


@dataclass(frozen=True)
class IterationMap:
    """One iteration's responsibility map and what it rests on.

    ``passed``: proper unions (mutants without some part) that kept the label, at any depth; 0 means the
    map holds only "every part is needed" credit, which any model that flips on every change earns.
    ``cut``: nodes whose unions the iteration budget cut before all were asked (given no credit).
    """

    responsibility: np.ndarray
    passed: int
    cut: int


def responsibility_iteration(engine: QueryEngine, spectrum: torch.Tensor, n_samples: int, target: int,
                             rng: np.random.Generator, **options) -> IterationMap:
    """One iteration of calculate_responsibility, alone (see :func:`iteration_steps`)."""
    return run_in_lockstep(engine, spectrum, n_samples, [iteration_steps(spectrum, target, rng, **options)])[0]


class _Stepper:
    """A running iteration (a generator from :func:`iteration_steps`): the masks it waits on, the rounds it
    has been answered, and its IterationMap once it returns."""

    def __init__(self, gen) -> None:
        self.gen, self.rounds, self.result, self.asking = gen, 0, None, None
        self._resume(lambda: next(gen))

    @property
    def done(self) -> bool:
        return self.asking is None

    def send(self, probs: np.ndarray) -> None:
        self.rounds += 1
        self._resume(lambda: self.gen.send(probs))

    def _resume(self, step) -> None:
        try:
            self.asking = step()
        except StopIteration as finished:
            self.asking, self.result = None, finished.value


def run_in_lockstep(engine: QueryEngine, spectrum: torch.Tensor, n_samples: int, steps: list,
                    ahead: _Stepper | None = None, ahead_rounds: int = 0) -> list:
    """Drive independent iterations (generators from :func:`iteration_steps`, or started :class:`_Stepper`s)
    to their end together: each round, the masks every unfinished one asks are sent in one query_spectral call
    and the answers handed back row for row. Each iteration asks exactly what it asks alone, in the same order
    (the same queries, counted once); only the model calls are fuller. ``ahead`` (a later iteration, started
    speculatively) rides along for at most ``ahead_rounds`` of its own rounds while these run, and keeps its
    state for whoever drives it on. Returns each iteration's IterationMap."""
    running = [s if isinstance(s, _Stepper) else _Stepper(s) for s in steps]
    while any(not s.done for s in running):
        group = [s for s in running if not s.done]
        if ahead is not None and not ahead.done and ahead.rounds < ahead_rounds:
            group.append(ahead)
        masks = np.concatenate([s.asking for s in group]) if len(group) > 1 else group[0].asking
        probs = engine.query_spectral(spectrum, torch.from_numpy(masks), n_samples)
        start = 0
        for s in group:
            rows = len(s.asking)
            s.send(probs[start:start + rows])
            start += rows
    return [s.result for s in running]


def iteration_steps(spectrum: torch.Tensor, target: int, rng: np.random.Generator, *, parts: int, partition: str,
                    max_depth: int, min_part_size: int, query_budget: int, refine_top: int,
                    refine_parts: int | None = None, smallest_first: bool = True):
    """One iteration of calculate_responsibility, as a generator: it yields each batch of masks (a [B, K] bool
    numpy array) it needs
    answered, is sent their probabilities, and returns its :class:`IterationMap` (a responsibility map over
    the K bins). :func:`run_in_lockstep` drives it.

    Each level splits every frontier node into ``p`` children and looks for the node's smallest passing
    unions of children (Def. 2 credits a frequency 1/|S| for a *smallest* sufficient S). With
    ``smallest_first`` the unions are asked size by size — every node's single children in one batch,
    then pairs only for the nodes where no single child passed, and so on — and a node stops at the first
    size that passes: larger unions are not smallest, so they would add no Def. 2 credit, and on a
    single-band model this asks p instead of 2^p − 2 unions per level. Without it every proper union is
    asked and every passing one credited (the earlier reading). When no proper union of a node's
    children passes (a conjunction spread over every child), the node itself — known to pass without a
    query — is its smallest passing mutant: every child is needed, gets 1/p, and is refined with its
    siblings in context — but only when every one of its unions was asked: a node the budget cut short is
    not known to need every child, so it gets no credit (``cut``). Each node refines its own ``refine_top``
    smallest passing mutants, every part of them with the rest of the mutant in context. A level's unions
    are taken round-robin across nodes when the budget is short (:func:`spread_budget`).
    """
    n_bins = spectrum.shape[-1]
    responsibility = np.zeros(n_bins)
    frontier = [_Node(np.arange(n_bins), np.zeros(0, dtype=np.int64))]
    spent = proper = cut = 0
    for depth in range(max_depth):
        p = parts if depth == 0 or not refine_parts else refine_parts  # deeper levels: cheaper splits
        split: list[tuple[_Node, list[np.ndarray]]] = []
        for node in frontier:
            if len(node.bins) >= 2:
                split.append((node, partition_bins(node.bins, p, rng, partition)))
        open_nodes = [at for at, (_node, children) in enumerate(split) if len(children) > 1]
        sizes = [list(range(1, p))] if not smallest_first else [[k] for k in range(1, p)]
        passing: list[tuple[int, list[np.ndarray]]] = []
        asked = {at: 0 for at in open_nodes}
        for round_sizes in sizes:
            per_node = [[(at, [split[at][1][i] for i in subset]) for subset in proper_unions(len(split[at][1]))
                         if len(subset) in round_sizes] for at in open_nodes]
            mutants = spread_budget([m for m in per_node if m], query_budget - spent)
            if not mutants:
                break
            masks = np.zeros((len(mutants), n_bins), dtype=bool)  # numpy: ~9× cheaper to fill than torch (#33)
            for row, (at, chosen) in enumerate(mutants):
                masks[row, split[at][0].context] = True
                masks[row, np.concatenate(chosen)] = True
            probs = yield masks
            spent += len(mutants)
            for at, _ in mutants:
                asked[at] += 1
            passing += [m for m, top in zip(mutants, probs.argmax(axis=1)) if top == target]
            passed = {at for at, _ in passing}
            open_nodes = [at for at in open_nodes if at not in passed]
        proper += len(passing)
        passed = {at for at, _ in passing}
        failed = [at for at, n in asked.items() if at not in passed]
        exhausted = [at for at in failed if n_asked_all(asked[at], len(split[at][1]))]
        cut += len(failed) - len(exhausted)
        passing += [(at, split[at][1]) for at in exhausted]
        for _at, chosen in passing:
            for part in chosen:
                responsibility[part] += 1.0 / len(chosen)
        frontier = []
        for at in dict.fromkeys(at for at, _ in passing):  # each node refines its own branch
            parent = split[at][0]
            own = sorted((m for m in passing if m[0] == at),
                         key=lambda m: (len(m[1]), sum(len(part) for part in m[1])))
            for _at, chosen in own[:refine_top]:
                for i, part in enumerate(chosen):
                    if len(part) >= 2 * min_part_size:
                        rest = [parent.context] + [other for j, other in enumerate(chosen) if j != i]
                        frontier.append(_Node(part, np.concatenate(rest)))
        if not frontier:
            break
    return IterationMap(responsibility, proper, cut)


def n_asked_all(asked: int, children: int) -> bool:
    """Whether ``asked`` unions are every proper union of ``children`` parts."""
    return asked >= len(proper_unions(children))


STOP_REASONS = {"epsilon": "converged: a convergence step moved the map by at most ε (EMD)",
                "iteration cap": "not converged: the iteration cap came before the map settled",
                "nothing passed": "not converged: no proper mutant kept the label in any iteration, so the "
                                  "map is only 'every part is needed' credit"}
"""Why the responsibility loop stopped (``ResponsibilityRun.stopped``), in words for results and report."""


@dataclass(frozen=True)
class ResponsibilityRun:
    """The merged map, the EMD of every convergence step, how many iterations ran and how many were empty
    (no proper mutant passed), whether the loop converged and why it stopped (:data:`STOP_REASONS`), and
    how many nodes the iteration budget cut short (no credit)."""

    responsibility: np.ndarray
    emd_trace: tuple[float, ...]
    iterations: int
    empty_iterations: int = 0
    converged: bool = False
    stopped: str = "iteration cap"
    cut_nodes: int = 0


def convergence_distance(running: np.ndarray, current: np.ndarray, rule: str) -> float | None:
    """EMD of one convergence step, or None when the iteration is not one (no passing mutant).

    ``running``: EMD between the running map before and after merging ``current`` (settles as 1/i);
    ``literal``: the paper's test, EMD between this iteration's map R_i and the running map R_g "at the
    end of each iteration, before updating R_g with R_i" (FreqReX §4).
    An iteration with no passing mutant adds nothing, so under ``running`` its distance would be
    exactly 0 — a false convergence; it is no step under either rule.
    """
    if rule not in CONVERGENCE_RULES:
        raise ValueError(f"convergence must be one of {CONVERGENCE_RULES}, not {rule!r}")
    if not current.any() or not running.any():
        return None
    if rule == "literal":
        return emd_1d(current, running)
    return emd_1d(running, running + current)


def compute_responsibility(engine: QueryEngine, spectrum: torch.Tensor, n_samples: int, target: int, *,
                           seed: int, iterations: int, min_iterations: int, epsilon: float,
                           convergence: str = "running", speculate: int = 0,
                           **iteration_options) -> ResponsibilityRun:
    """Iterate with fresh seeds; stop once a convergence step moves the map by at most ``epsilon`` (EMD).

    Only an iteration in which some proper mutant passed is a convergence step and counts towards
    ``min_iterations``; see :func:`convergence_distance` for the two rules. When the first
    ``min_iterations`` iterations all saw nothing pass (a model that flips on any change), the loop stops
    there: more seeds ask the same question of the same knife edge. The run then says ``converged=False``,
    ``stopped="nothing passed"``.
    """
    running = np.zeros(spectrum.shape[-1])
    trace: list[float] = []
    done = informative = cut = 0
    stopped, converged = "iteration cap", False
    # The first min_iterations iterations always run (neither stop rule can fire before them) and are
    # independent (iteration i draws from its own generator seeded (seed, i) and reads nothing of the others),
    # so they run in lockstep: each level's masks of all of them in one model call, the same queries.
    # Each later iteration runs with the next one started speculatively beside it (``speculate`` of the next
    # one's rounds ride along in the same calls): its masks are the ones it asks anyway if the loop goes on;
    # when the loop stops they were asked for nothing, and they are counted like every query.
    def start(i: int) -> _Stepper | None:
        if i >= iterations:
            return None
        return _Stepper(iteration_steps(spectrum, target, np.random.default_rng([seed, i]), **iteration_options))

    sure = min(iterations, max(1, min_iterations))
    upcoming = start(sure) if speculate else None
    first = run_in_lockstep(engine, spectrum, n_samples, [start(i) for i in range(sure)], upcoming, speculate)
    for i in range(iterations):
        if i < sure:
            current = first[i]
        else:
            this, upcoming = upcoming or start(i), start(i + 1) if speculate else None
            current = run_in_lockstep(engine, spectrum, n_samples, [this], upcoming, speculate)[0]
        cut += current.cut
        step = current.passed > 0
        distance = convergence_distance(running, current.responsibility, convergence) if step else None
        if distance is not None:
            trace.append(distance)
        running = running + current.responsibility
        done = i + 1
        informative += step
        if informative >= min_iterations and distance is not None and distance <= epsilon:
            stopped, converged = "epsilon", True
            break
        if not informative and done >= min_iterations:
            stopped = "nothing passed"
            break
    if not informative:
        stopped = "nothing passed"
    return ResponsibilityRun(running, tuple(trace), done, done - informative, converged, stopped, cut)
