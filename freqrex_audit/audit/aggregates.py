"""Per-spec aggregates of a :class:`~freqrex_audit.audit.records.SpecResult`: the paper's tables, the report's
figures, and the flat ``check.metric`` figures that gates test and baselines store.

Pure functions of the analysed clips (no model queries), so they can be recomputed from results.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..engine import Explanation, summarize_attacks
from ..engine.methods import summarize
from ..engine.metrics import class_responsibility, inverse_histogram, necessary_histogram
from .evidence import attack_measured, attempted, rate_counts
from .gates import alpha_toward_peers
from .records import SampleRecord, SpecResult, analysed as _analysed

__all__ = ["accuracy", "tables", "figures", "metrics", "rates", "explainer_summaries"]


def rates(result: SpecResult) -> dict[str, dict]:
    """Every rate a gate may test as ``{"k", "n", "value", "low", "high"}`` (95% Wilson interval)."""
    return rate_counts(result)


def accuracy(records: list[SampleRecord]) -> float | None:
    judged = [r for r in records if r.predicted is not None]
    return sum(r.predicted == r.sample.label for r in judged) / len(judged) if judged else None


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def tables(result: SpecResult) -> dict:
    done = _analysed(result)
    by_class: dict[str, list[Explanation]] = {}
    for r in done:
        by_class.setdefault(r.explanation.target_label, []).append(r.explanation)
    sufficiency = {}
    for label, exps in sorted(by_class.items()):
        row: dict[str, Any] = {}
        for kind in ("sufficient", "necessary", "complete"):
            mean = _mean([e.fraction(kind) for e in exps])
            row[kind] = None if mean is None else 100.0 * mean
        row["n"] = len(exps)
        sufficiency[label] = row
    # Tables 3 and 4 over the clips whose attack is evidence, with the engine's one definition of every rate
    # (so a table shows the number its gate tests); the clips left out are counted beside them
    measured = attack_measured(result)
    attacks = summarize_attacks([r.fourier for r in measured],
                                [r.stft for r in measured] if result.spec.needs_stft else None,
                                frame_sizes=result.spec.stft_attack.frame_sizes,
                                lengths=[len(r.explanation.waveform) for r in measured])
    pool = attempted(result)
    attacks["attempted"] = len(pool)
    attacks["errored"] = sum(r.status == "error" for r in pool)
    attacks["not_measured"] = len(pool) - len(measured)
    return {"sufficiency_by_class": sufficiency, "composition_by_class": {}, "attacks": _finite(attacks),
            "explainers": _finite(explainer_summaries(result))}


def explainer_summaries(result: SpecResult) -> dict[str, dict]:
    """Per method of ``explainers:``: faithfulness over the clips it explained, with k/n and intervals
    (:func:`~freqrex_audit.engine.methods.summarize`, the engine's faithfulness on every clip's three rows).
    Every attempted clip counts: one the methods were to explain that errored is not measured (``errored``)."""
    from .explainers import explained_clip_ids

    settings = result.spec.explainers
    if settings is None:
        return {}
    ids = explained_clip_ids(result.spec)
    errored = sum(r.status == "error" and not r.methods and (ids is None or r.sample.id in ids)
                  for r in attempted(result))
    out = {}
    for method in settings.methods:
        summary = summarize([r.methods[method] for r in result.samples if r.methods and method in r.methods],
                            timings=False)  # results.json's tables are deterministic; seconds are in timings
        if errored:
            summary["not_measured"] += errored
            summary["errored"] = errored
            summary["reason"] = summary["reason"] or f"{errored} of the clips it was to explain errored"
        out[method] = summary
    return out


def _finite(value: Any) -> Any:
    """NaN/inf become None so the JSON stays standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def figures(result: SpecResult, points: int = 128, edges: int = 33) -> dict:
    """The per-class figures of a spec, from the engine's one implementation of each (engine/metrics.py)."""
    explanations = [r.explanation for r in _analysed(result)]
    rate = result.model_info.get("sample_rate") or 1
    responsibility = class_responsibility(explanations, n_points=points, normalise="sum")
    hz_edges = np.linspace(0, rate / 2, edges)
    histogram = necessary_histogram(explanations, bins_hz=hz_edges)
    return {
        "class_responsibility": {c: {"hz": [round(float(h), 3) for h in responsibility.hz],
                                     "value": [float(v) for v in curve]}
                                 for c, curve in responsibility.by_class.items()},
        "necessary_histogram": {c: {"hz_edges": [round(float(h), 3) for h in hz_edges],
                                    "counts": [int(v) for v in counts]} for c, counts in histogram.by_class.items()},
        "inverse_counts": inverse_histogram(explanations).counts,
        "inverse_complete_counts": inverse_histogram(explanations, "inverse_complete").counts,
    }


def metrics(result: SpecResult) -> dict:
    """Flat ``check.metric`` figures: what gates test and baselines store (None when not measurable)."""
    done = _analysed(result)
    attacks = result.tables.get("attacks", {})
    metrics: dict[str, Any] = {"accuracy.accuracy": result.accuracy}
    for check, kind in (("sufficiency", "sufficient"), ("necessity", "necessary"), ("completeness", "complete")):
        metrics[f"{check}.mean_fraction"] = _mean([r.explanation.fraction(kind) for r in done])
    for name, rate in (result.rates or rate_counts(result)).items():  # k/n over measured clips (evidence.py)
        if name != "accuracy.accuracy":
            metrics[name] = rate["value"]
    metrics["fourier_attack.median_snr_db"] = attacks.get("median_snr_db")
    if result.composition:
        metrics["composition.min_ratio"] = min(v["ratio"] for v in result.composition.values())
    alpha = alpha_toward_peers(result)
    if alpha:
        metrics["transferability.min_alpha"] = min(alpha.values())
    for method, summary in (result.tables.get("explainers") or {}).items():
        for name in ("ai", "ad", "ag", "ff", "fid_in"):
            metrics[f"faithfulness.{method}.{name}"] = (summary.get(name) or {}).get("value")
    figures = [r.robustness for r in done if r.fourier is not None]
    flipped = [f["snr_db"] for f in figures if f]
    metrics["robustness.median_quietest_snr_db"] = float(np.median(flipped)) if flipped else None
    metrics["robustness.defects"] = sum(bool(f and f["defect"]) for f in figures) if figures else None
    metrics["noise_floor.fragile_rate"] = (_mean([float(r.noise.fragile) for r in done if r.noise is not None])
                                           if any(r.noise is not None for r in done) else None)
    queries = [r.explanation.queries for r in done]
    metrics["freqrex.mean_queries"] = _mean(queries)
    return _finite(metrics)

