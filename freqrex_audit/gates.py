"""Verdicts: turn a :class:`~freqrex_audit.audit.SpecResult` into one pass/fail/skip per pytest item.

Kept apart from :mod:`freqrex_audit.audit` (which computes) so the release-gate rules read in one place:
:func:`planned_items` lists the items a spec produces, :func:`evaluate` gives each its verdict with the
gates (metric, value, op, threshold) that decided it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from .datasets import Sample
from .engine.subsets import is_complete
from .specs import Spec

if TYPE_CHECKING:
    from .audit import SampleRecord, SpecResult

__all__ = ["Verdict", "planned_items", "evaluate"]


@dataclass
class Verdict:
    """The outcome of one pytest item: ``passed`` is None when the item is skipped (with ``message``)."""

    check: str
    key: str
    passed: bool | None
    message: str
    gates: list[dict] = field(default_factory=list)


AGGREGATE_SETTINGS = {  # each ``max_<metric>`` setting is a ceiling on the metric ``<check>.<metric>``
    "sufficiency": ("max_mean_fraction",),
    "fourier_attack": ("max_success_rate", "max_single_rate", "max_five_rate", "max_int16_survival_rate"),
    "stft_attack": ("max_success_rate", "max_rate_256", "max_rate_512", "max_rate_1024", "max_int16_survival_rate"),
}


def planned_items(spec: Spec, samples: list[Sample]) -> list[tuple[str, str]]:
    """The (check, key) of every item a spec produces, in order; :func:`evaluate` gives each a verdict."""
    checks = spec.checks
    items = [("model", "load")]
    if "min" in checks.get("accuracy", {}):
        items.append(("accuracy", "aggregate"))
    for check in ("sufficiency", "necessity", "completeness"):
        if check in checks:
            items += [(check, s.id) for s in samples]
    if "min_frequencies" in checks.get("fourier_attack", {}):
        items += [("fourier_attack", s.id) for s in samples]
    for check, settings in AGGREGATE_SETTINGS.items():
        if any(k in checks.get(check, {}) for k in settings):
            items.append((check, "aggregate"))
    items += [(check, "aggregate") for check in ("composition", "transferability") if check in checks]
    return items


def _gate(metric: str, value: Any, op: str, threshold: float) -> dict:
    if value is None:
        passed = False
    else:
        passed = value <= threshold + 1e-12 if op == "<=" else value >= threshold - 1e-12
    return {"metric": metric, "value": value, "op": op, "threshold": threshold, "passed": bool(passed)}


def _show(value: Any) -> str:
    if value is None:
        return "not measured"
    return f"{value:.3g}" if isinstance(value, float) else str(value)


def _aggregate(check: str, gates: list[dict], context: str = "") -> Verdict:
    failed = [g for g in gates if not g["passed"]]
    lines = [f"{g['metric']} = {_show(g['value'])}, spec requires {g['op']} {g['threshold']:g} "
             f"({'ok' if g['passed'] else 'FAILED'})" for g in gates]
    head = f"{check}: {len(failed)} of {len(gates)} gate(s) failed" if failed else f"{check}: all gates passed"
    return Verdict(check, "aggregate", not failed, "\n".join([head + context, *lines]), gates)


def _skip_reason(record: SampleRecord) -> str:
    return f"{record.sample.id}: {record.status}: {record.reason or 'not analysed'}"


def evaluate(result: SpecResult) -> list[Verdict]:
    """One verdict per pytest item of this spec (see ``item_keys``)."""
    spec, checks = result.spec, result.spec.checks
    verdicts: list[Verdict] = []
    # model[load]: it loads, the dataset is readable and every dataset label is a model label
    if result.error:
        verdicts.append(Verdict("model", "load", False, result.error))
    else:
        labels = set(result.model_info["labels"])
        missing = sorted({r.sample.label for r in result.samples} - labels)
        if not result.samples:
            verdicts.append(Verdict("model", "load", False, f"dataset {spec.dataset.path} has no clips"))
        elif missing:
            verdicts.append(Verdict("model", "load", False,
                                    f"dataset labels {missing} are not model labels {sorted(labels)}; "
                                    f"map them with dataset.label_map"))
        else:
            verdicts.append(Verdict("model", "load", True, f"{result.model_info['name']} loaded; "
                                                           f"{len(result.samples)} clips, labels match"))

    def blocked() -> str | None:
        return result.error

    if "accuracy" in checks and "min" in checks["accuracy"]:
        verdicts.append(_aggregate("accuracy", [_gate("accuracy", result.accuracy, ">=", checks["accuracy"]["min"])],
                                   _failed_note(result))
                        if not blocked() else Verdict("accuracy", "aggregate", False, blocked()))
    for record in result.samples:
        for check in ("sufficiency", "necessity", "completeness"):
            if check in checks:
                verdicts.append(_per_sample(check, record, spec))
        if "fourier_attack" in checks and "min_frequencies" in checks["fourier_attack"]:
            verdicts.append(_attack_sample(record, checks["fourier_attack"]["min_frequencies"]))
    for check, ceilings in AGGREGATE_SETTINGS.items():  # max_<metric> caps the metric check.<metric>
        settings = checks.get(check, {})
        gates = [_gate(key[4:], result.metrics.get(f"{check}.{key[4:]}"), "<=", settings[key])
                 for key in ceilings if key in settings]
        if gates:
            verdicts.append(_aggregate(check, gates, _context(result, check)) if not blocked()
                            else Verdict(check, "aggregate", False, blocked()))
    if "composition" in checks:
        verdicts.append(_composition_verdict(result, checks["composition"]))
    if "transferability" in checks:
        verdicts.append(_transfer_verdict(result, checks["transferability"]))
    return verdicts


def _context(result: SpecResult, check: str) -> str:
    done = _analysed(result)
    if check == "fourier_attack":
        wins = [r for r in done if r.fourier and r.fourier.success]
        detail = ", ".join(f"{r.sample.id}: {r.fourier.n_frequencies} freq {r.fourier.mutation}" for r in wins[:5])
        return f" ({len(wins)}/{len(done)} clips flipped{': ' + detail if detail else ''}){_failed_note(result)}"
    if check == "stft_attack":
        return (f" (over {len([r for r in done if r.fourier and r.fourier.success])} successful Fourier attacks)"
                f"{_failed_note(result)}")
    return f" (over {len(done)} analysed clips){_failed_note(result)}"


def _failed_note(result: SpecResult) -> str:
    """Aggregates leave out clips whose analysis crashed: say so, with the first reason."""
    failed = [r for r in result.samples if r.status == "error"]
    if not failed:
        return ""
    return (f"; {len(failed)} clip(s) failed and are not counted (first, {failed[0].sample.id}: "
            f"{failed[0].reason})")


def _per_sample(check: str, record: SampleRecord, spec: Spec) -> Verdict:
    key = record.sample.id
    if record.status == "error":
        return Verdict(check, key, False, f"{key}: analysis failed: {record.reason}")
    if not record.analysed:
        return Verdict(check, key, None, _skip_reason(record))
    e, facts = record.explanation, record.verification or {}
    settings = spec.checks[check]
    label = e.target_label
    if check == "sufficiency":
        if e.sufficient is None:
            return Verdict(check, key, False, f"{key}: no sufficient subset found for {label!r}",
                           [_gate("sufficient_found", 0, ">=", 1)])
        fact = facts.get("sufficient", {})
        floor = spec.freqrex.min_confidence * e.confidence
        ok = fact.get("label") == e.target and fact.get("target_confidence", 0.0) >= floor * (1 - 1e-6) - 1e-9
        gates = [_gate("sufficient_valid", int(ok), ">=", 1)]
        msg = (f"{key}: sufficient signal ({len(e.sufficient)} bins, {100 * e.fraction('sufficient'):.2f}% of K) "
               f"is classified {e.labels[fact.get('label', e.target)]!r} with {fact.get('target_confidence', 0):.3f} "
               f"for {label!r} (needs {label!r} with ≥ {floor:.3f})")
        if "max_fraction" in settings:
            gates.append(_gate("sufficient_fraction", e.fraction("sufficient"), "<=", settings["max_fraction"]))
            msg += f"; fraction {e.fraction('sufficient'):.4f}, spec requires <= {settings['max_fraction']:g}"
        return Verdict(check, key, all(g["passed"] for g in gates), msg, gates)
    kind = "necessary" if check == "necessity" else "complete"
    bins = getattr(e, kind)
    if bins is None:
        msg = f"{key}: no {kind} subset found for {label!r}"
        if settings.get("required"):
            return Verdict(check, key, False, msg + f" (checks.{check}.required)", [_gate(f"{kind}_found", 0, ">=", 1)])
        return Verdict(check, key, None, msg)
    if check == "necessity":
        fact = facts.get("inverse", {})
        ok = "label" in fact and fact["label"] != e.target
        msg = (f"{key}: removing the {len(bins)} necessary bins leaves {e.labels[fact['label']]!r} "
               f"(must not be {label!r})") if fact else f"{key}: the complement was not re-classified"
    else:
        fact = facts.get("complete", {})
        got = fact.get("target_confidence")
        ok = got is not None and fact.get("label") == e.target and is_complete(got, e.confidence, spec.freqrex.decimals)
        msg = (f"{key}: complete signal ({len(bins)} bins) gives {label!r} {_show(got)}, the clip {e.confidence:.4f} "
               f"(must agree to {spec.freqrex.decimals} decimals)")
    return Verdict(check, key, ok, msg, [_gate(f"{kind}_valid", int(ok), ">=", 1)])


def _attack_sample(record: SampleRecord, min_frequencies: int) -> Verdict:
    key = record.sample.id
    if record.status == "error":
        return Verdict("fourier_attack", key, False, f"{key}: analysis failed: {record.reason}")
    if not record.analysed:
        return Verdict("fourier_attack", key, None, _skip_reason(record))
    atk, e = record.fourier, record.explanation
    if atk is None or not atk.success:
        budget = atk.budget if atk else "?"
        return Verdict("fourier_attack", key, True, f"{key}: no attack within {budget} frequencies",
                       [_gate("attack_frequencies", None, ">=", min_frequencies) | {"passed": True}])
    hz = ", ".join(f"{h:.0f} Hz" for h in atk.hz[:5])
    ok = atk.n_frequencies >= min_frequencies
    msg = (f"{key}: attack flipped {e.labels[atk.original_label]!r} → {e.labels[atk.new_label]!r} with "
           f"{atk.n_frequencies} frequenc{'y' if atk.n_frequencies == 1 else 'ies'} ({hz}) {atk.mutation}, "
           f"SNR {atk.snr_db:.1f} dB; spec requires >= {min_frequencies} (checks.fourier_attack.min_frequencies)")
    return Verdict("fourier_attack", key, ok, msg, [_gate("attack_frequencies", atk.n_frequencies, ">=", min_frequencies)])


def _composition_verdict(result: SpecResult, settings: dict) -> Verdict:
    if result.error:
        return Verdict("composition", "aggregate", False, result.error)
    if "composition" in result.cross_failed:
        return Verdict("composition", "aggregate", False, f"composition: failed: {result.cross_failed['composition']}")
    if "composition" in result.cross_skipped:
        return Verdict("composition", "aggregate", None, f"composition: {result.cross_skipped['composition']}")
    if "min_ratio" not in settings:
        return Verdict("composition", "aggregate", True, "composition: computed (no min_ratio gate)")
    gates = [_gate(f"ratio[{c}]", v["ratio"], ">=", settings["min_ratio"]) for c, v in sorted((result.composition or {}).items())]
    if not gates:
        return Verdict("composition", "aggregate", None, "composition: no analysed clips")
    return _aggregate("composition", gates)


def _transfer_verdict(result: SpecResult, settings: dict) -> Verdict:
    if result.error:
        return Verdict("transferability", "aggregate", False, result.error)
    if "transferability" in result.cross_failed:
        return Verdict("transferability", "aggregate", False,
                       f"transferability: failed: {result.cross_failed['transferability']}")
    if "transferability" in result.cross_skipped:
        return Verdict("transferability", "aggregate", None,
                       f"transferability: {result.cross_skipped['transferability']}")
    if not result.spec.peers:
        return Verdict("transferability", "aggregate", None, "transferability: the spec names no peers")
    gates = []
    if "min_alpha" in settings:
        gates += [_gate(f"alpha[{p}]", v, ">=", settings["min_alpha"]) for p, v in sorted(alpha_toward_peers(result).items())]
    if not settings.get("flat_earther", False):
        flat = result.name in set(getattr(result.transferability, "flat_earthers", ()) or ())
        gates.append(_gate("flat_earther", int(flat), "<=", 0))
    return _aggregate("transferability", gates) if gates else Verdict("transferability", "aggregate", True, "computed")


def _analysed(result: SpecResult) -> list[SampleRecord]:
    return [r for r in result.samples if r.analysed]


def alpha_toward_peers(result: SpecResult) -> dict[str, float]:
    """α(this → peer) of sufficient signals for each peer (NaN rows become absent)."""
    import numpy as np

    tr = result.transferability
    if tr is None or result.name not in tr.models:
        return {}
    row = tr.alpha("sufficient")[tr.models.index(result.name)]
    return {peer: float(row[j]) for j, peer in enumerate(tr.models) if peer != result.name and np.isfinite(row[j])}
