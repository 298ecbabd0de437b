"""Where an audit's clips run: serially in this process (default), on a local process pool, or on Ray.

An executor fans a spec's clips out as tasks and hands back one :class:`ClipOutcome` per clip, in the
clips' order, each as soon as it is known (so progress moves per clip), and the gathered records, counts and
verdicts are the ones a serial run writes (each clip's analysis depends only on the clip, the model, the seed
and the settings that travel with every task: :class:`~freqrex_audit.audit.fanout.Settings`). Every worker
loads the model once (per spec and device) and runs the same per-clip pipeline as the serial path
(:func:`freqrex_audit.audit.pipeline.audit_clip`). Both executors share the driver's loop
(:func:`~freqrex_audit.audit.fanout.stream_clips`): a worker that dies is a clip's error after ``retries``
more tries, never the run's crash, and the session deadline is enforced on the driver.

Choose one with ``freqrex-audit audit --executor process|ray [--address none|auto|HOST:PORT|ray://HOST:PORT]
[--workers N] [--retries N] [--devices cuda:0,cuda:1]``, or from pytest (and anywhere else) with the
environment: ``FREQREX_EXECUTOR=ray``, ``FREQREX_RAY_ADDRESS=auto``, ``FREQREX_WORKERS=8``,
``FREQREX_RETRIES=1``, ``FREQREX_DEVICES=cuda:0,cuda:1``. Ray is an optional extra (``pip install ".[ray]"``,
:mod:`~freqrex_audit.audit.ray_executor`).
"""

from __future__ import annotations

import atexit
import os
import signal
from collections.abc import Iterable, Iterator
from multiprocessing import connection
from pathlib import Path
from typing import Any, Protocol

from ..runtime.devices import DeviceError, default_devices, device_for, parse_devices
from .fanout import (_RUNNERS, DEFAULT_RETRIES, ExecutorError, Failure, Settings, absolute, run_clip, run_task,
                     stream_clips)
from .pipeline import ClipOutcome

__all__ = ["ClipExecutor", "ProcessExecutor", "configure", "current_executor", "executor_from_environment",
           "make_executor", "EXECUTORS",
           "ExecutorError", "run_clip", "DEFAULT_RETRIES"]

EXECUTORS = ("serial", "process", "ray")
_ = _RUNNERS  # the worker-side runner cache lives in fanout; re-exported for the tests that reset it


class ClipExecutor(Protocol):
    """What the audit needs from an executor: run every clip of a spec, outcomes in the clips' order."""

    def run_clips(self, spec: Any, device: str, cache_root: Any, samples: list,
                  stages: frozenset[str] | None = None) -> Iterable[ClipOutcome]:
        """``stages``: what the driver's run computes (None: all), which every worker computes too."""


def _serve(conn: Any) -> None:
    """A pool worker: run each task it is sent and send back its outcome, until the pipe closes."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the driver's: it kills or closes its workers
    while True:
        try:
            job = conn.recv()
        except (EOFError, OSError):
            return
        if job is None:
            return
        conn.send(run_task(*job))


class _Worker:
    """One spawned pool process and the driver's end of its pipe."""

    def __init__(self) -> None:
        import multiprocessing

        context = multiprocessing.get_context("spawn")  # safe with CUDA
        self.conn, child = context.Pipe()
        self.process = context.Process(target=_serve, args=(child,), name="freqrex-audit worker")
        self.process.start()
        child.close()

    def stop(self, kill: bool = False) -> None:
        """End the process: asked to (idle), or killed (busy, maybe stopped: SIGKILL needs no cooperation)."""
        try:
            if kill:
                self.process.kill()
            else:
                self.conn.send(None)
        except (OSError, ValueError):
            pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join(timeout=5)
        self.conn.close()


def _died(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        try:
            return f"the worker process died ({signal.Signals(-exitcode).name})"
        except ValueError:
            pass
    return f"the worker process died (exit status {exitcode})"


class _PoolBackend:
    """The pool's side of :func:`~freqrex_audit.audit.fanout.stream_clips`: one task per idle slot; worker ``k``
    always audits on ``devices[k mod n]``, so it loads one model per spec."""

    def __init__(self, pool: ProcessExecutor, spec: Any, devices: list[str], cache_root: Path | None,
                 stages: frozenset[str] | None = None):
        self.pool, self.spec, self.devices, self.cache_root, self.stages = pool, spec, devices, cache_root, stages
        self.busy: dict[int, _Worker] = {}

    def free(self) -> int:
        return self.pool.workers - len(self.busy)

    def unavailable(self) -> str | None:
        return None

    def submit(self, sample: Any, settings: Settings) -> tuple[Any, str]:
        slot = next(k for k in range(self.pool.workers) if k not in self.busy)
        job = (self.spec, device_for(self.devices, slot), self.cache_root, sample, settings, None, self.stages)
        for _ in range(2):  # an idle worker that died meanwhile (OOM-killed) is replaced once
            worker = self.pool.worker(slot)
            try:
                worker.conn.send(job)
                break
            except OSError:
                self.pool.discard(slot)
        self.busy[slot] = worker
        return slot, f"worker process {worker.process.pid}"

    def wait(self, timeout: float) -> list[tuple[Any, ClipOutcome | Failure]]:
        by_handle = {w.conn: k for k, w in self.busy.items()} | {w.process.sentinel: k for k, w in self.busy.items()}
        ended: dict[int, ClipOutcome | Failure] = {}
        for ready in connection.wait(list(by_handle), timeout):
            slot = by_handle[ready]
            if slot in ended:
                continue
            worker = self.busy[slot]
            try:
                if worker.conn.poll():
                    ended[slot] = worker.conn.recv()
                    continue
            except (EOFError, OSError):
                pass
            except Exception as exc:  # noqa: BLE001 - an outcome that cannot be read back is that clip's error
                ended[slot] = Failure(f"its outcome could not be read back ({type(exc).__name__}: {exc})", False)
                continue
            worker.process.join(timeout=5)
            ended[slot] = Failure(_died(worker.process.exitcode))
            self.pool.discard(slot)
        for slot in ended:
            self.busy.pop(slot)
        return list(ended.items())

    def abandon(self) -> None:
        for slot in list(self.busy):
            self.pool.discard(slot, kill=True)
        self.busy.clear()


class ProcessExecutor:
    """A local pool of ``workers`` spawned processes (CUDA-safe), kept for the whole session; worker ``k`` audits
    on ``devices[k mod n]`` (default: every visible CUDA device when the audit's device is auto / cuda, else
    that device). A worker that dies is replaced; its clip is tried ``retries`` more times."""

    def __init__(self, workers: int = 2, devices: list[str] | None = None, retries: int = DEFAULT_RETRIES):
        self.workers, self.devices, self.retries = max(1, int(workers)), devices, max(0, int(retries))
        self._slots: dict[int, _Worker] = {}
        self._registered = False

    def worker(self, slot: int) -> _Worker:
        """The live process in ``slot``, started when there is none."""
        worker = self._slots.get(slot)
        if worker is None or not worker.process.is_alive():
            if worker is not None:
                self.discard(slot)
            if not self._registered:
                atexit.register(self.close)
                self._registered = True
            worker = self._slots[slot] = _Worker()
        return worker

    def discard(self, slot: int, kill: bool = False) -> None:
        worker = self._slots.pop(slot, None)
        if worker is not None:
            worker.stop(kill=kill)

    def run_clips(self, spec: Any, device: str, cache_root: Any, samples: list,
                  stages: frozenset[str] | None = None) -> Iterator[ClipOutcome]:
        backend = _PoolBackend(self, spec, self.devices or default_devices(device), absolute(cache_root), stages)
        return stream_clips(samples, backend, absolute(cache_root), self.retries)

    def close(self) -> None:
        """Stop every worker process."""
        for slot in list(self._slots):
            self.discard(slot)


def make_executor(name: str, address: str | None = None, workers: int | None = None,
                  devices: list[str] | None = None, retries: int | None = None) -> ClipExecutor | None:
    """The executor called ``name`` (None for ``serial``: the audit's own loop); ExecutorError (a usage error)
    when it cannot be had, e.g. Ray is not installed. Nothing is started yet."""
    retries = DEFAULT_RETRIES if retries is None else retries
    if name == "serial":
        return None
    if name == "process":
        return ProcessExecutor(workers or len(devices or []) or 2, devices, retries)
    if name == "ray":
        from .ray_executor import RayExecutor

        return RayExecutor(address, workers, retries=retries)
    raise ExecutorError(f"executor must be one of {', '.join(EXECUTORS)}, got {name!r}")


_CONFIGURED: list[ClipExecutor | None] = []


def configure(executor: ClipExecutor | None | str) -> None:
    """Use ``executor`` for every later audit in this process (None: serial), overriding the environment;
    ``"environment"``: read the environment again at the next audit. The executor it replaces is closed."""
    old = _CONFIGURED[0] if _CONFIGURED else None
    if old is not None and old is not executor and hasattr(old, "close"):
        old.close()
    _CONFIGURED[:] = [] if executor == "environment" else [executor]


def start_executor() -> ClipExecutor | None:
    """The executor the next audit uses, started now (Ray: connected and every node checked), so that a bad
    address or a mismatched node is a usage error before any spec runs, not a failure in the middle."""
    executor = current_executor()
    start = getattr(executor, "start", None)
    if callable(start):
        start()
    return executor


def node_cpus() -> dict[str, str | None] | None:
    """Each node's CPU when the configured executor ran clips on nodes whose CPU is not this machine's (a Ray
    cluster of mixed machines), for results.json's ``run.node_cpus``; None otherwise (serial, the process pool, a
    cluster of this machine's CPU: then a run's results.json stays the serial run's, byte for byte)."""
    cpus = getattr(_CONFIGURED[0] if _CONFIGURED else None, "node_cpus", None)
    if not callable(cpus):
        return None
    from ..runtime.devices import cpu_description

    found, here = cpus(), cpu_description()
    return found if any(cpu != here for cpu in found.values()) else None


def current_executor() -> ClipExecutor | None:
    """The configured executor, else the one ``FREQREX_EXECUTOR`` (+ ``_RAY_ADDRESS``, ``WORKERS``,
    ``RETRIES``, ``DEVICES``) names, else None (serial)."""
    if _CONFIGURED:
        return _CONFIGURED[0]
    executor = executor_from_environment()
    _CONFIGURED[:] = [executor]
    return executor


def executor_from_environment() -> ClipExecutor | None:
    """The executor ``FREQREX_EXECUTOR`` and its settings name, made but not started (None: serial);
    ExecutorError / DeviceError (both ValueError: usage errors) for a setting that cannot work, e.g. Ray not
    installed, an address that does not parse, a device this machine lacks."""
    name = os.environ.get("FREQREX_EXECUTOR", "serial").strip() or "serial"
    counts = {}
    for key in ("FREQREX_WORKERS", "FREQREX_RETRIES"):
        try:
            counts[key] = int(os.environ[key]) if os.environ.get(key, "").strip() else None
        except ValueError:
            raise ExecutorError(f"{key} must be a whole number, got {os.environ[key]!r}") from None
    devices = None
    if os.environ.get("FREQREX_DEVICES", "").strip():
        try:
            devices = parse_devices(os.environ["FREQREX_DEVICES"])
        except DeviceError as exc:
            raise DeviceError(f"FREQREX_DEVICES: {exc}") from None
    return make_executor(name, os.environ.get("FREQREX_RAY_ADDRESS"), counts["FREQREX_WORKERS"], devices,
                         counts["FREQREX_RETRIES"])
