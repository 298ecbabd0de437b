"""Clips as Ray tasks on the nodes of a Ray cluster (``pip install "freqrex_audit[ray]"``).

``address`` says which Ray (``--address`` / ``FREQREX_RAY_ADDRESS``):

* ``none`` (the default): a private local instance with ``workers`` CPUs (default: this machine's), started
  even when another Ray runs here, and stopped with the audit;
* ``auto``: the cluster running on this machine (``ray start``; ``RAY_ADDRESS`` when set);
* ``HOST:PORT``: the cluster whose head listens there (GCS port, 6379 by default);
* ``ray://HOST:PORT``: through Ray Client (the head's client server, 10001 by default).

An address where nothing answers a TCP connection within :data:`CONNECT_TIMEOUT_S` is a usage error (Ray
would retry it for ever). Joining a cluster is said on stderr, with its nodes and resources. Before the first clip the driver checks
every node that would run clips (:func:`~freqrex_audit.audit.fanout.node_versions`: the engine's version
and source hash, torch, numpy, scipy, Python) and refuses a node that differs or cannot import the project,
by name; a node on another CPU is used, and named on stderr and in results.json (``run.node_cpus``). Each
clip's task is pinned to a node (so a failure names the node it happened on) with one CPU (or one GPU when the
device is CUDA: Ray sets ``CUDA_VISIBLE_DEVICES``, so the task sees "its" GPU), at most as
many at a time as the nodes have (and ``workers``, when given); Ray's own retries are off: the driver tries a
clip whose worker or node died again on any node (``retries``), then records it as an error.
"""

from __future__ import annotations

import logging
import os
import re
import sys
from collections.abc import Callable, Iterator
from typing import Any

from ..runtime.devices import cpu_description
from .fanout import (DEFAULT_RETRIES, TRAVELLING_ENV, BackendLost, ExecutorError, Failure, Settings, absolute,
                     node_versions, run_task, stream_clips)
from .pipeline import ClipOutcome

__all__ = ["RayExecutor", "parse_address", "unreachable", "describe_node", "PROBE_TIMEOUT_S", "CONNECT_TIMEOUT_S"]

PROBE_TIMEOUT_S = 120.0
"""How long a node has to answer the version check (its first worker imports torch; minutes are not rare on a
busy node, and a node that does not answer in this time would not run clips either)."""
RAY_ENV = TRAVELLING_ENV
"""Given to every worker process of the job when it starts (before anything imports the hub's libraries).
Not PYTHONPATH: a node imports the project from its own environment (the driver's paths mean nothing there;
a local instance's workers inherit this process's environment anyway)."""
CONNECT_TIMEOUT_S = 10.0
"""How long the driver tries to open a TCP connection to the head before it calls the address unreachable
(``ray.init`` itself retries an address where nothing answers for ever)."""
_HOST_PORT = re.compile(r"^(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")


def parse_address(address: str | None) -> str:
    """``address`` as the executor uses it (``none``, ``auto``, ``HOST:PORT`` or ``ray://HOST:PORT``);
    ExecutorError, a usage error, for anything else."""
    text = (address or "none").strip()
    if text.lower() in ("none", "local", ""):
        return "none"
    if text.lower() == "auto":
        return "auto"
    bare = text.removeprefix("ray://")
    match = _HOST_PORT.match(bare)
    if match and 0 < int(match.group(2)) < 65536:
        return text
    raise ExecutorError(f"--address {address!r}: give none (a local Ray instance), auto (the cluster running "
                        f"here), HOST:PORT (a cluster's head) or ray://HOST:PORT (Ray Client)")


def unreachable(address: str, timeout: float = CONNECT_TIMEOUT_S) -> str | None:
    """Why nothing answers at the head ``address`` names (``HOST:PORT``, ``ray://HOST:PORT``, or ``auto`` with
    ``RAY_ADDRESS`` set), or None when a TCP connection opens (or there is no address to try: ``none``, or
    ``auto`` finding the cluster started on this machine, which Ray reports itself)."""
    import socket

    if address == "auto":
        address = os.environ.get("RAY_ADDRESS", "").strip()
    match = _HOST_PORT.match(address.removeprefix("ray://"))
    if not match:
        return None
    host, port = match.group(1).strip("[]"), int(match.group(2))
    try:
        socket.create_connection((host, port), timeout=timeout).close()
    except OSError as exc:
        return f"nothing answers at {host}:{port} ({exc.strerror or type(exc).__name__} within {timeout:g} s)"
    return None


def describe_node(node: dict) -> str:
    """How messages name a node: host, IP and the start of its Ray id (nodes on one host differ by id)."""
    return (f"node {node.get('NodeManagerHostname') or '?'} ({node.get('NodeManagerAddress') or '?'}, "
            f"{str(node.get('NodeID'))[:8]})")


def _probe_function() -> Callable[[], dict]:
    """The version check a node runs. Built inside a function, so Ray ships it by value: it runs (and says
    what is wrong) on a node that cannot import freqrex_audit."""
    def probe() -> dict:
        import os
        import platform
        import socket

        info: dict = {"python": platform.python_version(), "host": socket.gethostname(), "pid": os.getpid()}
        try:
            import freqrex_audit
            from freqrex_audit.audit.fanout import node_versions
            from freqrex_audit.runtime.devices import cpu_description

            info.update(node_versions(), file=freqrex_audit.__file__, cpu=cpu_description())
        except BaseException as exc:  # noqa: BLE001 - whatever stops the project from loading is the answer
            info["error"] = f"{type(exc).__name__}: {exc}"
        return info

    return probe


def _announce(message: str) -> None:
    print(f"freqrex-audit: ray: {message}", file=sys.stderr, flush=True)


class RayExecutor:
    """Clips as Ray tasks on the cluster at ``address`` (see the module's text), at most ``workers`` at a time
    when given; a clip whose worker or node died is tried ``retries`` more times."""

    def __init__(self, address: str | None = None, workers: int | None = None, num_gpus: float | None = None,
                 retries: int = DEFAULT_RETRIES, announce: Callable[[str], None] = _announce):
        try:
            import ray
        except ImportError:
            raise ExecutorError('the Ray executor needs Ray: pip install "freqrex_audit[ray]" '
                                '(".[ray]" in a checkout)') from None
        self.ray = ray
        self.address, self.workers, self.num_gpus = parse_address(address), workers, num_gpus
        self.retries, self.announce = max(0, int(retries)), announce
        self.nodes: dict[str, dict] = {}  # node id -> its Ray record, for the nodes checked and alive
        self.probes: dict[str, dict] = {}  # node id -> what its version check answered
        self._refused: set[str] = set()
        self._owns = False
        self._auth_mode: str | None = None
        self._task: Any = None

    # --- connecting and checking ---------------------------------------------------------------------
    def start(self) -> None:
        """Connect (or start the local instance) and check every node; ExecutorError when it cannot be used."""
        if self._task is not None:
            return
        joined = self._connect()
        self._check_nodes(refuse=True)
        if not self.nodes:
            raise ExecutorError(f"{joined}, but none of its nodes has a CPU or GPU for clips")
        cpus = sum(n["Resources"].get("CPU", 0) for n in self.nodes.values())
        gpus = sum(n["Resources"].get("GPU", 0) for n in self.nodes.values())
        import freqrex_audit

        versions = next(iter(self.probes.values()))
        folders = {os.path.dirname(p["file"]) for p in self.probes.values()}
        here = " (as here)" if folders == {os.path.dirname(freqrex_audit.__file__)} else ""
        where = f"from {next(iter(folders))}{here}" if len(folders) == 1 else f"from {len(folders)} different folders"
        self.announce(f"{joined}: {len(self.nodes)} node(s), {cpus:g} CPUs, {gpus:g} GPUs; every node runs "
                      f"freqrex_audit {versions['freqrex_audit']} {where}, torch {versions['torch']}, "
                      f"Python {versions['python']}")
        self._task = self.ray.remote(run_task)

    def check(self) -> None:
        """What can be known without joining: that something answers at the head's address (ExecutorError, a
        usage error, when nothing does; Ray itself would wait for it for ever)."""
        why = unreachable(self.address) if self.address != "none" else None
        if why:
            raise ExecutorError(f"--address {self.address}: cannot reach Ray: {why}; is the cluster's head running "
                                f"there (`ray start --head`)?")

    def _connect(self) -> str:
        """Start or join Ray as ``address`` says; how, in words."""
        ray = self.ray
        if ray.is_initialized():
            return "using the Ray instance this process is already connected to"
        options: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.WARNING,
                                   "runtime_env": {"env_vars": {k: os.environ[k] for k in RAY_ENV if k in os.environ}}}
        self._auth_mode = os.environ.get("RAY_AUTH_MODE")
        self.check()
        try:
            if self.address == "none":
                cpus = self.workers or os.cpu_count() or 1
                ray.init(address="local", num_cpus=cpus, include_dashboard=False, **options)
                how = f"started a local Ray instance with {cpus} CPUs"
            else:
                ray.init(address=self.address, **options)
                how = f"joined the Ray cluster at {self._where()}"
        except ImportError as exc:  # ray:// without the client's grpcio
            raise ExecutorError(f"--address {self.address}: Ray Client needs ray[client] ({exc}): "
                                f'pip install "freqrex_audit[ray]"') from None
        except Exception as exc:  # noqa: BLE001 - every way of not getting a cluster is the same usage error
            hint = ""
            if self.address == "auto" and not os.environ.get("RAY_ADDRESS"):
                hint = " (no Ray cluster runs on this machine: start one with `ray start --head`, or give HOST:PORT)"
            elif os.environ.get("RAY_AUTH_MODE", "").lower() != "token":
                hint = (" (a cluster with token authentication, which Ray 2.60 turns on when its head has a token, "
                        "needs RAY_AUTH_MODE=token and that token, RAY_AUTH_TOKEN or ~/.ray/auth_token, here too)")
            lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
            # the first line says what failed; a server's traceback after it ends with why
            why = lines[0] + (f" ... {lines[-1]}" if len(lines) > 1 else "") if lines else ""
            raise ExecutorError(f"--address {self.address}: cannot reach Ray: {type(exc).__name__}: "
                                f"{why}{hint}") from None
        self._owns = True
        return how

    def _where(self) -> str:
        if self.address.startswith("ray://"):
            return self.address
        try:
            return self.ray.get_runtime_context().gcs_address
        except Exception:  # noqa: BLE001 - only for the message
            return self.address

    def _alive(self) -> list[dict]:
        """The cluster's live nodes that can run a clip (a CPU or a GPU)."""
        return [n for n in self.ray.nodes() if n.get("Alive") and (n["Resources"].get("CPU", 0) >= 1
                                                                   or n["Resources"].get("GPU", 0) > 0)]

    def _check_nodes(self, refuse: bool) -> None:
        """Version-check the live nodes not checked yet. A node that differs from this machine or cannot load
        the project is refused: the whole run (``refuse``, at start) or that node (one that joined later)."""
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        alive = {n["NodeID"]: n for n in self._alive()}
        for gone in set(self.nodes) - set(alive):
            del self.nodes[gone]
        new = [n for node_id, n in alive.items() if node_id not in self.nodes and node_id not in self._refused]
        if not new:
            return
        if self.address == "none" and self._owns:  # our own instance: this machine, this Python, no need to ask
            import freqrex_audit

            for node in new:
                self.nodes[node["NodeID"]] = node
                self.probes[node["NodeID"]] = {**node_versions(), "file": freqrex_audit.__file__,
                                               "cpu": cpu_description()}
            return
        probe = self.ray.remote(_probe_function())
        refs = {probe.options(num_cpus=0, max_retries=0, scheduling_strategy=NodeAffinitySchedulingStrategy(
            n["NodeID"], soft=False)).remote(): n for n in new}
        ready, _ = self.ray.wait(list(refs), num_returns=len(refs), timeout=PROBE_TIMEOUT_S)
        mine, here, problems = node_versions(), cpu_description(), []
        for ref, node in refs.items():
            problem = None
            if ref not in ready:
                problem = f"did not answer the version check in {PROBE_TIMEOUT_S:g} s"
                self.ray.cancel(ref, force=True)
            else:
                try:
                    info = self.ray.get(ref)
                except Exception as exc:  # noqa: BLE001 - a node that cannot run a task at all
                    info = {"error": f"{type(exc).__name__}: {str(exc).strip().splitlines()[-1]}"}
                if "error" in info:
                    problem = f"cannot load freqrex_audit there: {info['error']}"
                else:
                    differ = [f"{key} {info.get(key)} (here {value})" for key, value in mine.items()
                              if info.get(key) != value]
                    problem = f"differs from this machine: {', '.join(differ)}" if differ else None
                    self.probes[node["NodeID"]] = info
            if problem is None:
                self.nodes[node["NodeID"]] = node
                if info.get("cpu") != here:  # accepted: the same code, but other float kernels
                    self.announce(f"{describe_node(node)} runs on another CPU, {info.get('cpu') or 'unknown'} "
                                  f"(here {here or 'unknown'}): its clips may differ from this "
                                  f"machine's in their last digits (kernels round by instruction set); "
                                  f"results.json names each node's CPU (run.node_cpus)")
            else:
                self._refused.add(node["NodeID"])
                problems.append(f"{describe_node(node)} {problem}")
        if problems and refuse:
            raise ExecutorError("the Ray cluster has node(s) this audit cannot use (every node needs this "
                                "project, the same torch, numpy, scipy and Python, and the data at the same "
                                "paths):\n  " + "\n  ".join(problems))
        for problem in problems:
            self.announce(f"not using {problem}")

    def node_cpus(self) -> dict[str, str | None]:
        """Each checked node's CPU as its version check named it (``describe_node`` → ``cpu_description``): a run's
        clips round by the instruction set of the node they ran on, and the driver's ``run.cpu`` is only its own."""
        return {describe_node(node): self.probes.get(node_id, {}).get("cpu") for node_id, node in self.nodes.items()}

    # --- running ---------------------------------------------------------------------------------------
    def run_clips(self, spec: Any, device: str, cache_root: Any, samples: list,
                  stages: frozenset[str] | None = None) -> Iterator[ClipOutcome]:
        self.start()
        backend = _RayBackend(self, spec, device, absolute(cache_root), stages)
        try:
            self._check_nodes(refuse=False)  # nodes that joined since the last spec
        except Exception as exc:  # noqa: BLE001 - the cluster is gone: every clip says so (_RayBackend.submit)
            backend.lost = f"the Ray cluster stopped answering ({type(exc).__name__}: {exc})"
        return stream_clips(samples, backend, absolute(cache_root), self.retries)

    def close(self) -> None:
        """Leave Ray (stopping the local instance this executor started)."""
        if self._owns and self.ray.is_initialized():
            self.ray.shutdown()
            if self._auth_mode is None:  # a local ray.init turns token auth on for this process: turn it back
                os.environ.pop("RAY_AUTH_MODE", None)
        self._owns, self._task = False, None
        self.nodes.clear()
        self.probes.clear()
        self._refused.clear()


class _RayBackend:
    """Ray's side of :func:`~freqrex_audit.audit.fanout.stream_clips`: tasks pinned to checked nodes."""

    def __init__(self, executor: RayExecutor, spec: Any, device: str, cache_root: Any,
                 stages: frozenset[str] | None = None):
        self.ex, self.ray, self.spec, self.cache_root, self.stages = executor, executor.ray, spec, cache_root, stages
        cuda = str(device).startswith("cuda")
        self.gpus = executor.num_gpus if executor.num_gpus is not None else (1.0 if cuda else 0.0)
        self.device = "cuda" if self.gpus else device  # a GPU task sees only its own GPU: "cuda" is that one
        self.running: dict[Any, tuple[str, int]] = {}  # task -> (node id, its sample's id())
        self.failed_on: dict[int, set[str]] = {}  # a sample's id() -> the nodes its task failed on
        self.lost: str | None = None  # why the cluster cannot be reached, once it cannot

    def _capacity(self, node: dict) -> int:
        resources = node["Resources"]
        return int(resources.get("GPU", 0) // self.gpus) if self.gpus else int(resources.get("CPU", 0))

    def _free_by_node(self) -> dict[str, int]:
        used: dict[str, int] = {}
        for node_id, _ in self.running.values():
            used[node_id] = used.get(node_id, 0) + 1
        return {node_id: self._capacity(n) - used.get(node_id, 0) for node_id, n in self.ex.nodes.items()}

    def free(self) -> int:
        free = sum(max(0, k) for k in self._free_by_node().values())
        if self.ex.workers and self.ex.address != "none":
            free = min(free, self.ex.workers - len(self.running))
        return free

    def unavailable(self) -> str | None:
        kind = "GPU" if self.gpus else "CPU"
        return (f"no node of the Ray cluster can take it ({len(self.ex.nodes)} usable node(s) left with a "
                f"free {kind}; refused or lost: {len(self.ex._refused)})")

    def submit(self, sample: Any, settings: Settings) -> tuple[Any, str]:
        from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

        if self.lost:
            raise BackendLost(self.lost)
        free = {n: k for n, k in self._free_by_node().items() if k > 0}
        # a retry goes to a node it has not failed on when one is free (a dying node is not yet known dead)
        free = {n: k for n, k in free.items() if n not in self.failed_on.get(id(sample), ())} or free
        node_id = max(free, key=lambda n: free[n])  # spread: the node with the most free slots
        where = describe_node(self.ex.nodes[node_id])
        try:
            ref = self.ex._task.options(num_cpus=1, num_gpus=self.gpus, max_retries=0, retry_exceptions=False,
                                        scheduling_strategy=NodeAffinitySchedulingStrategy(node_id, soft=False)
                                        ).remote(self.spec, self.device, self.cache_root, sample, settings, where,
                                                 self.stages)
        except Exception as exc:  # noqa: BLE001 - a task cannot even be sent: the cluster is gone
            raise BackendLost(f"the Ray cluster stopped answering ({type(exc).__name__}: {exc})") from None
        self.running[ref] = (node_id, id(sample))
        return ref, where

    def wait(self, timeout: float) -> list[tuple[Any, ClipOutcome | Failure]]:
        ray = self.ray
        try:
            refs = list(self.running)
            ready, rest = ray.wait(refs, num_returns=1, timeout=timeout)
            if ready and rest:
                ready += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        except Exception as exc:  # noqa: BLE001 - the driver lost the cluster
            raise BackendLost(f"the Ray cluster stopped answering ({type(exc).__name__}: {exc})") from None
        ended: list[tuple[Any, ClipOutcome | Failure]] = []
        for ref in ready:
            node_id, sample = self.running.pop(ref)
            try:
                ended.append((ref, ray.get(ref)))
            except Exception as exc:  # noqa: BLE001 - every way a task can end without an outcome
                ended.append((ref, self._failure(exc)))
                self.failed_on.setdefault(sample, set()).add(node_id)
                if self._node_gone(exc):  # before Ray's heartbeats mark it dead: no more tasks there
                    self.ex.nodes.pop(node_id, None)
                    self.ex._refused.add(node_id)
        if any(isinstance(result, Failure) for _, result in ended):
            self._forget_dead_nodes()
        return ended

    def _failure(self, exc: Exception) -> Failure:
        from ray import exceptions as rx

        if isinstance(exc, rx.RayTaskError):  # the task could not even start its code (a module missing there)
            cause = getattr(exc, "cause", None) or exc
            return Failure(f"the task failed ({type(cause).__name__}: {str(cause).strip().splitlines()[-1]})",
                           retry=False)
        first = str(exc).strip().split(". ")[0]
        if isinstance(exc, (rx.WorkerCrashedError, rx.NodeDiedError, rx.LocalRayletDiedError, rx.ObjectLostError,
                            rx.OutOfMemoryError, rx.TaskUnschedulableError)):
            return Failure(f"the worker process died ({type(exc).__name__}: {first})")
        return Failure(f"the task ended without a result ({type(exc).__name__}: {first})", retry=False)

    def _node_gone(self, exc: Exception) -> bool:
        from ray import exceptions as rx

        return isinstance(exc, (rx.NodeDiedError, rx.TaskUnschedulableError))

    def _forget_dead_nodes(self) -> None:
        try:
            alive = {n["NodeID"] for n in self.ex._alive()}
        except Exception:  # noqa: BLE001 - the next wait() says the cluster is gone
            return
        for node_id in set(self.ex.nodes) - alive:
            del self.ex.nodes[node_id]

    def abandon(self) -> None:
        for ref in self.running:
            try:
                self.ray.cancel(ref, force=True)  # kills the worker process, even a stopped one
            except Exception:  # noqa: BLE001 - its node is gone already
                pass
        self.running.clear()
