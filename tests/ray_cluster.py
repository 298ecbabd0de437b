"""A Ray cluster of several nodes on this machine, started the way README tells a cluster user to (``ray start
--head``, then ``ray start --address HEAD:PORT`` per node, token authentication on), as Ray's own tests do.

Every ``ray start --block`` is a child process of ours, so the cluster is stopped by those process ids
(never by ``ray stop``, which would stop every Ray on the machine). One cluster serves a whole test run: the
xdist workers of one run share it through a small state file under the run's base temp folder, counted
in and out under a file lock; the last one out stops it.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path

from tests.audit_runs import REPO

RAY = str(Path(sys.executable).with_name("ray"))
START_TIMEOUT_S = 240
"""A node's `ray start` on a loaded 2-core machine takes 5–30 s; a cluster not up in this time is broken."""


@dataclass
class LocalCluster:
    """How to reach the cluster: the head's GCS ``address``, Ray Client's ``client_port``, the token settings a
    driver needs (``env``) and ``workdir``, where the nodes run."""

    address: str
    client_port: int
    env: dict
    workdir: str
    pids: list
    temp_dir: str

    def driver_env(self, **extra: str) -> dict[str, str]:
        """A CLI child's environment: this checkout first on PYTHONPATH, the cluster's token, ``extra``."""
        from tests.audit_runs import subprocess_env

        env = subprocess_env(**self.env, **extra)
        for key in [k for k in env if k.startswith("RAY_") and k not in self.env and k not in extra]:
            del env[key]  # e.g. a RAY_ADDRESS of the machine's own: only what the test says
        return env


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _ray_start(args: list[str], env: dict, cwd: str, log: Path) -> subprocess.Popen:
    with open(log, "ab") as out:
        return subprocess.Popen([RAY, "start", "--block", "--disable-usage-stats", *args], env=env, cwd=cwd,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def _start_node(args: list[str], env: dict, cwd: str, log: Path, pids: list) -> None:
    """``ray start --block ARGS`` until it says "Ray runtime started." (its node is registered with the head);
    tried twice, as Ray gives a raylet 30 s to register, which a loaded 2-core machine can miss."""
    for _ in range(2):
        process = _ray_start(args, env, cwd, log)
        pids.append(process.pid)
        end = time.time() + START_TIMEOUT_S
        while time.time() < end and process.poll() is None:
            if "Ray runtime started." in (log.read_text(errors="replace") if log.exists() else ""):
                return
            time.sleep(0.5)
        if process.poll() is None:
            break
    raise RuntimeError(f"`ray start` did not start a node (log {log}):\n{log.read_text(errors='replace')[-2000:]}")


def start_cluster(nodes: int = 2, cpus: int = 1, pythonpath: str = str(REPO), node_env: dict | None = None
                  ) -> LocalCluster:
    """A head and ``nodes - 1`` worker nodes of ``cpus`` CPUs each, with token auth, on free ports."""
    temp_dir = tempfile.mkdtemp(prefix="frx-ray-")  # short: Ray's socket paths must stay under 107 bytes
    workdir = os.path.join(temp_dir, "nodes")
    os.makedirs(workdir)
    port, client_port = free_port(), free_port()
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(16)}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("RAY_", "FREQREX_"))}
    # RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S: the head's Ray Client proxy waits 30 s (Ray's default) for the
    # server it starts per client. The ray:// test failed once with an empty "Initialization failure from server"
    # on a 2-core machine at a load of 7 (passes alone); a slow server start is the likely cause, not a proven one,
    # so the proxy waits twice Ray's default. Not longer: when that server dies at its start ("Starting Ray client
    # server failed"; the proxy logged that gRPC skipped its fork() handlers, the server an epoll error), the
    # driver's ray.init returns only when the proxy's wait for the dead server's channel (this timeout) has ended:
    # at 120 s, that xfail took ~160 s (measured: the proxy's "Timeout waiting for channel" 120 s after the failure).
    env.update(auth, PYTHONPATH=pythonpath, RAY_USAGE_STATS_ENABLED="0", RAY_CLIENT_SERVER_CHECK_CHANNEL_TIMEOUT_S="60",
               **(node_env or {}))
    address = f"127.0.0.1:{port}"
    memory = str(80 * 1024 * 1024)
    cluster = LocalCluster(address, client_port, auth, workdir, [], temp_dir)
    try:
        _start_node(["--head", "--port", str(port), "--num-cpus", str(cpus), "--include-dashboard", "false",
                     "--dashboard-port", str(free_port()), "--ray-client-server-port", str(client_port),
                     "--object-store-memory", memory, "--temp-dir", temp_dir], env, workdir,
                    Path(temp_dir) / "head.log", cluster.pids)
        for i in range(1, nodes):
            _start_node(["--address", address, "--num-cpus", str(cpus), "--object-store-memory", memory], env,
                        workdir, Path(temp_dir) / f"node{i}.log", cluster.pids)
    except BaseException:
        stop_cluster(cluster)
        raise
    return cluster


def stop_cluster(cluster: LocalCluster) -> None:
    """Stop the nodes (worker nodes first) by their ``ray start`` ids: each stops its own Ray processes."""
    for pid in reversed(cluster.pids):
        try:
            os.kill(pid, signal.SIGTERM)
        except ProcessLookupError:
            continue
        end = time.time() + 30
        while time.time() < end and _alive(pid):
            time.sleep(0.2)
        if _alive(pid):
            os.killpg(pid, signal.SIGKILL)  # its own session (start_new_session): only its processes
    shutil.rmtree(cluster.temp_dir, ignore_errors=True)


def _alive(pid: int) -> bool:
    """Whether ``pid`` still runs (reaped when it is our child; a zombie of another process counts as ended)."""
    try:
        if os.waitpid(pid, os.WNOHANG)[0]:
            return False
    except ChildProcessError:  # another xdist worker's child
        pass
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False


@contextmanager
def shared_cluster(run_folder: Path) -> Iterator[LocalCluster]:
    """The run's one cluster: started by the first user, stopped by the last (a file lock counts them)."""
    from filelock import FileLock

    state = run_folder / "ray_cluster.json"
    with FileLock(str(run_folder / "ray_cluster.lock")):
        if state.exists():
            data = json.loads(state.read_text())
        else:
            data = {"cluster": asdict(start_cluster()), "users": 0}
        data["users"] += 1
        state.write_text(json.dumps(data))
    try:
        yield LocalCluster(**data["cluster"])
    finally:
        with FileLock(str(run_folder / "ray_cluster.lock")):
            data = json.loads(state.read_text())
            data["users"] -= 1
            if data["users"] == 0:
                stop_cluster(LocalCluster(**data["cluster"]))
                state.unlink()
            else:
                state.write_text(json.dumps(data))
