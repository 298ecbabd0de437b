"""Issue #20, the hang: a model stuck in C code holding the GIL is killed by the subprocess watchdog."""

from __future__ import annotations

import sys
import time

import numpy as np
import pytest

from freqrex_audit import ClassifierTimeout, QueryEngine
from freqrex_audit.adapters import load_classifier
from freqrex_audit.models.classifier import ClassifierError
from freqrex_audit.models.self_check import SELF_CHECK_CALLS
from tests import hostile_models as hm

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="select() on pipes is POSIX")

X = (0.3 * np.sin(np.arange(800) / 3)).astype(np.float32)


def isolated(after_calls: int, timeout_s: float = 1.0, self_check: bool = True):
    return load_classifier({"target": "tests.hostile_models:gil_hog", "labels": hm.LABELS, "sample_rate": hm.SR,
                            "options": {"after_calls": after_calls}, "isolation": "subprocess",
                            "timeout_s": timeout_s}, device="cpu", self_check=self_check)


def test_a_model_holding_the_gil_in_c_is_killed_and_the_engine_fails_fast():
    clf = isolated(after_calls=SELF_CHECK_CALLS + 1)  # the self-check's calls (in the child), then one good call
    engine = QueryEngine(clf, timeout_s=1.0)
    good = engine.query(X)
    assert good.shape == (1, 2) and np.isclose(good.sum(), 1)
    began = time.monotonic()
    with pytest.raises(ClassifierTimeout, match="did not return within the 1 s .* process was killed"):
        engine.query(X)
    assert clf.process.poll() is not None  # the child is gone: nothing keeps holding the GIL or the GPU
    with pytest.raises(ClassifierTimeout):  # no second call on a hung model
        engine.query(X)
    assert engine.hung and time.monotonic() - began < 60


def test_a_model_that_hangs_during_the_self_check_fails_to_load_instead_of_hanging():
    with pytest.raises(ClassifierTimeout, match="process was killed"):
        isolated(after_calls=0, timeout_s=0.5)


def test_errors_in_the_child_name_the_model():
    with pytest.raises(ClassifierError, match="sample_rate must be a positive integer"):
        load_classifier({"target": "tests.hostile_models:logits_fn", "labels": hm.LABELS, "sample_rate": 0,
                         "isolation": "subprocess"}, device="cpu")


def test_a_spec_with_isolation_subprocess_fails_its_spec_when_the_model_hangs(tmp_path):
    from freqrex_audit.audit.run import run_spec
    from freqrex_audit.specs.loader import load_spec
    from tests.audit_models import write_robust_dataset

    write_robust_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "s.yaml").write_text(
        "model: {target: 'tests.hostile_models:gil_hog', labels: [low, high], sample_rate: 8000,\n"
        f"        options: {{after_calls: {SELF_CHECK_CALLS + 1}}}, isolation: subprocess, timeout_s: 1}}\n"
        "dataset: {path: data, clip_seconds: 0.25}\nchecks: {accuracy: {min: 0.5}}\n")
    result = run_spec(load_spec(tmp_path / "s.yaml"), "cpu")
    assert "model hung" in result.error and "process was killed" in result.error
    assert sorted(r.status for r in result.samples) == ["error", "skipped"]  # the clip whose call hung, the other
