"""What every executor shares: the task a worker runs for one clip, what travels with it, and the driver's loop.

**Worker side.** :func:`run_task` is the task of the process pool and of Ray alike: it applies the driver's
:class:`Settings` (torch threads, the deadline, the environment settings that change what a worker may read
or load, the import folders of :mod:`freqrex_audit.runtime.imports`), runs the clip through the serial pipeline (:func:`run_clip`; one model per worker), and returns a
:class:`~freqrex_audit.audit.pipeline.ClipOutcome` carrying the work it cost and the cache entries it
computed. Workers read the cache at the driver's absolute path when they can see it, and never write it:
the driver stores their entries, so there is one cache wherever the workers ran.

**Driver side.** :func:`stream_clips` hands clips to a :class:`Backend` (the pool's processes, Ray's nodes)
as workers free up and yields outcomes in the clips' order as soon as each is known, so the progress line
moves per clip and the records are the serial run's order. A task that fails (its worker process died, its
node left) is tried again up to ``retries`` times and then recorded as an ``error`` clip naming where and
why; the session deadline is enforced here, on the driver, so a worker that stops answering cannot hold
the run: at the deadline every unfinished clip is cut (*interrupted*) and its task abandoned.
"""

from __future__ import annotations

import dataclasses
import os
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ..models.classifier import describe_exception
from ..runtime import deadline
from ..runtime.imports import searched, use_folders
from ..runtime.paths import ROOTS_ENV
from .cache import Cache
from .pipeline import ClipOutcome, ClipRunner, WorkCounts, audit_clip, load_model
from .records import SampleRecord
from .stages import STAGES

__all__ = ["Settings", "RecordingCache", "run_clip", "run_task", "Failure", "BackendLost", "Backend",
           "stream_clips", "node_versions", "ExecutorError", "TRAVELLING_ENV", "POLL_S", "DEFAULT_RETRIES", "absolute"]

TRAVELLING_ENV = (ROOTS_ENV, "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE", "HF_DATASETS_OFFLINE", "HF_HOME",
                  "HF_HUB_CACHE")
"""Environment settings a worker takes from the driver for every task: what it may read (allowed roots) and
where / whether models come from the hub."""
DEFAULT_RETRIES = 1
"""A clip whose worker died is tried once more (a one-off OOM kill or a lost node recovers; a model that
kills every worker costs one extra try) before it is recorded as an error."""
POLL_S = 1.0
"""The driver looks at the deadline (and, on Ray, at the nodes) at least this often while clips run."""


def absolute(cache_root: Any) -> Path | None:
    """The cache folder as an absolute path of the driver (workers may run anywhere else: one cache)."""
    return None if cache_root is None else Path(cache_root).resolve()


class ExecutorError(ValueError):
    """An executor cannot be used as asked (Ray missing, a bad address, a node that does not match): a usage
    error, which the CLI reports in one line with exit status 2."""


@dataclass(frozen=True)
class Settings:
    """The driver's settings that change a clip's numbers or what a worker may touch, applied by every task."""

    threads: int
    env: tuple[tuple[str, str | None], ...]
    deadline: tuple[float, float] | None
    folders: tuple[str, ...] = ()

    @classmethod
    def capture(cls) -> Settings:
        """This (driver) process's torch threads, :data:`TRAVELLING_ENV`, session deadline and import folders
        (pytest's rootdir and ini ``pythonpath``: where a project's model module is found)."""
        import torch

        return cls(torch.get_num_threads(), tuple((k, os.environ.get(k)) for k in TRAVELLING_ENV), deadline.current(),
                   tuple(searched()))

    def apply(self) -> None:
        """Make this (worker) process match: the same thread count (results depend on it), environment and
        import folders (appended to ``sys.path``, as the driver did; a folder a node lacks finds nothing)."""
        import torch

        use_folders(self.folders)

        if torch.get_num_threads() != self.threads:
            torch.set_num_threads(self.threads)
        for key, value in self.env:
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value
        deadline.resume(self.deadline)


class RecordingCache(Cache):
    """A worker's view of the driver's cache: reads it where this machine can see the folder, keeps what it
    would write for the driver to store (:meth:`drain`), and deletes nothing."""

    def __init__(self, root: str | Path | None):
        self.kept: list[tuple[str, Any, dict]] = []
        super().__init__(root)

    def _sweep_leftovers(self) -> int:
        return 0

    def put(self, key: str, data: Any, arrays: dict | None = None) -> None:
        if self.root is not None:
            self.kept.append((key, data, dict(arrays or {})))

    def drain(self) -> list[tuple[str, Any, dict]]:
        kept, self.kept = self.kept, []
        return kept


_RUNNERS: dict[tuple, ClipRunner] = {}
"""Per worker process: the runner (model, engine, cache) of the latest specs it audited."""
KEPT_RUNNERS = 2


def run_clip(spec: Any, device: str, cache_root: Any, sample: Any,
             session_deadline: tuple[float, float] | None = None, folders: list[str] | None = None,
             stages: frozenset[str] | None = None) -> ClipOutcome:
    """One clip through the serial pipeline in this worker; the model is loaded once per worker (and spec).
    ``session_deadline`` (:func:`freqrex_audit.runtime.deadline.current` in the driver) is armed here, so a
    clip this worker cuts comes back *interrupted* exactly as an in-process one does. ``folders``: the driver's
    import folders (:mod:`freqrex_audit.runtime.imports`), so a project's model module imports here too.
    ``stages``: what the driver's run computes (default all), so a worker does the same work. The outcome carries the queries, model calls and cache counts this clip cost here, and the cache entries it
    computed."""
    use_folders(folders or [])
    deadline.resume(session_deadline)
    stages = STAGES if stages is None else frozenset(stages)
    key = (str(spec.path), repr(spec.model), spec.freqrex.seed, spec.dataset.limit, device, str(cache_root),
           tuple(sorted(stages)))
    if key not in _RUNNERS:
        try:
            clf = load_model(spec, device)
        except deadline.DeadlineReached as exc:  # no model in time: this clip is not measured
            return ClipOutcome(SampleRecord(sample, "skipped", str(exc)), remote=True)
        while len(_RUNNERS) >= KEPT_RUNNERS:  # one spec at a time: an old model is not kept alive
            _RUNNERS.pop(next(iter(_RUNNERS)))
        _RUNNERS[key] = ClipRunner(spec, clf, RecordingCache(cache_root), stages)
    runner = _RUNNERS[key]
    q0, phases0, cache0 = runner.engine.queries, dict(runner.queries_by_phase), runner.cache.counts()
    c0 = runner.engine.calls
    outcome = audit_clip(runner, sample, spec.dataset.sample_rate or runner.clf.sample_rate)
    spent = WorkCounts(runner.engine.queries - q0,
                       {p: c - phases0.get(p, 0) for p, c in runner.queries_by_phase.items() if c - phases0.get(p, 0)},
                       {name: count - cache0[name] for name, count in runner.cache.counts().items()},
                       runner.engine.calls - c0)
    entries = runner.cache.drain() if isinstance(runner.cache, RecordingCache) else []
    return dataclasses.replace(outcome, remote=True, counts=spent, entries=entries)


def run_task(spec: Any, device: str, cache_root: Any, sample: Any, settings: Settings,
             where: str | None = None, stages: frozenset[str] | None = None) -> ClipOutcome:
    """An executor's task: :func:`run_clip` under the driver's ``settings``. A model that does not load on this
    worker is this clip's error, not the worker's crash; ``where`` (a Ray node) ends the reason of a clip that
    failed or could not be read here, so a file missing on one node names the node."""
    settings.apply()
    try:
        outcome = run_clip(spec, device, cache_root, sample, settings.deadline, list(settings.folders), stages)
    except Exception as exc:  # noqa: BLE001 - a load failure here (a module this node lacks) is the clip's error
        outcome = ClipOutcome(SampleRecord(sample, "error", f"the model did not load on this worker: "
                                                            f"{describe_exception(exc)}"), remote=True)
    record = outcome.record
    if where and (record.status == "error" or (record.status == "skipped" and not sample.problem
                                               and not deadline.cut_short(record.reason))):
        record.reason = f"{record.reason} (on {where})"
    return outcome


def node_versions() -> dict[str, str]:
    """What must be equal on the driver and every worker for equal results: the engine (package version and
    a hash of its sources), torch, numpy, scipy and Python."""
    import platform

    import numpy
    import scipy
    import torch

    from .cache import engine_version

    return {"freqrex_audit": engine_version(), "torch": torch.__version__, "numpy": numpy.__version__,
            "scipy": scipy.__version__, "python": platform.python_version()}


# --- the driver's loop ----------------------------------------------------------------------------------

@dataclass(frozen=True)
class Failure:
    """A task that ended without an outcome: ``why`` (e.g. "the worker process died (SIGKILL)"); ``retry``
    when another attempt may succeed (a dead worker or node), not when it would fail the same way."""

    why: str
    retry: bool = True


class BackendLost(Exception):
    """The workers cannot be reached at all any more (the Ray cluster went away): every unfinished clip fails."""


class Backend(Protocol):
    """Where :func:`stream_clips` runs tasks: the process pool's workers or a Ray cluster's nodes."""

    def free(self) -> int:
        """How many more tasks may start now."""

    def unavailable(self) -> str | None:
        """Why no task can start now or later (no node left), or None."""

    def submit(self, sample: Any, settings: Settings) -> tuple[Any, str]:
        """Start ``sample``'s task; its handle and where it runs (for messages)."""

    def wait(self, timeout: float) -> list[tuple[Any, ClipOutcome | Failure]]:
        """The tasks that ended within ``timeout`` seconds (raises :class:`BackendLost`)."""

    def abandon(self) -> None:
        """Stop every running task now, without waiting for any (a stopped worker is killed)."""


def stream_clips(samples: list, backend: Backend, cache_root: Path | None, retries: int = 1
                 ) -> Iterator[ClipOutcome]:
    """Every clip's outcome, in the clips' order, each as soon as it and the clips before it are known.

    Outcomes are stored in the driver's cache at ``cache_root``; a task that failed is tried ``retries`` more
    times, then becomes an ``error`` clip. At the session deadline the clips not finished are cut: skipped
    with the deadline's reason (so their items are *interrupted*) and their tasks abandoned."""
    store = Cache(cache_root)
    settings = Settings.capture()
    pending: deque[int] = deque(range(len(samples)))
    running: dict[Any, tuple[int, str]] = {}
    attempts = [0] * len(samples)
    done: dict[int, ClipOutcome] = {}
    shown = 0

    def finish(i: int, status: str, reason: str) -> None:
        done[i] = ClipOutcome(SampleRecord(samples[i], status, reason), remote=True)

    try:
        while shown < len(samples):
            try:
                while pending and not deadline.passed() and backend.free() > 0:
                    handle, where = backend.submit(samples[pending[0]], settings)  # BackendLost: still pending
                    i = pending.popleft()
                    attempts[i] += 1
                    running[handle] = (i, where)
                if not running and pending and not deadline.passed():  # nothing runs, nothing can start
                    why = backend.unavailable() or "no worker can take it"
                    for i in pending:
                        finish(i, "error", f"not analysed: {why}")
                    pending.clear()
                left = deadline.remaining()
                ended = backend.wait(POLL_S if left is None else max(0.0, min(POLL_S, left))) if running else []
            except BackendLost as exc:  # the workers are gone: every clip not finished is an error
                for i in [*(i for i, _ in running.values()), *pending]:
                    finish(i, "error", f"not analysed: {exc}")
                running.clear()
                pending.clear()
                ended = []
            for handle, result in ended:
                i, where = running.pop(handle)
                if isinstance(result, Failure):
                    if result.retry and attempts[i] <= retries and not deadline.passed():
                        pending.appendleft(i)
                    else:
                        tries = f"; tried {attempts[i]} times" if attempts[i] > 1 else ""
                        finish(i, "error", f"not analysed: {result.why} while auditing this clip "
                                           f"(on {where}{tries})")
                    continue
                for key, data, arrays in result.entries:
                    store.put(key, data, arrays)
                done[i] = dataclasses.replace(result, entries=[])
            if deadline.passed() and (running or pending):  # the driver's deadline: nothing unfinished waits
                for i, where in running.values():
                    finish(i, "skipped", str(deadline.reached(f"while this clip ran on {where}")))
                for i in pending:
                    finish(i, "skipped", str(deadline.reached("before this clip")))
                backend.abandon()
                running.clear()
                pending.clear()
            while shown in done:
                yield done.pop(shown)
                shown += 1
    finally:
        if running:  # interrupted (Ctrl-C) or the caller stopped reading: leave no task behind
            backend.abandon()

