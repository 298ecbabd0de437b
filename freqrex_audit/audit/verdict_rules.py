"""The gate primitives every verdict is built from: one comparison (:func:`_gate`), a gate on a rate with its
Wilson interval (:func:`_rate_gate`), and an item's outcome from its gates (:func:`_settle`): failed > not
measured > passed, and ``on_unmeasured: skip`` turns not measured into skipped. Shared by
:mod:`~freqrex_audit.audit.gates` and :mod:`~freqrex_audit.audit.explainer_verdicts`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .records import Outcome, Verdict, wilson

__all__ = ["_gate", "_rate_gate", "_settle", "_show", "_describe_gate"]


def _gate(metric: str, value: Any, op: str, threshold: float, **extra: Any) -> dict:
    """One comparison; ``passed`` is None when ``value`` could not be measured."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        passed = None
        value = None
    else:
        passed = bool(value <= threshold + 1e-12 if op == "<=" else value >= threshold - 1e-12)
    return {"metric": metric, "value": value, "op": op, "threshold": threshold, "passed": passed, **extra}


def _rate_gate(metric: str, rate: dict | None, op: str, threshold: float, confidence: float | None,
               min_clips: int) -> dict:
    """A gate on a rate: the point, or with ``confidence`` the interval's bound on the bad side."""
    rate = rate or {"k": 0, "n": 0, "value": None, "low": None, "high": None}
    extra = {"k": rate["k"], "n": rate["n"], "low": rate["low"], "high": rate["high"]}
    if rate["n"] < min_clips:
        return _gate(metric, None, op, threshold, **extra,
                     unmeasured=f"{metric}: {rate['k']}/{rate['n']} measured clips, needs ≥ {min_clips}")
    if confidence is None:
        return _gate(metric, rate["value"], op, threshold, **extra)
    low, high = wilson(rate["k"], rate["n"], confidence)
    bound = high if op == "<=" else low
    return _gate(metric, bound, op, threshold, **extra, compared=f"{'upper' if op == '<=' else 'lower'} "
                                                                  f"{100 * confidence:g}% Wilson bound")


def _show(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _describe_gate(g: dict) -> str:
    state = "ok" if g["passed"] else "FAILED" if g["passed"] is False else "NOT MEASURED"
    interval = f", 95% CI {g['low']:.2f}–{g['high']:.2f}" if g.get("low") is not None and g.get("high") is not None else ""
    count = (f" ({g['k']}/{g['n']}{interval})" if "k" in g else f" (mean of {g['n']} clips{interval})") \
        if g.get("n") else ""
    bound = f" [{g['compared']}]" if g.get("compared") else ""
    why = f": {g['unmeasured']}" if g.get("unmeasured") else ""
    return f"{g['metric']} = {_show(g['value'])}{bound}{count}, spec requires {g['op']} {g['threshold']:g} ({state}{why})"


def _settle(check: str, key: str, gates: list[dict], settings: dict, head: str = "", measured: str | None = None,
            unmeasured_reason: str | None = None) -> Verdict:
    """The outcome of an item from its gates: failed > not measured > passed; ``on_unmeasured: skip``
    turns not measured into skipped."""
    lines = [_describe_gate(g) for g in gates]
    failed = [g for g in gates if g["passed"] is False]
    missing = [g for g in gates if g["passed"] is None]
    if failed:
        outcome, summary = Outcome.FAILED, f"{len(failed)} of {len(gates)} gate(s) failed"
    elif missing or unmeasured_reason:
        outcome = Outcome.NOT_MEASURED
        summary = f"not measured: {unmeasured_reason or missing[0].get('unmeasured') or missing[0]['metric'] + ' could not be computed'}"
    else:
        outcome, summary = Outcome.PASSED, "all gates passed"
    if outcome == Outcome.NOT_MEASURED and settings.get("on_unmeasured") == "skip":
        outcome, summary = Outcome.SKIPPED, summary + f" (checks.{check}.on_unmeasured: skip)"
    prefix = f"{key}: " if key != "aggregate" else f"{check}: "
    text = "\n".join([prefix + summary + (f" — {head}" if head else ""), *lines])
    return Verdict(check, key, outcome, text, gates, measured)
