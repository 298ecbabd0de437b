"""Issue #20, classes 1-2: the model boundary validates what it is given; fingerprints cover the weights."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from hypothesis import given, settings, strategies as st
from hypothesis.extra.numpy import arrays

from freqrex_audit import Classifier, ClassifierError, QueryEngine
from freqrex_audit.adapters import load_classifier
from freqrex_audit.audio.io import AudioError, check_same_clip
from freqrex_audit.models.boundary import ROW_TOLERANCE, check_probabilities
from freqrex_audit.models.self_check import WIDE_CALL, self_check
from freqrex_audit.audit.cache import Cache, make_key
from freqrex_audit.models.classifier import cached_probabilities, model_info
from freqrex_audit.models.fingerprint import fingerprint_of
from tests import hostile_models as hm

X = (0.3 * np.sin(2 * np.pi * 300 * np.arange(2000) / hm.SR)).astype(np.float32)


def callable_model(target: str, **extra) -> Classifier:
    return load_classifier({"target": f"tests.hostile_models:{target}", "labels": hm.LABELS,
                            "sample_rate": hm.SR, **extra}, device="cpu")


@settings(max_examples=60, deadline=None)
@given(arrays(np.float64, st.tuples(st.integers(1, 4), st.just(3)),
              elements=st.floats(-3, 3, allow_nan=False)))
def test_a_batch_is_accepted_exactly_when_its_rows_are_probabilities(out):
    rows_ok = (out.min() >= -ROW_TOLERANCE and out.max() <= 1 + ROW_TOLERANCE
               and np.all(np.abs(out.sum(1) - 1) <= ROW_TOLERANCE))
    assert (check_probabilities(out, "m", out.shape[0], 3) is None) == bool(rows_ok)
    softmaxed = np.exp(out) / np.exp(out).sum(1, keepdims=True)
    assert check_probabilities(softmaxed, "m", out.shape[0], 3) is None


def test_log_probabilities_are_refused_with_the_right_hint_then_accepted_when_declared():
    with pytest.raises(ClassifierError, match="log-probabilities: declare outputs: log_probabilities"):
        QueryEngine(Classifier.from_callable(hm.log_probs(), hm.LABELS, hm.SR)).query(X)
    declared = callable_model("log_probs", outputs="log_probabilities")
    probs = QueryEngine(declared).query(X)[0]
    assert np.isclose(probs.sum(), 1) and probs.min() >= 0


def test_unnormalised_scores_are_refused_suggesting_logits():
    with pytest.raises(ClassifierError, match="declare outputs: logits"):
        QueryEngine(Classifier.from_callable(hm.logits_fn(), hm.LABELS, hm.SR, name="scores")).query(X)


@pytest.mark.parametrize("target", ["logits_fn", "logits_classifier"])
def test_a_specs_outputs_logits_is_honoured_for_callable_factories(target):
    clf = callable_model(target, outputs="logits")
    probs = QueryEngine(clf).query(X)[0]
    expected = torch.softmax(hm._logits(torch.as_tensor(X)[None]), -1)[0].numpy()
    assert np.allclose(probs, expected, atol=1e-6)
    assert clf.fingerprint != callable_model(target, outputs="probabilities").fingerprint or target == "logits_fn"


def test_duplicate_labels_and_a_zero_sample_rate_are_refused():
    with pytest.raises(ValueError, match="labels must be unique; repeated: 'a'"):
        Classifier.from_callable(lambda x: x, ["a", "b", "a"], hm.SR)
    with pytest.raises(ValueError, match="sample_rate must be a positive integer"):
        Classifier.from_callable(lambda x: x, ["a", "b"], 0)
    with pytest.raises(ValueError, match="must be callable"):
        Classifier.from_callable(42, ["a", "b"], hm.SR)  # type: ignore[arg-type]


def test_a_non_callable_target_is_a_clear_error():
    with pytest.raises(ClassifierError, match="is a int, not a function or class"):
        load_classifier({"target": "tests.hostile_models:NOT_CALLABLE"}, device="cpu")


def test_the_model_gets_a_copy_so_writing_into_its_input_cannot_corrupt_the_clip():
    def vandal(x: torch.Tensor) -> torch.Tensor:
        out = torch.softmax(hm._logits(x), -1)
        x.zero_()
        return out

    engine = QueryEngine(Classifier.from_callable(vandal, hm.LABELS, hm.SR))
    x = X.copy()
    first = engine.query(x)
    assert np.array_equal(x, X)
    assert np.array_equal(engine.query(x), first)
    tensor = torch.as_tensor(X.copy())
    engine.query(tensor)
    assert torch.equal(tensor, torch.as_tensor(X))


@pytest.mark.parametrize("target", ["reversed_rows", "random_outputs"])
def test_self_check_refuses_order_mixing_and_random_models(target):
    with pytest.raises(ClassifierError, match="load-time self-check failed"):
        callable_model(target)


def test_self_check_reports_small_noise_as_a_warning_that_reaches_model_info():
    gen = torch.Generator().manual_seed(1)

    def jittery(x: torch.Tensor) -> torch.Tensor:
        p = torch.softmax(hm._logits(x), -1)
        eps = 0.01 * torch.rand(x.shape[0], 1, generator=gen)
        return torch.cat([p[:, :1] * (1 - eps), 1 - p[:, :1] * (1 - eps)], -1)

    clf = Classifier.from_callable(jittery, hm.LABELS, hm.SR, name="jittery")
    report = self_check(clf)
    assert report["queries"] == 9 + WIDE_CALL and report["warnings"] and "jittery: self-check" in report["warnings"][0]
    healthy = callable_model("logits_fn", outputs="logits")
    assert healthy.self_check["batch_difference"] < 1e-6 and not healthy.warnings
    clf.warnings = list(report["warnings"])
    assert report["warnings"][0] in model_info(clf)["warnings"]


def test_int16_pcm_is_refused_not_read_as_floats():
    pcm = (X * 32767).astype(np.int16)
    with pytest.raises(AudioError, match=r"int16 \(integer PCM\).*/ 32768"):
        QueryEngine(Classifier.from_callable(lambda x: torch.softmax(hm._logits(x), -1), hm.LABELS, hm.SR)).query(pcm)


def test_an_explanation_of_one_clip_cannot_be_used_on_another():
    check_same_clip(X, X.copy())
    with pytest.raises(ValueError, match="2000 samples, not this one \\(1000 samples\\)"):
        check_same_clip(X[:1000], X)
    with pytest.raises(ValueError, match="another clip"):
        check_same_clip(-X, X)


# --- class 2: fingerprints and cache ---------------------------------------------------------------

def test_fingerprints_cover_attributes_weights_and_options():
    a, b, a2 = hm.WeightedScorer(np.array([1.0, 1.0])), hm.WeightedScorer(np.array([1.0, 2.0])), \
        hm.WeightedScorer(np.array([1.0, 1.0]))
    assert fingerprint_of(a, hm.LABELS, hm.SR) == fingerprint_of(a2, hm.LABELS, hm.SR)
    assert fingerprint_of(a, hm.LABELS, hm.SR) != fingerprint_of(b, hm.LABELS, hm.SR)
    one = callable_model("scorer", options={"gain": 1.0}).fingerprint
    assert one == callable_model("scorer", options={"gain": 1.0}).fingerprint
    assert one != callable_model("scorer", options={"gain": 3.0}).fingerprint
    lin1, lin2 = torch.nn.Linear(3, 2), torch.nn.Linear(3, 2)
    assert fingerprint_of(lin1, hm.LABELS, hm.SR) != fingerprint_of(lin2, hm.LABELS, hm.SR)


def test_a_model_that_cannot_be_fingerprinted_is_not_cached_and_says_so():
    opaque = object()

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.softmax(hm._logits(x), -1) if opaque else x

    clf = Classifier.from_callable(fn, hm.LABELS, hm.SR, name="opaque")
    assert clf.fingerprint == ""
    info = model_info(clf)
    assert info["cacheable"] is False and "not cached" in info["warnings"][0]


def test_a_cache_entry_with_a_valid_checksum_but_the_wrong_shape_is_recomputed_and_counted(tmp_path):
    cache = Cache(tmp_path / "cache")
    key = make_key("predict", "fp", "audio")
    cache.put(key, {"probs": [0.2, 0.3, 0.5]})  # three labels, the model has two
    decode = lambda d, a: cached_probabilities(d["probs"], 2)  # noqa: E731
    assert cache.load(key, decode) is None and cache.invalid == 1 and cache.hits == 0
    cache.put(key, {"probs": [0.25, 0.75]})
    assert np.allclose(cache.load(key, decode), [0.25, 0.75]) and cache.hits == 1


def test_an_unwritable_cache_folder_is_switched_off_with_one_warning(tmp_path):
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    cache = Cache(blocker)
    cache.put(make_key("x"), {"a": 1})
    assert not cache.enabled and "not writable" in cache.warnings[0] and str(blocker) in cache.warnings[0]


def test_explain_refuses_int16_pcm_instead_of_explaining_floats_up_to_32767():
    from freqrex_audit import explain

    clf = Classifier.from_callable(lambda x: torch.softmax(hm._logits(x), -1), hm.LABELS, hm.SR)
    with pytest.raises(AudioError, match="integer PCM"):
        explain(clf, (X * 32767).astype(np.int16))
