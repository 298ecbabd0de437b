"""``freqrex-audit bench --queries``: how many model queries an explanation costs, on planted models.

Query counts are deterministic (fixed seeds, fixed chunks), so this table is a count anyone can
re-measure, not a timing. Cases: the single-band ratio model (``planted.ratio_model``, 440 Hz band,
8 kHz) on a 440 Hz + 1000 Hz clip of each length, and the planted conjunctions of 2, 4 and 8 narrow
bands under loud distractors (0.5 s). Each row says whether the band(s) were found and the handed-out
sufficient signal really is sufficient.
"""

from __future__ import annotations

import dataclasses
from dataclasses import asdict, dataclass

import numpy as np

from . import planted
from ..models.classifier import QueryEngine
from ..engine import FreqReXConfig, explain
from ..engine.explanation import Explanation


@dataclass
class QueryRow:
    """One explanation's query count and what it found. ``bands_found``: the minimal set (the sufficient
    one when pruning is off) holds a bin of every causal band and no bin outside them."""

    case: str
    seed: int
    n_bins: int
    queries: int
    queries_by_phase: dict
    iterations: int
    sufficient_bins: int
    minimal_bins: int | None
    causal_bins: int
    bands_found: bool
    sufficient_valid: bool


def single_band_clip(seconds: float, sr: int = planted.SR) -> np.ndarray:
    """A loud 440 Hz tone, a weaker 1000 Hz tone and a little noise (the ratio model says A)."""
    n = int(seconds * sr)
    t = np.arange(n) / sr
    return (np.sin(2 * np.pi * 440 * t) + 0.15 * np.sin(2 * np.pi * 1000 * t)
            + 0.02 * np.random.default_rng(0).standard_normal(n)).astype(np.float32)


def _row(case: str, seed: int, clf, exp: Explanation, bands: list[set[int]]) -> QueryRow:
    found = set((exp.minimal if exp.minimal is not None else exp.sufficient).tolist())
    probs = QueryEngine(clf).query(exp.signal("sufficient")[None])[0]
    valid = int(probs.argmax()) == exp.target and probs[exp.target] >= exp.config.min_confidence * exp.confidence
    return QueryRow(case, seed, exp.n_bins, exp.queries, dict(exp.queries_by_phase), exp.iterations,
                    len(exp.sufficient), None if exp.minimal is None else len(exp.minimal),
                    len(set().union(*bands)), all(found & band for band in bands) and found <= set().union(*bands),
                    bool(valid))


def query_rows(seconds: list[float], seeds: list[int], conjunctions: tuple[int, ...] = (2, 4, 8),
               config: FreqReXConfig | None = None) -> list[QueryRow]:
    """Explain every planted case with each seed (default config unless given) and count the queries."""
    rows = []
    for s in seconds:
        x = single_band_clip(s)
        for seed in seeds:
            clf = planted.ratio_model()
            exp = explain(clf, x, config_for(config, seed))
            rows.append(_row(f"single band, {s:g} s", seed, clf, exp, [planted.band_bins(440, len(x))]))
    for n_bands in conjunctions:
        centres = planted.CONJUNCTION_CENTRES[:n_bands]
        x = planted.conjunction_clip(centres)
        for seed in seeds:
            clf = planted.conjunction_model(centres)
            exp = explain(clf, x, config_for(config, seed))
            bands = [planted.band_bins(c, len(x), width=planted.NARROW) for c in centres]
            rows.append(_row(f"AND of {n_bands} bands, 0.5 s", seed, clf, exp, bands))
    return rows


def config_for(config: FreqReXConfig | None, seed: int) -> FreqReXConfig:
    """The given config (default: FreqReXConfig()) with this row's seed."""
    return dataclasses.replace(config or FreqReXConfig(), seed=seed)


def format_query_table(rows: list[QueryRow]) -> str:
    """Plain-text table: queries in all and per phase, iterations, set sizes, band found, valid."""
    head = ("case", "seed", "K bins", "queries", "responsibility", "subsets", "prune", "fragility", "iterations",
            "sufficient", "minimal", "causal", "bands found", "valid")
    lines = [head]
    for r in rows:
        ph = r.queries_by_phase
        lines.append((r.case, str(r.seed), f"{r.n_bins:,}", f"{r.queries:,}", str(ph.get("responsibility", 0)),
                      str(ph.get("subsets", 0)), str(ph.get("prune", 0)), str(ph.get("fragility", 0)), str(r.iterations),
                      str(r.sufficient_bins), "-" if r.minimal_bins is None else str(r.minimal_bins), str(r.causal_bins),
                      "yes" if r.bands_found else "NO", "yes" if r.sufficient_valid else "NO"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def query_rows_as_json(rows: list[QueryRow]) -> list[dict]:
    return [asdict(r) for r in rows]
