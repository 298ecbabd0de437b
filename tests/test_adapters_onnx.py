"""The ONNX adapter on the real silero-vad ONNX files shipped in the silero-vad wheel (MIT).

The wheel ships the same network as TorchScript (``silero_vad.jit``, what ``zoo://vad/silero`` runs),
as ONNX with a dynamic batch axis (``silero_vad.onnx``) and as ONNX with a fixed ``[1, 576]`` input
(``silero_vad_openvino_16k.onnx``); all carry an LSTM state between 512-sample windows.
"""

from __future__ import annotations

import shutil
from importlib import resources
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

pytest.importorskip("onnxruntime")
pytest.importorskip("silero_vad")

from freqrex_audit.adapters import load_classifier  # noqa: E402
from freqrex_audit.adapters.onnx import load_onnx_classifier  # noqa: E402
from freqrex_audit.models.classifier import ClassifierError, QueryEngine  # noqa: E402
from freqrex_audit.runtime.paths import ZOO_ROOT  # noqa: E402

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")

SR = 16000
LABELS = ["non_speech", "speech"]
SILERO_WINDOW = {"samples": 512, "context": 64, "reduce": "mean"}


def silero_file(name: str) -> Path:
    return Path(str(resources.files("silero_vad.data").joinpath(name)))


def load(name: str = "silero_vad.onnx", **overrides):
    settings = dict(labels=LABELS, sample_rate=SR, device="cpu", window=SILERO_WINDOW)
    return load_onnx_classifier(str(silero_file(name)), **{**settings, **overrides})


@pytest.fixture(scope="module")
def vad_clips() -> tuple[torch.Tensor, list[str]]:
    """The zoo's 12 VAD clips (6 speech, 6 music), first second of each."""
    files = sorted((ZOO_ROOT / "vad" / "eval").glob("*/*.flac"))
    clips = [sf.read(f, dtype="float32")[0][:SR] for f in files]
    return torch.from_numpy(np.stack(clips)), [f.parent.name for f in files]


def test_onnx_and_torchscript_silero_give_the_same_labels(vad_clips):
    from freqrex_audit.zoo.vad import SileroVADClassifier

    clips, truth = vad_clips
    onnx_probs = QueryEngine(load_classifier("zoo://vad/silero-onnx", device="cpu")).query(clips)
    jit_probs = QueryEngine(SileroVADClassifier()).query(clips)
    assert [LABELS[i] for i in onnx_probs.argmax(1)] == [LABELS[i] for i in jit_probs.argmax(1)]
    np.testing.assert_allclose(onnx_probs, jit_probs, atol=1e-4)  # same network, same windowing rule
    assert [LABELS[i] for i in onnx_probs.argmax(1)] == truth  # and both are right on these clips


def test_batched_and_looped_calls_agree(vad_clips):
    clips, _ = vad_clips
    batched = load()
    assert batched.fn.batched  # silero_vad.onnx has a dynamic batch axis: one call per window for all clips
    looped = load()
    looped.fn.batched = False
    np.testing.assert_allclose(batched.predict(clips[:6]).numpy(), looped.predict(clips[:6]).numpy(), atol=1e-6)
    fixed = load("silero_vad_openvino_16k.onnx")  # input fixed at [1, 576]: the adapter loops over clips
    assert not fixed.fn.batched
    np.testing.assert_allclose(fixed.predict(clips[:6]).numpy(), batched.predict(clips[:6]).numpy(), atol=1e-5)


def test_state_is_reset_per_call_so_clips_never_share_it(vad_clips):
    clips, _ = vad_clips
    clf = load()
    alone = clf.predict(clips[:1]).numpy()
    after_others = clf.predict(clips[6:]).numpy()  # runs speech through the LSTM first
    again = clf.predict(clips[:1]).numpy()
    np.testing.assert_array_equal(alone, again)
    assert not np.allclose(alone, after_others[:1])


def test_inputs_outputs_and_state_are_read_from_the_model():
    model = load().fn
    assert model.audio.name == "input" and model.audio.shape == (None, None)
    assert model.state == {"state": 1}  # fed back from 'stateN', output 1
    assert [i.name for i in model.rate_inputs] == ["sr"]
    assert model.outputs[model.score_index].name == "output"


def test_wrong_input_shape_names_the_file_and_the_expected_shape(vad_clips):
    clips, _ = vad_clips
    path = silero_file("silero_vad_openvino_16k.onnx")
    unwindowed = load("silero_vad_openvino_16k.onnx", window=None)
    with pytest.raises(ClassifierError) as error:
        unwindowed.predict(clips[:2])
    message = str(error.value)
    assert str(path) in message and "[1, 576]" in message and f"got {SR} samples" in message
    with pytest.raises(ClassifierError, match=r"silero_vad_openvino_16k\.onnx.*\[1, 576\].*got 512 samples"):
        load("silero_vad_openvino_16k.onnx", window={"samples": 512}).predict(clips[:1])


def test_runtime_rejections_name_the_file_and_the_signature(vad_clips):
    clips, _ = vad_clips
    with pytest.raises(ClassifierError, match=r"silero_vad\.onnx: the model rejected input 'input' of shape \[2, 16000\]"):
        load(window=None).predict(clips[:2])  # silero accepts only 512-sample windows (+ context)


def test_one_score_column_under_logits_becomes_a_sigmoid(vad_clips):
    clips, _ = vad_clips
    probs = load().predict(clips[:4]).numpy()
    as_logits = load(outputs="logits").predict(clips[:4]).numpy()
    np.testing.assert_allclose(as_logits[:, 1], 1 / (1 + np.exp(-probs[:, 1])), atol=1e-6)


def test_max_reduction_is_at_least_the_mean(vad_clips):
    clips, _ = vad_clips
    mean = load().predict(clips).numpy()[:, 1]
    top = load(window={**SILERO_WINDOW, "reduce": "max"}).predict(clips).numpy()[:, 1]
    assert np.all(top >= mean - 1e-7) and np.any(top > mean + 1e-3)


def test_fingerprint_is_the_file_bytes_not_the_name(tmp_path):
    copy = tmp_path / "renamed.onnx"
    shutil.copyfile(silero_file("silero_vad.onnx"), copy)
    original = load()
    assert load_onnx_classifier(str(copy), labels=LABELS, sample_rate=SR, window=SILERO_WINDOW).fingerprint == \
        original.fingerprint
    assert load("silero_vad_op18_ifless.onnx").fingerprint != original.fingerprint  # other bytes
    assert load(window={"samples": 512}).fingerprint != original.fingerprint  # other windowing rule


def test_load_classifier_infers_onnx_from_the_suffix_and_checks_settings(tmp_path):
    path = silero_file("silero_vad.onnx")
    clf = load_classifier({"path": str(path), "labels": LABELS, "sample_rate": SR, "window": SILERO_WINDOW})
    assert clf.name == "silero_vad" and clf.fn.providers == ["CPUExecutionProvider"]
    with pytest.raises(ClassifierError, match="needs 'labels' and 'sample_rate'"):
        load_classifier({"path": str(path)})
    with pytest.raises(ClassifierError, match="window.reduce must be one of mean, max"):
        load(window={"samples": 512, "reduce": "median"})
    broken = tmp_path / "broken.onnx"
    broken.write_bytes(b"not an onnx file")
    with pytest.raises(ClassifierError, match=r"broken\.onnx: cannot be loaded by onnxruntime"):
        load_onnx_classifier(str(broken), labels=LABELS, sample_rate=SR)
    with pytest.raises(ClassifierError, match="no file 'nope.onnx' in the installed package 'silero_vad.data'"):
        load_classifier({"path": "package://silero_vad.data/nope.onnx", "type": "onnx"})


def test_cuda_provider_is_chosen_only_for_a_cuda_device_when_installed(monkeypatch):
    import onnxruntime

    from freqrex_audit.adapters.onnx import onnx_providers

    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CUDAExecutionProvider", "CPUExecutionProvider"])
    assert onnx_providers("cuda") == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert onnx_providers("cpu") == ["CPUExecutionProvider"]
    monkeypatch.setattr(onnxruntime, "get_available_providers", lambda: ["CPUExecutionProvider"])
    assert onnx_providers("cuda") == ["CPUExecutionProvider"]


def test_one_log_probability_column_becomes_the_pair():
    from freqrex_audit.adapters.exported import ExportedModel, TensorInfo

    audio, score = TensorInfo("x", (None, None), np.dtype(np.float32)), TensorInfo("y", (None, 1), np.dtype(np.float32))
    model = ExportedModel("m.onnx", [audio], [score], lambda feeds: [np.log(feeds["x"].mean(1, keepdims=True))],
                          SR, 2, outputs_kind="log_probabilities")
    pair = model(torch.tensor([[0.2, 0.2], [0.9, 0.9]])).numpy()
    np.testing.assert_allclose(np.exp(pair), [[0.8, 0.2], [0.1, 0.9]], atol=1e-6)


def test_spec_window_and_id_keys_are_validated(tmp_path):
    from freqrex_audit.specs.loader import SpecError, load_spec

    (tmp_path / "pyproject.toml").write_text("")
    spec = tmp_path / "s.yaml"
    spec.write_text('model: {path: "zoo://vad/silero-onnx", window: {samples: 512, context: 64}}\n'
                    'dataset: {path: "zoo://vad/eval"}\n')
    assert load_spec(spec).model["window"] == {"samples": 512, "context": 64, "reduce": "mean"}
    spec.write_text('model: {path: "zoo://vad/silero-onnx", window: {samples: 512, reduce: median}}\n'
                    'dataset: {path: "zoo://vad/eval"}\n')
    with pytest.raises(SpecError, match="model.window.reduce"):
        load_spec(spec)
    spec.write_text('model: {id: acme/kws, path: "zoo://vad/silero-onnx"}\ndataset: {path: "zoo://vad/eval"}\n')
    with pytest.raises(SpecError, match="give one of 'path', 'target' or 'id', not path and id"):
        load_spec(spec)
    spec.write_text('model: {id: acme/kws}\ndataset: {path: "zoo://vad/eval"}\n')
    assert load_spec(spec).model["id"] == "acme/kws"
