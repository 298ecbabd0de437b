"""The zoo's four families rebuilt at realistic widths for ``freqrex-audit bench --size``.

The zoo models are ~90 k parameters: a batch of one-second clips costs them a few milliseconds, so a bench
on them measures the engine against an almost free model. ``small`` and ``base`` keep each zoo model's
feature extractor (its sample rate and input window) and scale its transformer to a published size
(``base``: AST/Wav2Vec2/HuBERT-base, Whisper-base's encoder), with random weights from a fixed seed.
The labels mean nothing, but a forward pass costs what a real model of that size costs — which is what the
overhead ratio needs. Nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..models.classifier import Classifier, resolve_device

_ENCODER = {  # hidden, layers, heads, feed-forward width
    "tiny": (32, 2, 2, 64),  # not a published size: benchmarks/gpu.py --dry-run checks the script on a CPU with it
    "small": (256, 4, 4, 1024),
    "base": (768, 12, 12, 3072),
}
_WHISPER = {"tiny": (32, 2, 2, 64), "small": (256, 4, 4, 1024), "base": (512, 6, 8, 2048)}  # Whisper-base: d_model 512, 6 encoder layers
_CONV_DIM = {"tiny": 32, "small": 256, "base": 512}  # Wav2Vec2 / HuBERT feature encoder channels
_FAMILIES = ("audio-spectrogram-transformer", "whisper", "wav2vec2", "hubert")


def scaled_config(config, size: str):
    """A copy of a zoo model's config with the transformer at ``size`` (labels and input window unchanged)."""
    config = config.__class__.from_dict(config.to_dict())
    if config.model_type == "whisper":
        d_model, layers, heads, ffn = _WHISPER[size]
        config.update({"d_model": d_model, "encoder_layers": layers, "encoder_attention_heads": heads,
                       "encoder_ffn_dim": ffn, "decoder_attention_heads": heads, "decoder_ffn_dim": ffn})
        return config
    hidden, layers, heads, ffn = _ENCODER[size]
    config.update({"hidden_size": hidden, "num_hidden_layers": layers, "num_attention_heads": heads,
                   "intermediate_size": ffn})
    if config.model_type in ("wav2vec2", "hubert"):
        channels = _CONV_DIM[size]
        config.update({"conv_dim": [channels] * len(config.conv_dim), "output_hidden_size": hidden,
                       "num_conv_pos_embeddings": 128 if size == "base" else 32,
                       "num_conv_pos_embedding_groups": 16, "classifier_proj_size": 256})
    return config


def sized_classifier(model: str | Path, size: str, device: str = "auto", seed: int = 0) -> Classifier:
    """A transformers model folder (or ``zoo://`` name) rebuilt at ``size`` with seeded random weights, behind
    the usual adapter: same config family, labels and feature extractor."""
    from transformers import AutoConfig, AutoFeatureExtractor, AutoModelForAudioClassification

    from ..adapters.transformers import TransformersClassifier
    from ..runtime.paths import resolve_zoo_path, user_path

    if size not in _ENCODER:
        raise ValueError(f"size must be one of {', '.join(_ENCODER)}, got {size!r}")
    directory = resolve_zoo_path(model) if str(model).startswith("zoo://") else user_path(model)
    if not (directory / "config.json").is_file() or not (directory / "preprocessor_config.json").is_file():
        raise ValueError(f"{model}: --size {size} rebuilds a transformers model folder (config.json and "
                         f"preprocessor_config.json); this is not one")
    config = AutoConfig.from_pretrained(directory, local_files_only=True)
    if config.model_type not in _FAMILIES:
        raise ValueError(f"{model}: --size knows the families {', '.join(_FAMILIES)}")
    config = scaled_config(config, size)
    torch.manual_seed(seed)
    model = AutoModelForAudioClassification.from_config(config)
    extractor = AutoFeatureExtractor.from_pretrained(directory, local_files_only=True)
    classifier = TransformersClassifier(model, extractor, directory, resolve_device(device),
                                        fingerprint=f"{directory.name}-{size}-seed{seed}")
    classifier.name = f"{directory.name}-{size}"
    return classifier


def parameter_count(classifier: Classifier) -> int | None:
    """Parameters of a torch-backed classifier (None for other kinds)."""
    model = getattr(classifier, "model", None)
    return sum(p.numel() for p in model.parameters()) if isinstance(model, torch.nn.Module) else None
