"""``freqrex-audit bench --peers``: the frequency attack against the field's attack and plain noise (#29).

For every correctly classified clip of each spec: FreqReX (Algorithm 1, then the Fourier attack, the
spec's configs) spends Q queries; ART's HopSkipJump (settings :data:`~freqrex_audit.engine.peers.HOPSKIPJUMP`,
the best flip it ever queried) gets exactly those Q queries through its own engine; white noise at the
quiet threshold (``--snr``, 20 dB) gets ``noise_draws`` draws. A flip is the product's: a new top label
ahead of the original by the attack's ``min_margin``, re-verified. The table is what README publishes.
"""

from __future__ import annotations

import sys
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from ..audit.cache import computed_by
from ..audit.datasets import list_samples, read_clip
from ..audit.pipeline import load_model
from ..engine import explain, fourier_attack
from ..engine.noise_floor import noise_floor
from ..engine.peers import HOPSKIPJUMP, peer_attack
from ..models.classifier import QueryEngine
from ..specs.loader import load_spec


@dataclass(frozen=True)
class PeerRow:
    """One clip: FreqReX's quietest flip and HopSkipJump's at the same query count, and the noise floor."""

    model: str
    clip: str
    label: str
    queries: int  # Q: FreqReX's explanation + attack; HopSkipJump's budget
    explain_queries: int
    freqrex_snr_db: float | None
    freqrex_frequencies: int | None
    freqrex_source: str | None
    hsj_snr_db: float | None
    hsj_queries: int
    noise_flips: int
    noise_draws: int


def peer_rows(spec_paths: list[str], snr_db: float = 20.0, noise_draws: int = 16, device: str = "cpu",
              log=sys.stderr, attack_seed: int | None = None, attack_budget: int | None = None) -> list[PeerRow]:
    """Measure every correctly classified clip of each spec (the spec's dataset, limit and configs; ``attack_seed``,
    when given, replaces its attack's seed, which both attacks and the noise draws use; ``attack_budget`` its
    attack's ``query_budget``, and HopSkipJump still gets the explanation's and the attack's queries together)."""
    rows: list[PeerRow] = []
    for path in spec_paths:
        spec = load_spec(Path(path))
        if attack_seed is not None:
            spec = replace(spec, attack=replace(spec.attack, seed=attack_seed))
        if attack_budget is not None:
            spec = replace(spec, attack=replace(spec.attack, query_budget=attack_budget))
        clf = load_model(spec, device)

        def engine() -> QueryEngine:  # as the audit builds the spec's (batch size and padding)
            return QueryEngine(clf, batch_size=spec.batch_size, pad_calls=spec.pad_calls)

        for sample in list_samples(spec.dataset):
            x = read_clip(sample, clf.sample_rate, spec.dataset.clip_seconds).samples  # as the audit reads it
            top = int(engine().query(x[None])[0].argmax())
            if clf.labels[top] != sample.label:
                print(f"{spec.name} {sample.id}: misclassified as {clf.labels[top]}, left out", file=log)
                continue
            asked = engine()
            exp = explain(asked, x, spec.freqrex)
            atk = fourier_attack(asked, x, exp, spec.attack)
            budget = exp.queries + atk.queries
            peer = peer_attack(engine(), x, exp.target, "hopskipjump", budget,
                               spec.attack.min_margin, snr_db, spec.attack.seed)
            floor = noise_floor(engine(), x, exp.target, snr_db, noise_draws,
                                spec.attack.min_margin, spec.attack.seed, kinds=("white",))
            row = PeerRow(spec.name, sample.id, sample.label, budget, exp.queries,
                          atk.snr_db if atk.success else None, atk.n_frequencies, atk.source,
                          peer.snr_db if peer.success else None, peer.queries, floor.flips["white"], noise_draws)
            print(f"{spec.name} {sample.id}: Q={budget} freqrex {_db(row.freqrex_snr_db)} hsj {_db(row.hsj_snr_db)} "
                  f"noise {row.noise_flips}/{noise_draws}", file=log, flush=True)
            rows.append(row)
    return rows


def _db(v: float | None) -> str:
    return "no flip" if v is None else f"{v:.1f} dB"


def median_with_misses(snrs: list[float | None]) -> float | None:
    """The median SNR over every clip, a clip without a flip counted as the loudest result (−∞ dB: the
    Boundary Attack and HopSkipJump papers' median distance, with ∞ for a failed attack); None when the median
    itself is a miss. A median over a method's own flips alone rewards it for failing on the hard clips."""
    if not snrs:
        return None
    middle = float(np.median([-np.inf if v is None else v for v in snrs]))
    return middle if np.isfinite(middle) else None


def summary(rows: list[PeerRow], snr_db: float) -> dict:
    """The issue's comparison: quiet flips, medians (over every clip with a miss as the loudest, the decision-based
    attack papers' convention; each method over its own flips; over clips both flipped), which is quieter where
    both flip, and clips plain noise flips where FreqReX is louder."""
    ours = [r.freqrex_snr_db for r in rows if r.freqrex_snr_db is not None]
    hsj = [r.hsj_snr_db for r in rows if r.hsj_snr_db is not None]
    both = [(r.freqrex_snr_db, r.hsj_snr_db) for r in rows if r.freqrex_snr_db is not None and r.hsj_snr_db is not None]
    noisy = [r for r in rows if r.noise_flips]
    med = lambda v: float(np.median(v)) if v else None  # noqa: E731
    return {"clips": len(rows), "queries": sum(r.queries for r in rows),
            "median_all_freqrex": median_with_misses([r.freqrex_snr_db for r in rows]),
            "median_all_hsj": median_with_misses([r.hsj_snr_db for r in rows]),
            "quiet_freqrex": sum(v >= snr_db for v in ours), "quiet_hsj": sum(v >= snr_db for v in hsj),
            "quiet_noise": len(noisy), "flips_freqrex": len(ours), "flips_hsj": len(hsj),
            "median_freqrex": med(ours), "median_hsj": med(hsj),
            "median_both_freqrex": med([a for a, _ in both]), "median_both_hsj": med([b for _, b in both]),
            "both": len(both), "freqrex_quieter": sum(a > b for a, b in both), "hsj_quieter": sum(b > a for a, b in both),
            "louder_than_noise": [f"{r.model} {r.clip}" for r in noisy
                                  if r.freqrex_snr_db is None or r.freqrex_snr_db < snr_db]}


def format_peer_table(rows: list[PeerRow], snr_db: float = 20.0) -> str:
    """Markdown: one line per clip, a summary per model and over all clips, and HopSkipJump's settings."""
    f = lambda v: "no flip" if v is None else f"{v:.1f}"  # noqa: E731
    lines = ["| model | clip | Q (explain + attack) | FreqReX quietest flip, dB (frequencies, source) | "
             "HopSkipJump, same Q, dB | white noise at %g dB flips |" % snr_db, "|---|---|---|---|---|---|"]
    for r in rows:
        ours = f(r.freqrex_snr_db) + (f" ({r.freqrex_frequencies}, {r.freqrex_source})" if r.freqrex_snr_db is not None else "")
        lines.append(f"| {r.model} | {r.clip} | {r.queries:,} ({r.explain_queries:,} + {r.queries - r.explain_queries:,}) "
                     f"| {ours} | {f(r.hsj_snr_db)} | {r.noise_flips}/{r.noise_draws} |")
    lines += ["", "| models | clips | quiet flips (≥ %g dB): FreqReX / HopSkipJump / noise | median over every clip, "
              "dB, a miss as the loudest: FreqReX / HopSkipJump | median flip, dB: FreqReX / "
              "HopSkipJump (each over its own flips) | median where both flip | both flip: FreqReX quieter / "
              "HopSkipJump quieter | FreqReX louder than flipping noise |" % snr_db, "|" + "---|" * 8]
    groups = {m: [r for r in rows if r.model == m] for m in dict.fromkeys(r.model for r in rows)}
    for name, group in [*groups.items(), ("all", rows)]:
        s = summary(group, snr_db)
        lines.append(f"| {name} | {s['clips']} | {s['quiet_freqrex']} / {s['quiet_hsj']} / {s['quiet_noise']} "
                     f"| {f(s['median_all_freqrex'])} / {f(s['median_all_hsj'])} "
                     f"| {f(s['median_freqrex'])} / {f(s['median_hsj'])} "
                     f"| {f(s['median_both_freqrex'])} / {f(s['median_both_hsj'])} ({s['both']} clips) "
                     f"| {s['freqrex_quieter']} / {s['hsj_quieter']} | {len(s['louder_than_noise'])} |")
    settings = ", ".join(f"{k} {v}" for k, v in HOPSKIPJUMP.items())
    lines += ["", f"HopSkipJump (ART's implementation, through the same QueryEngine): {settings}, max_iter unbounded, "
              f"cut at Q queries (the last one re-verifies its best flip), seeded."]
    return "\n".join(lines)


PEER_WHEELS = ("silero-vad", "openwakeword", "adversarial-robustness-toolbox")
"""What decides the numbers besides the engine and the numeric runtimes: the peer models' wheels and ART."""


def rows_as_json(rows: list[PeerRow], snr_db: float) -> dict:
    """The ``--json`` file: the rows, their summary, HopSkipJump's settings and the versions that computed them."""
    return {"snr_db": snr_db, "hopskipjump": HOPSKIPJUMP, "rows": [asdict(r) for r in rows],
            "summary": summary(rows, snr_db), "versions": computed_by(*PEER_WHEELS)}


def rows_from_json(doc: dict) -> list[PeerRow]:
    """The rows of a ``--json`` file (what README's table is formatted from)."""
    return [PeerRow(**row) for row in doc["rows"]]
