"""A model that hangs: the per-call timeout (model.timeout_s) fails its spec quickly instead of hanging CI."""

from __future__ import annotations

import json
import threading
import time

import numpy as np
import pytest
import torch

from freqrex_audit import Classifier, ClassifierTimeout, QueryEngine
from freqrex_audit.audit.run import run_spec
from freqrex_audit.cli.main import main
from freqrex_audit.specs.loader import SpecError, load_spec
from tests.audit_models import SR, write_robust_dataset

SPEC = """model: {{target: 'tests.audit_models:hanging', options: {{after_calls: {after}}}, timeout_s: 0.5}}
dataset: {{path: data, clip_seconds: 0.25}}
checks: {{accuracy: {{min: 0.5}}, sufficiency: {{}}, composition: {{min_ratio: 0.5}}}}
"""


def spec_file(tmp_path, after: int):
    write_robust_dataset(tmp_path / "data", per_class=2)
    path = tmp_path / "hang.yaml"
    path.write_text(SPEC.format(after=after))
    return path


def test_engine_times_out_then_fails_fast():
    release = threading.Event()

    def slow(x: torch.Tensor) -> torch.Tensor:
        release.wait(30)
        return torch.full((x.shape[0], 2), 0.5)

    engine = QueryEngine(Classifier.from_callable(slow, ["a", "b"], SR, name="slow"), batch_size=4, timeout_s=0.2)
    began = time.perf_counter()
    with pytest.raises(ClassifierTimeout, match=r"slow: a call with 3 queries did not return within the 0.2 s"):
        engine.query(np.zeros((3, 100), np.float32))
    with pytest.raises(ClassifierTimeout):  # no second call is started on a hung model
        engine.query(np.zeros((1, 100), np.float32))
    assert time.perf_counter() - began < 10 and engine.queries == 0 and engine.hung
    release.set()


def test_errors_in_the_worker_reach_the_caller_and_results_match():
    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            raise torch.OutOfMemoryError("pretend CUDA is full")
        return torch.softmax(torch.stack([x.sum(-1), -x.sum(-1)], -1), -1)

    clf = Classifier.from_callable(fn, ["a", "b"], SR)
    x = np.random.default_rng(0).standard_normal((7, 64)).astype(np.float32)
    timed = QueryEngine(clf, batch_size=8, timeout_s=30)
    assert np.array_equal(timed.query(x), QueryEngine(clf, batch_size=2).query(x))
    assert timed.batch_size == 2 and timed.queries == 7  # OOM from the worker thread still halves the batch


def test_a_hung_model_fails_its_spec_and_every_clip_says_why(tmp_path):
    began = time.perf_counter()
    result = run_spec(load_spec(spec_file(tmp_path, after=5)), "cpu")  # 3 calls: the load-time self-check
    assert time.perf_counter() - began < 60
    # the clip whose call hung is an error (which clip: the clips run in lockstep, so it need not be the first),
    # every other clip was not analysed and says why
    first, *rest = sorted(result.samples, key=lambda r: r.status != "error")
    assert first.status == "error" and "did not return within the 0.5 s" in first.reason
    assert "model hung" in result.error and len(rest) == 3
    assert all(r.status == "skipped" and r.reason.startswith("not analysed: hanging: ") for r in rest)
    load = result.verdict("model", "load")
    assert load.passed is False and "model.timeout_s" in load.message
    assert result.verdict("composition", "aggregate").passed is False


def test_cli_reports_the_hang_and_exits_nonzero(tmp_path, capsys):
    code = main(["audit", str(spec_file(tmp_path, after=0)), "--report", str(tmp_path / "reports"), "--no-cache"])
    assert code == 1
    results = json.loads(next((tmp_path / "reports").rglob("results.json")).read_text())
    (section,) = results["specs"].values()
    assert "hung" in section["error"] and "timeout" in capsys.readouterr().out


@pytest.mark.parametrize("value", [0, -1, "soon"])
def test_timeout_must_be_a_positive_number(tmp_path, value):
    path = spec_file(tmp_path, after=0)
    path.write_text(path.read_text().replace("timeout_s: 0.5", f"timeout_s: {value}"))
    with pytest.raises(SpecError, match="model.timeout_s: must be"):
        load_spec(path)
