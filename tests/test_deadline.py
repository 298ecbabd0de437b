"""Issue #20 round two: a session deadline (--deadline / --freqrex-deadline) ends a run with a slow model in
seconds; what was measured keeps its verdicts, the rest is interrupted, and every view says the deadline hit."""

from __future__ import annotations

import json
import os
import sys
import time
import xml.etree.ElementTree as ET

import numpy as np
import pytest

from freqrex_audit import QueryEngine
from freqrex_audit.runtime import deadline
from freqrex_audit.adapters import load_classifier
from freqrex_audit.cli.main import DEADLINE_EXIT, main
from freqrex_audit.audit.records import Outcome
from tests import hostile_models as hm
from tests.audit_models import write_robust_dataset

SPEC = """
model: {target: "tests.hostile_models:slow", labels: [low, high], sample_rate: 8000, options: {sleep_s: 0.05}}
dataset: {path: data, clip_seconds: 0.25}
freqrex: {seed: 0, iterations: 2, min_iterations: 1, fragility_check: false}
checks:
  accuracy: {min: 0.5}
  sufficiency: {max_fraction: 1.0}
"""
FULL_RUN_CALLS = 451
"""Model calls of SPEC's whole run (8 clips, ~56 calls each; counted with the ticking model below)."""
X = (0.3 * np.sin(np.arange(800) / 3)).astype(np.float32)


@pytest.fixture(autouse=True)
def no_deadline_left():
    yield
    deadline.clear()


def project(tmp_path):
    write_robust_dataset(tmp_path / "data", per_class=4)
    (tmp_path / "slow.yaml").write_text(SPEC)
    return tmp_path


def check_views(doc: dict, html: str) -> None:
    """results.json and the report: the deadline was hit, measured clips keep verdicts, the rest interrupted."""
    run = doc["run"]
    assert run["deadline"]["hit"] is True and run["deadline"]["seconds"] == 2
    assert run["verdict"] == "interrupted" and run["complete"] is False
    spec = doc["specs"]["slow"]
    measured = {s["id"] for s in spec["samples"] if s["explanation"] is not None}
    cut = {s["id"] for s in spec["samples"] if (s["reason"] or "").startswith(deadline.REASON)}
    assert cut and len(measured) + len(cut) <= 8  # partial: the deadline stopped the run
    for v in spec["verdicts"]:
        if v["key"] in cut or v["key"] == "aggregate":
            assert v["outcome"] == Outcome.INTERRUPTED and "session deadline of 2 s passed" in v["message"], v
        elif v["key"] in measured:
            assert v["outcome"] in (Outcome.PASSED, Outcome.FAILED), v
        assert v["outcome"] != Outcome.PASSED or v["key"] in measured or v["check"] == "model"
    assert "session deadline of 2 s passed" in html and "INCOMPLETE" in html


def test_the_cli_deadline_ends_a_slow_run_with_partial_results(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(project(tmp_path))
    began = time.monotonic()
    code = main(["audit", "slow.yaml", "--deadline", "2", "--report", "reports", "--no-cache", "--device", "cpu",
                 "-q"])
    elapsed = time.monotonic() - began
    out = capsys.readouterr().out
    assert code == DEADLINE_EXIT, out
    doc = json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text())
    # the spec stopped within a few seconds of the deadline; the whole run sleeps 451 × 0.05 s ≈ 23 s alone
    assert doc["timings"]["per_spec"]["slow"]["seconds"] < FULL_RUN_CALLS * 0.05 / 2, (elapsed, doc["timings"])
    assert "run: INCOMPLETE" in out and "session deadline of 2 s passed" in out  # the report's word for it
    results = next((tmp_path / "reports").glob("*/results.json"))
    check_views(json.loads(results.read_text()),
                results.with_name("report.html").read_text(encoding="utf-8"))
    assert deadline.remaining() is None  # the command's deadline does not outlive it


def test_pytest_deadline_interrupts_the_session_in_every_view(pytester, monkeypatch):
    from tests.audit_runs import REPO

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(REPO))
    pytester.makeini("[pytest]\nfreqrex_deadline = 2\n")  # the ini default; --freqrex-deadline overrides it
    (pytester.path / "pyproject.toml").write_text("")
    write_robust_dataset(pytester.path / "model_specs" / "data", per_class=4)
    (pytester.path / "model_specs" / "slow.yaml").write_text(SPEC)
    result = pytester.runpytest("--freqrex-no-cache", "--freqrex-device", "cpu", "--junitxml", "junit.xml", "-rs")
    text = result.stdout.str()
    assert result.ret == pytest.ExitCode.INTERRUPTED, text[-3000:]
    assert "freqrex DEADLINE: the session deadline of 2 s passed" in text and "(incomplete)" in text
    results = next((pytester.path / "reports").glob("*/results.json"))
    check_views(json.loads(results.read_text()), results.with_name("report.html").read_text(encoding="utf-8"))
    junit = ET.parse(pytester.path / "junit.xml").getroot()
    skipped = [c.find("skipped").get("message") for c in junit.iter("testcase") if c.find("skipped") is not None]
    assert any("session deadline of 2 s passed" in m for m in skipped), skipped


def test_measured_clips_keep_their_verdicts_and_the_rest_is_interrupted(tmp_path, monkeypatch):
    """Deterministic: the model advances a fake clock 0.01 s per call, so a 2-s deadline falls after call 200,
    inside the clips (which one depends on the engine's calls per clip, the same on every machine). One clip at a
    time (``clips_at_once: 1``), so the clips before the cut are whole; clips in lockstep: tests/test_lockstep.py."""
    from types import SimpleNamespace

    from freqrex_audit.audit.run import run_spec
    from freqrex_audit.specs.loader import load_spec

    project(tmp_path)
    (tmp_path / "slow.yaml").write_text(SPEC.replace("slow\"", "ticking\"").replace("sleep_s: 0.05", "tick_s: 0.01")
                                        .replace("sample_rate: 8000,", "sample_rate: 8000, clips_at_once: 1,"))
    monkeypatch.setattr(hm, "CLOCK", [0.0])
    monkeypatch.setattr(deadline, "time", SimpleNamespace(time=lambda: hm.CLOCK[0]))
    deadline.start(2.0, started=0.0)
    result = run_spec(load_spec(tmp_path / "slow.yaml"), "cpu")
    measured = [r.sample.id for r in result.samples if r.analysed]
    cut = [r.sample.id for r in result.samples if deadline.cut_short(r.reason)]
    # where the deadline falls depends on the engine's call count (fixed per engine version, not per machine)
    assert measured and cut and measured + cut == [r.sample.id for r in result.samples]
    assert hm.CLOCK[0] < 2.0 + 0.01 + 1e-9  # no model call started after the deadline
    outcomes = {(v.check, v.key): v.outcome for v in result.verdicts}
    assert outcomes[("model", "load")] == Outcome.PASSED
    assert outcomes[("accuracy", "aggregate")] == Outcome.INTERRUPTED  # 3 of 8 clips: never a green aggregate
    assert all(outcomes[("sufficiency", c)] == Outcome.PASSED for c in measured)
    assert all(outcomes[("sufficiency", c)] == Outcome.INTERRUPTED for c in cut)


def test_the_engine_refuses_new_calls_after_the_deadline():
    clf = hm.slow(sleep_s=0.0)
    from freqrex_audit import Classifier

    engine = QueryEngine(Classifier.from_callable(clf, hm.LABELS, hm.SR), timeout_s=5)
    deadline.start(0.5)
    assert engine.query(X).shape == (1, 2)
    time.sleep(0.6)
    with pytest.raises(deadline.DeadlineReached, match="session deadline of 0.5 s passed"):
        engine.query(X)
    assert engine.hung is None  # the deadline is not the model's fault


@pytest.mark.skipif(sys.platform == "win32", reason="select() on pipes is POSIX")
def test_a_subprocess_model_stuck_in_c_is_killed_at_the_deadline_not_blamed():
    clf = load_classifier({"target": "tests.hostile_models:gil_hog", "labels": hm.LABELS, "sample_rate": hm.SR,
                           "options": {"after_calls": 0}, "isolation": "subprocess", "timeout_s": 600},
                          device="cpu", self_check=False)
    engine = QueryEngine(clf, timeout_s=600)
    deadline.start(1.0)
    began = time.monotonic()
    with pytest.raises(deadline.DeadlineReached, match="the model process was killed"):
        engine.query(X)
    assert time.monotonic() - began < 60 and clf.process.poll() is not None and engine.hung is None


def test_a_bad_deadline_is_refused_at_parse_time(pytester, capsys):
    with pytest.raises(SystemExit) as stopped:
        main(["audit", "--deadline", "-1"])
    assert stopped.value.code == 2 and "--deadline: must be a finite number > 0" in capsys.readouterr().err
    result = pytester.runpytest("--freqrex-deadline", "soon")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--freqrex-deadline / freqrex_deadline: must be a finite number > 0, got 'soon'" in \
        result.stderr.str()


def test_hit_means_work_was_cut_not_that_the_clock_passed(monkeypatch):
    from types import SimpleNamespace

    now = [0.0]
    monkeypatch.setattr(deadline, "time", SimpleNamespace(time=lambda: now[0]))
    deadline.start(2.0, started=0.0)
    now[0] = 5.0  # the run finished in time; only writing the report took it past the deadline
    assert deadline.facts() == {"seconds": 2.0, "hit": False, "message": None}
    cut = {"specs": {"s": {"error": None, "samples": [{"reason": f"{deadline.REASON} of 2 s passed before this clip"}]}}}
    assert deadline.facts(cut)["hit"] is True  # an xdist worker's cut, seen in the merged document
    with pytest.raises(deadline.DeadlineReached):
        deadline.check("a clip")
    assert deadline.facts()["hit"] is True and "no new model work was started" in deadline.facts()["message"]
