"""Robustness baselines: save a run's metrics, compare a later run against them with rules.

A baseline is ``<dir>/<NAME>.json`` (default dir ``.freqrex/baselines`` under the pytest rootdir):
per spec, the flat ``check.metric`` figures of :func:`freqrex_audit.audit._metrics` and the model's
fingerprint, plus the run's versions, seed and commit.

A rule ``METRIC:CHANGE`` says how far a metric may move in its bad direction before the
``regression[METRIC]`` item fails:

* ``fourier_attack.success_rate:+5%``: fails if the value rises by more than 5 % of the baseline value
  (a baseline of 0 allows no rise at all);
* ``fourier_attack.success_rate:+0.05``: fails if it rises by more than 0.05 (absolute);
* ``accuracy.accuracy:-2%`` / ``accuracy.accuracy:-0.02``: the same for metrics where *falling* is bad.
"""

from __future__ import annotations

import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from .results import atomic_write_bytes

__all__ = ["Rule", "parse_rule", "save_baseline", "load_baseline", "compare", "DEFAULT_RULES", "BaselineError"]

DEFAULT_RULES = ("accuracy.accuracy:-0.05", "fourier_attack.success_rate:+0.05",
                 "sufficiency.mean_fraction:+10%")
"""Used by ``--freqrex-compare`` when no ``--freqrex-compare-fail`` rule is given."""

_RULE = re.compile(r"^(?P<metric>[A-Za-z0-9_]+\.[A-Za-z0-9_\[\]]+):(?P<sign>[+-])(?P<amount>\d+(\.\d*)?|\.\d+)(?P<pct>%?)$")


class RuleError(ValueError):
    pass


@dataclass(frozen=True)
class Rule:
    metric: str
    sign: str  # "+": rising is bad; "-": falling is bad
    amount: float
    relative: bool
    text: str

    def allowed(self, baseline: float) -> float:
        """The worst value still accepted."""
        step = abs(baseline) * self.amount / 100 if self.relative else self.amount
        return baseline + step if self.sign == "+" else baseline - step


def parse_rule(text: str) -> Rule:
    match = _RULE.match(text.strip())
    if not match:
        raise RuleError(f"--freqrex-compare-fail {text!r}: expected CHECK.METRIC:+N%, :+N, :-N% or :-N "
                        f"(e.g. 'fourier_attack.success_rate:+5%')")
    return Rule(match["metric"], match["sign"], float(match["amount"]), bool(match["pct"]), text.strip())


def save_baseline(path: str | Path, doc: dict, name: str) -> Path:
    """Store the run's per-spec metrics and provenance (from an assembled results document)."""
    data = {
        "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": doc.get("run", {}),
        "specs": {spec: {"fingerprint": section.get("model", {}).get("fingerprint"),
                         "metrics": section.get("metrics", {})}
                  for spec, section in sorted(doc.get("specs", {}).items())},
    }
    return atomic_write_bytes(path, json.dumps(data, sort_keys=True, indent=1).encode())


class BaselineError(ValueError):
    """A baseline file that is not what ``--freqrex-save`` writes (hand-edited, truncated); names file and key."""


def load_baseline(path: str | Path) -> dict:
    """The saved baseline, validated: ``specs.<name>.metrics.<metric>`` numbers (or null), else BaselineError."""
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BaselineError(f"{path}: not a readable baseline ({type(exc).__name__}: "
                            f"{getattr(exc, 'msg', None) or getattr(exc, 'strerror', None) or exc}); "
                            f"save it again with --freqrex-save") from None
    specs = doc.get("specs") if isinstance(doc, dict) else None
    if not isinstance(specs, dict):
        raise BaselineError(f"{path}: specs: expected a mapping of spec name to its metrics")
    for name, section in specs.items():
        metrics = section.get("metrics") if isinstance(section, dict) else None
        if not isinstance(metrics, dict):
            raise BaselineError(f"{path}: specs.{name}.metrics: expected a mapping of metric to number")
        for metric, value in metrics.items():
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
                raise BaselineError(f"{path}: specs.{name}.metrics.{metric}: expected a number or null, "
                                    f"got {type(value).__name__}")
    return doc


def compare(rule: Rule, value: Any, baseline: Any) -> dict:
    """A gate dict (with ``baseline`` and ``delta``) for one rule on one spec."""
    if baseline is None or value is None:
        return {"metric": rule.metric, "value": value, "op": "<=" if rule.sign == "+" else ">=", "threshold": None,
                "passed": None, "baseline": baseline, "delta": None}
    limit = rule.allowed(float(baseline))
    passed = value <= limit + 1e-12 if rule.sign == "+" else value >= limit - 1e-12
    return {"metric": rule.metric, "value": value, "op": "<=" if rule.sign == "+" else ">=", "threshold": limit,
            "passed": bool(passed), "baseline": baseline, "delta": float(value) - float(baseline)}
