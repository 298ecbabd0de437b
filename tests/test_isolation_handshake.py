"""Issue #20 round two: a subprocess-isolated model tells the parent everything the parent reads from a
Classifier (labels, rate, fingerprint, input window, output kind), so isolation changes no result."""

from __future__ import annotations

import sys

import pytest

from freqrex_audit.adapters import load_classifier

pytestmark = pytest.mark.skipif(sys.platform == "win32", reason="select() on pipes is POSIX")


def _model(isolation: str, **options) -> dict:
    return {"target": "tests.hostile_models:windowed", "options": options, "isolation": isolation}


def test_the_handshake_carries_the_input_window_and_identity():
    inside = load_classifier(_model("thread", window=800), device="cpu", self_check=False)
    isolated = load_classifier(_model("subprocess", window=800), device="cpu", self_check=False)
    try:
        assert inside.input_window == 800 and isolated.input_window == 800
        assert (isolated.labels, isolated.sample_rate, isolated.fingerprint) == \
            (inside.labels, inside.sample_rate, inside.fingerprint)
        assert isolated.model_outputs == "probabilities"
    finally:
        isolated.close()


def test_declared_logits_keep_the_window_and_are_reported_by_the_child():
    isolated = load_classifier({**_model("subprocess", window=600, outputs="logits"), "outputs": "logits"},
                               device="cpu", self_check=False)
    try:
        assert isolated.input_window == 600 and isolated.model_outputs == "logits"
    finally:
        isolated.close()


def test_an_isolated_windowed_model_is_audited_on_its_window_only(tmp_path):
    from freqrex_audit.audit.run import run_spec
    from freqrex_audit.specs.loader import load_spec
    from tests.audit_models import write_robust_dataset

    write_robust_dataset(tmp_path / "data", per_class=1)
    results = {}
    for isolation in ("thread", "subprocess"):
        (tmp_path / f"{isolation}.yaml").write_text(
            f"name: w_{isolation}\n"
            f"model: {{target: 'tests.hostile_models:windowed', options: {{window: 800}}, isolation: {isolation}}}\n"
            "dataset: {path: data, clip_seconds: 0.25}\nchecks: {accuracy: {min: 0.0}}\n")
        results[isolation] = run_spec(load_spec(tmp_path / f"{isolation}.yaml"), "cpu",
                                      stages=frozenset({"predict"}))
    for result in results.values():
        assert result.error is None
        assert all(any("first 800 of 2000 samples" in n for n in r.notes) for r in result.samples), \
            [r.notes for r in result.samples]
    assert [r.confidence for r in results["subprocess"].samples] == \
        [pytest.approx(r.confidence) for r in results["thread"].samples]
