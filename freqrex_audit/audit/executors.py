"""Where an audit's clips run: serially in this process (default), on a local process pool, or on Ray.

An executor fans a spec's clips out as tasks and hands back one :class:`ClipOutcome` per clip, in the
clips' order, so the gathered records, counts and verdicts are the ones a serial run writes (each clip's
analysis depends only on the clip, the model and the seed). Every worker loads the model once (per spec
and device) and runs the same per-clip pipeline as the serial path (:func:`freqrex_audit.audit.pipeline.audit_clip`).

Choose one with ``freqrex-audit audit --executor process|ray [--address auto] [--workers N]
[--devices cuda:0,cuda:1]``, or from pytest (and anywhere else) with the environment:
``FREQREX_EXECUTOR=ray``, ``FREQREX_RAY_ADDRESS=auto``, ``FREQREX_WORKERS=8``, ``FREQREX_DEVICES=cuda:0,cuda:1``.
Ray is an optional extra (``pip install ".[ray]"``).
"""

from __future__ import annotations

import dataclasses
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any, Iterable, Protocol

from ..runtime import deadline
from ..runtime.devices import DeviceError, default_devices, device_for, parse_devices
from ..runtime.imports import searched, use_folders
from .cache import Cache
from .pipeline import ClipOutcome, ClipRunner, WorkCounts, audit_clip, load_model
from .records import SampleRecord

__all__ = ["ClipExecutor", "ProcessExecutor", "RayExecutor", "configure", "current_executor",
           "make_executor", "EXECUTORS"]

EXECUTORS = ("serial", "process", "ray")


class ClipExecutor(Protocol):
    """What the audit needs from an executor: run every clip of a spec, outcomes in the clips' order."""

    def run_clips(self, spec: Any, device: str, cache_root: Any, samples: list) -> Iterable[ClipOutcome]: ...


_RUNNERS: dict[tuple, ClipRunner] = {}  # per worker process: (spec file, seed, limit, device, cache) -> its runner


def run_clip(spec: Any, device: str, cache_root: Any, sample: Any,
             session_deadline: tuple[float, float] | None = None, folders: list[str] | None = None) -> ClipOutcome:
    """The task: one clip through the serial pipeline in this worker; the model is loaded once per worker.
    ``session_deadline`` (:func:`freqrex_audit.runtime.deadline.current` in the parent) is armed here, so a clip
    this worker cuts comes back *interrupted* exactly as an in-process one does. The outcome carries the
    queries and cache counts this clip cost here, for the parent to add to the spec's totals. ``folders``: the
    parent's import folders (:mod:`freqrex_audit.runtime.imports`), so a project's model module imports here too."""
    use_folders(folders or [])
    deadline.resume(session_deadline)
    key = (str(spec.path), spec.freqrex.seed, spec.dataset.limit, device, str(cache_root))
    if key not in _RUNNERS:
        try:
            clf = load_model(spec, device)
        except deadline.DeadlineReached as exc:  # no model in time: this clip is not measured
            return ClipOutcome(SampleRecord(sample, "skipped", str(exc)), remote=True)
        _RUNNERS[key] = ClipRunner(spec, clf, Cache(cache_root))
    runner = _RUNNERS[key]
    q0, phases0, cache0, c0 = runner.engine.queries, dict(runner.queries_by_phase), runner.cache.counts(), runner.engine.calls
    outcome = audit_clip(runner, sample, spec.dataset.sample_rate or runner.clf.sample_rate)
    spent = WorkCounts(runner.engine.queries - q0,
                       {p: c - phases0.get(p, 0) for p, c in runner.queries_by_phase.items() if c - phases0.get(p, 0)},
                       {name: count - cache0[name] for name, count in runner.cache.counts().items()},
                       runner.engine.calls - c0)
    return dataclasses.replace(outcome, remote=True, counts=spent)


class ProcessExecutor:
    """A local pool of ``workers`` processes (spawned: safe with CUDA); clip ``i`` runs on ``devices[i mod n]``
    (default: every visible CUDA device when the audit's device is auto / cuda, else that device)."""

    def __init__(self, workers: int = 2, devices: list[str] | None = None):
        self.workers, self.devices = max(1, int(workers)), devices

    def run_clips(self, spec: Any, device: str, cache_root: Any, samples: list) -> list[ClipOutcome]:
        import multiprocessing

        devices = self.devices or default_devices(device)
        with ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = [pool.submit(run_clip, spec, device_for(devices, i), cache_root, sample, deadline.current(),
                                   searched())
                       for i, sample in enumerate(samples)]
            return [f.result() for f in futures]


class RayExecutor:
    """Clips as Ray tasks (``num_gpus`` each when the device is CUDA) on the cluster at ``address``
    (``auto``: the running cluster; None: a local instance with ``workers`` CPUs)."""

    def __init__(self, address: str | None = None, workers: int | None = None, num_gpus: float | None = None):
        try:
            import ray
        except ImportError:
            raise RuntimeError("the Ray executor needs Ray: pip install \".[ray]\"") from None
        self.ray = ray
        self.address, self.workers, self.num_gpus = address, workers, num_gpus

    def _init(self) -> None:
        if self.ray.is_initialized():
            return
        env = {"env_vars": {k: os.environ[k] for k in ("PYTHONPATH", "HF_HUB_OFFLINE", "HF_HOME", "HF_HUB_CACHE")
                            if k in os.environ}}
        if self.address:
            self.ray.init(address=self.address, runtime_env=env, log_to_driver=False)
        else:
            self.ray.init(num_cpus=self.workers, runtime_env=env, include_dashboard=False, log_to_driver=False)

    def run_clips(self, spec: Any, device: str, cache_root: Any, samples: list) -> list[ClipOutcome]:
        self._init()
        gpus = self.num_gpus if self.num_gpus is not None else (1.0 if str(device).startswith("cuda") else 0.0)
        task = self.ray.remote(num_gpus=gpus, num_cpus=1)(run_clip)
        # a GPU task sees only its own GPU (Ray sets CUDA_VISIBLE_DEVICES): "cuda" is that one
        target = "cuda" if gpus else device
        return self.ray.get([task.remote(spec, target, cache_root, sample, deadline.current(), searched())
                             for sample in samples])


def make_executor(name: str, address: str | None = None, workers: int | None = None,
                  devices: list[str] | None = None) -> ClipExecutor | None:
    """The executor called ``name`` (None for ``serial``: the audit's own loop)."""
    if name == "serial":
        return None
    if name == "process":
        return ProcessExecutor(workers or len(devices or []) or 2, devices)
    if name == "ray":
        return RayExecutor(address, workers)
    raise ValueError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


_CONFIGURED: list[ClipExecutor | None] = []


def configure(executor: ClipExecutor | None | str) -> None:
    """Use ``executor`` for every later audit in this process (None: serial), overriding the environment;
    ``"environment"``: read the environment again at the next audit."""
    _CONFIGURED[:] = [] if executor == "environment" else [executor]


def current_executor() -> ClipExecutor | None:
    """The configured executor, else the one ``FREQREX_EXECUTOR`` (+ ``_RAY_ADDRESS``, ``WORKERS``,
    ``DEVICES``) names, else None (serial)."""
    if _CONFIGURED:
        return _CONFIGURED[0]
    name = os.environ.get("FREQREX_EXECUTOR", "serial")
    workers = int(os.environ["FREQREX_WORKERS"]) if os.environ.get("FREQREX_WORKERS") else None
    devices = None
    if os.environ.get("FREQREX_DEVICES", "").strip():
        try:
            devices = parse_devices(os.environ["FREQREX_DEVICES"])
        except DeviceError as exc:
            raise DeviceError(f"FREQREX_DEVICES: {exc}") from None
    executor = make_executor(name, os.environ.get("FREQREX_RAY_ADDRESS"), workers, devices)
    _CONFIGURED[:] = [executor]
    return executor
