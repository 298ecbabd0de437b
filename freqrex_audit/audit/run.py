"""Run one model spec: clips → predictions → explanations → attacks → aggregates, gates and verdicts.

:func:`run_spec` does the work through ONE :class:`~freqrex_audit.models.classifier.QueryEngine` per model (so
every model query is counted) and the result :class:`~freqrex_audit.audit.cache.Cache`; each clip goes through
:mod:`~freqrex_audit.audit.pipeline` (here or on an executor's worker), :mod:`~freqrex_audit.audit.aggregates`
sums the clips up, :mod:`~freqrex_audit.audit.cross` runs the checks that need several clips or models, and
:func:`~freqrex_audit.audit.gates.evaluate` turns the result into verdicts (one per pytest item).
A clip that cannot be loaded or analysed becomes a ``skipped`` / ``error`` sample with its reason;
it never stops the audit.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from typing import Any

from ..models.classifier import Classifier, describe_exception, model_info
from ..models.input_window import expand_windows
from ..runtime import deadline
from ..specs.loader import Spec
from . import aggregates, cross as cross_checks
from .cache import Cache
from .datasets import MAX_CLIP_SECONDS, list_samples
from .executors import current_executor
from .gates import evaluate
from .in_step import clips_in_step
from .pipeline import ClipRunner, WorkCounts, audit_clip, load_model
from .records import Outcome, SampleRecord, SpecResult, Verdict
from .stages import NEEDS, STAGES

__all__ = ["run_spec", "deadline_verdicts", "model_failure", "in_step"]


def run_spec(spec: Spec, device: str = "auto", cache: Cache | None = None, samples_limit: int | None = None,
             seed: int | None = None, cross: bool = True, stages: frozenset[str] | None = None,
             progress: Callable[[int, int, int], None] | None = None,
             progress_for: Callable[[str], Any] | None = None) -> SpecResult:
    """Audit one spec. ``samples_limit`` and ``seed`` override the spec's; ``cross`` runs composition and
    transferability (which need peers' results) — peers are audited with ``cross=False``. ``stages`` (a
    subset of :data:`~freqrex_audit.audit.stages.STAGES`, default all) limits the work to what the selected
    items need; the verdicts of the items it starves are computed from what is there and must not be reported
    as run. ``progress`` is called with (clips done, clips in all, model queries so far) after every clip, and
    its ``tick(queries)`` (when it has one) after every model call; ``progress_for(name)`` makes the progress of a
    peer this spec computes for transferability (a line of its own: the peer's work is never this spec's)."""
    stages = STAGES if stages is None else frozenset(stages)
    began = time.perf_counter()
    spec = spec.with_seed(seed).with_limit(samples_limit)
    cache = cache or Cache(None)
    cache0 = cache.counts()
    remote = WorkCounts()  # what executor workers spent (their engines and caches are not ours)
    try:
        samples = list_samples(spec.dataset)
        sample_error = None
    except Exception as exc:
        samples, sample_error = [], f"dataset cannot be read: {exc}"
    try:
        clf = load_model(spec, device)
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
        runner = ClipRunner(spec, clf, cache, stages)
        if runner.kit is not None:  # once, before any clip: executor workers then find the decoder in the cache
            runner.kit.prepare()
        rate = spec.dataset.sample_rate or clf.sample_rate
        executor = current_executor()
        shown = [0]  # clips done, as the progress line last said (clips in lockstep finish out of order)

        def count_done(n: int) -> None:
            """Tell the progress line when more clips are done (never the same count twice: "done" once)."""
            if progress is not None and n > shown[0]:
                shown[0] = n
                progress(n, len(samples), runner.engine.queries + remote.queries)

        if executor and len(samples) > 1:
            outcomes = executor.run_clips(spec, device, cache.root, samples, stages=stages)
        elif in_step(spec, runner, samples):
            outcomes = clips_in_step(runner, samples, rate, spec.clips_at_once, on_done=count_done)
        else:
            outcomes = (audit_clip(runner, sample, rate) for sample in samples)
        if progress is not None:
            progress(0, len(samples), runner.engine.queries)
            tick = getattr(progress, "tick", None)
            if tick is not None:
                runner.engine.on_batch = lambda queries: tick(queries + remote.queries)
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
                remote.add(outcome.counts)
            count_done(done)
        if runner.lockstep is not None:
            outcomes.close()  # a loop cut by the deadline stops the clip threads now, not when collected
        error = error or model_failure(clf, records)
        runner.engine.on_batch = None
        close = getattr(progress, "close", None)
        if close is not None:
            close()  # the spec's line ends before a peer's line starts
    else:
        records = [SampleRecord(s, "skipped", error or "not analysed") for s in samples]
    result = SpecResult(
        spec=spec,
        model_info=model_info(clf, cache),
        samples=records, error=error, accuracy=aggregates.accuracy(records), tables={}, figures={}, metrics={},
        seconds=0.0, queries=0, queries_by_phase={}, cache_stats={},
    )
    if runner is not None and runner.kit is not None:
        result.explainer_notes = [*runner.kit.notes, *runner.kit.problems.values()]
    result.tables = aggregates.tables(result)
    result.figures = aggregates.figures(result)
    if cross and "cross" in stages and runner is not None and not error:
        for check, run_check in (("composition", lambda: cross_checks.composition(result, runner)),
                                 ("transferability", lambda: cross_checks.transferability(
                                     result, runner, lambda peer: _audit_peer(peer, spec.name, device, cache,
                                                                              samples_limit, seed, progress_for),
                                     device, cache))):
            if check in spec.checks:
                try:
                    run_check()
                except Exception as exc:  # noqa: BLE001 - a failing cross check is that check's verdict
                    result.cross_failed[check] = describe_exception(exc)
    result.rates = ran_only(aggregates.rates(result), stages)
    result.metrics = ran_only(aggregates.metrics(result), stages)
    result.verdicts = deadline_verdicts(result, evaluate(result))
    # the spec's own work only: what its peers cost (computed here for transferability) is in peer_work
    own = WorkCounts(runner.engine.queries if runner else 0, dict(runner.queries_by_phase if runner else {}),
                     {k: v - cache0[k] for k, v in cache.counts().items()}, runner.engine.calls if runner else 0)
    own.add(remote)
    peers = result.peer_work.values()
    result.seconds = time.perf_counter() - began - sum(p["seconds"] for p in peers)
    result.queries = own.queries
    result.calls = own.calls
    result.batching = runner.lockstep.facts() if runner is not None and runner.lockstep is not None else None
    result.queries_by_phase = {k: v for k, v in own.queries_by_phase.items() if v}
    result.cache_stats = {k: v - sum(p["cache"].get(k, 0) for p in peers) for k, v in own.cache.items()}
    result.model_info = model_info(clf, cache)  # again: warnings raised during the run (cache not writable)
    return result


def in_step(spec: Spec, runner: ClipRunner, samples: list) -> bool:
    """Whether the spec's clips run side by side in lockstep (:mod:`.in_step`): more than one clip, asked for
    (``model.clips_at_once`` > 1), more than predictions to compute (one question a clip leaves little to merge
    and the probe would cost as much again), at fp32 (reduced precision is checked per clip against fp32, on
    the clip's own engine), and calls big enough to hold two questions of two rows."""
    return (spec.clips_at_once > 1 and len(samples) > 1 and bool(runner.stages - {"predict"})
            and runner.engine.autocast is None and runner.engine.batch_size >= 4)


def _audit_peer(peer: Spec, of: str, device: str, cache: Cache, samples_limit: int | None, seed: int | None,
                progress_for: Callable[[str], Any] | None) -> SpecResult:
    """A transferability peer audited as any spec is (its own progress line, named as ``of``'s peer)."""
    line = progress_for(f"{peer.name} (peer of {of})") if progress_for is not None else None
    try:
        return run_spec(peer, device, cache, samples_limit, seed, cross=False, progress=line)
    finally:
        if line is not None and getattr(line, "close", None) is not None:
            line.close()


def ran_only(figures: dict, stages: frozenset[str]) -> dict:
    """The ``check.metric`` figures whose check's stages all ran: a rate over clips the STFT attack never
    touched (a ``--lf`` run that selected no STFT item) is absent, never "0 of 3"."""
    return {name: value for name, value in figures.items()
            if name.split(".", 1)[0] not in NEEDS or NEEDS[name.split(".", 1)[0]] <= stages}


def deadline_verdicts(result: SpecResult, verdicts: list[Verdict]) -> list[Verdict]:
    """When the session deadline cut this spec short, every verdict that rests on what was not measured is
    ``interrupted`` (never passed): the cut clips' items, the aggregates and cross checks, and ``model[load]``
    when the model was never loaded. Items of clips measured in full keep their verdicts."""
    cut = {r.sample.id for r in result.samples if deadline.cut_short(r.reason)}
    never_loaded = deadline.cut_short(result.error)
    crossed = {check for check, why in {**result.cross_skipped, **result.cross_failed}.items()
               if deadline.REASON in why}
    if not cut and not never_loaded and not crossed:
        return verdicts
    deadline.mark_hit()  # a worker's cut is this session's too (run.deadline.hit, the exit status)
    done = len(result.samples) - len(cut)
    story = f"{deadline.message()} after {done} of {len(result.samples)} clips of this spec were measured"
    out = []
    for v in verdicts:
        if never_loaded or v.key in cut or v.check in crossed or (cut and v.key == "aggregate"):
            v = dataclasses.replace(v, outcome=Outcome.INTERRUPTED, message=f"interrupted: {story}; computed "
                                    f"from what was measured: {v.message}")
        out.append(v)
    return out


def model_failure(clf: Classifier, records: list[SampleRecord]) -> str | None:
    """When every clip the model was asked about failed, the model (e.g. NaN or wrongly shaped output),
    not the clips, is broken: that is the spec's error, so ``model[load]`` and the aggregates say so."""
    tried = [r for r in records if r.status != "skipped"]
    if not tried or any(r.status != "error" for r in tried):
        return None
    return (f"model {clf.name!r} failed on every clip ({len(tried)} of {len(records)}); "
            f"{tried[0].sample.id}: {tried[0].reason}")
