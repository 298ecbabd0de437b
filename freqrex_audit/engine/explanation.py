"""``explain``: Algorithm 1 end to end, from a clip to its sufficient, necessary and complete frequencies."""

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
from .configs import FreqReXConfig
from .responsibility import compute_responsibility
from .subsets import TIE_MARGIN, PrefixOracle, find_subsets, is_complete, margin, prune, rank_bins

SIGNAL_KINDS = ("original", "sufficient", "minimal", "necessary", "complete", "inverse", "inverse_complete")
SUBSET_KINDS = ("sufficient", "minimal", "necessary", "complete")


@dataclass(frozen=True)
class Explanation(Result):
    """What FreqReX found for one clip. ``sufficient``, ``necessary`` and ``complete`` are prefixes of
    ``ranking`` (the paper's sets; None: not found); ``minimal`` is the sufficient prefix pruned of the
    bins the label does not need (None when pruning is off). ``fragile`` names, per subset, the
    perturbations (``noise_1e-6``, ``int16``, ``resynthesis``) under which it lost its property.
    ``converged`` / ``stopped``: whether the responsibility loop settled, and why it stopped (``epsilon``,
    ``iteration cap`` or ``nothing passed``: no proper mutant ever kept the label, so the ranking is
    magnitude order under uniform credit); ``cut_nodes``: nodes the iteration budget cut short (no credit).
    None: an explanation saved before these were recorded."""

    target: int
    confidence: float
    labels: tuple[str, ...]
    sample_rate: int
    waveform: np.ndarray
    responsibility: np.ndarray
    ranking: np.ndarray
    sufficient: np.ndarray | None
    necessary: np.ndarray | None
    complete: np.ndarray | None
    sufficient_confidence: float | None
    necessary_confidence: float | None
    complete_confidence: float | None
    inverse_label: int | None
    inverse_confidence: float | None
    queries_by_phase: dict[str, int]
    emd_trace: tuple[float, ...]
    iterations: int
    config: FreqReXConfig
    seconds_by_phase: dict[str, float] = timing_field({})
    empty_iterations: int = 0
    minimal: np.ndarray | None = None
    minimal_confidence: float | None = None
    inverse_rule: str | None = None
    complete_inverse_label: int | None = None
    complete_inverse_confidence: float | None = None
    requeried: bool = False
    fragile: dict[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)
    converged: bool | None = None
    stopped: str | None = None
    cut_nodes: int = 0

    @property
    def queries(self) -> int:
        """Model queries this explanation spent, all phases."""
        return int(sum(self.queries_by_phase.values()))

    @property
    def saw_a_pass(self) -> bool | None:
        """Whether some proper mutant kept the label (False: the map never saw one; None: not recorded)."""
        return None if self.stopped is None else self.stopped != "nothing passed"

    @property
    def n_bins(self) -> int:
        return len(self.responsibility)

    @property
    def target_label(self) -> str:
        return self.labels[self.target]

    def is_fragile(self, kind: str) -> bool:
        """Whether a subset's property failed under 1e-6 relative noise or the 16-bit round trip."""
        return bool(self.fragile.get(kind))

    def fraction(self, kind: str) -> float | None:
        """Size of a subset as a share of all K bins (the paper's Table 1 unit)."""
        bins = getattr(self, kind)
        return None if bins is None else len(bins) / self.n_bins

    def bins(self, kind: str) -> np.ndarray | None:
        """Bin indices of a subset. ``inverse``: the complement of the set named by ``inverse_rule`` (the
        necessary set, else the sufficient one: FreqReX's inverse classification); ``inverse_complete``:
        the complement of the complete set (the transferability paper's removal)."""
        if kind == "original":
            return np.arange(self.n_bins)
        if kind in ("inverse", "inverse_complete"):
            if kind == "inverse_complete":
                removed = self.complete
            elif self.inverse_rule == "sufficient-complement":
                removed = self.sufficient
            else:
                removed = self.necessary if self.necessary is not None else self.sufficient
            return None if removed is None else np.setdiff1d(np.arange(self.n_bins), removed)
        if kind not in SIGNAL_KINDS:
            raise ValueError(f"signal kind must be one of {SIGNAL_KINDS}, not {kind!r}")
        return getattr(self, kind)

    def hz(self, kind: str) -> np.ndarray | None:
        """Frequencies in Hz of a subset's bins."""
        bins = self.bins(kind)
        return None if bins is None else spec.bin_to_hz(bins, len(self.waveform), self.sample_rate)

    def signal(self, kind: str = "sufficient") -> np.ndarray | None:
        """Time-domain reconstruction of a subset: ``irfft(X * 1_S)`` (None if the subset was not found)."""
        bins = self.bins(kind)
        return None if bins is None else subset_signal(self.waveform, bins)


def subset_signal(waveform: np.ndarray, bins: np.ndarray, device: torch.device | str = "cpu") -> np.ndarray:
    """float32 ``irfft(rfft(x) * 1_S)``: the one synthesis of a handed-out subset signal."""
    x = spec.as_tensor(waveform, device)
    spectrum = spec.rfft(x)
    mask = torch.zeros(1, spectrum.shape[-1], dtype=torch.bool, device=spectrum.device)
    mask[0, torch.as_tensor(np.asarray(bins, dtype=np.int64), device=spectrum.device)] = True
    return spec.masked_waveforms(spectrum, mask, len(x))[0].cpu().numpy()


def as_engine(classifier: Classifier | QueryEngine, batch_size: int | None = None) -> QueryEngine:
    """Use the caller's QueryEngine (to share its count) or make one for a bare classifier."""
    if isinstance(classifier, QueryEngine):
        return classifier
    return QueryEngine(classifier, batch_size=batch_size or 64)


def explain(classifier: Classifier | QueryEngine, x: np.ndarray, config: FreqReXConfig | None = None) -> Explanation:
    """Run FreqReX (Algorithm 1) on one clip sampled at the classifier's rate."""
    config = config or FreqReXConfig()
    engine = as_engine(classifier, config.batch_size)
    if config.batch_size is not None:
        engine.batch_size = config.batch_size
    clf = engine.classifier
    x = validate_waveform(x)
    n = len(x)
    spectrum = spec.rfft(spec.as_tensor(x, engine.device))
    queries: dict[str, int] = {}
    seconds: dict[str, float] = {}

    def phase(name: str, began_queries: int, began: float) -> None:
        queries[name] = engine.queries - began_queries
        seconds[name] = time.perf_counter() - began

    q0, t0 = engine.queries, time.perf_counter()
    probs = engine.query(x[None])[0]
    target, confidence = int(probs.argmax()), float(probs.max())
    phase("original", q0, t0)

    q0, t0 = engine.queries, time.perf_counter()
    run = compute_responsibility(
        engine, spectrum, n, target, seed=config.seed, iterations=config.iterations,
        min_iterations=config.min_iterations, epsilon=config.epsilon, convergence=config.convergence,
        speculate=config.speculate,
        parts=config.parts, refine_parts=config.refine_parts,
        partition=config.partition, max_depth=config.max_depth, min_part_size=config.min_part_size,
        query_budget=config.iteration_budget, refine_top=config.refine_top, smallest_first=config.smallest_first)
    phase("responsibility", q0, t0)

    q0, t0 = engine.queries, time.perf_counter()
    ranking = rank_bins(run.responsibility, spectrum.abs().cpu().numpy())
    found = find_subsets(PrefixOracle(engine, spectrum, n, ranking), target, confidence,
                         min_confidence=config.min_confidence, chain_length=config.chain_length,
                         grid_points=config.grid_points, refine_points=config.refine_points,
                         decimals=config.decimals, search_chunk=config.search_chunk)
    phase("subsets", q0, t0)

    def prefix(k: int | None) -> np.ndarray | None:
        return None if k is None else np.sort(ranking[:k])

    sets = {kind: prefix(getattr(found, kind)) for kind in ("sufficient", "necessary", "complete")}
    probs = {kind: getattr(found, f"{kind}_probs") for kind in sets}
    sets["minimal"] = probs["minimal"] = None
    if config.prune and found.sufficient is not None:
        q0, t0 = engine.queries, time.perf_counter()
        kept, probs["minimal"] = prune(
            engine, spectrum, n, ranking[:found.sufficient], found.sufficient_probs,
            lambda p: subset_holds("sufficient", p, target, confidence, config), budget=config.prune_budget)
        sets["minimal"] = np.sort(kept)
        phase("prune", q0, t0)

    q0, t0 = engine.queries, time.perf_counter()
    requeried, fragile = verify_handed_out(engine, x, clf.sample_rate, target, confidence, sets, probs, config)
    phase("fragility", q0, t0)

    def score(p: np.ndarray | None) -> float | None:
        return None if p is None else float(p[target])

    return Explanation(
        target=target, confidence=confidence, labels=tuple(clf.labels), sample_rate=clf.sample_rate,
        waveform=x, responsibility=run.responsibility, ranking=ranking,
        sufficient=sets["sufficient"], necessary=sets["necessary"], complete=sets["complete"],
        sufficient_confidence=score(probs["sufficient"]), necessary_confidence=score(probs["necessary"]),
        complete_confidence=score(probs["complete"]),
        minimal=sets["minimal"], minimal_confidence=score(probs["minimal"]), inverse_rule=found.inverse_rule,
        complete_inverse_label=None if found.complete_inverse_probs is None else int(found.complete_inverse_probs.argmax()),
        complete_inverse_confidence=None if found.complete_inverse_probs is None
        else float(found.complete_inverse_probs.max()),
        inverse_label=None if found.inverse_probs is None else int(found.inverse_probs.argmax()),
        inverse_confidence=None if found.inverse_probs is None else float(found.inverse_probs.max()),
        queries_by_phase=queries, emd_trace=run.emd_trace, iterations=run.iterations, config=config,
        seconds_by_phase=seconds, empty_iterations=run.empty_iterations, requeried=requeried, fragile=fragile,
        converged=run.converged, stopped=run.stopped, cut_nodes=run.cut_nodes,
    )


def subset_holds(kind: str, probs: np.ndarray, target: int, confidence: float, config: FreqReXConfig) -> bool:
    """Whether a subset signal's output still has the property its kind names (sufficient, necessary's
    positive half, complete; minimal is a sufficient set) — the same tests the search applied."""
    kept = margin(probs, target) > TIE_MARGIN and probs[target] >= config.min_confidence * confidence
    return kept and (kind != "complete" or is_complete(probs[target], confidence, config.decimals))


def verify_handed_out(engine: QueryEngine, x: np.ndarray, sample_rate: int, target: int, confidence: float,
                      sets: dict[str, np.ndarray | None], probs: dict[str, np.ndarray | None],
                      config: FreqReXConfig) -> tuple[bool, dict[str, tuple[str, ...]]]:
    """Make every recorded confidence one of the exact signal ``Explanation.signal`` returns, and flag
    knife-edge subsets. Updates ``probs`` in place; returns (re-queried?, fragile reasons by kind).

    On the engine's own device the search synthesised the same float32 waveform (same rfft, row-by-row
    irfft), checked bit for bit here; only when it differs (another device) are the handed-out signals
    queried again. The fragility check costs 2 queries per subset (1e-6 relative noise; 16-bit PCM).
    """
    found = {kind: bins for kind, bins in sets.items() if bins is not None}
    fragile: dict[str, list[str]] = {kind: [] for kind in found}
    handed = {kind: subset_signal(x, bins) for kind, bins in found.items()}
    differs = [kind for kind, bins in found.items()
               if not np.array_equal(subset_signal(x, bins, engine.device), handed[kind])]
    if differs:
        again = engine.query(np.stack([handed[kind] for kind in differs]))
        for kind, p in zip(differs, again):
            probs[kind] = p
            if not subset_holds(kind, p, target, confidence, config):
                fragile[kind].append("resynthesis")
    if config.fragility_check and found:
        rng = np.random.default_rng([config.seed, 22])
        perturbed, tags = [], []
        for kind, signal in handed.items():
            rms = float(np.sqrt(np.mean(signal.astype(np.float64) ** 2))) or 1.0
            noise = (1e-6 * rms * rng.standard_normal(len(signal))).astype(np.float32)
            perturbed += [signal + noise, int16_roundtrip(signal, sample_rate)]
            tags += [(kind, "noise_1e-6"), (kind, "int16")]
        for (kind, reason), p in zip(tags, engine.query(np.stack(perturbed).astype(np.float32))):
            if not subset_holds(kind, p, target, confidence, config):
                fragile[kind].append(reason)
    return bool(differs), {kind: tuple(reasons) for kind, reasons in fragile.items()}
