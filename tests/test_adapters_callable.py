"""The callable adapter: ``package.module:factory`` targets, and errors that name the target."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit.adapters import load_classifier
from freqrex_audit.adapters.callable import load_callable_classifier
from freqrex_audit.models.classifier import Classifier, ClassifierError, QueryEngine

from . import callable_targets as targets


def tones(sr: int = targets.SAMPLE_RATE) -> torch.Tensor:
    t = torch.arange(sr // 2) / sr
    return torch.stack([torch.sin(2 * torch.pi * 200 * t), torch.sin(2 * torch.pi * 3000 * t)])


@pytest.mark.parametrize("model", [
    "tests.callable_targets:make_classifier",
    {"type": "callable", "target": "tests.callable_targets:make_classifier"},
    {"target": "tests.callable_targets:nested.factory"},
])
def test_factory_returning_a_classifier(model):
    clf = load_classifier(model, device="cpu")
    assert isinstance(clf, Classifier)
    assert clf.labels == targets.LABELS and clf.sample_rate == targets.SAMPLE_RATE
    probs = clf.predict(tones())
    assert probs.argmax(-1).tolist() == [0, 1]
    np.testing.assert_allclose(probs.sum(-1).numpy(), 1.0, atol=1e-6)


def test_plain_function_needs_labels_and_rate():
    model = {"target": "tests.callable_targets:make_function", "options": {"scale": 2.0}}
    with pytest.raises(ClassifierError, match="tests.callable_targets:make_function.*labels"):
        load_classifier(model, device="cpu")
    clf = load_classifier({**model, "labels": ["a", "b"], "sample_rate": 8000}, device="cpu")
    assert clf.labels == ["a", "b"] and clf.sample_rate == 8000
    expected = torch.softmax(2.0 * targets.band_energy_logits(tones()), dim=-1)
    torch.testing.assert_close(clf.predict(tones()), expected)
    assert clf.name == "tests.callable_targets:make_function"


@pytest.mark.parametrize("target, problem", [
    ("tests.no_such_module:factory", "cannot import 'tests.no_such_module'"),
    ("tests.callable_targets:no_such_factory", "has no attribute 'no_such_factory'"),
    ("tests.callable_targets:nested.missing", "has no attribute 'missing'"),
    ("tests.callable_targets", "must look like"),
    ("tests.callable_targets:make_nothing", "returned int, not a Classifier"),
])
def test_bad_targets_are_classifier_errors_naming_the_target(target, problem):
    with pytest.raises(ClassifierError) as info:
        load_callable_classifier(target, device="cpu")
    assert target in str(info.value)
    assert problem in str(info.value)


def test_missing_module_through_load_classifier():
    with pytest.raises(ClassifierError, match="tests.no_such_module:factory"):
        load_classifier("tests.no_such_module:factory", device="cpu")


def test_loading_a_model_that_changes_torch_s_settings_leaves_the_process_s_alone():
    """silero-vad's import sets torch's thread count to 1 for the whole process: every spec audited after it in the
    same run then ran on one thread, so a spec's numbers depended on which specs came before it. The loader puts
    the thread count (``--threads`` decides it), the default dtype and the grad mode back."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        clf = load_classifier("tests.callable_targets:changes_process_settings", device="cpu")
        assert torch.get_num_threads() == 3 and clf.labels == targets.LABELS
        assert torch.get_default_dtype() == torch.float32 and torch.is_grad_enabled()
    finally:
        torch.set_num_threads(before)
        torch.set_default_dtype(torch.float32)
        torch.set_grad_enabled(True)


def test_a_model_call_that_changes_torch_s_settings_leaves_the_process_s_alone():
    """A call that changes the thread count or the default dtype would change the numbers of every query after it
    (torch's CPU kernels split work by thread count): the engine puts them back after each model call."""
    before = torch.get_num_threads()
    torch.set_num_threads(3)
    try:
        engine = QueryEngine(load_classifier("tests.callable_targets:changes_settings_when_called", device="cpu"))
        probs = engine.query(torch.randn(2, 800))
        assert probs.shape == (2, 2) and engine.calls == 1
        assert torch.get_num_threads() == 3 and torch.get_default_dtype() == torch.float32
    finally:
        torch.set_num_threads(before)
        torch.set_default_dtype(torch.float32)
