"""Verdicts: turn a :class:`~freqrex_audit.audit.records.SpecResult` into one outcome per pytest item.

Kept apart from :mod:`freqrex_audit.audit.run` (which computes) so the release-gate rules read in one place:
:func:`planned_items` lists the items a spec produces, :func:`evaluate` gives each its
:class:`~freqrex_audit.audit.records.Verdict` (passed, failed, not_measured or skipped) with the gates
(metric, value, op, threshold) that decided it. A gate without the evidence it needs (an attack that did
not really search, too few clips, a value that could not be computed) is "not measured", which fails the
item unless the check says ``on_unmeasured: skip``.
"""

from __future__ import annotations

import numpy as np

from .datasets import Sample, near_labels, where_listed
from ..engine.subsets import is_complete
from ..engine.transfer import flat_earther_undecided
from .evidence import DEFAULT_MIN_CLIPS, attack_evidence, attempted, over, rate_entry, shortfall
from .explainer_verdicts import explainer_verdict, faithfulness_verdict, gated_methods
from .gate_rules import expected, gate as _gate, rate_gate as _rate_gate, settle as _settle, show as _show
from .messages import change_text, context, example_map, failed_note, rate_note
from .records import Outcome, SampleRecord, SpecResult, Verdict
from ..specs.loader import Spec

__all__ = ["Verdict", "planned_items", "evaluate", "alpha_toward_peers", "AGGREGATE_SETTINGS"]

AGGREGATE_SETTINGS = {  # each ``max_<metric>`` setting is a ceiling on the metric ``<check>.<metric>``
    "sufficiency": ("max_mean_fraction",),
    "fourier_attack": ("max_success_rate", "max_raw_success_rate", "max_single_rate", "max_five_rate",
                       "max_int16_survival_rate"),
    "stft_attack": ("max_success_rate", "max_rate_256", "max_rate_512", "max_rate_1024", "max_int16_survival_rate"),
    "peer_attack": ("max_success_rate",),
}
PER_CLIP = ("sufficiency", "necessity", "completeness")


def planned_items(spec: Spec, samples: list[Sample]) -> list[tuple[str, str]]:
    """The (check, key) of every item a spec produces, in order; :func:`evaluate` gives each a verdict."""
    checks = spec.checks
    items = [("model", "load")]
    if "min" in checks.get("accuracy", {}):
        items.append(("accuracy", "aggregate"))
    for check in PER_CLIP:
        if check in checks:
            items += [(check, s.id) for s in samples]
    if "min_frequencies" in checks.get("fourier_attack", {}):
        items += [("fourier_attack", s.id) for s in samples]
    for check, settings in AGGREGATE_SETTINGS.items():
        if any(k in checks.get(check, {}) for k in settings):
            items.append((check, "aggregate"))
    items += [(check, "aggregate") for check in ("composition", "transferability") if check in checks]
    if spec.explainers is not None:
        items += [("explainers", method) for method in spec.explainers.methods]
    items += [("faithfulness", method) for method in gated_methods(spec)]
    return items


def evaluate(result: SpecResult) -> list[Verdict]:
    """One verdict per pytest item of this spec (the same order as :func:`planned_items`)."""
    spec, checks = result.spec, result.spec.checks
    verdicts: list[Verdict] = [_model_verdict(result)]
    blocked = result.error
    if "accuracy" in checks and "min" in checks["accuracy"]:
        settings = checks["accuracy"]
        verdicts.append(_blocked("accuracy", blocked) if blocked else _settle(
            "accuracy", "aggregate", [_rate_gate("accuracy", result.rates.get("accuracy.accuracy"), ">=",
                                                 settings["min"], settings, "accuracy.accuracy")],
            settings, (failed_note(result, unanswered=True) + rate_note(result)).lstrip("; "),
            _measured_rate(result, "accuracy.accuracy")))
    for check in PER_CLIP:
        if check in checks:
            verdicts += _per_clip_check(result, check, lambda r, c=check: _per_sample(c, r, spec))
    if "fourier_attack" in checks and "min_frequencies" in checks["fourier_attack"]:
        floor = checks["fourier_attack"]["min_frequencies"]
        verdicts += _per_clip_check(result, "fourier_attack", lambda r: _attack_sample(r, spec, floor))
    for check, ceilings in AGGREGATE_SETTINGS.items():  # max_<metric> caps the metric check.<metric>
        settings = checks.get(check, {})
        keys = [key for key in ceilings if key in settings]
        if not keys:
            continue
        if blocked:
            verdicts.append(_blocked(check, blocked))
            continue
        gates = [_aggregate_gate(result, check, key[4:], settings) for key in keys]
        verdicts.append(_settle(check, "aggregate", gates, settings, context(result, check),
                                _measured_aggregate(result, check)))
    if "composition" in checks:
        verdicts.append(_composition_verdict(result, checks["composition"]))
    if "transferability" in checks:
        verdicts.append(_transfer_verdict(result, checks["transferability"]))
    if spec.explainers is not None:
        verdicts += [explainer_verdict(result, method) for method in spec.explainers.methods]
    verdicts += [faithfulness_verdict(result, method, checks["faithfulness"]) for method in gated_methods(spec)]
    return verdicts if blocked else expected(verdicts, checks)


def _blocked(check: str, why: str) -> Verdict:
    return Verdict(check, "aggregate", Outcome.FAILED, why)


def _model_verdict(result: SpecResult) -> Verdict:
    """model[load]: the model loads and answers, the dataset is readable, every clip a manifest names exists
    (unless ``dataset.missing_files: skip``) and every dataset label is a model label (naming the rows and the
    model labels it was probably meant to be). Its gates are recorded like any gate: ``loaded``, ``clips``,
    ``missing_files``, ``unknown_labels`` and ``errored_clips`` (a clip whose prediction or analysis errored
    fails the spec, whatever its checks)."""
    loaded = int(result.model_info.get("name") is not None)
    if result.error:  # did not load, or loaded and then hung, failed on every clip, or its dataset is unreadable
        return Verdict("model", "load", Outcome.FAILED, result.error, [_gate("loaded", loaded, ">=", 1)])
    dataset = result.spec.dataset
    labels = list(result.model_info["labels"])
    unknown = sorted({r.sample.label for r in result.samples} - set(labels))
    absent = [r.sample for r in result.samples if r.sample.missing]
    counted_absent = absent if dataset.missing_files == "fail" else []
    tried = attempted(result, "predict")
    errored = [r for r in tried if r.status == "error"]
    gates = [_gate("loaded", 1, ">=", 1), _gate("clips", len(result.samples), ">=", 1),
             _gate("missing_files", len(counted_absent), "<=", 0),
             _gate("unknown_labels", len(unknown), "<=", 0),
             _gate("errored_clips", len(errored), "<=", 0, k=len(errored), n=len(tried), over="attempted clips")]
    if not result.samples:
        return Verdict("model", "load", Outcome.FAILED, f"dataset {dataset.path} has no clips", gates)
    problems = []
    if counted_absent:
        problems.append(f"{len(absent)} of {len(result.samples)} clips the manifest names do not exist: "
                        f"{where_listed(absent, dataset.path)} ({', '.join(repr(s.id) for s in absent[:3])}"
                        f"{', …' if len(absent) > 3 else ''}); fix the paths, or set dataset.missing_files: skip "
                        f"to audit the clips that exist")
    for label in unknown:
        rows = [r.sample for r in result.samples if r.sample.label == label]
        near = near_labels(label, labels)
        hint = f" — did you mean {' or '.join(map(repr, near))}?" if near else ""
        problems.append(f"dataset label {label!r} ({len(rows)} clip{'s' if len(rows) > 1 else ''}: "
                        f"{where_listed(rows, dataset.path)}) is not a model label{hint}")
    if problems:
        tail = (f"; model labels: {labels}; map dataset labels with dataset.label_map "
                f"(e.g. label_map: {{{example_map(result, labels)}}})" if unknown else "")
        return Verdict("model", "load", Outcome.FAILED, "; ".join(problems) + tail, gates)
    if errored:
        first = errored[0]
        return Verdict("model", "load", Outcome.FAILED,
                       f"{result.model_info['name']} failed to answer on {len(errored)} of {len(tried)} attempted "
                       f"clips (each is counted as not measured in every rate); first, {first.sample.id}: "
                       f"{first.reason}", gates)
    note = f"; {len(absent)} missing clip(s) skipped (dataset.missing_files: skip)" if absent else ""
    return Verdict("model", "load", Outcome.PASSED, f"{result.model_info['name']} loaded; "
                                                    f"{len(result.samples)} clips, labels match{note}", gates)


def _aggregate_gate(result: SpecResult, check: str, metric: str, settings: dict) -> dict:
    name = f"{check}.{metric}"
    if name in result.rates:
        return _rate_gate(metric, result.rates[name], "<=", settings[f"max_{metric}"], settings, name)
    pool = attempted(result)  # a mean over clips (sufficiency.mean_fraction): the same evidence rule
    done = [r for r in pool if r.analysed and r.status != "error"]
    basis = rate_entry(len(done), len(done), len(pool), sum(r.status == "error" for r in pool))
    missing = shortfall(basis, settings)
    value = result.metrics.get(name) if missing is None else None
    why = f"{metric}: {missing}" if missing else None if value is not None else f"{name} could not be computed"
    return _gate(metric, value, "<=", settings[f"max_{metric}"], over=over(name), attempted=len(pool),
                 errored=basis["errored"], clips=len(done), **({"unmeasured": why} if why else {}))


def _measured_text(clips: int, tried: int, errored: int) -> str:
    return f"measured {clips} of {tried} clips" + (f", {errored} errored" if errored else "")


def _measured_rate(result: SpecResult, name: str) -> str:
    rate = result.rates.get(name) or rate_entry(0, 0)
    return _measured_text(rate.get("clips", rate["n"]), rate.get("attempted", len(result.samples)),
                          rate.get("errored", 0))


def _measured_aggregate(result: SpecResult, check: str) -> str:
    if check == "sufficiency":
        pool = attempted(result)
        return _measured_text(sum(r.analysed and r.status != "error" for r in pool), len(pool),
                              sum(r.status == "error" for r in pool))
    return _measured_rate(result, f"{check}.success_rate")


def _per_clip_check(result: SpecResult, check: str, judge) -> list[Verdict]:
    """Per-clip items; when fewer than ``min_clips`` clips were measured, the ones that measured
    nothing are "not measured" (not quietly skipped), so the check cannot pass on too little evidence."""
    settings = result.spec.checks.get(check, {})
    out = [judge(r) for r in result.samples]
    errored = sum(r.status == "error" for r in result.samples)
    measured = sum(v.outcome in (Outcome.PASSED, Outcome.FAILED) and r.status != "error"
                   for v, r in zip(out, result.samples))
    floor = settings.get("min_clips", DEFAULT_MIN_CLIPS)
    text = _measured_text(measured, len(out), errored)
    for v in out:
        v.measured = text
        if measured < floor and v.outcome == Outcome.SKIPPED and "on_unmeasured" not in v.message:
            v.outcome = Outcome.NOT_MEASURED if settings.get("on_unmeasured") != "skip" else Outcome.SKIPPED
            v.message = f"{v.message}; not measured: only {text}, checks.{check} needs ≥ {floor}"
    return out


def _not_analysed(check: str, record: SampleRecord) -> Verdict | None:
    key = record.sample.id
    if record.status == "error":
        return Verdict(check, key, Outcome.FAILED, f"{key}: analysis failed: {record.reason}")
    if not record.analysed:
        return Verdict(check, key, Outcome.SKIPPED,
                       f"{key}: {record.status}: {record.reason or 'not analysed'}")
    return None


def _per_sample(check: str, record: SampleRecord, spec: Spec) -> Verdict:
    key = record.sample.id
    early = _not_analysed(check, record)
    if early is not None:
        return early
    e, facts = record.explanation, record.verification or {}
    settings = spec.checks[check]
    label = e.target_label
    if check == "sufficiency":
        if e.sufficient is None:
            return Verdict(check, key, Outcome.FAILED, f"{key}: no sufficient subset found for {label!r}",
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
        return Verdict(check, key, Outcome.PASSED if all(g["passed"] for g in gates) else Outcome.FAILED, msg, gates)
    kind = "necessary" if check == "necessity" else "complete"
    bins = getattr(e, kind)
    if bins is None:
        msg = f"{key}: no {kind} subset found for {label!r}"
        if settings.get("required"):
            return Verdict(check, key, Outcome.FAILED, msg + f" (checks.{check}.required)",
                           [_gate(f"{kind}_found", 0, ">=", 1)])
        return Verdict(check, key, Outcome.SKIPPED, msg + f" (checks.{check}.required is false)")
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
    return Verdict(check, key, Outcome.PASSED if ok else Outcome.FAILED, msg, [_gate(f"{kind}_valid", int(ok), ">=", 1)])


def _attack_sample(record: SampleRecord, spec: Spec, min_frequencies: int) -> Verdict:
    key = record.sample.id
    early = _not_analysed("fourier_attack", record)
    if early is not None:
        return early
    settings = spec.checks["fourier_attack"]
    measured, evidence = attack_evidence(record, spec.attack)
    atk, e = record.fourier, record.explanation
    if not measured:
        gate = _gate("attack_frequencies", None, ">=", min_frequencies, unmeasured=evidence)
        return _settle("fourier_attack", key, [gate], settings, unmeasured_reason=evidence)
    if not atk.success or not atk.quiet:
        gate = _gate("attack_frequencies", None, ">=", min_frequencies) | {"passed": True}
        found = "no flip" if not atk.success else (f"only a loud flip (SNR {atk.snr_db:.1f} dB < "
                                                   f"attack.min_snr_db {atk.min_snr_db:g})")
        return Verdict("fourier_attack", key, Outcome.PASSED, f"{key}: {found} ({evidence})", [gate])
    hz = ", ".join(f"{h:.0f} Hz" for h in atk.hz[:5])
    ok = atk.n_frequencies >= min_frequencies
    msg = (f"{key}: attack flipped {e.labels[atk.original_label]!r} → {e.labels[atk.new_label]!r} with "
           f"{atk.n_frequencies} frequenc{'y' if atk.n_frequencies == 1 else 'ies'} ({hz}) {change_text(atk)}, "
           f"SNR {atk.snr_db:.1f} dB; spec requires >= {min_frequencies} (checks.fourier_attack.min_frequencies)")
    return Verdict("fourier_attack", key, Outcome.PASSED if ok else Outcome.FAILED, msg,
                   [_gate("attack_frequencies", atk.n_frequencies, ">=", min_frequencies)])


def _cross_blocked(result: SpecResult, check: str) -> Verdict | None:
    """composition / transferability that could not run: the spec's error, a crash, or a skipped peer."""
    if result.error:
        return Verdict(check, "aggregate", Outcome.FAILED, result.error)
    if check in result.cross_failed:
        return Verdict(check, "aggregate", Outcome.FAILED, f"{check}: failed: {result.cross_failed[check]}")
    if check in result.cross_skipped:
        return _settle(check, "aggregate", [], result.spec.checks[check],
                       unmeasured_reason=result.cross_skipped[check])
    return None


def _composition_verdict(result: SpecResult, settings: dict) -> Verdict:
    blocked = _cross_blocked(result, "composition")
    if blocked is not None:
        return blocked
    if not result.composition:
        return _settle("composition", "aggregate", [], settings, unmeasured_reason="no analysed clips to compose")
    if "min_ratio" not in settings:  # the schema refuses this; a hand-built spec still never passes on nothing
        return _settle("composition", "aggregate", [], settings, unmeasured_reason="no gate to decide (give min_ratio)")
    gates = [_gate(f"ratio[{c}]", v["ratio"], ">=", settings["min_ratio"])
             for c, v in sorted(result.composition.items())]
    return _settle("composition", "aggregate", gates, settings)


def _transfer_verdict(result: SpecResult, settings: dict) -> Verdict:
    blocked = _cross_blocked(result, "transferability")
    if blocked is not None:
        return blocked
    if not result.spec.peers:
        return _settle("transferability", "aggregate", [], settings, unmeasured_reason="the spec names no peers")
    gates = []
    if "min_alpha" in settings:
        alpha = alpha_toward_peers(result, finite_only=False)
        gates += [_gate(f"alpha[{p}]", v, ">=", settings["min_alpha"],
                        **({} if np.isfinite(v) else {"unmeasured": f"α toward {p} has no finite value"}))
                  for p, v in sorted(alpha.items())]
        if not alpha:
            gates.append(_gate("alpha", None, ">=", settings["min_alpha"], unmeasured="no α was computed"))
    if not settings.get("flat_earther", False):
        tr = result.transferability
        models = list(getattr(tr, "models", ()) or ())
        out = tr.sufficient.alpha_out if tr is not None and hasattr(tr, "sufficient") else [np.nan] * len(models)
        undecided = flat_earther_undecided(models, out, result.name)
        flat = result.name in set(getattr(tr, "flat_earthers", ()) or ())
        gates.append(_gate("flat_earther", None if undecided else int(flat), "<=", 0,
                           **({"unmeasured": f"{undecided} (transferability.flat_earther: true waives the "
                                             f"rule)"} if undecided else {})))
    if not gates:  # a spec loaded by the schema always has one; never PASSED on nothing
        return _settle("transferability", "aggregate", [], settings,
                       unmeasured_reason="no gate to decide (give min_alpha, or drop flat_earther: true)")
    return _settle("transferability", "aggregate", gates, settings)


def alpha_toward_peers(result: SpecResult, finite_only: bool = True) -> dict[str, float]:
    """α(this → peer) of sufficient signals for each peer (NaN entries left out unless ``finite_only=False``)."""
    tr = result.transferability
    if tr is None or result.name not in tr.models:
        return {}
    row = tr.alpha("sufficient")[tr.models.index(result.name)]
    return {peer: float(row[j]) for j, peer in enumerate(tr.models)
            if peer != result.name and (not finite_only or np.isfinite(row[j]))}
