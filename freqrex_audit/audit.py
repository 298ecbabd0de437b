"""Run one model spec: clips → predictions → explanations → attacks → aggregates, gates and verdicts.

:func:`run_spec` does the work through ONE :class:`QueryEngine` per model (so every model query is
counted) and the result :class:`~freqrex_audit.cache.Cache`; :mod:`freqrex_audit.aggregates` sums the
clips up, :func:`~freqrex_audit.gates.evaluate` turns a result into verdicts (one per pytest item), and
:mod:`freqrex_audit.runfile` writes them as ``results.json``.
A clip that cannot be loaded or analysed becomes a ``skipped`` / ``error`` sample with its reason;
it never stops the audit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

import numpy as np

from . import aggregates, deadline
from .adapters import load_classifier
from .audio import AudioError, validate_waveform
from .cache import Cache, hash_array, make_key
from .classifier import (Classifier, ClassifierTimeout, QueryEngine, cached_probabilities, describe_exception,
                         model_info)
from .datasets import MAX_CLIP_SECONDS, Sample, list_samples, read_clip
from .executors import ClipOutcome, current_executor
from .input_window import cut_window, expand_windows
from .engine import Explanation, FourierAttack, STFTAttack, explain, fourier_attack, stft_attack
from .gates import evaluate, planned_items  # noqa: F401  (re-exported)
from .records import SampleRecord, SpecResult, Verdict, analysed  # noqa: F401  (re-exported)
from .results import from_jsonable, to_jsonable
from .runfile import write_results  # noqa: F401  (re-exported: audit.write_results is the documented entry)
from .specs import Spec

__all__ = ["SampleRecord", "SpecResult", "Verdict", "run_spec", "evaluate", "analysed", "planned_items",
           "write_results"]

PHASES = ("predict", "original", "responsibility", "subsets", "verify", "fourier_attack", "stft_attack", "composition",
          "transferability")
STAGES = frozenset({"predict", "explain", "verify", "fourier", "stft", "cross"})  # what run_spec may compute


# --- the per-sample pipeline ---------------------------------------------------------------------------

class _Runner:
    def __init__(self, spec: Spec, clf: Classifier, cache: Cache, stages: frozenset[str] = STAGES):
        self.spec = spec
        self.stages = stages
        self.clf = clf
        self.engine = QueryEngine(clf, batch_size=spec.batch_size, timeout_s=spec.timeout_s,
                                  precision=spec.model.get("precision", "fp32"))
        self.cache = cache if clf.fingerprint else Cache(None)
        self.fp = clf.fingerprint
        self.queries_by_phase: dict[str, int] = {p: 0 for p in PHASES}

    def cached(self, phase: str, parts: tuple, compute, encode, decode):
        key = make_key(phase, self.fp, *parts)
        hit = self.cache.load(key, decode)  # a bad entry is counted (cache_stats.invalid) and recomputed
        if hit is not None:
            return hit
        value = compute()
        arrays: dict[str, np.ndarray] = {}
        self.cache.put(key, encode(value, arrays), arrays)
        return value

    def predict(self, audio: str, x: np.ndarray) -> np.ndarray:
        probs = self.cached("predict", (audio,), lambda: self.engine.query(x[None])[0],
                            lambda p, a: {"probs": [float(v) for v in p]},
                            lambda d, a: cached_probabilities(d["probs"], len(self.clf.labels)))
        return probs

    def run(self, sample: Sample, x: np.ndarray, notes: list[str] | None = None) -> SampleRecord:
        audio = hash_array(x)
        cfg = self.spec.freqrex.to_dict()
        labels = self.clf.labels
        q0 = self.engine.queries
        notes = list(notes or [])
        fallback = self.engine.check_precision(x)  # reduced precision only where it agrees with fp32 on this clip
        if fallback:
            notes.append(fallback)
        if self.engine.autocast is not None:  # results at reduced precision are cached apart from fp32 ones
            audio = f"{audio}-{self.engine.precision}"
        probs = self.predict(audio, x)
        self.queries_by_phase["predict"] += self.engine.queries - q0
        top = int(np.argmax(probs))
        record = SampleRecord(sample, "ok", predicted=labels[top], confidence=float(probs[top]), notes=notes)
        if labels[top] != sample.label:
            record.status = "misclassified"
            record.reason = f"predicted {labels[top]!r} ({probs[top]:.2f}), labelled {sample.label!r}"
            if self.spec.dataset.only_correct:
                record.reason += "; not analysed (dataset.only_correct)"
                return record
        if not self.stages & (STAGES - {"predict"}):
            record.notes.append("not explained: no selected item needs more than the prediction")
            return record
        q0 = self.engine.queries
        exp = self.cached("explain", (audio, cfg), lambda: explain(self.engine, x, self.spec.freqrex),
                          lambda e, a: e.to_dict(a), lambda d, a: Explanation.from_dict(d, a))
        record.explanation = exp
        if self.engine.queries > q0:
            for phase, count in exp.queries_by_phase.items():
                self.queries_by_phase[phase] = self.queries_by_phase.get(phase, 0) + count
        if "verify" in self.stages:
            q0 = self.engine.queries
            record.verification = self.cached("verify", (audio, cfg), lambda: verify(self.engine, exp),
                                              lambda v, a: v, lambda d, a: d)
            self.queries_by_phase["verify"] += self.engine.queries - q0
        if not self.stages & {"fourier", "stft"}:
            return record
        q0 = self.engine.queries
        attack_cfg = self.spec.attack.to_dict()
        record.fourier = self.cached("fourier", (audio, cfg, attack_cfg),
                                     lambda: fourier_attack(self.engine, x, exp, self.spec.attack),
                                     lambda f, a: f.to_dict(a), lambda d, a: FourierAttack.from_dict(d, a))
        self.queries_by_phase["fourier_attack"] += self.engine.queries - q0
        if self.spec.needs_stft and "stft" in self.stages:
            smallest = min(self.spec.stft_attack.frame_sizes)
            if len(x) < smallest:  # Algorithm 3 has no frame to change; the STFT rates leave the clip out
                record.notes.append(f"{len(x)} samples, shorter than the smallest STFT frame ({smallest}): "
                                    f"no STFT attack")
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


def _audit_sample(runner: _Runner, sample: Sample, rate: int) -> ClipOutcome:
    """One clip through the pipeline (never raises): its record, and the spec's error if the model hung."""
    clf, spec = runner.clf, runner.spec
    if sample.problem:  # first: why the clip cannot be read at all (outside the roots, no label…)
        return ClipOutcome(SampleRecord(sample, "skipped", sample.problem))
    if sample.label not in clf.labels:
        return ClipOutcome(SampleRecord(sample, "skipped", f"label {sample.label!r} is not one of the model's "
                                                           f"labels (map it with dataset.label_map)"))
    try:
        clip = read_clip(sample, rate, spec.dataset.clip_seconds)
        x = clip.samples
        if rate != clf.sample_rate:
            from .audio import resample

            x = resample(x, rate, clf.sample_rate)
        x, cropped = cut_window(x, sample, clf)  # audit what the model hears (input_window.py)
        clip = dataclasses.replace(clip, notes=(*clip.notes, cropped)) if cropped else clip
        x = validate_waveform(x, sample.path)  # what is left after resampling and cropping is still a clip
    except AudioError as exc:
        return ClipOutcome(SampleRecord(sample, "skipped", exc.problem))
    if runner.engine.hung:
        return ClipOutcome(SampleRecord(sample, "skipped", f"not analysed: {runner.engine.hung}"))
    try:
        deadline.check("this clip")
        return ClipOutcome(runner.run(sample, x, list(clip.notes)))
    except deadline.DeadlineReached as exc:  # no new model work; what this clip did is dropped, not half-used
        return ClipOutcome(SampleRecord(sample, "skipped", str(exc), notes=list(clip.notes)))
    except ClassifierTimeout as exc:  # the model hangs: fail the spec, keep what was done
        return ClipOutcome(SampleRecord(sample, "error", str(exc), notes=list(clip.notes)), f"model hung: {exc}")
    except Exception as exc:  # noqa: BLE001 - one clip never kills the audit
        return ClipOutcome(SampleRecord(sample, "error", describe_exception(exc), notes=list(clip.notes)))


def _load(spec: Spec, device: str) -> Classifier:
    """The spec's model, within the session deadline: no load starts once it has passed, and a load that ends
    after it (a big model, a slow factory) is closed and reported (:class:`~freqrex_audit.deadline.DeadlineReached`
    with how long it took), so its clips are not measured and its items are interrupted."""
    deadline.check("loading the model")
    began = time.perf_counter()
    try:
        clf = load_classifier(spec.model, device=device, base_dir=spec.base_dir)
    except deadline.DeadlineReached as exc:  # the load's self-check, or a subprocess load, met the deadline
        if "while loading" in str(exc):
            raise
        clf = None
    if clf is None or deadline.passed():
        close = getattr(clf, "close", None)
        if callable(close):
            close()  # a subprocess model's process is not left running
        raise deadline.reached(f"while loading the model (the load took {time.perf_counter() - began:.1f} s)")
    return clf


def run_spec(spec: Spec, device: str = "auto", cache: Cache | None = None, samples_limit: int | None = None,
             seed: int | None = None, cross: bool = True, stages: frozenset[str] | None = None,
             progress: Callable[[int, int, int], None] | None = None) -> SpecResult:
    """Audit one spec. ``samples_limit`` and ``seed`` override the spec's; ``cross`` runs composition and
    transferability (which need peers' results) — peers are audited with ``cross=False``. ``stages`` (a
    subset of :data:`STAGES`, default all) limits the work to what the selected items need; the verdicts of
    the items it starves are computed from what is there and must not be reported as run. ``progress`` is
    called with (clips done, clips in all, model queries so far) after every clip."""
    stages = STAGES if stages is None else frozenset(stages)
    began = time.perf_counter()
    spec = spec.with_seed(seed).with_limit(samples_limit)
    cache = cache or Cache(None)
    hits0, misses0, corrupt0, invalid0 = cache.hits, cache.misses, cache.corrupt, cache.invalid
    try:
        samples = list_samples(spec.dataset)
        sample_error = None
    except Exception as exc:
        samples, sample_error = [], f"dataset cannot be read: {exc}"
    try:
        clf = _load(spec, device)
        error = sample_error
    except deadline.DeadlineReached as exc:
        clf, error = None, str(exc)
    except Exception as exc:  # noqa: BLE001 - any loader failure is reported as the model check's failure
        clf, error = None, f"model did not load: {type(exc).__name__}: {exc}"
    records: list[SampleRecord] = []
    runner = None
    if clf is not None and sample_error is None:
        if spec.dataset.windows == "all":  # every input window of a longer clip is a sample of its own
            samples = expand_windows(samples, clf, spec.dataset.clip_seconds or MAX_CLIP_SECONDS)
        runner = _Runner(spec, clf, cache, stages)
        rate = spec.dataset.sample_rate or clf.sample_rate
        executor = current_executor()
        outcomes = (executor.run_clips(spec, device, cache.root, samples) if executor and len(samples) > 1
                    else (_audit_sample(runner, sample, rate) for sample in samples))
        if progress is not None:
            progress(0, len(samples), runner.engine.queries)
        for done, outcome in enumerate(outcomes, start=1):  # the generator computes each clip on demand
            records.append(outcome.record)
            # serial: stop reading clips; an executor's outcomes are all computed, each cut (or not) by its
            # worker's own deadline, so the clips it measured keep their verdicts
            if not outcome.remote and len(records) < len(samples) and deadline.passed():
                records += [SampleRecord(s, "skipped", f"not measured: {deadline.message()} before this clip")
                            for s in samples[len(records):]]
                break
            error = outcome.hung or error
            if outcome.remote:
                outcome.add_counts(runner, cache)
            if progress is not None:
                progress(done, len(samples), runner.engine.queries)
        error = error or _model_failure(clf, records)
    else:
        records = [SampleRecord(s, "skipped", error or "not analysed") for s in samples]
    result = SpecResult(
        spec=spec,
        model_info=model_info(clf, cache),
        samples=records, error=error, accuracy=aggregates.accuracy(records), tables={}, figures={}, metrics={},
        seconds=0.0, queries=0, queries_by_phase={}, cache_stats={},
    )
    result.tables = aggregates.tables(result)
    result.figures = aggregates.figures(result)
    if cross and "cross" in stages and runner is not None and not error:
        for check, run_check in (("composition", lambda: _composition(result, runner)),
                                 ("transferability", lambda: _transferability(result, runner, device, cache,
                                                                              samples_limit, seed))):
            if check in spec.checks:
                try:
                    run_check()
                except Exception as exc:  # noqa: BLE001 - a failing cross check is that check's verdict
                    result.cross_failed[check] = describe_exception(exc)
    result.rates = aggregates.rates(result)
    result.metrics = aggregates.metrics(result)
    result.verdicts = deadline_verdicts(result, evaluate(result))
    # the spec's own work only: what its peers cost (computed here for transferability) is in peer_work
    peers = result.peer_work.values()
    result.seconds = time.perf_counter() - began - sum(p["seconds"] for p in peers)
    result.queries = runner.engine.queries if runner else 0
    result.queries_by_phase = {k: v for k, v in (runner.queries_by_phase if runner else {}).items() if v}
    cache_now = {"hits": cache.hits - hits0, "misses": cache.misses - misses0,
                 "corrupt": cache.corrupt - corrupt0, "invalid": cache.invalid - invalid0}
    result.cache_stats = {k: v - sum(p["cache"].get(k, 0) for p in peers) for k, v in cache_now.items()}
    result.model_info = model_info(clf, cache)  # again: warnings raised during the run (cache not writable)
    return result


def deadline_verdicts(result: SpecResult, verdicts: list[Verdict]) -> list[Verdict]:
    """When the session deadline cut this spec short, every verdict that rests on what was not measured is
    ``interrupted`` (never passed): the cut clips' items, the aggregates and cross checks, and ``model[load]``
    when the model was never loaded. Items of clips measured in full keep their verdicts."""
    cut = {r.sample.id for r in result.samples if deadline.cut_short(r.reason)}
    never_loaded = deadline.cut_short(result.error)
    cross = {check for check, why in {**result.cross_skipped, **result.cross_failed}.items() if deadline.REASON in why}
    if not cut and not never_loaded and not cross:
        return verdicts
    deadline.mark_hit()  # a worker's cut is this session's too (run.deadline.hit, the exit status)
    from .records import Outcome

    done = len(result.samples) - len(cut)
    story = f"{deadline.message()} after {done} of {len(result.samples)} clips of this spec were measured"
    out = []
    for v in verdicts:
        if never_loaded or v.key in cut or v.check in cross or (cut and v.key == "aggregate"):
            v = dataclasses.replace(v, outcome=Outcome.INTERRUPTED, message=f"interrupted: {story}; computed "
                                    f"from what was measured: {v.message}")
        out.append(v)
    return out


def _model_failure(clf: Classifier, records: list[SampleRecord]) -> str | None:
    """When every clip the model was asked about failed, the model (e.g. NaN or wrongly shaped output),
    not the clips, is broken: that is the spec's error, so ``model[load]`` and the aggregates say so."""
    tried = [r for r in records if r.status != "skipped"]
    if not tried or any(r.status != "error" for r in tried):
        return None
    return (f"model {clf.name!r} failed on every clip ({len(tried)} of {len(records)}); "
            f"{tried[0].sample.id}: {tried[0].reason}")


# --- cross-model checks: the only place that touches engine.composition / engine.transfer ----------------

def _composition(result: SpecResult, runner: _Runner) -> None:
    """Composition ratio per class (Table 2), from the sufficient signals of the analysed clips, and the
    transferability paper's §5.1–5.2 figures; each class keeps its composite waveform and the clips in it
    (results.json's ``composition``; the run folder's waveform sidecar writes it as a file)."""
    from .engine.composition import compose_explanations, composite_spectra, entropy_tests

    records = analysed(result)
    exps = [r.explanation for r in records]
    key = ("composite-waveform", sorted(hash_array(e.waveform) for e in exps), result.spec.freqrex.to_dict())
    q0 = runner.engine.queries

    def compute() -> dict:
        found = compose_explanations(runner.engine, exps, kind="sufficient")
        spectra = composite_spectra(found, exps)  # the transferability paper's §5.1-5.2
        offered: dict[str, list[str]] = {}  # the clips compose_explanations offered per class, in its order
        for r in records:
            if r.explanation.bins("sufficient") is not None:
                offered.setdefault(r.explanation.target_label, []).append(r.sample.id)
        labels = runner.clf.labels
        return {str(c): {"ratio": float(r.ratio), "kept": len(r.kept), "available": int(r.available),
                         "kept_ids": [offered[c][i] for i in r.kept], "sample_rate": int(r.sample_rate),
                         "composite": r.composite if r.kept else None,
                         "composite_label": None if r.composite_label is None else labels[r.composite_label],
                         "composite_confidence": r.composite_confidence, **spectra[c]}
                for c, r in found.items()}

    result.composition = runner.cached("composition", key, compute, lambda v, a: to_jsonable(v, a, "composition"),
                                       lambda d, a: from_jsonable(d, a))
    runner.queries_by_phase["composition"] += runner.engine.queries - q0
    result.tables["composition_by_class"] = {c: v["ratio"] for c, v in sorted(result.composition.items())}
    result.tables["composite_entropy_tests"] = entropy_tests(result.composition)


def _transferability(result: SpecResult, runner: _Runner, device: str, cache: Cache,
                     samples_limit: int | None, seed: int | None) -> None:
    """α/β toward the spec's peers (their results come from the cache when already computed)."""
    from .engine.transfer import transfer_signals, transferability
    from .specs import find_peer, load_spec

    spec = result.spec
    classifiers = {spec.name: runner.clf}
    signals = {spec.name: transfer_signals([r.explanation for r in analysed(result)])}
    for peer in spec.peers:
        began, hits0, misses0, corrupt0, invalid0 = (time.perf_counter(), cache.hits, cache.misses, cache.corrupt,
                                                     cache.invalid)
        peer_result = run_spec(load_spec(find_peer(spec, peer)), device, cache, samples_limit, seed, cross=False)
        if not peer_result.error:
            classifiers[peer] = _load(peer_result.spec, device)
        result.peer_work[peer] = {  # the peer's work, never charged to this spec's own seconds / queries
            "seconds": time.perf_counter() - began, "queries": peer_result.queries,
            "cache": {"hits": cache.hits - hits0, "misses": cache.misses - misses0,
                      "corrupt": cache.corrupt - corrupt0, "invalid": cache.invalid - invalid0}}
        if peer_result.error:
            result.cross_skipped["transferability"] = f"peer {peer!r}: {peer_result.error}"
            return
        signals[peer] = transfer_signals([r.explanation for r in analysed(peer_result)])
    q0 = runner.engine.queries
    result.transferability = transferability(classifiers, signals, timeout_s=spec.timeout_s)
    # α/β queries: those to this spec's model are its own work, those to a peer's model that peer's
    runner.engine.queries = q0 + result.transferability.queries.get(spec.name, 0)
    runner.queries_by_phase["transferability"] = result.transferability.queries.get(spec.name, 0)
    for peer in spec.peers:
        result.peer_work[peer]["queries"] += result.transferability.queries.get(peer, 0)
