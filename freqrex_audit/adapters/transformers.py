"""Hugging Face audio classifiers (``AutoModelForAudioClassification``) from a local directory.

The directory is what ``save_pretrained`` writes for the model and its feature extractor
(``config.json``, ``model.safetensors``, ``preprocessor_config.json``). Nothing is downloaded
(``local_files_only=True``), remote code runs only when the spec sets ``trust_remote_code: true``,
and weights load from safetensors when the directory has them (else ``torch.load`` with
``weights_only=True``).

A hub id (``model.id`` in a spec, ``hf://org/name`` as a string) is resolved from the local hub cache
only (``HF_HUB_CACHE``, else ``HF_HOME``/hub, read at call time): a missing id is an error naming it,
never a download. A ``pipeline("audio-classification")`` object is wrapped by :func:`classifier_from_pipeline`
(its model, extractor and device); its fingerprint is the hash of its state dict.

Features are computed in torch on the model's device, batched (see :mod:`.features`), for the
Wav2Vec2-style (Wav2Vec2, HuBERT, DistilHuBERT, …), AST and Whisper extractors; any other extractor
runs through HF's own CPU code.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from pathlib import Path
from typing import Any

import torch

from ..models.classifier import Classifier, ClassifierError, resolve_device
from ..runtime.paths import user_path
from .features import AST_HOP_LENGTH, FeatureFunction, feature_function

__all__ = ["TransformersClassifier", "load_transformers_classifier", "classifier_from_pipeline", "extractor_window",
           "resolve_hub_id", "is_audio_pipeline"]

_WEIGHT_SUFFIXES = (".safetensors", ".bin")
_HASHED_FILES = ("config.json", "preprocessor_config.json")


class TransformersClassifier(Classifier):
    """A loaded HF audio classifier: waveforms [B, T] at ``sample_rate`` -> softmax probabilities [B, C].

    ``batch_size`` (optional) caps how many clips go through the model at once inside ``predict``;
    the :class:`~freqrex_audit.models.classifier.QueryEngine` batches on top of that.
    """

    def __init__(self, model: torch.nn.Module, extractor: Any, path: str | Path, device: torch.device,
                 batch_size: int | None = None, fingerprint: str = "", on_device_features: bool = True):
        self.model = model
        self.extractor = extractor
        self.path = Path(path)
        self.name = self.path.name or str(self.path)
        self.labels = labels_from_config(model.config, self.path)
        self.sample_rate = int(extractor.sampling_rate)
        if batch_size is not None and int(batch_size) < 1:
            raise ClassifierError(f"{self.path}: batch_size must be ≥ 1, got {batch_size}")
        self.batch_size = int(batch_size) if batch_size else None
        self.features: FeatureFunction = feature_function(extractor, on_device=on_device_features)
        self.fingerprint = fingerprint
        self.device = device
        self.input_window = extractor_window(extractor)  # AST max_length / Whisper n_samples; None: whole clip
        self.model.to(device).eval()

    def to(self, device: str | torch.device) -> "TransformersClassifier":
        super().to(device)
        self.model.to(self.device)
        return self

    @property
    def dtype(self) -> torch.dtype:
        return next(self.model.parameters()).dtype

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        waveforms = torch.as_tensor(waveforms)
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        waveforms = waveforms.to(self.device, torch.float32)
        step = self.batch_size or max(1, waveforms.shape[0])
        with torch.inference_mode():
            chunks = [self._forward(waveforms[start:start + step]) for start in range(0, waveforms.shape[0], step)]
        return torch.cat(chunks) if chunks else torch.zeros(0, len(self.labels), device=self.device)

    def _forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        inputs = self.features(waveforms)
        dtype = self.dtype
        inputs = {key: value.to(dtype) if value.is_floating_point() else value for key, value in inputs.items()}
        logits = self.model(**inputs).logits
        return torch.softmax(logits.float(), dim=-1)

    def white_box(self):
        """Gradient access for explainers (models.whitebox): log-probabilities and every layer's hidden states,
        concatenated along the feature axis ([B, N, layers·D]), through a feature function of its own (the
        query path's cached constants were made under inference mode and cannot enter autograd)."""
        from ..models.whitebox import WhiteBox

        features = feature_function(self.extractor, on_device=True)

        def forward(waveforms: torch.Tensor, hidden: bool):
            inputs = features(waveforms)
            inputs = {k: v.to(self.dtype) if v.is_floating_point() else v for k, v in inputs.items()}
            out = self.model(**inputs, output_hidden_states=hidden)
            states = torch.cat([h.float() for h in out.hidden_states], -1) if hidden else None
            return torch.log_softmax(out.logits.float(), dim=-1), states

        return WhiteBox(self.name, self.labels, self.sample_rate, self.device, forward, self.model,
                        f"{type(self.model).__name__}, all {self.model.config.num_hidden_layers + 1} hidden states")


def labels_from_config(config: Any, path: Path) -> list[str]:
    """``config.id2label`` ordered by id; ids must be 0..C-1 with C = ``num_labels``."""
    id2label = getattr(config, "id2label", None) or {}
    try:
        by_id = {int(key): str(value) for key, value in id2label.items()}
    except (TypeError, ValueError):
        raise ClassifierError(f"{path / 'config.json'}: id2label keys must be integers, "
                              f"got {list(id2label)}") from None
    if sorted(by_id) != list(range(len(by_id))) or not by_id:
        raise ClassifierError(f"{path / 'config.json'}: id2label must map ids 0..C-1 to labels, "
                              f"got ids {sorted(by_id)}")
    return [by_id[i] for i in range(len(by_id))]


def fingerprint_directory(path: Path, labels: list[str]) -> str:
    """Short hash of the weight files, the model and extractor configs, and the label list."""
    digest = hashlib.sha256(json.dumps(labels).encode())
    names = sorted(p.name for p in path.iterdir() if p.is_file() and
                   (p.suffix in _WEIGHT_SUFFIXES or p.name in _HASHED_FILES or p.name.endswith(".index.json")))
    for name in names:
        digest.update(name.encode())
        with open(path / name, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()[:16]


def fingerprint_state_dict(model: torch.nn.Module, labels: list[str]) -> str:
    """Short hash of a loaded model's weights (the state dict), its config and its labels."""
    digest = hashlib.sha256(json.dumps(labels).encode())
    digest.update(model.config.to_json_string(use_diff=False).encode())
    for key, value in sorted(model.state_dict().items()):
        digest.update(key.encode())
        digest.update(value.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return digest.hexdigest()[:16]


def hub_cache_dir() -> Path:
    """The hub cache as the environment names it now (``HF_HUB_CACHE``, ``HF_HOME``/hub, else HF's default)."""
    if os.environ.get("HF_HUB_CACHE"):
        return user_path(os.environ["HF_HUB_CACHE"])
    if os.environ.get("HF_HOME"):
        return user_path(os.environ["HF_HOME"]) / "hub"
    from huggingface_hub import constants

    return Path(constants.HF_HUB_CACHE)


def resolve_hub_id(model_id: str, revision: str | None = None) -> Path:
    """The snapshot folder of ``model_id`` in the local hub cache; never downloads."""
    from huggingface_hub import snapshot_download

    cache = hub_cache_dir()
    try:
        return Path(snapshot_download(model_id, revision=revision, cache_dir=cache, local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, HFValidationError (a malformed id), …
        raise ClassifierError(f"hub id {model_id!r} is not in the local Hugging Face cache {cache} "
                              f"({type(exc).__name__}); nothing is downloaded: fetch it once on a machine with "
                              f"network access (huggingface-cli download {model_id}) or give its folder as "
                              f"model.path") from None


def is_audio_pipeline(obj: Any) -> bool:
    """Whether ``obj`` looks like a transformers ``pipeline`` (any task: the loader checks which)."""
    return hasattr(obj, "task") and hasattr(obj, "model") and hasattr(obj, "feature_extractor")


def classifier_from_pipeline(pipe: Any, device: str | torch.device | None = None, batch_size: int | None = None,
                             on_device_features: bool = True) -> TransformersClassifier:
    """Wrap a ``pipeline("audio-classification")``: same model and extractor, on its device unless told."""
    name = str(getattr(pipe.model, "name_or_path", "") or type(pipe.model).__name__)
    if getattr(pipe, "task", None) != "audio-classification":
        raise ClassifierError(f"{name}: a {getattr(pipe, 'task', None)!r} pipeline is not an audio classifier; "
                              f"use pipeline('audio-classification', ...)")
    if pipe.feature_extractor is None or not hasattr(pipe.feature_extractor, "sampling_rate"):
        raise ClassifierError(f"{name}: the pipeline has no feature extractor with a sampling_rate")
    target = pipe.device if device in (None, "auto") else resolve_device(device)
    labels = labels_from_config(pipe.model.config, Path(name))
    return TransformersClassifier(pipe.model, pipe.feature_extractor, name, torch.device(target),
                                  batch_size=batch_size, fingerprint=fingerprint_state_dict(pipe.model, labels),
                                  on_device_features=on_device_features)


@contextlib.contextmanager
def _quiet_progress():
    """No "Loading weights" progress bar on stderr (it would interleave with CLI output); restored after."""
    from transformers.utils import logging as hf_logging

    enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()
    try:
        yield
    finally:
        if enabled:
            hf_logging.enable_progress_bar()


def load_transformers_classifier(path: str | Path | None = None, device: str | torch.device = "auto",
                                 trust_remote_code: bool = False, batch_size: int | None = None,
                                 on_device_features: bool = True, id: str | None = None,
                                 **unused: Any) -> TransformersClassifier:
    """Load a model directory saved by ``save_pretrained`` (model + feature extractor), or a cached hub id, offline.

    ``on_device_features=False`` keeps HF's own (CPU, numpy) feature extraction, for comparison.
    """
    from transformers import AutoFeatureExtractor, AutoModelForAudioClassification

    if id is not None:
        path = resolve_hub_id(id)
    if path is None:
        raise ClassifierError("transformers model: give a 'path' (a model folder) or an 'id' (a cached hub model)")
    directory = user_path(path)
    if not directory.is_dir():
        raise ClassifierError(f"{directory}: transformers model directory not found")
    if not (directory / "config.json").is_file():
        raise ClassifierError(f"{directory}: not a transformers model directory (no config.json)")
    remote = trust_remote_code is True
    has_safetensors = any(directory.glob("*.safetensors"))
    try:
        with _quiet_progress():
            model = AutoModelForAudioClassification.from_pretrained(
                directory, local_files_only=True, trust_remote_code=remote,
                use_safetensors=True if has_safetensors else None, weights_only=True)
    except Exception as exc:  # HF raises OSError, ValueError, KeyError… for broken directories
        if not remote and "trust_remote_code" in str(exc):
            raise ClassifierError(f"{directory}: the model ships its own Python code, which runs only when the "
                                  f"spec sets model.trust_remote_code: true (review that code first)") from None
        raise ClassifierError(f"{directory}: cannot load the audio classification model "
                              f"({type(exc).__name__}: {exc})") from None
    try:
        extractor = AutoFeatureExtractor.from_pretrained(directory, local_files_only=True, trust_remote_code=remote)
    except Exception as exc:
        raise ClassifierError(f"{directory}: cannot load the feature extractor "
                              f"(preprocessor_config.json; {type(exc).__name__}: {exc})") from None
    if not hasattr(extractor, "sampling_rate"):
        raise ClassifierError(f"{directory}: the feature extractor has no sampling_rate")
    labels = labels_from_config(model.config, directory)
    classifier = TransformersClassifier(model, extractor, directory, resolve_device(device), batch_size=batch_size,
                                        fingerprint=fingerprint_directory(directory, labels),
                                        on_device_features=on_device_features)
    if id is not None:
        classifier.name = id  # a snapshot folder is named by its commit hash
    return classifier


def extractor_window(extractor: Any) -> int | None:
    """Samples a Hugging Face feature extractor reads from the start of a clip; None when unbounded.

    AST: ``max_length`` frames of ``len(window)`` (400) samples every 160 → (max_length − 1)·160 + 400.
    Whisper: ``n_samples`` (padded or truncated to it). Anything else (Wav2Vec2-style): None.
    """
    kind = type(extractor).__name__
    if kind == "ASTFeatureExtractor" and getattr(extractor, "max_length", None):
        window = getattr(extractor, "window", None)
        frame = len(window) if window is not None else 400
        return (int(extractor.max_length) - 1) * AST_HOP_LENGTH + frame
    if kind == "WhisperFeatureExtractor" and getattr(extractor, "n_samples", None):
        return int(extractor.n_samples)
    return None
