"""Issue #32: audits on a Ray cluster of two nodes on this machine (token auth, as README starts one), and the
process pool with the same fault handling: a worker that dies is an errored clip and the run goes on; a
worker that stops answering cannot hold the run past ``--deadline``; ``--threads`` and the settings reach the
workers; one cache at the driver's absolute path; every ``--address`` form; a node that cannot load the
project is refused by name. The CLI runs as a user runs it (a child process): no traceback, exit statuses.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest

from freqrex_audit.runtime import deadline
from tests.audit_models import write_robust_dataset
from tests.audit_runs import (assert_same_arrays, cli_command, default_sigint, npz_arrays, stable_text,
                              subprocess_env)
from tests.cluster_models import GOOD, SPEC

ray = pytest.importorskip("ray", reason="the [ray] extra is not installed (CI installs it: .ci/run)")

from tests.ray_cluster import LocalCluster, shared_cluster, start_cluster, stop_cluster  # noqa: E402

DEADLINES_S = (20, 60)
"""From the session's start, tried in turn until a worker has stopped before the deadline (the test's premise):
Ray's node check, the model's load and a worker's start took 3 s (process pool) and 7 s (the Ray cluster, already
up) on a quiet 2-core machine, 10–20 s earlier and up to ~55 s on one shared at a load of 15 (measured). A run
whose workers had not stopped by its deadline proves nothing about a stopped worker: the next, longer deadline
is tried (the last one is the test's old, only deadline), so the first rung only saves the wait when it can."""
MARGIN_S = 90
"""After each deadline: cutting, results.json (the report is not drawn here: ``audit(page=False)``) and leaving
Ray (~10 s quiet with the report, up to ~45 s at a load of 15); a driver that waited for its stopped workers would
never end."""


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> LocalCluster:
    base = tmp_path_factory.getbasetemp()
    with shared_cluster(base.parent if os.environ.get("PYTEST_XDIST_WORKER") else base) as shared:
        yield shared


def project(root: Path, specs: dict[str, str]) -> Path:
    write_robust_dataset(root / "data", per_class=1)  # two clips: enough to fan out
    for name, text in specs.items():
        (root / name).write_text(text)
    return root


def audit(root: Path, *args: str, env: dict | None = None, timeout: float = 400, page: bool = False
          ) -> tuple[int, str, float, dict]:
    """``freqrex-audit audit`` in a child process: exit status, stderr + stdout, seconds, results.json (its
    path in the document's ``"path"``); the HTML report only with ``page`` (these tests read the JSON)."""
    before = set(root.glob("reports/*/results.json"))
    began = time.monotonic()
    done = subprocess.run(cli_command("audit", *args, "--report", "reports", "--device", "cpu", "-q",
                                      *(() if page else ("--no-report",))), cwd=root,
                          env=env or subprocess_env(), capture_output=True, text=True, timeout=timeout)
    seconds = time.monotonic() - began
    new = set(root.glob("reports/*/results.json")) - before
    path = new.pop() if new else None
    doc = {**json.loads(path.read_text()), "path": path} if path else {}
    return done.returncode, done.stderr + done.stdout, seconds, doc


def executor_args(request, name: str) -> tuple[list[str], dict]:
    if name == "process":
        return ["--executor", "process", "--workers", "2"], subprocess_env()
    shared = request.getfixturevalue("cluster")
    return ["--executor", "ray", "--address", shared.address], shared.driver_env()


@pytest.mark.parametrize("name", ["ray", "process"])
def test_a_model_that_kills_its_workers_is_an_errored_spec_and_the_good_spec_is_kept(request, tmp_path, name):
    """Every worker that loads the model dies (SIGKILL): each clip is tried twice (``--retries 1``), then is an
    error naming where and why; the spec's model check fails; the next spec is audited as usual; results.json
    and the report are written; exit 1 (a gate failed), no traceback."""
    marker = tmp_path / "died"
    root = project(tmp_path, {"a_crash.yaml": SPEC % ("cluster_models:crashing", f"{{marker: '{marker}'}}"),
                              "b_good.yaml": GOOD})
    args, env = executor_args(request, name)
    code, out, _, doc = audit(root, "a_crash.yaml", "b_good.yaml", *args, "--retries", "1", "--no-cache", env=env,
                              page=True)
    assert code == 1 and "Traceback" not in out, out[-3000:]
    assert doc["run"]["verdict"] == "failed" and doc["path"].with_name("report.html").exists()
    crash, good = doc["specs"]["a_crash"], doc["specs"]["b_good"]
    assert {v["outcome"] for v in good["verdicts"]} == {"passed"}, good["verdicts"]
    assert [s["status"] for s in crash["samples"]] == ["error", "error"]
    where = "on node " if name == "ray" else "on worker process "
    for sample in crash["samples"]:
        assert sample["reason"].startswith("not analysed: the worker process died"), sample["reason"]
        assert where in sample["reason"] and "tried 2 times" in sample["reason"], sample["reason"]
    assert "failed on every clip" in crash["error"]
    verdicts = {(v["check"], v["key"]): v["outcome"] for v in crash["verdicts"]}
    assert verdicts[("model", "load")] == "failed"
    assert len(list(marker.iterdir())) == 4  # 2 clips x (1 try + 1 retry): the retries are capped


@pytest.mark.parametrize("name", ["ray", "process"])
def test_a_stopped_worker_cannot_hold_the_run_past_the_deadline(request, tmp_path, name):
    """The workers stop themselves (SIGSTOP) on their first model call: the driver still ends the run at
    ``--deadline`` (exit 3, results.json says the deadline hit, both clips interrupted) and kills them."""
    args, env = executor_args(request, name)
    for seconds in DEADLINES_S:
        run = tmp_path / f"deadline-{seconds}"
        marker = run / "stopped"
        root = project(run, {"stop.yaml": SPEC % ("cluster_models:crashing", f"{{how: SIGSTOP, marker: '{marker}'}}")})
        code, out, _, doc = audit(root, "stop.yaml", *args, "--deadline", str(seconds), "--no-cache", env=env)
        ended = time.time()
        assert code == 3 and "Traceback" not in out, out[-3000:]
        passed = datetime.strptime(doc["timings"]["started"], "%Y-%m-%dT%H:%M:%S%z").timestamp() + seconds
        assert ended < passed + 1 + MARGIN_S, f"the run ended {ended - passed:.0f} s after its deadline"
        stopped = {int(p.name): p.stat().st_mtime for p in marker.iterdir()} if marker.exists() else {}
        if stopped and min(stopped.values()) < passed:
            break  # the premise holds: a worker stopped before the deadline, and this run is the one judged
        _wait_gone(stopped)  # (a worker that stopped after the deadline: still killed, never left behind)
        assert not any(_running(pid) for pid in stopped), "a stopped worker was left behind"
    assert stopped and min(stopped.values()) < passed, \
        f"no worker stopped before the deadline: the machine is slower than DEADLINES_S {DEADLINES_S} assumes"
    assert doc["run"]["deadline"]["hit"] is True and doc["run"]["verdict"] == "interrupted"
    samples = doc["specs"]["stop"]["samples"]
    assert all(deadline.cut_short(s["reason"]) for s in samples), samples
    assert any("while this clip ran on" in s["reason"] for s in samples), samples
    _wait_gone(stopped)
    assert not any(_running(pid) for pid in stopped), "a stopped worker was left behind"


def _wait_gone(pids, seconds: float = 30) -> None:
    """Up to ``seconds`` for ``pids`` to end (Ray kills them asynchronously)."""
    end = time.monotonic() + seconds
    while any(_running(pid) for pid in pids) and time.monotonic() < end:
        time.sleep(0.5)


def test_ctrl_c_keeps_the_specs_that_finished_and_leaves_no_worker(tmp_path):
    """Ctrl-C while the pool's workers are in 30-s model calls: exit 130, results.json has the spec that
    finished, the workers are gone, no traceback."""
    slow = SPEC % ("hostile_models:slow", "{sleep_s: 30, after_calls: 3}")
    root = project(tmp_path, {"a_good.yaml": GOOD, "b_slow.yaml": slow})
    child = subprocess.Popen(cli_command("audit", "a_good.yaml", "b_slow.yaml", "--executor", "process", "--workers",
                                         "2", "--no-cache", "--report", "reports", "--device", "cpu", "-q"),
                             cwd=root, env=subprocess_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                             stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    lines = []
    for line in child.stdout:  # a_good's summary line: b_slow's clips are next, on the workers
        lines.append(line)
        if line.startswith("a_good: "):
            break
    workers = _children(child.pid)
    end = time.monotonic() + 120
    while len(workers) < 2 and time.monotonic() < end:  # the pool's two workers, in b_slow's calls by now
        time.sleep(0.5)
        workers = _children(child.pid)
    time.sleep(2)
    child.send_signal(signal.SIGINT)
    out = "".join(lines) + child.stdout.read()
    assert child.wait(timeout=120) == 130 and "Traceback" not in out, out[-3000:]
    doc = json.loads(next(root.glob("reports/*/results.json")).read_text())
    assert doc["run"]["interrupted"] is True and list(doc["specs"]) == ["a_good"]
    end = time.monotonic() + 30
    while any(_running(pid) for pid in workers) and time.monotonic() < end:  # (multiprocessing's resource
        time.sleep(0.5)  # tracker, a child too, ends when it notices its parent has)
    left = [Path(f"/proc/{pid}/cmdline").read_text().replace("\0", " ") for pid in workers if _running(pid)]
    assert workers and not left, f"left behind: {left}"


def _children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except (OSError, IndexError):
        return False
    return state != "Z"


def test_threads_and_settings_reach_the_workers_and_the_cache_is_the_drivers(cluster, tmp_path):
    """``--threads 2`` on Ray gives serial ``--threads 2``'s results.json and arrays exactly, for a model whose
    numbers move with the thread count and with FREQREX_ALLOWED_ROOTS; the relative ``--cache`` is the
    driver's folder (the nodes run elsewhere and write nothing), and a serial run then hits every entry."""
    from tests.cluster_models import settings_sensitive

    import torch

    x = torch.linspace(-1, 1, 800)[None]
    threads = torch.get_num_threads()
    try:
        outputs = []
        for count in (1, 2):
            torch.set_num_threads(count)
            outputs.append(settings_sensitive()(x))
    finally:
        torch.set_num_threads(threads)
    assert not torch.equal(*outputs)  # the model does tell thread counts apart

    (tmp_path / "shared").mkdir()
    root = project(tmp_path, {"tuned.yaml": SPEC % ("cluster_models:settings_sensitive", "{}")})
    env = cluster.driver_env(FREQREX_ALLOWED_ROOTS=str(tmp_path / "shared"))
    code, out, _, _ = audit(root, "tuned.yaml", "--threads", "2", "--no-cache", env=env)
    serial = next(root.glob("reports/*/results.json"))
    assert code in (0, 1), out
    code, out, _, doc = audit(root, "tuned.yaml", "--threads", "2", "--cache", "cache", "--executor", "ray",
                              "--address", cluster.address, env=env)
    assert code in (0, 1) and "Traceback" not in out, out[-3000:]
    fanned = doc["path"]
    assert stable_text(fanned) == stable_text(serial)
    assert_same_arrays(npz_arrays(fanned), npz_arrays(serial))
    assert list((root / "cache").rglob("*.frx")) and not (Path(cluster.workdir) / "cache").exists()
    code, out, _, doc = audit(root, "tuned.yaml", "--threads", "2", "--cache", "cache", env=env)
    cache = doc["timings"]["per_spec"]["tuned"]["cache"]
    assert cache["misses"] == 0 and cache["hits"] > 0, cache
    assert stable_text(doc["path"]) == stable_text(serial)


def test_every_address_form_does_what_it_says(cluster, tmp_path):
    """auto follows RAY_ADDRESS and ray:// goes through Ray Client (each joins, says so, and finds both nodes
    importing this checkout; HOST:PORT is every other test's; none, a private instance even with RAY_ADDRESS
    set, is tests/test_executors.py's), and anything else is a usage error."""
    import freqrex_audit

    root = project(tmp_path, {"tiny.yaml": GOOD})
    runs = {"auto": (["--address", "auto"], cluster.driver_env(RAY_ADDRESS=cluster.address)),
            "client": (["--address", f"ray://127.0.0.1:{cluster.client_port}"], cluster.driver_env())}
    zombie = None
    for name, (args, env) in runs.items():
        code, out, _, doc = audit(root, "tiny.yaml", "--executor", "ray", *args, "--no-cache", env=env)
        broke = _ray_client_server_broke(out, cluster) if name == "client" and code == 2 else None
        if broke and "Traceback" not in out:
            # Ray Client's server (Ray's process, not ours) trips over a child nobody reaped, in a container whose
            # PID 1 does not reap: seen in CI and under load, named in the driver's message or only as "Starting
            # Ray client server failed". Our side did its job: one usage error with Ray's reason, no traceback.
            zombie = broke
            continue
        assert code == 0 and "Traceback" not in out, (name, out[-3000:])
        here = f"from {Path(freqrex_audit.__file__).parent} (as here)"  # both nodes import this checkout
        assert "joined the Ray cluster at" in out and "2 node(s)" in out and here in out, (name, out)
        assert {s["status"] for s in doc["specs"]["tiny"]["samples"]} == {"ok"}
    code, out, _, _ = audit(root, "tiny.yaml", "--executor", "ray", "--address", "head-node", env=cluster.driver_env())
    assert code == 2 and "give none (a local Ray instance), auto" in out and "Traceback" not in out, out
    if zombie:
        pytest.xfail(f"ray:// not tried to the end: Ray Client's own server failed (Ray's process, not ours): {zombie}")


def _ray_client_server_broke(out: str, cluster: LocalCluster) -> str | None:
    """What broke when Ray Client's own server (a process the head starts, not ours) could not serve: an unreaped
    (zombie) child named in the driver's message, or "Starting Ray client server failed" with the tail of that
    server's log under the head's temp dir. None when the failure is not Ray's server."""
    if "ZombieProcess" in out:
        return out[-600:]
    if "Starting Ray client server failed" not in out:
        return None
    logs = sorted(Path(cluster.temp_dir).rglob("ray_client_server*.err"))
    return out[-300:] + "\nserver log: " + ("\n".join(_telling_lines(log) for log in logs) or "(none found)")


def _telling_lines(log: Path, keep: int = 8) -> str:
    """The lines of a Ray log that say what failed (errors, failures, fork), not its tail: the proxy's log ends
    in "Retrying Logstream" lines that hide why the server died."""
    lines = log.read_text(errors="replace").splitlines()
    telling = [line for line in lines if any(w in line.lower() for w in ("error", "fail", "fork", "exception"))]
    return f"{log.name}: " + " | ".join((telling or lines)[-keep:])[-800:]


def test_a_node_that_cannot_load_the_project_is_refused_by_name(tmp_path):
    """A one-node cluster whose Python finds a broken freqrex_audit (as a venv without the project's
    dependencies does): the audit refuses it before any spec runs, naming the node and the error (exit 2)."""
    shadow = tmp_path / "shadow" / "freqrex_audit"
    shadow.mkdir(parents=True)
    (shadow / "__init__.py").write_text("raise ModuleNotFoundError(\"No module named 'numpy'\")\n")
    from tests.audit_runs import REPO

    broken = start_cluster(nodes=1, pythonpath=os.pathsep.join([str(shadow.parent), str(REPO)]))
    try:
        root = project(tmp_path, {"tiny.yaml": GOOD})
        code, out, _, doc = audit(root, "tiny.yaml", "--executor", "ray", "--address", broken.address,
                                  env=broken.driver_env())
    finally:
        stop_cluster(broken)
    assert code == 2 and "Traceback" not in out and not doc, out
    assert "cannot load freqrex_audit there: ModuleNotFoundError: No module named 'numpy'" in out, out
    assert "has node(s) this audit cannot use" in out and "\n  node " in out, out
