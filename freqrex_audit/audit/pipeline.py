"""The per-clip pipeline: one clip through prediction, explanation, verification and the attacks.

The serial loop of :func:`~freqrex_audit.audit.run.run_spec` and every executor worker
(:mod:`~freqrex_audit.audit.executors`) run clips through these same functions, so where a clip runs
never changes its numbers: :func:`load_model` (within the session deadline), a :class:`ClipRunner`
per model, :func:`audit_clip` per clip (never raises), returning a :class:`ClipOutcome` with the work it
cost.
"""

from __future__ import annotations

import contextlib
import copy
import dataclasses
import threading
import time
from dataclasses import dataclass, field
from typing import Any, Callable

import numpy as np

from ..adapters.loader import load_classifier
from ..audio.io import AudioError, validate_waveform
from ..engine import Explanation, FourierAttack, STFTAttack, explain, fourier_attack, stft_attack
from ..engine.responsibility import STOP_REASONS
from ..engine.noise_floor import NoiseFloor, noise_floor
from ..engine.peers import PeerAttack, peer_attack
from ..models.classifier import (Classifier, ClassifierTimeout, QueryEngine, cached_probabilities,
                                 describe_exception)
from ..models.input_window import cut_window
from ..models.origins import AlreadyHung
from ..runtime import deadline
from ..specs.loader import Spec
from .cache import Cache, hash_array, make_key
from .datasets import Sample, near_labels, read_clip
from .records import SampleRecord
from .stages import STAGES

__all__ = ["PHASES", "WorkCounts", "ClipOutcome", "ClipRunner", "audit_clip", "load_model", "verify"]


PHASES = ("predict", "original", "responsibility", "subsets", "verify", "explainers", "noise_floor",
          "fourier_attack", "peer_attack", "stft_attack", "composition", "transferability")
"""Where a spec's model queries go, as ``timings.per_spec.*.queries_by_phase`` names them."""


@dataclass
class WorkCounts:
    """Model queries (in all and per phase) and cache counts: what some work cost, to be added to a total."""

    queries: int = 0
    queries_by_phase: dict[str, int] = field(default_factory=dict)
    cache: dict[str, int] = field(default_factory=dict)
    calls: int = 0  # model calls through the spec's QueryEngine (queries / calls: the mean batch filled)

    def add(self, other: "WorkCounts") -> None:
        self.queries += other.queries
        self.calls += other.calls
        for phase, count in other.queries_by_phase.items():
            self.queries_by_phase[phase] = self.queries_by_phase.get(phase, 0) + count
        for name, count in other.cache.items():
            self.cache[name] = self.cache.get(name, 0) + count


@dataclass
class ClipOutcome:
    """One clip's result: its record, the spec's error when the model hung, and (from an executor's worker)
    the work the worker spent on it, which the caller adds to the spec's totals, and the cache entries it
    computed, ``(key, data, arrays)``, which the driver stores (workers never write the cache)."""

    record: SampleRecord
    hung: str | None = None
    remote: bool = False
    counts: WorkCounts = field(default_factory=WorkCounts)
    entries: list = field(default_factory=list)


class ClipRunner:
    """One spec's model behind one QueryEngine and the result cache: runs clips through the stages the
    selected items need (:meth:`run`), counting queries per phase."""

    def __init__(self, spec: Spec, clf: Classifier, cache: Cache, stages: frozenset[str] = STAGES):
        self.spec = spec
        self.stages = stages
        self.clf = clf
        self.engine = QueryEngine(clf, batch_size=spec.batch_size, timeout_s=spec.timeout_s,
                                  precision=spec.model.get("precision", "fp32"), pad_calls=spec.pad_calls)
        self.cache = cache if clf.fingerprint else Cache(None)
        self.fp = clf.fingerprint
        self.queries_by_phase: dict[str, int] = {p: 0 for p in PHASES}
        self.partial: SampleRecord | None = None
        self.stage = "predicting"
        self.kit = None  # the other explainers (audit/explainers.py), when the spec asks for them
        self.apart = contextlib.nullcontext  # stages with process-wide state run inside it (alone, in lockstep)
        self.lockstep = None  # the spec's clips' Lockstep, when they ran side by side (audit/in_step.py)
        self._cache_lock = threading.Lock()  # clips in lockstep share the cache and its counts
        self.explained_ids: frozenset[str] | None = None  # explainers.clips: the clips they run on
        if spec.explainers is not None and "explainers" in stages:
            from .explainers import ExplainerKit, explained_clip_ids

            self.kit = ExplainerKit(spec.explainers, clf, self.cache)
            self.explained_ids = explained_clip_ids(spec)

    def fork(self, engine: QueryEngine, apart: Callable[[], Any]) -> "ClipRunner":
        """A runner for one clip thread in lockstep: its own engine (``engine``, a lockstep view), per-clip state
        and phase counts, running stages with process-wide state inside ``apart()``; the rest is shared."""
        twin = copy.copy(self)
        twin.engine, twin.apart = engine, apart
        twin.queries_by_phase = {p: 0 for p in PHASES}
        twin.partial, twin.stage = None, "predicting"
        return twin

    def cached(self, phase: str, parts: tuple, compute, encode, decode):
        """``compute()``'s value for ``(phase, model, *parts)``, from the cache when it holds it."""
        key = make_key(phase, self.fp, *parts)
        with self._cache_lock:
            hit = self.cache.load(key, decode)  # a bad entry is counted (cache_stats.invalid) and recomputed
        if hit is not None:
            return hit
        value = compute()
        arrays: dict[str, np.ndarray] = {}
        encoded = encode(value, arrays)
        with self._cache_lock:
            self.cache.put(key, encoded, arrays)
        return value

    def predict(self, audio: str, x: np.ndarray) -> np.ndarray:
        """The model's probabilities for the clip (``audio``: its hash)."""
        probs = self.cached("predict", (audio,), lambda: self.engine.query(x[None])[0],
                            lambda p, a: {"probs": [float(v) for v in p]},
                            lambda d, a: cached_probabilities(d["probs"], len(self.clf.labels)))
        return probs

    def run(self, sample: Sample, x: np.ndarray, notes: list[str] | None = None) -> SampleRecord:
        """One readable clip through prediction, explanation, verification and the attacks (as selected)."""
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
        pad = self.engine.pad_calls
        if pad != "off":  # so are results from padded calls (the rows a call computes)
            audio = f"{audio}-{'pairs' if pad == 'pairs' else f'pad{self.spec.batch_size}'}"
        probs = self.predict(audio, x)
        self.queries_by_phase["predict"] += self.engine.queries - q0
        top = int(np.argmax(probs))
        record = SampleRecord(sample, "ok", predicted=labels[top], confidence=float(probs[top]), notes=notes)
        self.partial = record  # what an error later in this clip's analysis keeps (its prediction)
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
        self.stage = "explaining"
        exp = self.cached("explain", (audio, cfg), lambda: explain(self.engine, x, self.spec.freqrex),
                          lambda e, a: e.to_dict(a), lambda d, a: Explanation.from_dict(d, a))
        record.explanation = exp
        if exp.converged is False:  # results (samples[].notes) and the report say so beside the clip
            record.notes.append(f"responsibility map {STOP_REASONS.get(exp.stopped, exp.stopped)} "
                                f"({exp.iterations} iterations, {exp.empty_iterations} without a passing mutant)")
        if self.engine.queries > q0:
            for phase, count in exp.queries_by_phase.items():
                self.queries_by_phase[phase] = self.queries_by_phase.get(phase, 0) + count
        if "verify" in self.stages:
            q0 = self.engine.queries
            self.stage = "verifying the subsets"
            record.verification = self.cached("verify", (audio, cfg), lambda: verify(self.engine, exp),
                                              lambda v, a: v, lambda d, a: d)
            self.queries_by_phase["verify"] += self.engine.queries - q0
        if self.kit is not None and (self.explained_ids is None or sample.id in self.explained_ids):
            q0 = self.engine.queries
            self.stage = "in the other explainers"
            with self.apart():  # gradients through the model's own module, L-MAC's decoder: one clip at a time
                record.methods = self.cached("explainers", (audio, cfg, self.kit.identity()),
                                             lambda: self.kit.explain(self.engine, x, exp), _encode_methods,
                                             _decode_methods)
            self.queries_by_phase["explainers"] += self.engine.queries - q0
        if not self.stages & {"fourier", "stft"}:
            return record
        attack_cfg = self.spec.attack.to_dict()
        if self.spec.attack.noise_draws:  # the noise floor first: is the clip fragile to plain noise?
            q0 = self.engine.queries
            self.stage = "in the noise floor"
            record.noise = self.cached(
                "noise", (audio, attack_cfg),
                lambda: noise_floor(self.engine, x, exp.target, self.spec.attack.min_snr_db,
                                    self.spec.attack.noise_draws, self.spec.attack.min_margin, self.spec.attack.seed),
                lambda f, a: f.to_dict(a), lambda d, a: NoiseFloor.from_dict(d, a))
            self.queries_by_phase["noise_floor"] += self.engine.queries - q0
        q0 = self.engine.queries
        self.stage = "in the Fourier attack"
        record.fourier = self.cached("fourier", (audio, cfg, attack_cfg),
                                     lambda: fourier_attack(self.engine, x, exp, self.spec.attack),
                                     lambda f, a: f.to_dict(a), lambda d, a: FourierAttack.from_dict(d, a))
        self.queries_by_phase["fourier_attack"] += self.engine.queries - q0
        peer = self.spec.checks.get("peer_attack")
        if peer is not None and "peer" in self.stages:
            # the same query count FreqReX used on this clip: its explanation and its attack
            budget = exp.queries + record.fourier.queries
            method, snr = peer.get("method", "hopskipjump"), peer.get("min_snr_db", self.spec.attack.min_snr_db)
            q0 = self.engine.queries
            with self.apart():  # ART's module is seeded for the attack's duration: one clip at a time
                record.peer = self.cached(
                    "peer", (audio, cfg, attack_cfg, method, budget, snr),
                    lambda: peer_attack(self.engine, x, exp.target, method, budget, self.spec.attack.min_margin, snr,
                                        self.spec.attack.seed),
                    lambda f, a: f.to_dict(a), lambda d, a: PeerAttack.from_dict(d, a))
            self.queries_by_phase["peer_attack"] += self.engine.queries - q0
        if self.spec.needs_stft and "stft" in self.stages:
            smallest = min(self.spec.stft_attack.frame_sizes)
            if len(x) < smallest:  # Algorithm 3 has no frame to change; the STFT rates leave the clip out
                record.notes.append(f"{len(x)} samples, shorter than the smallest STFT frame ({smallest}): "
                                    f"no STFT attack")
            q0 = self.engine.queries
            self.stage = "in the STFT attack"
            record.stft = self.cached("stft", (audio, cfg, attack_cfg, self.spec.stft_attack.to_dict()),
                                      lambda: stft_attack(self.engine, x, record.fourier, self.spec.stft_attack),
                                      lambda s, a: s.to_dict(a), lambda d, a: STFTAttack.from_dict(d, a))
            self.queries_by_phase["stft_attack"] += self.engine.queries - q0
        return record


def _encode_methods(methods: dict, arrays: dict) -> dict:
    return {name: m.to_dict(arrays, f"methods.{name}") for name, m in methods.items()}


def _decode_methods(data: dict, arrays: dict) -> dict:
    from ..engine.methods import MethodExplanation

    return {name: MethodExplanation.from_dict(d, arrays) for name, d in data.items()}


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


def audit_clip(runner: ClipRunner, sample: Sample, rate: int) -> ClipOutcome:
    """One clip through the pipeline (never raises): its record, and the spec's error if the model hung."""
    clf, spec = runner.clf, runner.spec
    if sample.problem:  # first: why the clip cannot be read at all (outside the roots, no label…)
        return ClipOutcome(SampleRecord(sample, "skipped", sample.problem))
    if sample.label not in clf.labels:
        near = near_labels(sample.label, list(clf.labels))
        hint = f"; did you mean {' or '.join(map(repr, near))}?" if near else ""
        row = f" (manifest line {sample.line})" if sample.line is not None else ""
        return ClipOutcome(SampleRecord(sample, "skipped", f"label {sample.label!r}{row} is not one of the model's "
                                                           f"labels{hint} (map it with dataset.label_map)"))
    try:
        clip = read_clip(sample, rate, spec.dataset.clip_seconds)
        x = clip.samples
        if rate != clf.sample_rate:
            from ..audio.io import resample

            x = resample(x, rate, clf.sample_rate)
        x, cropped = cut_window(x, sample, clf)  # audit what the model hears (input_window.py)
        clip = dataclasses.replace(clip, notes=(*clip.notes, cropped)) if cropped else clip
        x = validate_waveform(x, sample.path)  # what is left after resampling and cropping is still a clip
    except AudioError as exc:
        return ClipOutcome(SampleRecord(sample, "skipped", exc.problem))
    if runner.engine.hung:
        return ClipOutcome(SampleRecord(sample, "skipped", f"not analysed: {runner.engine.hung}"))
    runner.partial, runner.stage = None, "predicting"
    try:
        deadline.check("this clip")
        return ClipOutcome(runner.run(sample, x, list(clip.notes)))
    except deadline.DeadlineReached as exc:  # no new model work; what this clip did is dropped, not half-used
        return ClipOutcome(SampleRecord(sample, "skipped", str(exc), notes=list(clip.notes)))
    except AlreadyHung:  # the model hung on another clip's call (clips in lockstep): this one was not analysed
        return ClipOutcome(SampleRecord(sample, "skipped", f"not analysed: {runner.engine.hung}"))
    except ClassifierTimeout as exc:  # the model hangs: fail the spec, keep what was done
        return ClipOutcome(_errored(runner, sample, str(exc), clip.notes), f"model hung: {exc}")
    except Exception as exc:  # noqa: BLE001 - one clip never kills the audit
        return ClipOutcome(_errored(runner, sample, describe_exception(exc), clip.notes))


def _errored(runner: ClipRunner, sample: Sample, reason: str, notes) -> SampleRecord:
    """An errored clip's record; a prediction made before the error is kept (accuracy can count the clip,
    every analysis rate counts it as not measured)."""
    part = runner.partial if runner.partial is not None and runner.partial.sample is sample else None
    return SampleRecord(sample, "error", f"{reason} ({runner.stage})", predicted=part.predicted if part else None,
                        confidence=part.confidence if part else None, notes=list(part.notes if part else notes))


def load_model(spec: Spec, device: str) -> Classifier:
    """The spec's model, within the session deadline: no load starts once it has passed, and a load that ends
    after it (a big model, a slow factory) is closed and reported (:class:`~freqrex_audit.runtime.deadline.DeadlineReached`
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
