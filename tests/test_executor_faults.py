"""Issue #32, the parts that need no cluster: the driver's loop over a scripted backend (order, retries, a
lost cluster, the deadline), Ray's address forms and node check over a stand-in for Ray, and the usage errors.
The real processes and the real two-node cluster are in tests/test_ray_cluster.py."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest

from freqrex_audit.audit import fanout
from freqrex_audit.audit.datasets import Sample
from freqrex_audit.audit.fanout import BackendLost, ExecutorError, Failure, stream_clips
from freqrex_audit.audit.pipeline import ClipOutcome
from freqrex_audit.audit.records import SampleRecord
from freqrex_audit.runtime import deadline

SAMPLES = [Sample(f"c{i}", Path(f"/data/c{i}.wav"), "low") for i in range(4)]


@pytest.fixture(autouse=True)
def no_deadline():
    yield
    deadline.clear()


class Scripted:
    """A backend whose tasks end as ``script`` says, per clip id and try: ``"ok"``, a Failure, ``"lost"``
    (the cluster goes) or ``"hang"`` (never ends); tasks end in reverse order of submission."""

    def __init__(self, script: dict[str, list], slots: int = 2, one_at_a_time: bool = False):
        self.script, self.slots, self.running, self.tries = script, slots, {}, {}
        self.abandoned: list[str] = []
        self.one_at_a_time = one_at_a_time  # wait() ends only the oldest task

    def free(self) -> int:
        return self.slots - len(self.running)

    def unavailable(self):
        return "no slots"

    def submit(self, sample, settings):
        n = self.tries[sample.id] = self.tries.get(sample.id, 0) + 1
        handle = (sample.id, n)
        self.running[handle] = sample
        return handle, f"slot {len(self.running)}"

    def wait(self, timeout):
        ended = []
        for handle in list(self.running)[:1] if self.one_at_a_time else reversed(list(self.running)):
            steps = self.script.get(handle[0], ["ok"])
            step = steps[min(handle[1], len(steps)) - 1]
            if step == "lost":
                raise BackendLost("the Ray cluster stopped answering (test)")
            if step == "hang":
                continue
            sample = self.running.pop(handle)
            ended.append((handle, step if isinstance(step, Failure) else
                          ClipOutcome(SampleRecord(sample, "ok"), remote=True)))
        return ended

    def abandon(self):
        self.abandoned += [h[0] for h in self.running]
        self.running.clear()


def run(script: dict, retries: int = 1, slots: int = 2) -> tuple[list[ClipOutcome], Scripted]:
    backend = Scripted(script, slots)
    return list(stream_clips(SAMPLES, backend, None, retries)), backend


def test_outcomes_come_in_the_clips_order_whatever_order_they_end_in():
    outcomes, _ = run({})
    assert [o.record.sample.id for o in outcomes] == ["c0", "c1", "c2", "c3"]
    assert all(o.record.status == "ok" and o.remote for o in outcomes)


def test_each_outcome_comes_as_soon_as_it_and_those_before_it_are_known():
    """Progress moves per clip: the first clip's outcome is out while the other three still run."""
    backend = Scripted({}, slots=4, one_at_a_time=True)
    seen = [(o.record.sample.id, len(backend.running)) for o in stream_clips(SAMPLES, backend, None)]
    assert seen == [("c0", 3), ("c1", 2), ("c2", 1), ("c3", 0)]


def test_a_died_worker_is_retried_up_to_the_cap_then_the_clip_is_an_error_naming_where_and_why():
    died = Failure("the worker process died (SIGKILL)")
    outcomes, backend = run({"c1": [died, "ok"], "c2": [died, died, died]}, retries=1)
    assert [o.record.status for o in outcomes] == ["ok", "ok", "error", "ok"]
    assert backend.tries == {"c0": 1, "c1": 2, "c2": 2, "c3": 1}
    assert outcomes[2].record.reason.startswith("not analysed: the worker process died (SIGKILL) while auditing "
                                                "this clip (on slot ") and outcomes[2].record.reason.endswith(
                                                "; tried 2 times)")
    outcomes, backend = run({"c0": [Failure("the task failed (ModuleNotFoundError: numpy)", retry=False)]})
    assert backend.tries["c0"] == 1 and outcomes[0].record.status == "error"  # not retried: it would fail again


def test_a_lost_cluster_makes_every_unfinished_clip_an_error_and_the_audit_goes_on():
    outcomes, _ = run({"c1": ["lost"]}, slots=2)
    assert [o.record.status for o in outcomes] == ["error"] * 4
    assert all("the Ray cluster stopped answering (test)" in o.record.reason for o in outcomes)


def test_a_cluster_lost_while_clips_are_sent_fails_every_unfinished_clip():
    class LostOnSubmit(Scripted):
        def submit(self, sample, settings):
            if sample.id == "c2":
                raise BackendLost("the Ray cluster stopped answering (at submit)")
            return super().submit(sample, settings)

    outcomes = list(stream_clips(SAMPLES, LostOnSubmit({}, slots=4), None))
    assert [o.record.reason for o in outcomes] == ["not analysed: the Ray cluster stopped answering (at submit)"] * 4


def test_no_worker_at_all_is_an_error_per_clip_not_a_hang():
    outcomes, _ = run({}, slots=0)
    assert [o.record.reason for o in outcomes] == ["not analysed: no slots"] * 4


def test_the_driver_cuts_what_runs_and_what_waits_at_the_deadline(monkeypatch):
    """Two clips hang (a stopped worker): at the deadline they and the waiting clips are cut, their tasks
    abandoned, and nothing waits for them."""
    monkeypatch.setattr(fanout, "POLL_S", 0.05)
    deadline.start(0.3)
    outcomes, backend = run({"c0": ["hang"], "c1": ["hang"]}, slots=2)
    assert [o.record.status for o in outcomes] == ["skipped"] * 4
    assert all(deadline.cut_short(o.record.reason) for o in outcomes)
    assert "while this clip ran on slot" in outcomes[0].record.reason
    assert outcomes[2].record.reason.endswith("passed before this clip")
    assert sorted(backend.abandoned) == ["c0", "c1"]


def test_ray_addresses_are_read_as_documented():
    pytest.importorskip("ray")
    from freqrex_audit.audit.ray_executor import parse_address

    assert [parse_address(a) for a in (None, "none", "local", "auto", "head:6379", "10.0.0.2:6379",
                                       "ray://head:10001")] == [
        "none", "none", "none", "auto", "head:6379", "10.0.0.2:6379", "ray://head:10001"]
    for bad in ("head", "head:0", "http://head:8265", "ray://head"):
        with pytest.raises(ExecutorError, match="give none"):
            parse_address(bad)


class FakeRay:
    """Enough of Ray for the node check: nodes, a task per node that answers ``answers[node]``."""

    def __init__(self, answers: dict[str, dict]):
        self.answers = answers

    def nodes(self):
        return [{"NodeID": n.ljust(56, "0"), "Alive": True, "NodeManagerHostname": "host",
                 "NodeManagerAddress": "10.0.0.9", "Resources": {"CPU": 2.0}} for n in self.answers]

    def remote(self, fn):
        class Task:
            def options(self, scheduling_strategy, **_):
                return SimpleNamespace(remote=lambda: scheduling_strategy.node_id[:4])

        return Task()

    def wait(self, refs, num_returns, timeout):
        return list(refs), []

    def get(self, ref):
        return self.answers[ref]

    def cancel(self, ref, force):
        pass


def test_a_node_that_differs_from_the_driver_is_refused_by_name(monkeypatch):
    pytest.importorskip("ray")
    from freqrex_audit.audit import ray_executor

    mine = fanout.node_versions()
    executor = ray_executor.RayExecutor("head:6379")
    executor.ray = FakeRay({"aaaa": dict(mine), "bbbb": {**mine, "torch": "2.0.0"}})
    with pytest.raises(ExecutorError) as refused:
        executor._check_nodes(refuse=True)
    assert f"node host (10.0.0.9, bbbb0000) differs from this machine: torch 2.0.0 (here {mine['torch']})" \
        in str(refused.value)
    assert list(executor.nodes) == ["aaaa".ljust(56, "0")]  # the matching node is kept


def test_a_node_on_another_cpu_is_used_named_and_recorded(monkeypatch):
    """A node whose CPU is not the driver's runs clips (the same code and versions) but is named on stderr and in
    results.json's ``run.node_cpus``; a cluster of this machine's CPU records nothing (results.json stays the
    serial run's)."""
    pytest.importorskip("ray")
    from freqrex_audit.audit import executors, ray_executor
    from freqrex_audit.runs.write import run_info
    from freqrex_audit.runtime.devices import cpu_description

    here = cpu_description()
    mine = {**fanout.node_versions(), "cpu": here}
    said: list[str] = []
    executor = ray_executor.RayExecutor("head:6379", announce=said.append)
    executor.ray = FakeRay({"aaaa": dict(mine), "bbbb": {**mine, "cpu": "Intel Xeon (avx2)"}})
    executor._check_nodes(refuse=True)
    assert len(executor.nodes) == 2 and said == [
        f"node host (10.0.0.9, bbbb0000) runs on another CPU, Intel Xeon (avx2) (here {here}): its clips may differ "
        "from this machine's in their last digits (kernels round by instruction set); results.json names each "
        "node's CPU (run.node_cpus)"]
    monkeypatch.setattr(executors, "_CONFIGURED", [executor])
    cpus = {"node host (10.0.0.9, aaaa0000)": here, "node host (10.0.0.9, bbbb0000)": "Intel Xeon (avx2)"}
    assert executors.node_cpus() == cpus and run_info(0, "cpu", executors.node_cpus())["node_cpus"] == cpus
    executor.ray = FakeRay({"cccc": dict(mine)})  # the cluster now: one node, this machine's CPU
    executor._check_nodes(refuse=True)
    assert executors.node_cpus() is None and "node_cpus" not in run_info(0, "cpu", executors.node_cpus())


def test_a_clip_whose_node_died_is_retried_on_another_node_and_the_node_is_dropped():
    """Found on the two-node cluster: a node's raylet SIGKILLed mid-clip; Ray still listed the node as alive
    when the clip's task failed, so its retry was pinned to the same node (TaskUnschedulableError) and the
    clip became an error although the other node was free. A retry now goes to a node it has not failed on,
    and a node Ray says is gone takes no more tasks."""
    pytest.importorskip("ray")
    from ray import exceptions as rx

    from freqrex_audit.audit import ray_executor

    class Cluster:
        """Two 1-CPU nodes; a task pinned to DEAD_NODE ends with ``kills``' error, every other one is ok."""

        def __init__(self, kills):
            self.kills, self.sent = kills, []

        def remote(self, spec, device, cache_root, sample, settings, where):
            self.sent.append(where)
            return (sample.id, len(self.sent), where)

        def options(self, scheduling_strategy, **_):
            self.node = scheduling_strategy.node_id
            return SimpleNamespace(remote=lambda *a: self.remote(*a[:5], self.node))

        def wait(self, refs, num_returns, timeout):
            return list(refs), []

        def get(self, ref):
            if ref[2] == DEAD_NODE:
                raise self.kills
            return ClipOutcome(SampleRecord(SAMPLES[0], "ok"), remote=True)

    DEAD_NODE, GOOD_NODE = "dead".ljust(56, "0"), "beef".ljust(56, "0")  # Ray checks that they are hex
    nodes = {n: {"NodeID": n, "Alive": True, "NodeManagerHostname": "vm", "NodeManagerAddress": "10.0.0.2",
                 "Resources": {"CPU": 1.0}} for n in (DEAD_NODE, GOOD_NODE)}
    for kills, gone in ((rx.NodeDiedError("node died"), True),
                        (rx.TaskUnschedulableError("node doesn't exist any more"), True),
                        (rx.WorkerCrashedError(), False)):
        fake = Cluster(kills)
        executor = SimpleNamespace(ray=fake, num_gpus=None, nodes=dict(nodes), _refused=set(), workers=None,
                                   address="head:6379", _task=fake, _alive=lambda: list(nodes.values()))  # Ray: both alive
        backend = ray_executor._RayBackend(executor, None, "cpu", None)
        outcomes = list(stream_clips(SAMPLES[:1], backend, None, retries=1))
        assert fake.sent == [DEAD_NODE, GOOD_NODE]  # the retry went to the other node
        assert outcomes[0].record.status == "ok"
        assert (DEAD_NODE in executor._refused) is gone  # a model that crashes: the node is fine


def test_without_ray_the_ray_executor_is_a_usage_error(monkeypatch, tmp_path, capsys):
    from freqrex_audit.cli.main import main

    monkeypatch.setitem(sys.modules, "ray", None)  # import ray -> ImportError, as when it is not installed
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text("model: {target: x}\n")
    assert main(["audit", "spec.yaml", "--executor", "ray"]) == 2
    err = capsys.readouterr().err
    assert 'the Ray executor needs Ray: pip install "freqrex_audit[ray]"' in err and "Traceback" not in err


def test_an_address_where_nothing_answers_is_a_usage_error_not_a_hang(monkeypatch, tmp_path, capsys):
    """ray.init retries an address where nothing listens for ever: the driver tries a TCP connection first, so
    every address form naming a dead head ends at once with exit 2, naming the address."""
    pytest.importorskip("ray")
    import socket
    import time

    from freqrex_audit.cli.main import main

    with socket.socket() as s:  # a port nothing listens on
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text("model: {target: x}\n")
    for address, ray_address in ((f"127.0.0.1:{port}", None), (f"ray://127.0.0.1:{port}", None),
                                 ("auto", f"127.0.0.1:{port}")):
        if ray_address:
            monkeypatch.setenv("RAY_ADDRESS", ray_address)
        began = time.monotonic()
        assert main(["audit", "spec.yaml", "--executor", "ray", "--address", address, "--no-cache"]) == 2
        err = capsys.readouterr().err
        assert f"--address {address}: cannot reach Ray: nothing answers at 127.0.0.1:{port}" in err, err
        assert time.monotonic() - began < 30 and "Traceback" not in err


@pytest.mark.parametrize("env, says", [
    ({"FREQREX_EXECUTOR": "ray", "FREQREX_RAY_ADDRESS": "head-node"}, "--address 'head-node': give none"),
    ({"FREQREX_EXECUTOR": "ray", "ray": None}, 'the Ray executor needs Ray: pip install "freqrex_audit[ray]"'),
    ({"FREQREX_EXECUTOR": "process", "FREQREX_WORKERS": "two"}, "FREQREX_WORKERS must be a whole number"),
    ({"FREQREX_EXECUTOR": "dask"}, "executor must be one of serial, process, ray"),
    ({"FREQREX_EXECUTOR": "ray", "FREQREX_RAY_ADDRESS": "127.0.0.1:1"}, "cannot reach Ray: nothing answers at"),
])
def test_under_pytest_an_executor_that_cannot_work_is_a_usage_error(pytester, monkeypatch, env, says):
    """The environment the plugin's audits read: a bad setting stops pytest at start with one line (exit 4),
    not one traceback per item (exit 1)."""
    if "ray" in env:
        monkeypatch.setitem(sys.modules, "ray", env.pop("ray"))  # import ray -> ImportError: not installed
    elif env.get("FREQREX_EXECUTOR") == "ray":
        pytest.importorskip("ray")
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    (pytester.path / "model_specs").mkdir()
    (pytester.path / "model_specs" / "spec.yaml").write_text("model: {target: x}\n")
    result = pytester.runpytest_inprocess("model_specs")
    assert result.ret == pytest.ExitCode.USAGE_ERROR, result.stdout.str() + result.stderr.str()
    err = result.stderr.str()
    assert f"FREQREX_EXECUTOR={env['FREQREX_EXECUTOR']}: " in err and says in err and "Traceback" not in err, err


def test_a_clip_a_worker_cannot_read_names_the_worker_node(tmp_path):
    """What a Ray worker could not read on its node (a file missing there) ends with that node's name; a clip
    the driver already refused (outside the roots, no label) and a deadline cut keep the driver's words."""
    from freqrex_audit.audit.datasets import list_samples
    from freqrex_audit.audit.fanout import Settings, run_task
    from freqrex_audit.specs.loader import load_spec
    from tests.audit_models import write_robust_dataset
    from tests.cluster_models import GOOD

    write_robust_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "tiny.yaml").write_text(GOOD)
    spec = load_spec(tmp_path / "tiny.yaml")
    first, second = list_samples(spec.dataset)
    first.path.unlink()  # listed on the driver, missing where the worker runs
    settings = Settings.capture()
    try:
        missing = run_task(spec, "cpu", None, first, settings, where="node gpu-7 (10.0.0.7, 3f9a1c2e)").record
        read = run_task(spec, "cpu", None, second, settings, where="node gpu-7 (10.0.0.7, 3f9a1c2e)").record
        refused = run_task(spec, "cpu", None, dataclasses.replace(second, problem="outside the allowed roots"),
                           settings, where="node gpu-7 (10.0.0.7, 3f9a1c2e)").record
    finally:
        fanout._RUNNERS.clear()
    assert missing.status == "skipped" and missing.reason.endswith(" (on node gpu-7 (10.0.0.7, 3f9a1c2e))")
    assert read.status == "ok" and read.reason is None
    assert refused.reason == "outside the allowed roots"
