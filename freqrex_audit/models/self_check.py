"""The load-time self-check: the same clip alone, in a batch and reordered must get the same answer.

Kept apart from :mod:`.boundary` (plain checks of what a model returns) because it queries the model
through a :class:`~freqrex_audit.models.classifier.QueryEngine`, which itself uses those checks.
"""

from __future__ import annotations

import numpy as np

from ..runtime.deadline import DeadlineReached
from .classifier import ClassifierError, ClassifierTimeout, QueryEngine

__all__ = ["self_check", "probe_clips", "SELF_CHECK_CALLS", "SELF_CHECK_ERROR", "SELF_CHECK_WARN", "WIDE_CALL"]

SELF_CHECK_ERROR = 0.05
"""A probability that moves this much between the same clip alone, in a batch and reordered: an error."""
WIDE_CALL = 32
"""The biggest call the self-check asks (the demo's batch size): a lone row is sent as a pair only where calls up to
this size keep a row's bits (a merged call of clips side by side holds up to ``batch_size`` rows)."""
SELF_CHECK_CALLS = 5
"""Model calls the self-check makes (batch, alone, reordered, a pair, a wide call): tests of models that misbehave
from their n-th call count from here."""
SELF_CHECK_WARN = 1e-3
"""Smaller differences than SELF_CHECK_ERROR but above this are reported as a warning (float noise is below)."""


def probe_clips(sample_rate: int, seconds: float = 0.5) -> np.ndarray:
    """Three fixed, distinct probe clips (noise, a 440 Hz tone, a chirp) for the load-time self-check."""
    n = max(64, int(sample_rate * seconds))
    t = np.arange(n) / sample_rate
    noise = 0.1 * np.random.default_rng(20).standard_normal(n)
    tone = 0.3 * np.sin(2 * np.pi * min(440.0, sample_rate / 4) * t)
    chirp = 0.3 * np.sin(2 * np.pi * (sample_rate / 16) * t * (1 + 2 * t))
    return np.stack([noise, tone, chirp]).astype(np.float32)


def self_check(classifier: object, timeout_s: float | None = None) -> dict:
    """Query three probe clips as a batch, one alone, then reordered: same answers, or the model is unsafe.

    A model whose row for a clip depends on its batch neighbours, its position or chance (random
    outputs, dropout left on, rows returned in another order) would be audited on noise. Differences
    above :data:`SELF_CHECK_ERROR` raise ClassifierError; above :data:`SELF_CHECK_WARN` they are returned
    as a warning (``warnings``) that the audit carries into every view. ``padding`` says whether a spec's
    ``pad_calls: auto`` sends one-row calls as pairs: when a lone row's scores differ in their bits from the same
    row's in a call of three while calls of two, three and :data:`WIDE_CALL` agree (a CPU's BLAS takes another
    path for one row), pairs let clips side by side share their one-row questions; where bigger calls move a
    row's bits too (silero-vad's from 4 or 32 rows on), pairs would be paid for and never merge. Costs 5 calls,
    9 + WIDE_CALL clip-queries.
    """
    engine = QueryEngine(classifier, batch_size=WIDE_CALL, timeout_s=timeout_s)  # type: ignore[arg-type]
    clips = probe_clips(int(classifier.sample_rate))  # type: ignore[attr-defined]
    try:
        batched = engine.query(clips)
        alone = engine.query(clips[:1])
        reordered = engine.query(clips[::-1])[::-1]
    except (ClassifierTimeout, DeadlineReached):  # a hang, or the session deadline: not a bad output
        raise
    except Exception as exc:  # noqa: BLE001 - bad outputs fail every clip of the run, with the precise error
        return {"queries": engine.queries, "skipped": f"{type(exc).__name__}: {exc}"[:300], "warnings": []}
    batch_gap = float(np.max(np.abs(batched[0] - alone[0])))
    order_gap = float(np.max(np.abs(batched - reordered)))
    worst = max(batch_gap, order_gap)
    name = getattr(classifier, "name", "classifier")
    padding = _padding(engine, clips, batched, alone)
    report = {"queries": engine.queries, "batch_difference": batch_gap, "order_difference": order_gap,
              "padding": padding, "warnings": []}
    what = (f"the same clip gets different probabilities alone and in a batch (up to {batch_gap:.3g}) or in "
            f"another batch order (up to {order_gap:.3g})")
    if worst > SELF_CHECK_ERROR:
        raise ClassifierError(f"{name}: load-time self-check failed: {what}; the model is nondeterministic or mixes "
                              f"batch rows (dropout left on? rows returned out of order?), so its audit would be "
                              f"meaningless")
    if worst > SELF_CHECK_WARN:
        report["warnings"].append(f"{name}: self-check: {what}; results carry that much noise")
    return report


def _padding(engine: QueryEngine, clips: np.ndarray, batched: np.ndarray, alone: np.ndarray) -> str:
    """``pairs`` when the lone row's scores differ from its scores in the call of three while calls of two and
    :data:`WIDE_CALL` rows give that call's rows bit for bit (only a lone row rounds otherwise), else ``off``; a
    model that refuses the wider call is simply not padded (it audits at its spec's batch size)."""
    try:
        pair = engine.query(clips[:2])
        wide = engine.query(np.resize(clips, (WIDE_CALL, clips.shape[1])))  # the three clips over and over
    except (ClassifierTimeout, DeadlineReached):
        raise
    except Exception:  # noqa: BLE001 - a model with a batch limit
        return "off"
    lone_apart = not np.array_equal(alone[0], batched[0])
    return "pairs" if lone_apart and np.array_equal(pair, batched[:2]) and np.array_equal(wide[:3], batched) else "off"
