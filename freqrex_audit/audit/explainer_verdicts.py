"""Verdicts of the other explainers: ``explainers[<method>]`` (computed, with its numbers; skipped with the reason
when the method cannot run on the model) and ``faithfulness[<method>]`` (the gates of ``checks.faithfulness`` on
AI, AD, AG, FF and Fid-In; not measured when the method could not run, which fails unless ``on_unmeasured: skip``).
"""

from __future__ import annotations

from .evidence import shortfall
from .gate_rules import gate, rate_gate, settle, show
from .records import Outcome, SpecResult, Verdict
from ..specs.loader import Spec

__all__ = ["gated_methods", "explainer_line", "explainer_verdict", "faithfulness_verdict"]


def gated_methods(spec: Spec) -> list[str]:
    """The methods ``checks.faithfulness.method`` names (one item each)."""
    check = spec.checks.get("faithfulness")
    if not check:
        return []
    return [check["method"]] if isinstance(check["method"], str) else list(dict.fromkeys(check["method"]))


def explainer_line(method: str, summary: dict) -> str:
    """One method's faithfulness in words: the numbers, what it kept and what it cost (queries and gradient
    calls; wall time is left to ``timings``, so verdict messages stay deterministic)."""
    def value(name: str) -> str:
        entry = summary.get(name) or {}
        count = f" ({entry['k']}/{entry['n']})" if "k" in entry else ""
        return f"{name.upper().replace('FID_IN', 'Fid-In')} {show(entry.get('value'))}{count}"
    kept = summary.get("kept_share")
    energy = summary.get("energy_share")
    return (f"{method}: {', '.join(value(n) for n in ('ai', 'ad', 'ag', 'ff', 'fid_in'))} over {summary['n']} clips; "
            f"kept {show(None if kept is None else 100 * kept)}% of its representation, "
            f"{show(None if energy is None else 100 * energy)}% of its energy; per clip "
            f"{show(summary.get('queries'))} queries, {show(summary.get('gradient_calls'))} gradient calls")


def explainer_verdict(result: SpecResult, method: str) -> Verdict:
    """explainers[method]: computed (the numbers, no gate), or skipped with why the method could not run."""
    if result.error:
        return Verdict("explainers", method, Outcome.FAILED, result.error)
    summary = (result.tables.get("explainers") or {}).get(method) or {"n": 0}
    if not summary["n"]:
        why = summary.get("reason") or "no clip was explained (not analysed, or explainers.clips)"
        return Verdict("explainers", method, Outcome.SKIPPED, f"{method}: {why}")
    return Verdict("explainers", method, Outcome.PASSED, f"{method}: computed — {explainer_line(method, summary)}",
                   measured=f"measured {summary['n']} of {len(result.samples)} clips")


_FAITH_GATES = (("min_ff", "ff", ">="), ("min_ai", "ai", ">="), ("max_ad", "ad", "<="), ("min_ag", "ag", ">="),
                ("min_fid_in", "fid_in", ">="))


def faithfulness_verdict(result: SpecResult, method: str, settings: dict) -> Verdict:
    """faithfulness[method]: the gates on AI, AD, AG, FF, Fid-In; not measured when the method could not run,
    or when it measured too few of the clips it was to explain (``min_clips``, ``min_measured``: errored clips
    and clips the method could not explain count as attempted, as for every aggregate gate)."""
    if result.error:
        return Verdict("faithfulness", method, Outcome.FAILED, result.error)
    summary = (result.tables.get("explainers") or {}).get(method) or {"n": 0}
    tried = summary["n"] + summary.get("not_measured", 0)
    measured = f"measured {summary['n']} of {tried} clips" if tried else "measured 0 clips"
    if not summary["n"]:
        why = summary.get("reason") or "no clip was explained"
        return settle("faithfulness", method, [], settings, unmeasured_reason=f"{method}: {why}", measured=measured)
    missing = shortfall({"k": summary["n"], "n": summary["n"], "clips": summary["n"], "attempted": tried,
                         "errored": summary.get("errored", 0)}, settings)
    gates = []
    for key, metric, op in _FAITH_GATES:
        if key not in settings:
            continue
        if metric in ("ai", "fid_in"):
            name = f"faithfulness.{method}.{metric}"
            gates.append(rate_gate(metric, result.rates.get(name), op, settings[key], settings, name))
        elif missing is not None:
            gates.append(gate(metric, None, op, settings[key], unmeasured=f"{metric}: {missing}"))
        else:
            entry = summary.get(metric) or {}
            gates.append(gate(metric, entry.get("value"), op, settings[key], n=summary["n"], low=entry.get("low"),
                              high=entry.get("high"), over="clips the method explained"))
    return settle("faithfulness", method, gates, settings, explainer_line(method, summary), measured)
