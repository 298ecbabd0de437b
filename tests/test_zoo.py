"""The bundled zoo: names resolve (and cannot escape), every model loads offline and is accurate on the
committed held-out clips, the recorded accuracies are what the committed models really score, and the
silero-vad wrapper is batched."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import yaml

from freqrex_audit.adapters import load_classifier
from freqrex_audit.runtime.paths import ZOO_ROOT, resolve_zoo_path

HF_MODELS = ("ast", "wav2vec2", "hubert", "whisper")
CLASSES = ["flute", "piano", "trumpet", "violin"]
# held-out accuracy floors (4 balanced classes: chance is 0.25); the recorded figures are higher,
# see freqrex_audit/zoo/instruments/training_results.json and the zoo README
ACCURACY_FLOOR = {"ast": 0.7, "wav2vec2": 0.7, "hubert": 0.7, "whisper": 0.7}
SILERO_FLOOR = 0.9
SPECS = Path(__file__).resolve().parents[1] / "model_specs"


def _split(folder: Path) -> tuple[np.ndarray, np.ndarray, list[str]]:
    classes = sorted(p.name for p in folder.iterdir() if p.is_dir())
    clips, labels = [], []
    for index, name in enumerate(classes):
        for path in sorted((folder / name).glob("*.flac")):
            audio, rate = sf.read(path, dtype="float32")
            assert rate == 16000 and audio.ndim == 1, path
            clips.append(audio)
            labels.append(index)
    assert len({len(c) for c in clips}) == 1, f"{folder}: clips of different lengths"
    return np.stack(clips), np.asarray(labels), classes


@pytest.fixture(scope="module")
def instruments_eval():
    return _split(resolve_zoo_path("zoo://instruments/eval"))


@pytest.fixture(scope="module")
def vad_eval():
    return _split(resolve_zoo_path("zoo://vad/eval"))


@pytest.fixture(scope="module")
def silero():
    pytest.importorskip("silero_vad")
    torch.set_num_threads(min(2, torch.get_num_threads()))
    return load_classifier("zoo://vad/silero", device="cpu")


# --- names -----------------------------------------------------------------------------------


def test_zoo_names_resolve_to_models_then_task_folders():
    assert resolve_zoo_path("zoo://instruments/ast") == ZOO_ROOT / "instruments" / "models" / "ast"
    assert resolve_zoo_path("zoo://vad/silero") == ZOO_ROOT / "vad" / "models" / "silero"
    assert resolve_zoo_path("zoo://instruments/eval") == ZOO_ROOT / "instruments" / "eval"
    assert resolve_zoo_path("zoo://vad/eval/speech") == ZOO_ROOT / "vad" / "eval" / "speech"
    assert resolve_zoo_path("zoo://instruments") == ZOO_ROOT / "instruments"


@pytest.mark.parametrize("name", ["zoo://instruments/../../pyproject.toml", "zoo://../freqrex_audit",
                                  "zoo://instruments/./ast", "zoo://", "zoo:///", "zoo://vad/models/..",
                                  "zoo://instruments/..\\..\\x"])
def test_zoo_names_cannot_leave_the_zoo(name):
    with pytest.raises(FileNotFoundError, match="not a valid zoo name"):
        resolve_zoo_path(name)


@pytest.mark.parametrize("name,message", [("zoo://nope/ast", "tasks: instruments, vad"),
                                          ("zoo://instruments/nope", "ast")])
def test_unknown_zoo_names_say_what_exists(name, message):
    with pytest.raises(FileNotFoundError, match=message):
        resolve_zoo_path(name)


def test_not_a_zoo_name():
    with pytest.raises(ValueError):
        resolve_zoo_path("/tmp/ast")


# --- committed data --------------------------------------------------------------------------


def test_instrument_splits_are_balanced_and_disjoint(instruments_eval):
    train, train_y, train_classes = _split(ZOO_ROOT / "instruments" / "train")
    clips, labels, classes = instruments_eval
    assert classes == train_classes == CLASSES
    assert np.bincount(labels).tolist() == [10] * 4 and np.bincount(train_y).tolist() == [40] * 4
    assert clips.shape[1] == train.shape[1] == 16000
    # no held-out clip is a copy of a training clip
    overlap = {c.tobytes() for c in clips} & {c.tobytes() for c in train}
    assert not overlap


def test_zoo_stays_small():
    total = sum(p.stat().st_size for p in ZOO_ROOT.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
    assert total < 9e6, f"the zoo is {total / 1e6:.1f} MB"
    for name in HF_MODELS:
        weights = ZOO_ROOT / "instruments" / "models" / name / "model.safetensors"
        assert weights.stat().st_size < 3e6


# --- the trained instrument models -----------------------------------------------------------


def _hf_accuracy(name: str, clips: np.ndarray, labels: np.ndarray) -> tuple[float, list[str]]:
    # TODO(load_classifier): once adapters/transformers.py is on this branch, this direct use of
    # transformers is covered by test_hf_models_through_load_classifier; keep it as the reference.
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    path = resolve_zoo_path(f"zoo://instruments/{name}")
    model = AutoModelForAudioClassification.from_pretrained(path, local_files_only=True).eval()
    extractor = AutoFeatureExtractor.from_pretrained(path, local_files_only=True)
    inputs = extractor(list(clips), sampling_rate=16000, return_tensors="pt")
    with torch.inference_mode():
        predicted = model(**inputs).logits.argmax(-1).numpy()
    labels_by_id = [model.config.id2label[i] for i in range(model.config.num_labels)]
    return float((predicted == labels).mean()), labels_by_id


@pytest.mark.parametrize("name", HF_MODELS)
def test_hf_model_loads_offline_and_is_accurate(name, instruments_eval):
    clips, labels, classes = instruments_eval
    path = resolve_zoo_path(f"zoo://instruments/{name}")
    assert (path / "model.safetensors").is_file() and (path / "preprocessor_config.json").is_file()
    accuracy, id2label = _hf_accuracy(name, clips, labels)
    assert id2label == classes
    assert accuracy >= ACCURACY_FLOOR[name], f"{name}: held-out accuracy {accuracy:.3f}"
    recorded = json.loads((ZOO_ROOT / "instruments" / "training_results.json").read_text())["models"][name]
    assert recorded["eval_accuracy"] == pytest.approx(accuracy, abs=1e-9), "README figure does not match the model"


@pytest.mark.parametrize("name", HF_MODELS)
def test_hf_models_through_load_classifier(name, instruments_eval):
    pytest.importorskip("freqrex_audit.adapters.transformers", reason="transformers adapter not on this branch yet")
    from freqrex_audit.models.classifier import QueryEngine

    clips, labels, classes = instruments_eval
    clf = load_classifier(f"zoo://instruments/{name}", device="cpu")
    assert clf.labels == classes and clf.sample_rate == 16000
    probs = QueryEngine(clf, batch_size=40).query(clips)
    assert float((probs.argmax(1) == labels).mean()) >= ACCURACY_FLOOR[name]


# --- silero-vad ------------------------------------------------------------------------------


def test_silero_loads_by_zoo_name_and_separates_speech_from_music(silero, vad_eval):
    clips, labels, classes = vad_eval
    assert classes == ["non_speech", "speech"] and silero.labels == ["non_speech", "speech"]
    assert silero.sample_rate == 16000
    probs = silero.predict(torch.from_numpy(clips))
    assert probs.shape == (len(clips), 2)
    assert torch.allclose(probs.sum(1), torch.ones(len(clips)), atol=1e-6)
    accuracy = float((probs.argmax(1).numpy() == labels).mean())  # folder names are the labels
    assert accuracy >= SILERO_FLOOR, f"silero-vad accuracy {accuracy:.3f}"


def test_silero_batch_equals_one_by_one(silero, vad_eval):
    clips = torch.from_numpy(vad_eval[0])
    batched = silero.predict(clips)
    single = torch.cat([silero.predict(clips[i:i + 1]) for i in range(len(clips))])
    assert torch.allclose(batched, single, atol=1e-5)
    # and the order inside a batch does not matter (no state leaks between clips or calls)
    flipped = silero.predict(clips.flip(0)).flip(0)
    assert torch.allclose(batched, flipped, atol=1e-5)


def test_silero_odd_lengths_and_silence(silero):
    x = torch.zeros(3, 16000 + 100)
    x[1] = 0.1 * torch.randn(16100, generator=torch.Generator().manual_seed(0))
    probs = silero.predict(x)
    assert probs.shape == (3, 2) and torch.isfinite(probs).all()
    assert probs[0, 0] > 0.9  # silence is not speech


# --- specs -----------------------------------------------------------------------------------


def test_every_zoo_model_has_a_spec_naming_existing_zoo_entries():
    specs = {p.stem: yaml.safe_load(p.read_text()) for p in SPECS.glob("*.yaml")}
    expected = {f"instruments-{m}" for m in HF_MODELS} | {"vad-silero"}
    assert expected <= set(specs)
    for name in expected:
        spec = specs[name]
        assert spec["name"] == name
        resolve_zoo_path(spec["model"]["path"])
        resolve_zoo_path(spec["dataset"]["path"])
        for peer in spec.get("peers", []):
            assert peer in specs and peer != name
    for name in (f"instruments-{m}" for m in HF_MODELS):
        assert set(specs[name]["peers"]) == expected - {name, "vad-silero"}
