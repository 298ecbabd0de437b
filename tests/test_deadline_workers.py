"""The session deadline beyond the audit's own loop: in the process / Ray executors' workers, around model
loading, and under pytest-xdist. A cut clip is *interrupted* wherever it ran; measured clips keep verdicts.

The models sleep per call (``tests.hostile_models:slow``) so time passes; where a test must be exact, the
model advances a fake clock instead. Time bounds are the model's own sleep (a call of 30 s that the deadline
must cut), never a speed."""

from __future__ import annotations

import json
import os
import time
import xml.etree.ElementTree as ET
from types import SimpleNamespace

import pytest

from freqrex_audit.runtime import deadline
from freqrex_audit.audit import executors
from freqrex_audit.audit.run import run_spec
from freqrex_audit.cli.main import DEADLINE_EXIT, main
from freqrex_audit.audit.datasets import list_samples
from freqrex_audit.audit.executors import configure, run_clip
from freqrex_audit.audit.records import Outcome
from freqrex_audit.models.self_check import SELF_CHECK_CALLS
from freqrex_audit.specs.loader import load_spec
from tests import hostile_models as hm
from tests.audit_models import write_robust_dataset
from tests.test_deadline import SPEC

CALL_S = 30.0
"""Each model call after the load's self-check sleeps this long: a clip is far longer than any deadline here."""
SLEEPY = SPEC.replace("options: {sleep_s: 0.05}", f"options: {{sleep_s: {CALL_S:g}, after_calls: {SELF_CHECK_CALLS}}}")
XDIST_DEADLINE_S = 15
"""Counted from the controller's start: xdist's two workers start in ~3 s on a quiet machine (the fast spec
needs ~3 s more), in up to ~25 s on a loaded one (then the fast spec's clips are cut too, and checked as such)."""
FAST = SPEC.replace("options: {sleep_s: 0.05}", "options: {sleep_s: 0.0}")


@pytest.fixture(autouse=True)
def clean_state(monkeypatch):
    monkeypatch.delenv("FREQREX_EXECUTOR", raising=False)
    yield
    deadline.clear()
    configure("environment")
    executors._RUNNERS.clear()  # run_clip called in this process caches its runner like a worker does


def project(root, spec_text: str, name: str = "slow", per_class: int = 1):
    write_robust_dataset(root / "data", per_class=per_class)
    (root / f"{name}.yaml").write_text(spec_text)
    return root / f"{name}.yaml"


def outcomes(doc_spec: dict) -> dict[tuple[str, str], str]:
    return {(v["check"], v["key"]): v["outcome"] for v in doc_spec["verdicts"]}


# --- 1. workers arm the parent's deadline -----------------------------------------------------------------

def test_a_worker_arms_the_deadline_it_is_given_and_cuts_its_clip(tmp_path):
    """run_clip is the worker's task: with the parent's deadline, a clip whose call would sleep 30 s comes
    back cut at the deadline; with a deadline already passed, the worker does not even load the model."""
    spec = load_spec(project(tmp_path, SLEEPY))
    sample = list_samples(spec.dataset)[0]
    began = time.monotonic()
    outcome = run_clip(spec, "cpu", None, sample, (2.0, time.time() + 2.0))
    assert time.monotonic() - began < CALL_S  # the sleeping call was abandoned, not waited for
    assert outcome.remote and deadline.cut_short(outcome.record.reason), outcome.record.reason
    assert "session deadline of 2 s passed" in outcome.record.reason

    executors._RUNNERS.clear()  # a fresh worker: the model is not loaded yet
    slow_load = load_spec(project(tmp_path, SLEEPY.replace(f"after_calls: {SELF_CHECK_CALLS}", f"load_s: {CALL_S:g}"), "load"))
    began = time.monotonic()
    outcome = run_clip(slow_load, "cpu", None, sample, (2.0, time.time() - 1.0))
    assert time.monotonic() - began < CALL_S and not executors._RUNNERS  # no load was started
    assert outcome.record.reason == "not measured: the session deadline of 2 s passed before loading the model"
    fast = load_spec(project(tmp_path, FAST, "fast"))
    assert run_clip(fast, "cpu", None, sample, None).record.analysed  # a reused worker given none keeps none
    assert deadline.remaining() is None


class InProcessPool:
    """An executor whose 'workers' are this process: every clip runs through the worker task with the deadline
    it carries, all before the audit sees any outcome (as a process pool's list does)."""

    def run_clips(self, spec, device, cache_root, samples, stages=None):
        return [run_clip(spec, device, cache_root, sample, deadline.current(), stages=stages) for sample in samples]


def test_clips_cut_in_workers_are_interrupted_and_measured_ones_keep_their_verdicts(tmp_path, monkeypatch):
    """Deterministic (the model advances a fake clock 0.01 s per call): the worker-side deadline cuts the same
    clips the serial run cuts, and every clip a worker measured keeps its verdict, even those gathered after
    the first cut clip."""
    path = project(tmp_path, SPEC.replace("slow\"", "ticking\"").replace("sleep_s: 0.05", "tick_s: 0.01")
                   .replace("sample_rate: 8000,", "sample_rate: 8000, clips_at_once: 1,"), per_class=4)  # one by one
    monkeypatch.setattr(deadline, "time", SimpleNamespace(time=lambda: hm.CLOCK[0]))

    def run(executor):
        monkeypatch.setattr(hm, "CLOCK", [0.0])
        configure(executor)
        deadline.start(2.0, started=0.0)
        return run_spec(load_spec(path), "cpu")

    serial, pooled = run(None), run(InProcessPool())
    for result in (serial, pooled):
        measured = [r.sample.id for r in result.samples if r.analysed]
        cut = [r.sample.id for r in result.samples if deadline.cut_short(r.reason)]
        assert measured and cut and measured + cut == [r.sample.id for r in result.samples]
        verdicts = {(v.check, v.key): v.outcome for v in result.verdicts}
        assert all(verdicts[("sufficiency", c)] == Outcome.PASSED for c in measured)
        assert all(verdicts[("sufficiency", c)] == Outcome.INTERRUPTED for c in cut)
        assert verdicts[("accuracy", "aggregate")] == Outcome.INTERRUPTED
        assert deadline.facts()["hit"] is True
    # the worker loads its own model (the self-check's calls on the clock), so it may cut at most one clip earlier
    assert 0 <= sum(r.analysed for r in serial.samples) - sum(r.analysed for r in pooled.samples) <= 1


@pytest.mark.parametrize("executor", ["process"])
def test_the_cli_deadline_cuts_clips_running_in_real_workers(tmp_path, monkeypatch, capsys, executor):
    """Two clips on two worker processes, each far longer than the deadline: both come back interrupted
    (a worker without the deadline would measure them, 30 s a call), the run exits DEADLINE_EXIT and
    results.json says the deadline was hit. (On Ray, whose start counts in the deadline too, the same is
    tested on a two-node cluster with a worker that stops answering: tests/test_ray_cluster.py.)"""
    from tests.audit_runs import REPO

    monkeypatch.chdir(tmp_path)
    project(tmp_path, SLEEPY)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    began = time.monotonic()
    code = main(["audit", "slow.yaml", "--deadline", "4", "--executor", executor, "--workers", "2",
                 "--report", "reports", "--no-cache", "--device", "cpu", "-q"])
    assert time.monotonic() - began < CALL_S + 30  # not a call of 30 s per clip query after query
    out = capsys.readouterr().out
    assert code == DEADLINE_EXIT, out
    doc = json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text())
    assert doc["run"]["deadline"]["hit"] is True and doc["run"]["verdict"] == "interrupted"
    spec = doc["specs"]["slow"]
    assert len(spec["samples"]) == 2 and all(deadline.cut_short(s["reason"]) for s in spec["samples"]), spec["samples"]
    verdicts = outcomes(spec)
    assert verdicts[("model", "load")] == Outcome.PASSED  # the parent loaded it in time
    assert all(o == Outcome.INTERRUPTED for (check, _), o in verdicts.items() if check != "model"), verdicts


# --- 2. model loading ---------------------------------------------------------------------------------------

def test_no_model_load_starts_after_the_deadline(tmp_path):
    path = project(tmp_path, SLEEPY.replace(f"after_calls: {SELF_CHECK_CALLS}", f"load_s: {CALL_S:g}"))
    deadline.start(1.0, started=time.time() - 2.0)
    began = time.monotonic()
    result = run_spec(load_spec(path), "cpu")
    assert time.monotonic() - began < CALL_S  # the factory's 30-s sleep never started
    assert result.error == "not measured: the session deadline of 1 s passed before loading the model"
    assert {v.outcome for v in result.verdicts} == {Outcome.INTERRUPTED} and result.queries == 0
    assert all(deadline.cut_short(r.reason) for r in result.samples)


def test_a_load_that_ends_after_the_deadline_is_reported_and_measures_nothing(tmp_path):
    path = project(tmp_path, SLEEPY.replace("sleep_s: 30", "sleep_s: 0").replace(f"after_calls: {SELF_CHECK_CALLS}", "load_s: 1.5"))
    deadline.start(0.5)
    result = run_spec(load_spec(path), "cpu")
    assert deadline.cut_short(result.error) and "the session deadline of 0.5 s passed" in result.error
    assert "loading the model" in result.error, result.error
    assert result.queries == 0 and not any(r.analysed for r in result.samples)
    verdicts = {(v.check, v.key): v for v in result.verdicts}
    assert {v.outcome for v in verdicts.values()} == {Outcome.INTERRUPTED}
    assert "loading the model" in verdicts[("model", "load")].message


def test_a_subprocess_load_is_killed_at_the_deadline(tmp_path):
    spec_text = SLEEPY.replace(f"after_calls: {SELF_CHECK_CALLS}", f"load_s: {CALL_S:g}").replace(
        "sample_rate: 8000,", "sample_rate: 8000, isolation: subprocess,")
    path = project(tmp_path, spec_text)
    deadline.start(2.0)
    began = time.monotonic()
    result = run_spec(load_spec(path), "cpu")
    assert time.monotonic() - began < CALL_S  # the child's 30-s load was killed, not waited for
    assert result.error == ("not measured: the session deadline of 2 s passed while loading the model "
                            "(the model process was killed)")
    assert {v.outcome for v in result.verdicts} == {Outcome.INTERRUPTED}


# --- 3. pytest-xdist ----------------------------------------------------------------------------------------

def test_xdist_deadline_ends_the_run_and_every_view_agrees(pytester, monkeypatch, tmp_path):
    """``-n 2 --freqrex-deadline 15``: a fast spec on one worker, a spec whose calls sleep 30 s on the other.
    The session ends at the deadline (the 30-s call is abandoned), exits INTERRUPTED, results.json and JUnit
    agree the deadline hit, and the fast spec's measured items have the verdicts a run without a deadline
    gives them."""
    from tests.audit_runs import REPO

    monkeypatch.chdir(tmp_path)
    baseline = project(tmp_path, FAST, "fast")
    assert main(["audit", str(baseline), "--report", "reports", "--no-cache", "--device", "cpu", "-q"]) in (0, 1)
    unbounded = outcomes(json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text())["specs"]["fast"])

    monkeypatch.chdir(pytester.path)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    (pytester.path / "pyproject.toml").write_text("")
    write_robust_dataset(pytester.path / "model_specs" / "data", per_class=1)
    (pytester.path / "model_specs" / "fast.yaml").write_text(FAST)
    (pytester.path / "model_specs" / "slow.yaml").write_text(SLEEPY)
    began = time.monotonic()
    result = pytester.runpytest_subprocess("model_specs", "-n", "2", "--freqrex-deadline", str(XDIST_DEADLINE_S),
                                           "--freqrex-no-cache", "--freqrex-device", "cpu", "--junitxml", "junit.xml",
                                           "-rs")
    assert time.monotonic() - began < 3 * CALL_S  # the slow worker's 30-s calls were not waited for (56 a clip)
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert f"freqrex DEADLINE: the session deadline of {XDIST_DEADLINE_S} s passed" in text

    doc = json.loads(next((pytester.path / "reports").glob("*/results.json")).read_text())
    assert doc["run"]["deadline"]["hit"] is True and doc["run"]["verdict"] == "interrupted"
    assert doc["run"]["complete"] is False
    fast, slow = doc["specs"]["fast"], doc["specs"]["slow"]
    measured = {s["id"] for s in fast["samples"] if s["explanation"] is not None}  # all, unless the machine
    cut = {s["id"] for s in fast["samples"] if deadline.cut_short(s["reason"])}  # is too loaded to start in time
    assert measured | cut == {s["id"] for s in fast["samples"]}
    for key, outcome in outcomes(fast).items():  # what was measured has the verdict of a run without a deadline
        loaded = not deadline.cut_short(fast["error"])
        if (key[0] == "model" and loaded) or key[1] in measured or (key[1] == "aggregate" and not cut):
            assert outcome == unbounded[key], (key, outcome, unbounded[key])
        else:
            assert outcome == Outcome.INTERRUPTED, (key, outcome)
    assert all(deadline.cut_short(s["reason"]) for s in slow["samples"]), slow["samples"]
    assert all(o == Outcome.INTERRUPTED for (check, _), o in outcomes(slow).items() if check != "model")

    junit = {f"{c.get('classname').replace('.', '/', 1)}::{c.get('name').split('@')[0]}": c
             for c in ET.parse(pytester.path / "junit.xml").getroot().iter("testcase")}
    by_item = {v["item"]: v for spec in (fast, slow) for v in spec["verdicts"]}
    assert sorted(junit) == sorted(by_item)
    for item, v in by_item.items():  # JUnit agrees with results.json, item by item
        case = junit[item]
        skipped, failed = case.find("skipped"), case.find("failure")
        if v["outcome"] == Outcome.INTERRUPTED:
            assert skipped is not None, item
            assert f"session deadline of {XDIST_DEADLINE_S} s passed" in skipped.get("message"), item
        else:
            assert skipped is None and (failed is not None) == (v["outcome"] == Outcome.FAILED), item
