"""Robustness baselines: save a run's metrics, compare a later run against them with rules.

A baseline is ``<dir>/<NAME>.json`` (default dir ``.freqrex/baselines`` under the pytest rootdir):
per spec, the flat ``check.metric`` figures (and their k/n rates), the model's fingerprint, the sample
counts, the seed and a hash of the spec's analysis settings (:func:`config_hash`), plus the run's versions,
seed and commit. It is saved only from a complete, passing, unfiltered run unless forced (the reason is
recorded), and an existing baseline is replaced only with force (the old one is kept as ``NAME.json.prev``).
A comparison against a baseline whose config hash differs says so (not measured) instead of comparing.

A rule ``METRIC:CHANGE`` says how far a metric may move in its bad direction before the
``regression[METRIC]`` item fails:

* ``fourier_attack.success_rate:+5%``: fails if the value rises by more than 5 % of the baseline value
  (a baseline of 0 allows no rise at all);
* ``fourier_attack.success_rate:+0.05``: fails if it rises by more than 0.05 (absolute);
* ``accuracy.accuracy:-2%`` / ``accuracy.accuracy:-0.02``: the same for metrics where *falling* is bad.
"""

from __future__ import annotations

import hashlib
import json
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..audit.cache import engine_version
from ..audit.records import Outcome, SpecResult, Verdict
from ..engine.codec import atomic_write_bytes, to_jsonable
from ..runtime.devices import cpu_description
from .read import ResultsError, read_json, validate_baseline
from .schema import MEANINGS_VERSION
from ..specs.loader import Spec

__all__ = ["Rule", "parse_rule", "save_baseline", "load_baseline", "compare", "DEFAULT_RULES", "BaselineError",
           "BaselineRefused", "config_hash", "regression_verdicts"]

DEFAULT_RULES = ("accuracy.accuracy:-0.05", "fourier_attack.success_rate:+0.05",
                 "sufficiency.mean_fraction:+10%")
"""Used by ``--freqrex-compare`` when no ``--freqrex-compare-fail`` rule is given."""

_RULE = re.compile(r"^(?P<metric>[A-Za-z0-9_]+\.[A-Za-z0-9_\[\]]+):(?P<sign>[+-])(?P<amount>\d+(\.\d*)?|\.\d+)(?P<pct>%?)$")


class RuleError(ValueError):
    pass


class BaselineRefused(ValueError):
    """The run cannot stand as a baseline (failing, filtered, incomplete) or one exists already."""


def config_hash(spec: Spec) -> str:
    """A short hash of everything that decides a spec's figures except the model: dataset selection,
    FreqReX and attack settings, checks, the engine version (package version + engine source hash: a metric
    computed by another engine may mean another thing) and the results schema version (what each metric
    name means). Two runs with the same hash measured the same thing the same way."""
    data = spec.dataset
    facts = {"dataset": {"path": str(data.path), "type": data.type, "sample_rate": data.sample_rate,
                         "clip_seconds": data.clip_seconds, "limit": data.limit, "only_correct": data.only_correct,
                         "label_map": list(data.label_map)},
             "freqrex": spec.freqrex.to_dict(), "attack": spec.attack.to_dict(), "stft": spec.stft_attack.to_dict(),
             "checks": spec.checks, "peers": list(spec.peers),
             "engine": engine_version(), "results_schema": MEANINGS_VERSION}  # meanings, not storage (4 = 3)
    if data.windows != "first":  # only when set: baselines saved before the key existed keep their hash
        facts["dataset"]["windows"] = data.windows
    text = json.dumps(to_jsonable(facts), sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


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


def _unfit(doc: dict) -> list[str]:
    """Why this run cannot stand as a baseline (empty when it can)."""
    run = doc.get("run", {})
    why = []
    if not run.get("complete", False):
        why.append(f"the run is incomplete ({run.get('summary', 'not every item ran')})")
    if run.get("verdict") != "passed":
        why.append(f"the run's verdict is {run.get('verdict', 'unknown')}, not passed")
    if run.get("filtered"):
        why.append("the run was filtered (-m, -k, --lf, --deselect or node ids)")
    if doc.get("errors"):
        why.append(f"{len(doc['errors'])} spec(s) did not load")
    return why


def save_baseline(path: str | Path, doc: dict, name: str, force: str | None = None) -> Path:
    """Store the run's per-spec metrics and provenance (from a finalized results document).

    Refused (:class:`BaselineRefused`) for a run that is not complete, passing and unfiltered, or when the
    baseline exists, unless ``force`` gives the reason, which is recorded with what was wrong."""
    path = Path(path)
    problems = _unfit(doc) + ([f"baseline {name!r} exists ({path})"] if path.exists() else [])
    if problems and not force:
        raise BaselineRefused(f"baseline {name!r} not saved: {'; '.join(problems)} "
                              f"(--freqrex-save-force WHY / --save-force WHY to save anyway)")
    if path.exists():
        atomic_write_bytes(path.with_name(path.name + ".prev"), path.read_bytes())
    data = {
        "name": name, "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "run": doc.get("run", {}),
        "forced": {"reason": force, "problems": problems} if problems else None,
        "specs": {spec: {"fingerprint": section.get("model", {}).get("fingerprint"),
                         "config_hash": section.get("config_hash"), "seed": section.get("seed"),
                         "n_samples": section.get("dataset", {}).get("n_samples"),
                         "n_analysed": section.get("dataset", {}).get("n_analysed"),
                         "metrics": section.get("metrics", {}), "rates": section.get("rates", {})}
                  for spec, section in sorted(doc.get("specs", {}).items())},
    }
    return atomic_write_bytes(path, json.dumps(data, sort_keys=True, indent=1).encode())


class BaselineError(ResultsError):
    """A baseline file that is not what ``--freqrex-save`` writes (hand-edited, truncated); names file and key."""


SAVE_AGAIN = "save it again with --freqrex-save"


def load_baseline(path: str | Path) -> dict:
    """The saved baseline, validated against :data:`~freqrex_audit.runs.read.BASELINE_SCHEMA` by the one
    results loader (``specs.<name>.metrics.<metric>`` numbers or null…), else BaselineError naming file and key."""
    try:
        return validate_baseline(read_json(path, "baseline", SAVE_AGAIN), path, SAVE_AGAIN)
    except BaselineError:
        raise
    except ResultsError as exc:
        raise BaselineError(exc.path, exc.key, exc.problem) from None


def compare(rule: Rule, value: Any, baseline: Any) -> dict:
    """A gate dict (with ``baseline`` and ``delta``) for one rule on one spec."""
    if baseline is None or value is None:
        return {"metric": rule.metric, "value": value, "op": "<=" if rule.sign == "+" else ">=", "threshold": None,
                "passed": None, "baseline": baseline, "delta": None}
    limit = rule.allowed(float(baseline))
    passed = value <= limit + 1e-12 if rule.sign == "+" else value >= limit - 1e-12
    return {"metric": rule.metric, "value": value, "op": "<=" if rule.sign == "+" else ">=", "threshold": limit,
            "passed": bool(passed), "baseline": baseline, "delta": float(value) - float(baseline)}


def regression_verdicts(rules: list[Rule], result: SpecResult, path: Path, name: str) -> list[Verdict]:
    """One ``regression[METRIC]`` verdict per rule for this spec against baseline ``name`` at ``path``."""
    if not path.is_file():
        return [Verdict("regression", r.metric, Outcome.FAILED,
                        f"no baseline {name!r} at {path}; save one with --freqrex-save {name}") for r in rules]
    try:
        saved = load_baseline(path)
    except BaselineError as exc:  # a hand-edited or truncated file fails the items, naming file and key
        return [Verdict("regression", r.metric, Outcome.ERROR, str(exc)) for r in rules]
    baseline = saved.get("specs", {}).get(result.name)
    if baseline is None:  # e.g. the spec was renamed: nothing to compare with, so nothing was decided
        return [Verdict("regression", r.metric, Outcome.NOT_MEASURED,
                        f"{r.metric}: not measured: spec {result.name!r} is not in baseline {name!r} (renamed, or "
                        f"added since); save a new baseline with --freqrex-save-force WHY") for r in rules]
    ours = config_hash(result.spec)
    if baseline.get("config_hash") != ours:
        return [Verdict("regression", r.metric, Outcome.NOT_MEASURED,
                        f"{r.metric}: not compared: baseline {name!r} was made with a different config "
                        f"or freqrex_audit engine (hash {baseline.get('config_hash')} vs this run's {ours}: the "
                        f"hash holds the spec's settings and the engine's version, so an upgrade that changed "
                        f"the algorithms changes it too); save a new baseline")
                for r in rules]
    note = ""  # what a reader weighs a delta against: the same for every rule
    if baseline.get("fingerprint") != result.model_info.get("fingerprint"):
        note = " (the model changed since the baseline)"
    run = saved.get("run")
    then_cpu = run.get("cpu") if isinstance(run, dict) else None
    if isinstance(then_cpu, str) and then_cpu != cpu_description():
        note += f" (the baseline ran on another CPU, {then_cpu}: last digits may differ for that alone)"
    out = []
    for rule in rules:
        gate = compare(rule, result.metrics.get(rule.metric), baseline.get("metrics", {}).get(rule.metric))
        if gate["passed"] is None:
            out.append(Verdict("regression", rule.metric, Outcome.NOT_MEASURED,
                               f"{rule.metric}: not measured in this run or in baseline {name!r}", [gate]))
            continue
        out.append(Verdict(
            "regression", rule.metric, Outcome.PASSED if gate["passed"] else Outcome.FAILED,
            f"{rule.metric} = {gate['value']:.4g} vs baseline {name!r} {gate['baseline']:.4g} "
            f"(delta {gate['delta']:+.4g}); rule {rule.text!r} allows {gate['op']} {gate['threshold']:.4g}"
            f"{' (ok)' if gate['passed'] else ' (REGRESSED)'}{note}", [gate]))
    return out


def annotate_gates(result: SpecResult, path: Path) -> None:
    """Put the baseline's value and the delta on every gate of ``result`` whose ``check.metric`` the baseline
    holds (the report's Δ column), when the baseline exists, is readable and measured the same config."""
    try:
        baseline = load_baseline(path).get("specs", {}).get(result.name) if path.is_file() else None
    except BaselineError:
        return  # the regression items say why
    if not baseline or baseline.get("config_hash") != config_hash(result.spec):
        return
    saved = baseline.get("metrics", {})
    for verdict in result.verdicts:
        if verdict.check == "regression":
            continue
        for gate in verdict.gates:
            then = saved.get(f"{verdict.check}.{gate['metric']}")
            if then is None:
                continue
            gate["baseline"] = then
            gate["delta"] = None if gate["value"] is None else float(gate["value"]) - float(then)
