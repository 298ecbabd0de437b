"""The exhaustive single-bin diagnostic behind ``--exhaustive-single N``: every top-N bin × the whole ladder.

No budget: it answers "which one-bin flips exist?" so the budgeted attack can be checked against it.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..audio import spectrum as spec
from ..audio.io import validate_waveform
from ..models.classifier import Classifier, QueryEngine
from .attack_config import AttackConfig
from .codec import Result
from .explanation import Explanation, as_engine
from .mutations import Mutation, clip_bound
from .search import BudgetedSearch


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
