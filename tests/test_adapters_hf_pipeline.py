"""Hugging Face models as users hold them: a ``pipeline("audio-classification")`` object, or a hub id
already in the local cache (resolved offline, never downloaded).

The cache is a temporary folder in the hub's own layout (``models--org--name/refs/main`` naming a
snapshot folder), pointed at by ``HF_HUB_CACHE`` or ``HF_HOME``; any attempt to open a socket fails
the test.
"""

from __future__ import annotations

import shutil
import socket
from pathlib import Path

import numpy as np
import pytest
import torch

from freqrex_audit.adapters import load_classifier
from freqrex_audit.adapters.transformers import classifier_from_pipeline, load_transformers_classifier
from freqrex_audit.models.classifier import ClassifierError, QueryEngine
from freqrex_audit.runtime.paths import ZOO_ROOT
from tests.hf_models import LABELS, SAMPLE_RATE, build_tiny_model

COMMIT = "0123456789abcdef0123456789abcdef01234567"
REPO = Path(__file__).resolve().parents[1]


def cache_model(cache: Path, model_id: str, source: Path) -> Path:
    """Put the files of ``source`` into ``cache`` as the hub would lay out a download of ``model_id``."""
    repo = cache / f"models--{model_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / COMMIT
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(COMMIT)
    for file in source.iterdir():
        shutil.copyfile(file, snapshot / file.name)
    return snapshot


@pytest.fixture
def no_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*args, **kwargs):
        raise AssertionError("the adapter tried to open a network connection")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")


@pytest.fixture(scope="module")
def tiny_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build_tiny_model("wav2vec2", tmp_path_factory.mktemp("tiny") / "wav2vec2")


def clips(n: int = 3) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((n, SAMPLE_RATE // 2)).astype(np.float32))


def test_hub_id_loads_from_the_local_cache_only(tmp_path, monkeypatch, tiny_dir, no_network):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    cache_model(tmp_path / "hub", "acme/tiny-kws", tiny_dir)
    by_id = load_classifier("hf://acme/tiny-kws", device="cpu")
    by_dict = load_classifier({"id": "acme/tiny-kws"}, device="cpu")
    by_dir = load_transformers_classifier(tiny_dir, device="cpu")
    assert by_id.name == "acme/tiny-kws" and by_id.labels == LABELS
    np.testing.assert_allclose(by_id.predict(clips()).numpy(), by_dir.predict(clips()).numpy(), atol=1e-6)
    assert by_id.fingerprint == by_dict.fingerprint == by_dir.fingerprint  # the same bytes


def test_hf_home_is_honoured_too(tmp_path, monkeypatch, tiny_dir, no_network):
    monkeypatch.delenv("HF_HUB_CACHE", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "home"))
    cache_model(tmp_path / "home" / "hub", "acme/tiny-kws", tiny_dir)
    assert load_classifier({"id": "acme/tiny-kws"}, device="cpu").labels == LABELS


def test_an_id_not_in_the_cache_is_a_clear_error_and_no_download(tmp_path, monkeypatch, no_network):
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "empty"))
    with pytest.raises(ClassifierError, match=r"hub id 'acme/not-cached' is not in the local Hugging Face cache "
                                              r".*empty.*nothing is downloaded"):
        load_classifier({"id": "acme/not-cached"})
    with pytest.raises(ClassifierError, match=r"hub id '\.\./escape' is not in the local"):
        load_classifier("hf://../escape")


def test_pipeline_object_gives_the_pipelines_own_scores(tiny_dir, no_network):
    from transformers import pipeline

    pipe = pipeline("audio-classification", model=str(tiny_dir), device="cpu")
    clf = load_classifier(pipe)
    assert clf.labels == LABELS and clf.sample_rate == SAMPLE_RATE
    x = clips()
    ours = QueryEngine(clf).query(x)
    for row, clip in zip(ours, x.numpy()):
        theirs = {item["label"]: item["score"] for item in pipe(clip, top_k=None)}
        np.testing.assert_allclose(row, [theirs[label] for label in LABELS], atol=1e-4)


def test_pipeline_fingerprint_follows_the_weights(tiny_dir):
    from transformers import pipeline

    first = classifier_from_pipeline(pipeline("audio-classification", model=str(tiny_dir), device="cpu"))
    same = classifier_from_pipeline(pipeline("audio-classification", model=str(tiny_dir), device="cpu"))
    assert first.fingerprint == same.fingerprint
    with torch.no_grad():
        next(same.model.parameters()).add_(1e-3)
    assert classifier_from_pipeline(_FakePipeline(same.model, same.extractor)).fingerprint != first.fingerprint


class _FakePipeline:
    """Only what the adapter reads of a pipeline: task, model, feature_extractor, device."""

    def __init__(self, model, extractor, task: str = "audio-classification"):
        self.model, self.feature_extractor, self.task, self.device = model, extractor, task, torch.device("cpu")


def test_a_pipeline_for_another_task_is_refused(tiny_dir):
    clf = load_transformers_classifier(tiny_dir, device="cpu")
    with pytest.raises(ClassifierError, match="'text-classification' pipeline is not an audio classifier"):
        load_classifier(_FakePipeline(clf.model, clf.extractor, task="text-classification"))


SPEC = """
name: hub-wav2vec2
model: {id: "freqrex/instruments-wav2vec2", batch_size: 16}
dataset: {path: "zoo://instruments/eval", clip_seconds: 0.5, limit: 2, only_correct: true}
freqrex: {seed: 0}
attack: {budget: 50}
checks:
  sufficiency: {}
  fourier_attack: {max_success_rate: 1.0}
"""


@pytest.mark.slow
def test_a_spec_naming_a_cached_hub_id_is_audited_end_to_end(pytester, monkeypatch, tmp_path):
    """The zoo's trained wav2vec2 instrument classifier, cached under a hub id, through the pytest plugin."""
    import os

    cache_model(tmp_path / "hub", "freqrex/instruments-wav2vec2", ZOO_ROOT / "instruments" / "models" / "wav2vec2")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    pytester.makeini(f"[pytest]\nfreqrex_cache = {tmp_path / 'cache'}\n")
    (pytester.path / "pyproject.toml").write_text("")
    (pytester.mkdir("model_specs") / "hub.yaml").write_text(SPEC)
    result = pytester.runpytest("model_specs", "-p", "no:cacheprovider")
    outcomes = result.parseoutcomes()
    assert outcomes.get("passed", 0) >= 3 and not outcomes.get("failed") and not outcomes.get("errors"), \
        result.stdout.str()[-3000:]
