"""Run one model spec: clips → predictions → explanations → attacks → aggregates, gates and verdicts.

:func:`run_spec` does the work through ONE :class:`QueryEngine` per model (so every model query is
counted) and the result :class:`~freqrex_audit.cache.Cache`; :func:`evaluate` turns a result into
verdicts (one per pytest item); :mod:`freqrex_audit.runfile` writes them as ``results.json``.
A clip that cannot be loaded or analysed becomes a ``skipped`` / ``error`` sample with its reason;
it never stops the audit.
"""

from __future__ import annotations

import time
import traceback
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from . import spectrum as spec_mod
from .adapters import load_classifier
from .audio import AudioError
from .cache import Cache, hash_array, make_key
from .classifier import Classifier, QueryEngine
from .datasets import Sample, list_samples, load_clip
from .engine import Explanation, FourierAttack, STFTAttack, explain, fourier_attack, stft_attack, summarize_attacks
from .specs import Spec

__all__ = ["SampleRecord", "SpecResult", "Verdict", "run_spec", "evaluate", "analysed", "planned_items",
           "write_results"]

PHASES = ("predict", "original", "responsibility", "subsets", "verify", "fourier_attack", "stft_attack", "composition")


@dataclass
class SampleRecord:
    """What the audit knows about one clip. status: ok | misclassified | skipped | error."""

    sample: Sample
    status: str
    reason: str | None = None
    predicted: str | None = None
    confidence: float | None = None
    explanation: Explanation | None = None
    fourier: FourierAttack | None = None
    stft: STFTAttack | None = None
    verification: dict | None = None

    @property
    def analysed(self) -> bool:
        return self.explanation is not None


@dataclass
class Verdict:
    """The outcome of one pytest item: ``passed`` is None when the item is skipped (with ``message``)."""

    check: str
    key: str
    passed: bool | None
    message: str
    gates: list[dict] = field(default_factory=list)


@dataclass
class SpecResult:
    spec: Spec
    model_info: dict
    samples: list[SampleRecord]
    error: str | None
    accuracy: float | None
    tables: dict
    figures: dict
    metrics: dict
    seconds: float
    queries: int
    queries_by_phase: dict
    cache_stats: dict
    transferability: Any = None
    composition: dict | None = None
    cross_skipped: dict = field(default_factory=dict)
    verdicts: list[Verdict] = field(default_factory=list)

    @property
    def name(self) -> str:
        return self.spec.name

    def verdict(self, check: str, key: str) -> Verdict | None:
        for v in self.verdicts:
            if v.check == check and v.key == key:
                return v
        return None


def analysed(result: SpecResult) -> list[SampleRecord]:
    return [r for r in result.samples if r.analysed]


# --- the per-sample pipeline ---------------------------------------------------------------------------

class _Runner:
    def __init__(self, spec: Spec, clf: Classifier, cache: Cache):
        self.spec = spec
        self.clf = clf
        self.engine = QueryEngine(clf, batch_size=spec.batch_size)
        self.cache = cache if clf.fingerprint else Cache(None)
        self.fp = clf.fingerprint
        self.queries_by_phase: dict[str, int] = {p: 0 for p in PHASES}

    def cached(self, phase: str, parts: tuple, compute, encode, decode):
        key = make_key(phase, self.fp, *parts)
        hit = self.cache.get(key)
        if hit is not None:
            try:
                return decode(*hit)
            except Exception:  # an entry from an incompatible layout: recompute
                pass
        value = compute()
        arrays: dict[str, np.ndarray] = {}
        self.cache.put(key, encode(value, arrays), arrays)
        return value

    def predict(self, audio: str, x: np.ndarray) -> np.ndarray:
        probs = self.cached("predict", (audio,), lambda: self.engine.query(x[None])[0],
                            lambda p, a: {"probs": [float(v) for v in p]}, lambda d, a: np.asarray(d["probs"]))
        return probs

    def run(self, sample: Sample, x: np.ndarray) -> SampleRecord:
        audio = hash_array(x)
        cfg = self.spec.freqrex.to_dict()
        labels = self.clf.labels
        q0 = self.engine.queries
        probs = self.predict(audio, x)
        self.queries_by_phase["predict"] += self.engine.queries - q0
        top = int(np.argmax(probs))
        record = SampleRecord(sample, "ok", predicted=labels[top], confidence=float(probs[top]))
        if labels[top] != sample.label:
            record.status = "misclassified"
            record.reason = f"predicted {labels[top]!r} ({probs[top]:.2f}), labelled {sample.label!r}"
            if self.spec.dataset.only_correct:
                record.reason += "; not analysed (dataset.only_correct)"
                return record
        q0 = self.engine.queries
        exp = self.cached("explain", (audio, cfg), lambda: explain(self.engine, x, self.spec.freqrex),
                          lambda e, a: e.to_dict(a), lambda d, a: Explanation.from_dict(d, a))
        record.explanation = exp
        if self.engine.queries > q0:
            for phase, count in exp.queries_by_phase.items():
                self.queries_by_phase[phase] = self.queries_by_phase.get(phase, 0) + count
        q0 = self.engine.queries
        record.verification = self.cached("verify", (audio, cfg), lambda: verify(self.engine, exp),
                                          lambda v, a: v, lambda d, a: d)
        self.queries_by_phase["verify"] += self.engine.queries - q0
        q0 = self.engine.queries
        attack_cfg = self.spec.attack.to_dict()
        record.fourier = self.cached("fourier", (audio, cfg, attack_cfg),
                                     lambda: fourier_attack(self.engine, x, exp, self.spec.attack),
                                     lambda f, a: f.to_dict(a), lambda d, a: FourierAttack.from_dict(d, a))
        self.queries_by_phase["fourier_attack"] += self.engine.queries - q0
        if self.spec.needs_stft:
            q0 = self.engine.queries
            record.stft = self.cached("stft", (audio, cfg, attack_cfg, self.spec.stft_attack.to_dict()),
                                      lambda: stft_attack(self.engine, x, record.fourier, self.spec.stft_attack),
                                      lambda s, a: s.to_dict(a), lambda d, a: STFTAttack.from_dict(d, a))
            self.queries_by_phase["stft_attack"] += self.engine.queries - q0
        return record


def verify(engine: QueryEngine, exp: Explanation) -> dict:
    """Re-classify the sufficient, complete and inverse (complement) signals: the per-sample validity facts."""
    kinds = [k for k in ("sufficient", "complete", "inverse") if exp.bins(k) is not None]
    out: dict[str, Any] = {}
    if not kinds:
        return out
    probs = engine.query(np.stack([exp.signal(k) for k in kinds]).astype(np.float32))
    for kind, p in zip(kinds, probs):
        out[kind] = {"label": int(np.argmax(p)), "confidence": float(np.max(p)), "target_confidence": float(p[exp.target])}
    return out


def _load(spec: Spec, device: str) -> Classifier:
    return load_classifier(spec.model, device=device, base_dir=spec.base_dir)


def run_spec(spec: Spec, device: str = "auto", cache: Cache | None = None, samples_limit: int | None = None,
             seed: int | None = None, cross: bool = True) -> SpecResult:
    """Audit one spec. ``samples_limit`` and ``seed`` override the spec's; ``cross`` runs composition and
    transferability (which need peers' results) — peers are audited with ``cross=False``."""
    began = time.perf_counter()
    spec = spec.with_seed(seed).with_limit(samples_limit)
    cache = cache or Cache(None)
    hits0, misses0 = cache.hits, cache.misses
    try:
        samples = list_samples(spec.dataset)
        sample_error = None
    except Exception as exc:
        samples, sample_error = [], f"dataset cannot be read: {exc}"
    try:
        clf = _load(spec, device)
        error = sample_error
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported as the model check's failure
        clf, error = None, f"model did not load: {type(exc).__name__}: {exc}"
    records: list[SampleRecord] = []
    runner = None
    if clf is not None and sample_error is None:
        runner = _Runner(spec, clf, cache)
        rate = spec.dataset.sample_rate or clf.sample_rate
        for sample in samples:
            if sample.label not in clf.labels:
                records.append(SampleRecord(sample, "skipped", f"label {sample.label!r} is not one of the model's "
                                                               f"labels (map it with dataset.label_map)"))
                continue
            try:
                x = load_clip(sample, rate, spec.dataset.clip_seconds)
                if rate != clf.sample_rate:
                    from .audio import resample

                    x = resample(x, rate, clf.sample_rate)
            except AudioError as exc:
                records.append(SampleRecord(sample, "skipped", exc.problem))
                continue
            try:
                records.append(runner.run(sample, x))
            except Exception as exc:  # noqa: BLE001 - one clip never kills the audit
                last = traceback.extract_tb(exc.__traceback__)[-1]
                records.append(SampleRecord(sample, "error", f"{type(exc).__name__}: {exc} "
                                                             f"({last.filename.rsplit('/', 1)[-1]}:{last.lineno})"))
    else:
        records = [SampleRecord(s, "skipped", error or "not analysed") for s in samples]
    result = SpecResult(
        spec=spec,
        model_info={"name": getattr(clf, "name", None), "fingerprint": getattr(clf, "fingerprint", None),
                    "labels": list(getattr(clf, "labels", []) or []),
                    "sample_rate": getattr(clf, "sample_rate", None)},
        samples=records, error=error, accuracy=_accuracy(records), tables={}, figures={}, metrics={},
        seconds=0.0, queries=0, queries_by_phase={}, cache_stats={},
    )
    result.tables = _tables(result)
    result.figures = _figures(result)
    if cross and runner is not None:
        if "composition" in spec.checks:
            _composition(result, runner)
        if "transferability" in spec.checks:
            _transferability(result, runner, device, cache, samples_limit, seed)
    result.metrics = _metrics(result)
    result.verdicts = evaluate(result)
    result.seconds = time.perf_counter() - began
    result.queries = runner.engine.queries if runner else 0
    result.queries_by_phase = {k: v for k, v in (runner.queries_by_phase if runner else {}).items() if v}
    result.cache_stats = {"hits": cache.hits - hits0, "misses": cache.misses - misses0}
    return result


# --- cross-model checks: the only place that touches engine.composition / engine.transfer ----------------

def _composition(result: SpecResult, runner: _Runner) -> None:
    """Composition ratio per class (Table 2), from the sufficient signals of the analysed clips."""
    from .engine.composition import compose_explanations

    exps = [r.explanation for r in analysed(result)]
    key = (sorted(hash_array(e.waveform) for e in exps), result.spec.freqrex.to_dict())
    q0 = runner.engine.queries

    def compute() -> dict:
        found = compose_explanations(runner.engine, exps, kind="sufficient")
        return {str(c): {"ratio": float(r.ratio), "kept": len(r.kept), "available": int(r.available)}
                for c, r in found.items()}

    result.composition = runner.cached("composition", key, compute, lambda v, a: v, lambda d, a: d)
    runner.queries_by_phase["composition"] += runner.engine.queries - q0
    result.tables["composition_by_class"] = {c: v["ratio"] for c, v in sorted(result.composition.items())}


def _transferability(result: SpecResult, runner: _Runner, device: str, cache: Cache,
                     samples_limit: int | None, seed: int | None) -> None:
    """α/β toward the spec's peers (their results come from the cache when already computed)."""
    from .engine.transfer import transfer_signals, transferability
    from .specs import find_peer, load_spec

    spec = result.spec
    classifiers = {spec.name: runner.clf}
    signals = {spec.name: transfer_signals([r.explanation for r in analysed(result)])}
    for peer in spec.peers:
        peer_result = run_spec(load_spec(find_peer(spec, peer)), device, cache, samples_limit, seed, cross=False)
        if peer_result.error:
            result.cross_skipped["transferability"] = f"peer {peer!r}: {peer_result.error}"
            return
        classifiers[peer] = _load(peer_result.spec, device)
        signals[peer] = transfer_signals([r.explanation for r in analysed(peer_result)])
    result.transferability = transferability(classifiers, signals)


# --- aggregates ---------------------------------------------------------------------------------------

def _accuracy(records: list[SampleRecord]) -> float | None:
    judged = [r for r in records if r.predicted is not None]
    return sum(r.predicted == r.sample.label for r in judged) / len(judged) if judged else None


def _mean(values: list[float]) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def _tables(result: SpecResult) -> dict:
    done = analysed(result)
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
    attacks = summarize_attacks([r.fourier for r in done if r.fourier is not None],
                                [r.stft for r in done if r.stft is not None] if result.spec.needs_stft else None,
                                frame_sizes=result.spec.stft_attack.frame_sizes)
    return {"sufficiency_by_class": sufficiency, "composition_by_class": {}, "attacks": _finite(attacks)}


def _finite(value: Any) -> Any:
    """NaN/inf become None so the JSON stays standard."""
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, float) and not np.isfinite(value):
        return None
    return value


def _figures(result: SpecResult, points: int = 128, edges: int = 33) -> dict:
    done = analysed(result)
    rate = result.model_info.get("sample_rate") or 1
    grid = np.linspace(0, rate / 2, points)
    responsibility: dict[str, list[np.ndarray]] = {}
    histogram: dict[str, np.ndarray] = {}
    inverse: dict[str, int] = {}
    hz_edges = np.linspace(0, rate / 2, edges)
    for r in done:
        e = r.explanation
        label = e.target_label
        hz = spec_mod.bin_to_hz(np.arange(e.n_bins), len(e.waveform), e.sample_rate)
        total = float(np.sum(e.responsibility)) or 1.0
        responsibility.setdefault(label, []).append(np.interp(grid, hz, e.responsibility / total))
        if e.necessary is not None:
            counts, _ = np.histogram(e.hz("necessary"), bins=hz_edges)
            histogram[label] = histogram.get(label, np.zeros(edges - 1, dtype=np.int64)) + counts
        if e.inverse_label is not None:
            name = e.labels[e.inverse_label]
            inverse[name] = inverse.get(name, 0) + 1
    return {
        "class_responsibility": {c: {"hz": [round(float(h), 3) for h in grid],
                                     "value": [float(v) for v in np.mean(maps, axis=0)]}
                                 for c, maps in sorted(responsibility.items())},
        "necessary_histogram": {c: {"hz_edges": [round(float(h), 3) for h in hz_edges],
                                    "counts": [int(v) for v in counts]} for c, counts in sorted(histogram.items())},
        "inverse_counts": dict(sorted(inverse.items())),
    }


def _metrics(result: SpecResult) -> dict:
    """Flat ``check.metric`` figures: what gates test and baselines store (None when not measurable)."""
    done = analysed(result)
    attacks = result.tables.get("attacks", {})
    metrics: dict[str, Any] = {"accuracy.accuracy": result.accuracy}
    for check, kind in (("sufficiency", "sufficient"), ("necessity", "necessary"), ("completeness", "complete")):
        metrics[f"{check}.mean_fraction"] = _mean([r.explanation.fraction(kind) for r in done])
    for name in ("success_rate", "single_rate", "five_rate", "int16_survival_rate", "median_snr_db"):
        metrics[f"fourier_attack.{name}"] = attacks.get(name)
    stft = attacks.get("stft")
    if stft:
        metrics["stft_attack.success_rate"] = stft.get("success_rate")
        metrics["stft_attack.int16_survival_rate"] = stft.get("int16_survival_rate")
        for size, value in stft.get("per_frame_size", {}).items():
            metrics[f"stft_attack.rate_{size}"] = value
    if result.composition:
        metrics["composition.min_ratio"] = min(v["ratio"] for v in result.composition.values())
    alpha = _alpha_toward_peers(result)
    if alpha:
        metrics["transferability.min_alpha"] = min(alpha.values())
    queries = [r.explanation.queries for r in done]
    metrics["freqrex.mean_queries"] = _mean(queries)
    return _finite(metrics)


def _alpha_toward_peers(result: SpecResult) -> dict[str, float]:
    """α(this → peer) of sufficient signals for each peer (NaN rows become absent)."""
    tr = result.transferability
    if tr is None or result.name not in tr.models:
        return {}
    row = tr.alpha("sufficient")[tr.models.index(result.name)]
    return {peer: float(row[j]) for j, peer in enumerate(tr.models) if peer != result.name and np.isfinite(row[j])}


# --- verdicts ---

AGGREGATE_SETTINGS = {
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
        verdicts.append(_aggregate("accuracy", [_gate("accuracy", result.accuracy, ">=", checks["accuracy"]["min"])])
                        if not blocked() else Verdict("accuracy", "aggregate", False, blocked()))
    for record in result.samples:
        for check in ("sufficiency", "necessity", "completeness"):
            if check in checks:
                verdicts.append(_per_sample(check, record, spec))
        if "fourier_attack" in checks and "min_frequencies" in checks["fourier_attack"]:
            verdicts.append(_attack_sample(record, checks["fourier_attack"]["min_frequencies"]))
    aggregates = {
        "sufficiency": [("max_mean_fraction", "sufficiency.mean_fraction", "<=")],
        "fourier_attack": [(f"max_{m}", f"fourier_attack.{m}", "<=")
                           for m in ("success_rate", "single_rate", "five_rate", "int16_survival_rate")],
        "stft_attack": [(f"max_{m}", f"stft_attack.{m}", "<=")
                        for m in ("success_rate", "rate_256", "rate_512", "rate_1024", "int16_survival_rate")],
    }
    for check, rules in aggregates.items():
        settings = checks.get(check, {})
        gates = [_gate(metric.split(".", 1)[1], result.metrics.get(metric), op, settings[key])
                 for key, metric, op in rules if key in settings]
        if gates:
            verdicts.append(_aggregate(check, gates, _context(result, check)) if not blocked()
                            else Verdict(check, "aggregate", False, blocked()))
    if "composition" in checks:
        verdicts.append(_composition_verdict(result, checks["composition"]))
    if "transferability" in checks:
        verdicts.append(_transfer_verdict(result, checks["transferability"]))
    return verdicts


def _context(result: SpecResult, check: str) -> str:
    done = analysed(result)
    if check == "fourier_attack":
        wins = [r for r in done if r.fourier and r.fourier.success]
        detail = ", ".join(f"{r.sample.id}: {r.fourier.n_frequencies} freq {r.fourier.mutation}" for r in wins[:5])
        return f" ({len(wins)}/{len(done)} clips flipped{': ' + detail if detail else ''})"
    if check == "stft_attack":
        return f" (over {len([r for r in done if r.fourier and r.fourier.success])} successful Fourier attacks)"
    return f" (over {len(done)} analysed clips)"


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
        tol = 0.5 * 10 ** (-spec.freqrex.decimals) + 1e-6
        got = fact.get("target_confidence")
        ok = got is not None and fact.get("label") == e.target and abs(got - e.confidence) <= tol
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
    if "transferability" in result.cross_skipped:
        return Verdict("transferability", "aggregate", None,
                       f"transferability: {result.cross_skipped['transferability']}")
    if not result.spec.peers:
        return Verdict("transferability", "aggregate", None, "transferability: the spec names no peers")
    gates = []
    if "min_alpha" in settings:
        gates += [_gate(f"alpha[{p}]", v, ">=", settings["min_alpha"]) for p, v in sorted(_alpha_toward_peers(result).items())]
    if not settings.get("flat_earther", False):
        flat = result.name in set(getattr(result.transferability, "flat_earthers", ()) or ())
        gates.append(_gate("flat_earther", int(flat), "<=", 0))
    return _aggregate("transferability", gates) if gates else Verdict("transferability", "aggregate", True, "computed")


from .runfile import write_results  # noqa: E402  (re-exported: audit.write_results is the documented entry)
