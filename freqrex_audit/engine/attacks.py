"""Algorithm 2 (the Fourier attack) and beyond it: find the quiet one-frequency flips that exist.

The paper's Alg 2 mutates prefixes of the sufficient set; that stays one candidate source
(``prefix``). Under one per-clip query budget the attack also screens single bins of the target's
ranking, descends toward the bins that support the runner-up class, and grows small sets of the bins
that moved the margin most (see :mod:`.search`). Mutations come from a ladder ordered by perturbation
energy, quietest first (attenuations, boosts up to ×1000 clipped, phase turns). A flip counts only
with ``min_margin`` between the new top class and the original label, and is re-verified by a fresh
query on exactly the waveform returned; ``min_snr_db`` separates quiet flips from loud ones. Alg 3
(the STFT attack) lives in :mod:`.stft_attack`.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from ..audio import spectrum as spec
from ..audio.io import check_same_clip, int16_roundtrip, validate_waveform
from ..models.classifier import Classifier, QueryEngine
from .codec import Result, timing_field
from .coverage import SearchCoverage, search_coverage
from .explain import Explanation, as_engine
from .metrics import linf, snr_db
from .mutations import DEFAULT_PHASES, DEFAULT_SCALES, Mutation, clip_bound, default_mutations, extremes, ladder
from .search import BudgetedSearch, Flip, grow_sets, prefix_search, runner_up_descent, screen
from .stft_attack import STFTAttack, STFTAttackConfig, stft_attack
from .summaries import summarize_attacks

__all__ = ["ATTACK_POOLS", "AttackConfig", "DEFAULT_PHASES", "DEFAULT_SCALES", "ExhaustiveSingle", "FourierAttack",
           "Mutation", "STFTAttack", "STFTAttackConfig", "default_mutations", "exhaustive_single", "fourier_attack",
           "stft_attack", "summarize_attacks"]

ATTACK_POOLS = ("sufficient", "ranking")
VERIFY_RESERVE = 2  # the fresh query on the returned clip and its 16-bit round trip


@dataclass(frozen=True)
class AttackConfig(Result):
    """The Fourier attack's knobs. Two budgets, named apart:

    - ``max_frequencies``: most bins one candidate may mutate (the paper's budget; default 1000);
    - ``query_budget``: most model queries per clip, all sources together (default 1000).

    ``mutations`` (any order) become the ladder, quietest first, without boosts above ``max_scale``.
    ``pool``: the paper's prefix source walks the ``sufficient`` set (default) or the whole ``ranking``;
    a degenerate explanation (sufficient set of ≤ ``degenerate_bins`` bins or under ``degenerate_share``
    of all bins) widens it to the ranking too. ``min_margin``: a flip needs the new top class this far
    above the original label. ``min_snr_db``: flips at least this quiet count as ``quiet``.
    ``require_int16``: a flip must also survive a 16-bit WAV round trip. ``screen_bins``: top-ranked
    bins tried alone before anything else; ``branch``/``beam``/``nudge``: the runner-up descent (bands split ``branch``-way, ``beam`` kept, probed by moving
    magnitudes ±``nudge``·max|X|);
    ``max_set``: largest grown set; ``ladder_sets``: flipping sets whose whole ladder is tried.
    ``search_chunk``: candidates asked together (fixed, so query counts never depend on batch size).
    """

    mutations: tuple[Mutation, ...] = field(default_factory=default_mutations)
    max_frequencies: int = 1000
    query_budget: int = 1000
    max_scale: float = 1000.0
    pool: str = "sufficient"
    min_margin: float = 0.05
    min_snr_db: float = 10.0
    require_int16: bool = False
    screen_bins: int = 32
    branch: int = 8
    beam: int = 2
    nudge: float = 0.01
    max_set: int = 5
    ladder_sets: int = 6
    degenerate_bins: int = 2
    degenerate_share: float = 0.001
    search_chunk: int = 32
    batch_size: int | None = None

    def __post_init__(self) -> None:
        checks = {"max_frequencies": self.max_frequencies >= 1, "query_budget": self.query_budget > VERIFY_RESERVE,
                  "max_scale": self.max_scale >= 1, "min_margin": 0 <= self.min_margin < 1,
                  "screen_bins": self.screen_bins >= 0, "branch": self.branch >= 2, "beam": self.beam >= 1,
                  "max_set": self.max_set >= 1, "ladder_sets": self.ladder_sets >= 0,
                  "degenerate_bins": self.degenerate_bins >= 0, "degenerate_share": 0 <= self.degenerate_share <= 1,
                  "search_chunk": self.search_chunk >= 1, "nudge": 0 < self.nudge <= 1}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"AttackConfig: invalid {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")
        if self.pool not in ATTACK_POOLS:
            raise ValueError(f"AttackConfig: pool must be one of {', '.join(ATTACK_POOLS)}, got {self.pool!r}")
        if not self.ordered:
            raise ValueError("AttackConfig: at least one mutation is needed")

    @property
    def budget(self) -> int:
        """The frequency cap under its older name (``max_frequencies``)."""
        return self.max_frequencies

    @property
    def ordered(self) -> tuple[Mutation, ...]:
        """The ladder: mutations quietest first (by |m − 1|), none louder than ``max_scale``."""
        return ladder(self.mutations, self.max_scale)

    @property
    def extremes(self) -> tuple[Mutation, ...]:
        """The largest mutation of each direction (down, up, phase): what the screens try first."""
        return extremes(self.ordered)


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


def _verify(engine: QueryEngine, search: BudgetedSearch, flip: Flip, config: AttackConfig, rate: int
            ) -> tuple[np.ndarray, np.ndarray, bool, int] | None:
    """Rebuild the flip's clip, ask the model afresh, and run the int16 round trip (two queries)."""
    adversarial = search.build([(flip.bins, flip.mutation)])[0].cpu().numpy().astype(np.float32)
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
    n, rate, original = len(x), explanation.sample_rate, explanation.target
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
    descent = "not run" if towards else "none"

    screen(search, "ranking", ranking[: config.screen_bins], steps, ordered, config.ladder_sets)
    if towards and not search.settled:
        leaves = runner_up_descent(search, len(ranking), towards, config.nudge, base, branch=config.branch,
                                   beam=config.beam)
        descent = "done" if search.remaining > 0 else "cut"  # it stops early only when the budget ends
        screen(search, "runner_up", leaves, steps, ordered, config.ladder_sets)
    if not search.settled:
        if not search.quiet:
            prefix_search(search, pool, steps, ordered)
    if towards and not search.quiet:
        grow_sets(search, steps, ordered, config.max_set, towards)
    if not search.settled:
        screen(search, "ranking", ranking[config.screen_bins:], steps, ordered, config.ladder_sets)

    winner = None
    for flip in search.best()[:3]:
        checked = _verify(engine, search, flip, config, rate)
        if checked is not None:
            winner = (flip, *checked)
            break
    common = dict(original_label=original, queries=engine.queries - q0,
                  queries_by_source=dict(sorted(search.queries_by_source.items())), candidates=len(search.asked),
                  pool_size=len(search.pool), runner_up=runner_up, degenerate=reason is not None,
                  degenerate_reason=reason, max_frequencies=config.max_frequencies, query_budget=config.query_budget,
                  min_margin=config.min_margin, min_snr_db=config.min_snr_db, sample_rate=rate,
                  seconds=time.perf_counter() - began,
                  coverage=search_coverage(search.asked, ranking, pool, steps, screen_bins=config.screen_bins,
                                           chunk=config.search_chunk, max_frequencies=config.max_frequencies,
                                           branch=config.branch, beam=config.beam, descent=descent,
                                           reserve=VERIFY_RESERVE, ladder=ordered, budget_left=search.remaining,
                                           climbs=config.ladder_sets,
                                           winner=None if winner is None else winner[0].bins))
    if winner is None:
        return FourierAttack(success=False, quiet=False, new_label=None, new_confidence=None, margin=None,
                             n_frequencies=None, bins=np.zeros(0, np.int64), hz=np.zeros(0), mutation=None,
                             source=None, adversarial=None, snr_db=None, linf=None, survives_int16=None,
                             int16_label=None, **common)
    flip, adversarial, probs, survives, restored = winner
    bins = np.asarray(sorted(flip.bins), dtype=np.int64)
    snr = snr_db(x, adversarial)
    return FourierAttack(
        success=True, quiet=snr >= config.min_snr_db, new_label=int(probs.argmax()),
        new_confidence=float(probs.max()), margin=float(probs.max() - probs[original]), n_frequencies=len(bins),
        bins=bins, hz=spec.bin_to_hz(bins, n, rate), mutation=flip.mutation, source=flip.source,
        adversarial=adversarial, snr_db=snr, linf=linf(x, adversarial), survives_int16=survives,
        int16_label=restored, **common)


@dataclass(frozen=True)
class ExhaustiveSingle(Result):
    """Every single bin among the top ``n`` of the ranking × every ladder mutation: the flips that exist."""

    bins_tried: int
    mutations: tuple[Mutation, ...]
    queries: int
    flip_bins: np.ndarray
    flip_mutations: tuple[Mutation, ...]
    flip_labels: np.ndarray
    flip_margins: np.ndarray
    flip_snr_db: np.ndarray
    min_margin: float

    @property
    def best_snr_db(self) -> float | None:
        return float(self.flip_snr_db.max()) if len(self.flip_snr_db) else None


def exhaustive_single(classifier: Classifier | QueryEngine, x: np.ndarray, explanation: Explanation, n: int,
                      config: AttackConfig | None = None) -> ExhaustiveSingle:
    """The diagnostic behind ``--exhaustive-single N``: no budget, batched in fixed chunks."""
    config = config or AttackConfig()
    engine = as_engine(classifier, config.batch_size)
    x = validate_waveform(x)
    signal = spec.as_tensor(x, engine.device)
    spectrum = spec.rfft(signal)
    bins = np.asarray(explanation.ranking[:n], dtype=np.int64)
    ordered = config.ordered
    rows = [((int(b),), m) for b in bins for m in ordered]
    search = BudgetedSearch(engine, signal, spectrum, explanation.target, budget=len(rows), chunk=max(256, config.search_chunk),
                            min_margin=config.min_margin, min_snr_db=config.min_snr_db, max_frequencies=1,
                            bound=clip_bound(signal), climbs=0)
    q0 = engine.queries
    search.ask("exhaustive", rows)
    flips = sorted(search.flips, key=lambda f: (f.bins, f.mutation.size))
    return ExhaustiveSingle(
        bins_tried=len(bins), mutations=ordered, queries=engine.queries - q0,
        flip_bins=np.asarray([f.bins[0] for f in flips], dtype=np.int64),
        flip_mutations=tuple(f.mutation for f in flips), flip_labels=np.asarray([f.label for f in flips], np.int64),
        flip_margins=np.asarray([f.margin for f in flips]), flip_snr_db=np.asarray([f.snr_db for f in flips]),
        min_margin=config.min_margin)



def exhaustive_single_report(classifier: Classifier | QueryEngine, x: np.ndarray, explanation: Explanation, n: int,
                             config: AttackConfig, path=None) -> dict:
    """Run :func:`exhaustive_single`, save it to ``path`` (JSON) and summarise it for the CLI."""
    found = exhaustive_single(classifier, x, explanation, n, config)
    if path is not None:
        found.save(path)
    quiet = found.flip_snr_db >= config.min_snr_db
    ranks = {int(b): i for i, b in enumerate(explanation.ranking[:n])}
    line = (f"{len(found.flip_bins)} flips at {len(set(found.flip_bins.tolist()))} bins among the top {found.bins_tried} "
            f"× {len(found.mutations)} mutations ({found.queries} queries); {int(quiet.sum())} quiet "
            f"(SNR ≥ {config.min_snr_db:g} dB)")
    if len(found.flip_bins):
        best = int(np.argmax(found.flip_snr_db))
        b = int(found.flip_bins[best])
        line += (f"; quietest: bin {b} (rank {ranks[b]}, {float(spec.bin_to_hz(b, len(x), explanation.sample_rate)):.1f} Hz) "
                 f"{found.flip_mutations[best]} at {found.flip_snr_db[best]:.1f} dB")
    return {"bins_tried": found.bins_tried, "queries": found.queries, "flips": len(found.flip_bins),
            "quiet_flips": int(quiet.sum()), "best_snr_db": found.best_snr_db, "line": line}
