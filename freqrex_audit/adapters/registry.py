"""Which adapter loads which model type, in this process: the one table the loader and the subprocess
sandbox's child both use (so a model loads the same way in and out of isolation)."""

from __future__ import annotations

from typing import Any

from ..models.classifier import Classifier, ClassifierError
from ..models.process_settings import torch_settings_kept

__all__ = ["MODEL_TYPES", "load_in_process"]

MODEL_TYPES = ("transformers", "torchscript", "onnx", "tflite", "callable")


def load_in_process(spec: dict[str, Any]) -> Classifier:
    """Dispatch a typed model dict to its adapter."""
    spec = dict(spec)
    kind = spec.pop("type")
    if kind == "transformers":
        if spec.get("outputs", "probabilities") != "probabilities":
            raise ClassifierError("model.outputs: a transformers model's logits are softmaxed by the adapter; "
                                  "leave outputs out")
        from .transformers import load_transformers_classifier as loader
    elif kind == "torchscript":
        from .torchscript import load_torchscript_classifier as loader
    elif kind == "onnx":
        from .onnx import load_onnx_classifier as loader
    elif kind == "tflite":
        from .tflite import load_tflite_classifier as loader
    elif kind == "callable":
        from .callable import load_callable_classifier as loader
    else:
        raise ClassifierError(f"model type {kind!r} is not one of {', '.join(MODEL_TYPES)}")
    try:
        with torch_settings_kept():  # silero-vad's import sets one thread for the process
            return loader(**spec)
    except ValueError as exc:  # labels repeated, sample rate 0, unknown output kind…
        raise ClassifierError(str(exc)) from None
