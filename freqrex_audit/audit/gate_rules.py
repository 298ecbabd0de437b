"""How one gate compares and how an item settles from its gates: the primitives every verdict rule uses.

Apart from :mod:`~freqrex_audit.audit.gates` (which items a spec has, and the rule behind each) so both stay
short. A gate is ``{"metric", "value", "op", "threshold", "passed", …}``; ``passed`` is None when the value
was not measured. An item settles failed > not measured > passed (:func:`settle`), and a check that declares
a known weakness (``expect: fail``) turns its failures into ``xfailed`` (:func:`expected`).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .evidence import over, rate_entry, shortfall
from .records import Outcome, Verdict, wilson

__all__ = ["gate", "rate_gate", "show", "describe_gate", "settle", "expected"]


def gate(metric: str, value: Any, op: str, threshold: float, **extra: Any) -> dict:
    """One comparison; ``passed`` is None when ``value`` could not be measured."""
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        passed = None
        value = None
    else:
        passed = bool(value <= threshold + 1e-12 if op == "<=" else value >= threshold - 1e-12)
    return {"metric": metric, "value": value, "op": op, "threshold": threshold, "passed": passed, **extra}


def rate_gate(metric: str, rate: dict | None, op: str, threshold: float, settings: dict, name: str) -> dict:
    """A gate on a rate: the point, or with ``confidence`` the interval's bound on the bad side; not measured
    when the rate rests on too few of the attempted clips (:func:`~freqrex_audit.audit.evidence.shortfall`)."""
    rate = rate or rate_entry(0, 0)
    confidence = settings.get("confidence")
    extra = {"k": rate["k"], "n": rate["n"], "low": rate["low"], "high": rate["high"], "over": over(name),
             "attempted": rate.get("attempted"), "errored": rate.get("errored"), "clips": rate.get("clips")}
    missing = shortfall(rate, settings)
    if missing is not None:
        return gate(metric, None, op, threshold, **extra, unmeasured=f"{metric}: {missing}")
    if confidence is None:
        return gate(metric, rate["value"], op, threshold, **extra)
    low, high = wilson(rate["k"], rate["n"], confidence)
    bound = high if op == "<=" else low
    return gate(metric, bound, op, threshold, **extra, compared=f"{'upper' if op == '<=' else 'lower'} "
                                                                  f"{100 * confidence:g}% Wilson bound")


def show(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def describe_gate(g: dict) -> str:
    state = "ok" if g["passed"] else "FAILED" if g["passed"] is False else "NOT MEASURED"
    count = ""
    if g.get("n"):
        errored = f", {g['errored']} errored" if g.get("errored") else ""
        interval = f", 95% CI {g['low']:.2f}–{g['high']:.2f}" if g.get("low") is not None and g.get("high") is not None \
            else ""
        share = f"{g['k']} of {g['n']}" if g.get("k") is not None else f"mean over {g['n']}"  # a rate, or a mean
        count = f" ({share} {g.get('over') or 'clips'}{errored}{interval})"
    bound = f" [{g['compared']}]" if g.get("compared") else ""
    why = f": {g['unmeasured']}" if g.get("unmeasured") else ""
    return f"{g['metric']} = {show(g['value'])}{bound}{count}, spec requires {g['op']} {g['threshold']:g} ({state}{why})"


def settle(check: str, key: str, gates: list[dict], settings: dict, head: str = "", measured: str | None = None,
            unmeasured_reason: str | None = None) -> Verdict:
    """The outcome of an item from its gates: failed > not measured > passed; ``on_unmeasured: skip``
    turns not measured into skipped."""
    lines = [describe_gate(g) for g in gates]
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


def expected(verdicts: list[Verdict], checks: dict) -> list[Verdict]:
    """``checks.<check>.expect: fail`` (pytest's strict xfail): a known weakness. Its failed items become
    ``xfailed`` (measured, failed as declared; the run stays green); when none of the check's items failed,
    its passed items fail instead (the weakness is gone, so the spec is out of date). Not measured, skipped
    and errors keep their outcome: an expectation is confirmed only by a measurement."""
    for check, settings in checks.items():
        if settings.get("expect") != "fail":
            continue
        mine = [v for v in verdicts if v.check == check]
        failed = [v for v in mine if v.outcome == Outcome.FAILED]
        for v in failed:
            v.outcome = Outcome.XFAILED
            v.message = f"expected failure (checks.{check}.expect: fail): {v.message}"
        if not failed:  # the failing gate is recorded, so every view (report rows, JUnit) shows why it is red
            for v in mine:
                if v.outcome == Outcome.PASSED:
                    v.outcome = Outcome.FAILED
                    v.gates.append(gate("expected_failures", 0, ">=", 1, unmeasured=None))
                    v.message = (f"passed, but checks.{check}.expect is fail (strict): the weakness this spec "
                                 f"declares is gone; remove expect: fail. {v.message}")
    return verdicts
