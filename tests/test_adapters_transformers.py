"""The transformers adapter against Hugging Face's own code, on tiny random-weight models.

Reference behaviour is HF's: the feature extractor called the way ``pipeline("audio-classification")``
calls it, and the pipeline's probabilities. Tolerances:

- features: :func:`feature_tolerance`, from float32 round-off relative to what the feature is computed from,
  never a fixed number. A log-mel value is the log of a mel energy E that float32 knows only to about
  eps·log2(n_fft) of its frame's peak energy (the FFT's round-off), so in the log domain it is known to
  ±k·eps·peak/E: tight on the loud bins, loose on bins 10 decades below the peak, whose last digits depend on
  the CPU's summation order (a fixed atol of 1e-4 failed on AVX-512 at 1.5e-4; AVX2 measured 9.1·eps·peak in
  the energy domain, k = 4·log2(n_fft) = 36 allows 4×). A normalised waveform (Wav2Vec2) is a few roundings of
  its range. HF's AST path is float64 numpy, ours float32 torch; Whisper is torch on both sides (equal).
- probabilities vs the pipeline: ``PROB_ATOL`` = 1e-5 (measured ≤ 8e-7), top-1 identical.
- batched vs one clip at a time: ``BATCH_ATOL`` = 1e-5 (measured ≤ 7e-7).
"""

from __future__ import annotations

import json
import warnings

import numpy as np
import pytest
import soundfile as sf
import torch

from freqrex_audit.adapters import load_classifier
from freqrex_audit.adapters.features import FeatureFunction, hf_features
from freqrex_audit.adapters.transformers import TransformersClassifier, load_transformers_classifier
from freqrex_audit.models.classifier import ClassifierError, QueryEngine
from freqrex_audit.cli.main import main as cli_main

from .hf_models import FAMILIES, LABELS, SAMPLE_RATE, WHISPER_CHUNK_SECONDS, build_tiny_model

F32 = float(np.finfo(np.float32).eps)
PROB_ATOL = 1e-5
BATCH_ATOL = 1e-5

CLIP_SECONDS = (0.5, 1.0, 1.5)
"""Shorter than, equal to and longer than Whisper's 1 s chunk and AST's 100-frame max_length."""


@pytest.fixture(autouse=True)
def _quiet_transformers():
    import transformers

    level = transformers.logging.get_verbosity()
    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        yield
    transformers.logging.set_verbosity(level)


@pytest.fixture(scope="module")
def model_dirs(tmp_path_factory) -> dict[str, str]:
    root = tmp_path_factory.mktemp("hf_models")
    import transformers

    transformers.logging.set_verbosity_error()
    return {family: str(build_tiny_model(family, root / family)) for family in FAMILIES}


@pytest.fixture(scope="module")
def classifiers(model_dirs) -> dict[str, TransformersClassifier]:
    return {family: load_transformers_classifier(path, device="cpu") for family, path in model_dirs.items()}


def clips(seconds: float, count: int = 4, seed: int = 0) -> np.ndarray:
    """Tones at different pitches plus a little noise: [count, seconds * 16 kHz] float32."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * SAMPLE_RATE)) / SAMPLE_RATE
    freqs = np.geomspace(150, 6000, count)
    waves = [0.3 * np.sin(2 * np.pi * f * t) + 0.05 * rng.standard_normal(t.size) for f in freqs]
    return np.asarray(waves, dtype=np.float32)


def feature_tolerance(extractor, ref: np.ndarray) -> np.ndarray:
    """Per-element atol of a float32 feature against ``ref`` (module docstring): log-mel features through the
    mel energy they are the log of, k·eps·(frame's peak energy) / E; waveform normalisation 8·eps·range."""
    import transformers

    ref = np.asarray(ref, dtype=np.float64)
    if isinstance(extractor, transformers.ASTFeatureExtractor):  # [batch, frames, mels], ln E (normalised)
        scale = 2 * extractor.std if extractor.do_normalize else 1.0
        energy = np.exp(ref * scale + (extractor.mean if extractor.do_normalize else 0.0))
        peak, k = energy.max(axis=-1, keepdims=True), 4 * np.log2(512)  # kaldi pads 25 ms frames to 512 points
        return k * F32 * peak / (energy * scale)
    if isinstance(extractor, transformers.WhisperFeatureExtractor):  # [batch, mels, frames], (log10 E + 4) / 4
        energy = 10.0 ** (4 * ref - 4)
        peak, k = energy.max(axis=-2, keepdims=True), 4 * np.log2(extractor.n_fft)
        return k * F32 * peak / (energy * np.log(10) * 4)
    return np.full(ref.shape, 8 * F32 * float(ref.max() - ref.min()))  # zero-mean unit-variance waveform


def assert_features_close(extractor, ours: torch.Tensor, ref: torch.Tensor, what: str) -> None:
    ours, ref = ours.double().numpy(), ref.double().numpy()
    excess = np.abs(ours - ref) - feature_tolerance(extractor, ref)
    assert excess.max() <= 0, f"{what}: {int((excess > 0).sum())} value(s) beyond float32 round-off, worst " \
                              f"|diff| {np.abs(ours - ref).max():.3g}"


def hf_inputs(clf: TransformersClassifier, x: np.ndarray) -> dict[str, torch.Tensor]:
    """The extractor as the pipeline calls it, one clip at a time, stacked."""
    per_clip = [clf.extractor(clip, sampling_rate=clf.sample_rate, return_tensors="pt") for clip in x]
    return {key: torch.cat([inputs[key] for inputs in per_clip]) for key in per_clip[0]}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seconds", CLIP_SECONDS)
def test_on_device_features_match_hf_extractor(classifiers, family, seconds):
    clf = classifiers[family]
    assert clf.features.on_device
    x = clips(seconds)
    ours = clf.features(torch.from_numpy(x))
    ref = hf_inputs(clf, x)
    assert set(ours) == set(ref)
    for key in ref:
        assert ours[key].shape == ref[key].shape, key
        assert_features_close(clf.extractor, ours[key], ref[key], f"{family} {key}")


@pytest.mark.parametrize("name", ["ASTFeatureExtractor", "WhisperFeatureExtractor", "Wav2Vec2FeatureExtractor"])
def test_full_size_default_extractors_match(name):
    """The released defaults (AST: 128 mels, 1024 frames; Whisper: 80 mels, 30 s chunks), features only."""
    import transformers

    extractor = getattr(transformers, name)()
    x = clips(1.0, count=2)
    ours = FeatureFunction(extractor)(torch.from_numpy(x))
    ref = extractor(list(x), sampling_rate=extractor.sampling_rate, return_tensors="pt")
    key = extractor.model_input_names[0]
    assert ours[key].shape == ref[key].shape
    assert_features_close(extractor, ours[key], ref[key], name)


def test_the_feature_tolerance_still_catches_a_wrong_feature():
    """The round-off bound is tight where the energy is: a 1 % error on the loud mel bins (a wrong filter bank,
    a missed pre-emphasis) fails it, while CPU-order noise on bins 10 decades down does not."""
    import transformers

    extractor = transformers.ASTFeatureExtractor()
    x = clips(1.0, count=2)
    ref = extractor(list(x), sampling_rate=extractor.sampling_rate, return_tensors="pt")["input_values"]
    wrong = ref + np.log(1.01) / (2 * extractor.std)  # every energy 1 % too high
    with pytest.raises(AssertionError, match="beyond float32 round-off"):
        assert_features_close(extractor, wrong, ref, "1 % off")
    tol = feature_tolerance(extractor, ref.numpy())
    assert tol.min() < 1e-4  # the loud bins are held tighter than the old fixed atol


def test_whisper_pads_and_truncates_to_its_chunk(classifiers):
    """Whisper sees exactly chunk_length seconds: a clip's first second decides, the rest is cut."""
    clf = classifiers["whisper"]
    n = WHISPER_CHUNK_SECONDS * SAMPLE_RATE
    long = clips(1.5)
    cut = clf.predict(torch.from_numpy(long)).numpy()
    np.testing.assert_allclose(cut, clf.predict(torch.from_numpy(long[:, :n])).numpy(), atol=BATCH_ATOL)
    short = clips(0.5)
    padded = np.pad(short, ((0, 0), (0, n - short.shape[1])))
    np.testing.assert_allclose(clf.predict(torch.from_numpy(short)).numpy(),
                               clf.predict(torch.from_numpy(padded)).numpy(), atol=BATCH_ATOL)


@pytest.mark.parametrize("family", FAMILIES)
def test_probabilities_match_pipeline(model_dirs, classifiers, family):
    from transformers import pipeline

    clf = classifiers[family]
    pipe = pipeline("audio-classification", model=model_dirs[family], device="cpu")
    for seconds in (0.5, 1.5):  # shorter and longer than Whisper's chunk and AST's max_length
        x = clips(seconds, count=3, seed=1)
        ours = clf.predict(torch.from_numpy(x)).numpy()
        ref = np.array([[{o["label"]: o["score"] for o in pipe(clip, top_k=None)}[label] for label in clf.labels]
                        for clip in x])
        np.testing.assert_allclose(ours, ref, rtol=0, atol=PROB_ATOL, err_msg=f"{family} {seconds}s")
        assert (ours.argmax(1) == ref.argmax(1)).all()
        np.testing.assert_allclose(ours.sum(1), 1.0, atol=1e-5)


@pytest.mark.parametrize("family", FAMILIES)
def test_batched_predict_equals_one_by_one(model_dirs, classifiers, family):
    clf = classifiers[family]
    x = torch.from_numpy(clips(1.0, count=5, seed=2))
    batched = clf.predict(x).numpy()
    single = np.concatenate([clf.predict(x[i:i + 1]).numpy() for i in range(len(x))])
    np.testing.assert_allclose(batched, single, rtol=0, atol=BATCH_ATOL)
    chunked = load_transformers_classifier(model_dirs[family], device="cpu", batch_size=4).predict(x).numpy()
    np.testing.assert_allclose(chunked, single, rtol=0, atol=BATCH_ATOL)
    engine = QueryEngine(clf, batch_size=3)
    np.testing.assert_allclose(engine.query(x), single, rtol=0, atol=BATCH_ATOL)
    assert engine.queries == len(x)


@pytest.mark.parametrize("family", ["ast", "hubert"])
def test_hf_fallback_gives_the_same_probabilities(model_dirs, classifiers, family):
    """``on_device_features=False`` runs HF's extractor; results agree with the on-device path."""
    slow = load_transformers_classifier(model_dirs[family], device="cpu", on_device_features=False)
    assert not slow.features.on_device
    x = torch.from_numpy(clips(1.0, seed=3))
    np.testing.assert_allclose(slow.predict(x).numpy(), classifiers[family].predict(x).numpy(),
                               rtol=0, atol=PROB_ATOL)


def test_unknown_extractor_class_takes_the_hf_path(classifiers):
    from transformers import Wav2Vec2FeatureExtractor

    class CustomExtractor(Wav2Vec2FeatureExtractor):
        """A subclass might compute something else: it must not get the on-device shortcut."""

    extractor = CustomExtractor(sampling_rate=SAMPLE_RATE, do_normalize=True)
    features = FeatureFunction(extractor)
    assert not features.on_device
    x = torch.from_numpy(clips(0.5))
    np.testing.assert_allclose(features(x)["input_values"].numpy(), hf_features(x, extractor)["input_values"].numpy())


@pytest.mark.parametrize("family", FAMILIES)
def test_metadata(classifiers, family):
    clf = classifiers[family]
    assert clf.labels == LABELS
    assert clf.sample_rate == SAMPLE_RATE
    assert clf.device == torch.device("cpu")
    assert not clf.model.training
    assert len(clf.fingerprint) == 16


def test_fingerprint_depends_on_weights_and_labels(tmp_path, model_dirs, classifiers):
    fingerprints = {clf.fingerprint for clf in classifiers.values()}
    assert len(fingerprints) == len(FAMILIES)
    again = load_transformers_classifier(model_dirs["wav2vec2"], device="cpu")
    assert again.fingerprint == classifiers["wav2vec2"].fingerprint
    reseeded = load_transformers_classifier(build_tiny_model("wav2vec2", tmp_path / "seed1", seed=1), device="cpu")
    assert reseeded.fingerprint != again.fingerprint
    relabelled = build_tiny_model("wav2vec2", tmp_path / "relabelled")
    config = json.loads((relabelled / "config.json").read_text())
    config["id2label"] = {"0": "cat", "1": "rain", "2": "siren"}
    config["label2id"] = {"cat": 0, "rain": 1, "siren": 2}
    (relabelled / "config.json").write_text(json.dumps(config))
    clf = load_transformers_classifier(relabelled, device="cpu")
    assert clf.labels == ["cat", "rain", "siren"]
    assert clf.fingerprint != again.fingerprint


def test_load_classifier_dict_and_string(model_dirs, classifiers):
    path = model_dirs["distilhubert"]
    x = torch.from_numpy(clips(1.0))
    expected = classifiers["distilhubert"].predict(x).numpy()
    for model in ({"type": "transformers", "path": path}, path, {"path": path, "batch_size": 2}):
        clf = load_classifier(model, device="cpu")
        assert isinstance(clf, TransformersClassifier)
        assert clf.labels == LABELS
        np.testing.assert_allclose(clf.predict(x).numpy(), expected, atol=BATCH_ATOL)


def test_missing_directory_is_a_classifier_error_naming_it(tmp_path):
    missing = tmp_path / "no_such_model"
    with pytest.raises(ClassifierError, match="no_such_model"):
        load_classifier({"type": "transformers", "path": str(missing)}, device="cpu")
    with pytest.raises(ClassifierError, match="no_such_model"):
        load_classifier(str(missing), device="cpu")
    with pytest.raises(ClassifierError, match="no_such_model"):
        load_transformers_classifier(missing)


def test_broken_directories_are_classifier_errors_naming_them(tmp_path, model_dirs):
    empty = tmp_path / "empty_model"
    empty.mkdir()
    with pytest.raises(ClassifierError, match="empty_model.*config.json"):
        load_transformers_classifier(empty)
    garbled = tmp_path / "garbled_model"
    garbled.mkdir()
    (garbled / "config.json").write_text("{not json")
    with pytest.raises(ClassifierError, match="garbled_model"):
        load_classifier({"type": "transformers", "path": str(garbled)}, device="cpu")
    no_extractor = build_tiny_model("distilhubert", tmp_path / "no_extractor")
    (no_extractor / "preprocessor_config.json").unlink()
    with pytest.raises(ClassifierError, match="no_extractor.*feature extractor"):
        load_transformers_classifier(no_extractor)
    no_weights = build_tiny_model("distilhubert", tmp_path / "no_weights")
    (no_weights / "model.safetensors").unlink()
    with pytest.raises(ClassifierError, match="no_weights"):
        load_transformers_classifier(no_weights)


def test_offline_and_no_remote_code_unless_asked(monkeypatch, model_dirs):
    import transformers

    calls: list[dict] = []
    original = transformers.AutoModelForAudioClassification.from_pretrained.__func__

    def spy(cls, *args, **kwargs):
        calls.append(kwargs)
        return original(cls, *args, **kwargs)

    monkeypatch.setattr(transformers.AutoModelForAudioClassification, "from_pretrained", classmethod(spy))
    load_transformers_classifier(model_dirs["distilhubert"], device="cpu")
    load_transformers_classifier(model_dirs["distilhubert"], device="cpu", trust_remote_code="yes")
    load_transformers_classifier(model_dirs["distilhubert"], device="cpu", trust_remote_code=True)
    assert [c["trust_remote_code"] for c in calls] == [False, False, True]
    assert all(c["local_files_only"] and c["use_safetensors"] for c in calls)


def test_cli_classify_prints_label_and_confidence(tmp_path, model_dirs, classifiers, capsys):
    wav = tmp_path / "clip.wav"
    x = clips(1.0)[2]
    sf.write(wav, x, SAMPLE_RATE, subtype="FLOAT")
    status = cli_main(["classify", model_dirs["hubert"], str(wav), "--device", "cpu"])
    out = capsys.readouterr().out.strip().splitlines()
    assert status == 0
    assert len(out) == 1
    path, label, confidence = out[0].split("\t")
    probs = classifiers["hubert"].predict(torch.from_numpy(x)).numpy()[0]
    assert path == str(wav)
    assert label == LABELS[int(probs.argmax())]
    assert float(confidence) == pytest.approx(float(probs.max()), abs=1e-4)
