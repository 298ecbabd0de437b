"""A real TFLite model as it ships: microWakeWord's "Okay Nabu" detector, run by the real LiteRT interpreter.

okay_nabu.tflite comes inside the pymicro-wakeword wheel (Apache-2.0), with the TensorFlow Lite C library
that wheel runs it with; the TFLite-Micro frontend comes from pymicro-features. The checks: our LiteRT
route gives bit-for-bit the detector probabilities of the wheel's own runtime, batch and loop agree,
the zoo's labels come out as recorded, and misuse gives errors naming the file.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("ai_edge_litert", reason="needs the tflite extra (ai-edge-litert)")
pytest.importorskip("pymicro_features", reason="needs the tflite extra (pymicro-features)")
pymicro_wakeword = pytest.importorskip("pymicro_wakeword", reason="needs the tflite extra (pymicro-wakeword)")

from freqrex_audit.adapters import load_classifier  # noqa: E402
from freqrex_audit.adapters.tflite import load_tflite_classifier  # noqa: E402
from freqrex_audit.models.classifier import ClassifierError  # noqa: E402
from freqrex_audit.runtime.paths import resolve_zoo_path  # noqa: E402

EVAL = resolve_zoo_path("zoo://wakeword/eval")
MODEL_FILE = Path(pymicro_wakeword.__file__).parent / "models" / "okay_nabu.tflite"
FILES = sorted(EVAL.glob("*/*.flac"))


@pytest.fixture(scope="module")
def clf():
    return load_classifier("zoo://wakeword/okay-nabu", self_check=False)


@pytest.fixture(scope="module")
def clips() -> torch.Tensor:
    return torch.stack([torch.from_numpy(sf.read(f, dtype="float32")[0]) for f in FILES])


def reference_clip_score(clip: np.ndarray) -> float:
    """pymicro-wakeword's own detector (its bundled TFLite C library): the highest smoothed probability."""
    from pymicro_wakeword import MicroWakeWord, MicroWakeWordFeatures, Model

    detector, features = MicroWakeWord.from_builtin(Model.OKAY_NABU), MicroWakeWordFeatures()
    pcm = np.clip(np.round(clip.astype(np.float64) * 32767), -32768, 32767).astype("<i2").tobytes()
    scores = [detector.process_streaming_prob(f) for i in range(0, len(pcm), 320)
              for f in features.process_streaming(pcm[i:i + 320])]
    detector.close()
    return max(s for s in scores if s is not None)


def test_litert_matches_the_wheels_own_runtime_bit_for_bit(clf, clips):
    ours = clf.predict(clips).numpy()[:, 1]
    theirs = np.array([reference_clip_score(c) for c in clips.numpy()])
    np.testing.assert_allclose(ours, theirs, rtol=0, atol=1e-12)
    assert len(set(np.round(ours, 6))) > 4  # real, varied scores: not a constant model


def test_labels_on_the_zoo_clips_include_one_real_false_wake(clf, clips):
    predicted = [clf.labels[i] for i in clf.predict(clips).argmax(1).tolist()]
    truth = [f.parent.name for f in FILES]
    wrong = [f.name for f, p, t in zip(FILES, predicted, truth) if p != t]
    assert wrong == ["other_1_en-gb.flac"]  # "okay now" wakes the detector (recorded in the spec and zoo README)


def test_batch_and_loop_agree_and_state_never_leaks_between_clips(clf, clips):
    together = clf.predict(clips).numpy()
    one_by_one = np.concatenate([clf.predict(clips[i:i + 1]).numpy() for i in range(len(clips))])
    reversed_order = clf.predict(clips.flip(0)).numpy()[::-1]
    np.testing.assert_array_equal(together, one_by_one)
    np.testing.assert_array_equal(together, reversed_order)


def test_fingerprint_is_the_file_bytes_and_the_rule(clf):
    options = {"frontend": "micro", "smoothing": 5, "xnnpack": False}
    same = load_tflite_classifier(str(MODEL_FILE), labels=clf.labels, sample_rate=16000, options=options)
    other = load_tflite_classifier(str(MODEL_FILE), labels=clf.labels, sample_rate=16000,
                                   options={**options, "smoothing": 3})
    assert same.fingerprint == clf.fingerprint != other.fingerprint


def test_xnnpack_kernels_round_differently_but_give_the_same_labels(clf, clips):
    fast = load_tflite_classifier(str(MODEL_FILE), labels=clf.labels, sample_rate=16000,
                                  options={"frontend": "micro", "smoothing": 5})
    exact, approx = clf.predict(clips).numpy(), fast.predict(clips).numpy()
    assert (exact.argmax(1) == approx.argmax(1)).all()
    assert np.abs(exact - approx).max() < 0.1


@pytest.mark.parametrize("kwargs, message", [
    ({"sample_rate": 8000}, r"okay_nabu\.tflite: the TFLite-Micro frontend reads 16000 Hz audio"),
    ({"labels": ["a", "b", "c"]}, r"okay_nabu\.tflite: a wake-word model scores one label"),
    ({"options": {"frontend": "mfcc"}}, r"okay_nabu\.tflite: model\.options\.frontend must be 'micro'"),
    ({"options": {"smoothing": 5}}, r"okay_nabu\.tflite: model\.options \['smoothing'\] need options\.frontend"),
    ({"options": {"frontend": "micro", "smoothing": 0}}, r"smoothing must be an integer ≥ 1"),
    ({"outputs": "logits"}, r"okay_nabu\.tflite: a micro-frontend wake-word model gives probabilities"),
])
def test_misuse_names_the_file_and_the_problem(kwargs, message):
    arguments = {"labels": ["other", "okay_nabu"], "sample_rate": 16000,
                 "options": {"frontend": "micro", "smoothing": 5}, **kwargs}
    with pytest.raises(ClassifierError, match=message):
        load_tflite_classifier(str(MODEL_FILE), **arguments)


def test_feature_model_read_as_audio_model_names_the_shape_and_the_option():
    with pytest.raises(ClassifierError) as error:
        load_tflite_classifier(str(MODEL_FILE), labels=["other", "okay_nabu"], sample_rate=16000)
    assert "okay_nabu.tflite" in str(error.value) and "[1, 3, 40]" in str(error.value)
    assert "options: {frontend: micro}" in str(error.value)
