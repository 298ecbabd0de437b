"""TorchScript classifiers: a scripted module file, plus its labels and sample rate."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Sequence

import torch

from ..models.classifier import ClassifierError, FunctionClassifier, resolve_device


def load_torchscript_classifier(path: str, labels: Sequence[str] | None = None, sample_rate: int | None = None,
                                device: str = "auto", outputs: str = "probabilities", **unused: Any) -> FunctionClassifier:
    """Load ``torch.jit.load(path)``; the module maps waveforms [B, T] to probabilities (or logits) [B, C]."""
    path_obj = Path(path)
    if not path_obj.is_file():
        raise ClassifierError(f"{path}: TorchScript file not found")
    if not labels or not sample_rate:
        raise ClassifierError(f"{path}: a TorchScript model needs 'labels' and 'sample_rate' in its spec")
    target = resolve_device(device)
    try:
        module = torch.jit.load(str(path_obj), map_location=target)
    except Exception as exc:
        raise ClassifierError(f"{path}: cannot be loaded as TorchScript ({exc})") from None
    module.eval()
    return FunctionClassifier(module, labels, int(sample_rate), device=target, name=path_obj.stem, outputs=outputs)
