"""Algorithm 2 (the Fourier attack) and beyond it: the quietest flip within one query budget.

The paper's Alg 2 mutates prefixes of the sufficient set; that stays one candidate source
(``prefix``). Under one per-clip query budget the attack also screens single bins of the target's
ranking, descends toward the bins that support the runner-up class, and grows small sets of the bins
that moved the margin most (see :mod:`.search`). Mutations come from a ladder ordered by perturbation
energy, quietest first (attenuations, boosts up to ×1000 clipped, phase turns). Since #29 the ladder
gets a share of the budget and its flips are only where the search starts: each is walked to the
decision boundary between rungs (:mod:`.walk`), then a sparse boundary search moves a few bins' complex
values along the score's gradient and along the boundary (:mod:`.boundary_search`), and the result is
the quietest flip found by any of them. A flip counts only with ``min_margin`` between the new top class
and the original label, and is re-verified by a fresh query on exactly the waveform returned;
``min_snr_db`` separates quiet flips from loud ones. Alg 3 (the STFT attack) lives in
:mod:`.stft_attack`.
"""
from __future__ import annotations

import time
from functools import partial
from dataclasses import dataclass, field

import numpy as np

from ..audio import spectrum as spec
from ..audio.io import check_same_clip, int16_roundtrip, validate_waveform
from ..models.classifier import Classifier, QueryEngine
from .attack_config import ATTACK_POOLS, VERIFY_RESERVE, AttackConfig
from .codec import Result, timing_field
from .coverage import SearchCoverage, prefix_rows, search_coverage
from .explanation import Explanation, as_engine
from .metrics import linf, snr_db
from .mutations import DEFAULT_PHASES, DEFAULT_SCALES, Mutation, clip_bound, default_mutations
from .boundary_search import SparseSearch
from .search import BudgetedSearch, Flip, grow_sets, prefix_search, runner_up_descent, screen
from .walk import walk_best
from .stft import STFTAttack, STFTAttackConfig, stft_attack
from .summaries import summarize_attacks
from .exhaustive import ExhaustiveSingle, exhaustive_single, exhaustive_single_report  # noqa: F401  (re-exported)

__all__ = ["ATTACK_POOLS", "AttackConfig", "DEFAULT_PHASES", "DEFAULT_SCALES", "ExhaustiveSingle", "FourierAttack",
           "Mutation", "STFTAttack", "STFTAttackConfig", "default_mutations", "exhaustive_single", "fourier_attack",
           "stft_attack", "summarize_attacks"]



@dataclass(frozen=True)
class FourierAttack(Result):
    """The outcome of the Fourier attack on one clip (``adversarial`` is None when nothing flipped).

    ``success``: a flip verified by a fresh query (raw success, any loudness); ``quiet``: that flip has
    SNR ≥ ``min_snr_db`` (what inaudible-attack gates count). ``source``: which candidate source found
    it. ``candidates``: distinct perturbations asked (bin set × mutation); ``pool_size``: distinct bins
    the search mutated as candidates; ``queries_by_source``: where the query budget went.
    ``degenerate``: the explanation's sufficient set was too small to attack by itself (``degenerate_reason``).
    ``coverage``: what the search really covered (:class:`~.coverage.SearchCoverage`): a "no flip" is evidence
    only when it is complete (None: an attack saved before it was recorded).
    """

    success: bool
    quiet: bool
    original_label: int
    new_label: int | None
    new_confidence: float | None
    margin: float | None
    n_frequencies: int | None
    bins: np.ndarray
    hz: np.ndarray
    mutation: Mutation | None
    source: str | None
    adversarial: np.ndarray | None
    snr_db: float | None
    linf: float | None
    survives_int16: bool | None
    int16_label: int | None
    queries: int
    queries_by_source: dict[str, int]
    candidates: int
    pool_size: int
    runner_up: int | None
    degenerate: bool
    degenerate_reason: str | None
    max_frequencies: int
    query_budget: int
    min_margin: float
    min_snr_db: float
    sample_rate: int
    gain: np.ndarray = field(default_factory=lambda: np.zeros(0))
    phase_deg: np.ndarray = field(default_factory=lambda: np.zeros(0))
    fewest_frequencies: int | None = None
    fewest_quiet_frequencies: int | None = None
    ladder_bins: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    ladder_mutation: Mutation | None = None
    ladder_snr_db: float | None = None
    seconds: float = timing_field()
    coverage: SearchCoverage | None = None

    @property
    def budget(self) -> int:
        """The frequency cap (the paper's budget; kept for older callers)."""
        return self.max_frequencies

    @property
    def summary(self) -> str:
        """One line: what flipped, how, and what the search cost."""
        if not self.success:
            return f"no flip, searched {self.candidates} candidates with {self.queries} queries"
        loud = "quiet" if self.quiet else f"loud (< {self.min_snr_db:g} dB)"
        return (f"flipped with {self.n_frequencies} frequencies {self.mutation} (source {self.source}), "
                f"SNR {self.snr_db:.1f} dB ({loud}), margin {self.margin:.2f}; searched {self.candidates} "
                f"candidates with {self.queries} queries")


def _degenerate(explanation: Explanation, config: AttackConfig) -> str | None:
    """Why the sufficient set alone is too small an attack pool (None when it is not)."""
    suff = explanation.sufficient
    if suff is None:
        return "no sufficient set was found"
    if len(suff) <= config.degenerate_bins:
        return f"the sufficient set has {len(suff)} bin(s) (≤ {config.degenerate_bins})"
    if len(suff) < config.degenerate_share * explanation.n_bins:
        return f"the sufficient set is {len(suff) / explanation.n_bins:.4%} of the bins (< {config.degenerate_share:.4%})"
    return None


def _verify(engine: QueryEngine, search: BudgetedSearch, sparse: SparseSearch, flip: Flip, config: AttackConfig,
            rate: int) -> tuple[np.ndarray, np.ndarray, bool, int] | None:
    """Rebuild the flip's clip, ask the model afresh, and run the int16 round trip (two queries)."""
    if flip.delta is None:
        wave = search.build([(flip.bins, flip.mutation)])[0]
    else:
        wave = sparse.waveforms([(np.asarray(flip.bins, dtype=np.int64), np.asarray(flip.delta))])[0]
    adversarial = wave.cpu().numpy().astype(np.float32)
    q0 = engine.queries
    probs = engine.query(adversarial[None])[0]
    restored = int(engine.query(int16_roundtrip(adversarial, rate)[None])[0].argmax())
    search.queries_by_source["verify"] = search.queries_by_source.get("verify", 0) + engine.queries - q0
    survives = restored != search.original
    if not search.flipped(probs) or (config.require_int16 and not survives):
        return None
    return adversarial, probs, survives, restored


def fourier_attack(classifier: Classifier | QueryEngine, x: np.ndarray, explanation: Explanation,
                   config: AttackConfig | None = None) -> FourierAttack:
    """Find the quietest, smallest verified flip within the query budget (see the module docstring)."""
    config = config or AttackConfig()
    engine = as_engine(classifier, config.batch_size)
    began, q0 = time.perf_counter(), engine.queries
    x = validate_waveform(x)
    check_same_clip(x, explanation.waveform)  # an explanation's bins only mean something for its own clip
    original = explanation.target
    signal = spec.as_tensor(x, engine.device)
    spectrum = spec.rfft(signal)
    search = BudgetedSearch(engine, signal, spectrum, original, budget=config.query_budget - VERIFY_RESERVE,
                            chunk=config.search_chunk, min_margin=config.min_margin, min_snr_db=config.min_snr_db,
                            max_frequencies=config.max_frequencies, bound=clip_bound(signal), climbs=config.ladder_sets)
    q_base = engine.queries
    base = engine.query(x[None])[0]
    search.spent += 1
    search.queries_by_source["original"] = engine.queries - q_base
    order = np.argsort(-base, kind="stable")
    runner_up = next((int(c) for c in order if c != original), None)
    towards = sorted({c for c in (runner_up, explanation.inverse_label) if c is not None and c != original})
    reason = _degenerate(explanation, config)
    ranking = np.asarray(explanation.ranking, dtype=np.int64)
    steps, ordered = config.extremes, config.ordered

    wide = config.pool == "ranking" or reason is not None or explanation.sufficient is None
    pool = ranking if wide else ranking[: len(explanation.sufficient)]
    cover = dict(screen_bins=config.screen_bins, chunk=config.search_chunk, max_frequencies=config.max_frequencies,
                 branch=config.branch, beam=config.beam, reserve=VERIFY_RESERVE, ladder=ordered,
                 climbs=config.ladder_sets)
    full = search.budget
    if config.continuous:  # the ladder's share, and never less than what the coverage rule needs on this clip
        needed = search_coverage({}, ranking, pool, steps, descent="not run" if towards else "none",
                                 **cover).queries_needed
        search.budget = min(full, max(1, int(round(config.ladder_share * full)), needed))
    leaves, descent = _ladder(search, ranking, pool, config, base, towards, rest=not config.continuous)
    search.budget = full
    sparse = SparseSearch(search, np.random.default_rng(config.seed))
    if config.continuous:
        _continuous(search, sparse, ranking, leaves, config)
    if search.remaining > 0:  # what the other sources did not need goes back to the ranking's single bins
        screen(search, "ranking", ranking[config.screen_bins:], steps, ordered, config.ladder_sets)
    coverage = partial(search_coverage, search.asked, ranking, pool, steps, descent=descent, **cover)
    return _result(engine, search, sparse, x, config, explanation, began, q0, runner_up, reason, coverage)


def _ladder(search: BudgetedSearch, ranking: np.ndarray, pool: np.ndarray, config: AttackConfig, base: np.ndarray,
            towards: list[int], rest: bool = True) -> tuple[list[int], str]:
    """The ladder's sources (Alg 2 and #16's screens) within ``search.budget``; returns the descent's leaves
    and how the descent ended (:data:`~.coverage.DESCENT_STATES`). ``rest``: then screen the rest of the
    ranking with what is left; the continuous attack hands that to the boundary search instead (more single-bin
    rungs only found flips 20 dB louder than the walk's and the boundary search's on real clips)."""
    steps, ordered = config.extremes, config.ordered
    leaves: list[int] = []
    descent = "not run" if towards else "none"
    screen(search, "ranking", ranking[: config.screen_bins], steps, ordered, config.ladder_sets)
    if towards and not search.settled:
        leaves = runner_up_descent(search, len(ranking), towards, config.nudge, base, branch=config.branch,
                                   beam=config.beam)
        descent = "done" if search.remaining > 0 else "cut"  # it stops early only when the budget ends
        # the leaves' screen is not part of the coverage rule: it never takes what the rule's prefixes still need
        pending = sum(r not in search.asked
                      for r in prefix_rows(pool, steps, config.search_chunk, config.max_frequencies))
        search.budget -= pending
        screen(search, "runner_up", leaves, steps, ordered, config.ladder_sets)
        search.budget += pending
    if not search.settled:
        if not search.quiet:
            prefix_search(search, pool, steps, ordered)
    if towards and not search.quiet:
        grow_sets(search, steps, ordered, config.max_set, towards)
    if rest and not search.settled:
        screen(search, "ranking", ranking[config.screen_bins:], steps, ordered, config.ladder_sets)
    return leaves, descent


def _gradient_pool(search: BudgetedSearch, ranking: np.ndarray, leaves: list[int], size: int) -> list[int]:
    """The bins whose score gradient is probed (at most ``size``): the quietest flip's own bins when there is
    one, so the gradient re-aims its change within them (a ladder's phase turn becomes the shorter shift of the
    real part), else the top of the ranking and of the runner-up descent's leaves, to look for a first flip.
    Probing the ranking's 24 bins on every clip cost ~50 queries that the boundary search used better
    (six real clips × three seeds: 0.8 dB quieter on average)."""
    quietest = max(search.flips, key=lambda f: f.snr_db, default=None)
    if quietest is not None:
        return list(quietest.bins)[:size]
    half = size // 2
    return list(dict.fromkeys([int(b) for b in ranking[:half]] + [int(b) for b in leaves[:half]]
                              + [int(b) for b in ranking[half:size]]))[:size]


def _continuous(search: BudgetedSearch, sparse: SparseSearch, ranking: np.ndarray, leaves: list[int],
                config: AttackConfig) -> None:
    """#29's sources after the ladder: walk its flips to the boundary, then the gradient lines and the
    boundary search (:mod:`.boundary_search`) with what is left of the budget."""
    walk_best(search, config.walk_flips, config.tol_db)
    if config.gradient_pool:
        pool = _gradient_pool(search, ranking, leaves, config.gradient_pool)
        sparse.gradient_lines(pool, (1, 4, 16, config.gradient_pool), config.gradient_probe_db, config.tol_db)
    k = min(config.sparse_bins, config.max_frequencies)
    if k and search.remaining > 0:
        seed = max(search.flips, key=lambda f: f.snr_db, default=None)
        sparse.boundary(sparse.subspace(seed, k), seed, iterations=10_000, probes=config.probes, tol_db=config.tol_db)

def preferred(flips: list[Flip], tie_db: float) -> list[Flip]:
    """Flips best first: the quietest, except that one with fewer frequencies within ``tie_db`` of it wins."""
    ordered = sorted(flips, key=lambda f: (-f.snr_db, len(f.bins), f.order))
    if not ordered:
        return ordered
    top = ordered[0].snr_db
    close = sorted((f for f in ordered if f.snr_db >= top - tie_db), key=lambda f: (len(f.bins), -f.snr_db, f.order))
    return close[:1] + [f for f in ordered if f is not close[0]]


def _gains(flip: Flip, spectrum: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per bin: the multiplier's magnitude and phase (degrees) that the flip applies."""
    if flip.delta is None:
        m = complex(flip.mutation.multiplier)
        mult = np.full(len(flip.bins), m)
    else:
        values = spectrum[list(flip.bins)]
        with np.errstate(divide="ignore", invalid="ignore"):
            mult = np.where(np.abs(values) > 0, 1 + np.asarray(flip.delta) / values, np.inf)
    return np.abs(mult).astype(np.float64), np.degrees(np.angle(mult)).astype(np.float64)


def _uniform(gain: np.ndarray, phase: np.ndarray, tol: float = 1e-3) -> Mutation | None:
    """One Mutation for changes that are the same on every bin: a pure scale (phase 0°) or a pure turn (gain 1)."""
    if not len(gain) or not np.all(np.isfinite(gain)) or np.ptp(gain) > tol * max(1.0, gain.max()) or np.ptp(phase) > 0.1:
        return None
    if abs(phase[0]) < 0.1:
        return Mutation("scale", round(float(gain[0]), 4))
    if abs(phase[0]) > 179.9:
        return Mutation("scale", 0.0) if gain[0] < tol else None
    if abs(gain[0] - 1) < tol:
        return Mutation("phase", round(float(phase[0]), 2))
    return None


def _result(engine, search, sparse, x, config, explanation, began, q0, runner_up, reason, coverage) -> FourierAttack:
    n, rate, original = len(x), explanation.sample_rate, explanation.target
    winner = None
    ranked = preferred(search.flips, config.tie_db) if config.continuous else search.best()
    for flip in ranked[:3]:
        checked = _verify(engine, search, sparse, flip, config, rate)
        if checked is not None:
            winner = (flip, *checked)
            break
    quiet_flips = [f for f in search.flips if f.snr_db >= config.min_snr_db]
    rungs = [f for f in search.best() if f.mutation is not None and f.source != "walk"]  # Alg 2's own answer
    common = dict(original_label=original, queries=engine.queries - q0,
                  queries_by_source=dict(sorted(search.queries_by_source.items())), candidates=search.n_asked,
                  pool_size=len(search.pool), runner_up=runner_up, degenerate=reason is not None,
                  degenerate_reason=reason, max_frequencies=config.max_frequencies, query_budget=config.query_budget,
                  min_margin=config.min_margin, min_snr_db=config.min_snr_db, sample_rate=rate,
                  fewest_frequencies=min((len(f.bins) for f in search.flips), default=None),
                  fewest_quiet_frequencies=min((len(f.bins) for f in quiet_flips), default=None),
                  ladder_bins=np.asarray(sorted(rungs[0].bins) if rungs else [], dtype=np.int64),
                  ladder_mutation=rungs[0].mutation if rungs else None,
                  ladder_snr_db=rungs[0].snr_db if rungs else None,
                  seconds=time.perf_counter() - began,
                  coverage=coverage(budget_left=search.remaining, winner=None if winner is None else winner[0].bins))
    if winner is None:
        return FourierAttack(success=False, quiet=False, new_label=None, new_confidence=None, margin=None,
                             n_frequencies=None, bins=np.zeros(0, np.int64), hz=np.zeros(0), mutation=None,
                             source=None, adversarial=None, snr_db=None, linf=None, survives_int16=None,
                             int16_label=None, gain=np.zeros(0), phase_deg=np.zeros(0), **common)
    flip, adversarial, probs, survives, restored = winner
    order = np.argsort(flip.bins)
    bins = np.asarray(flip.bins, dtype=np.int64)[order]
    gain, phase = _gains(flip, search.spectrum.cpu().numpy())
    mutation = flip.mutation if flip.mutation is not None else _uniform(gain, phase)
    snr = snr_db(x, adversarial)
    return FourierAttack(
        success=True, quiet=snr >= config.min_snr_db, new_label=int(probs.argmax()),
        new_confidence=float(probs.max()), margin=float(probs.max() - probs[original]), n_frequencies=len(bins),
        bins=bins, hz=spec.bin_to_hz(bins, n, rate), mutation=mutation, source=flip.source,
        adversarial=adversarial, snr_db=snr, linf=linf(x, adversarial), survives_int16=survives,
        int16_label=restored, gain=gain[order], phase_deg=phase[order], **common)
