"""Which adapter loads which model type, in this process: the one table the loader and the subprocess
sandbox's child both use (so a model loads the same way in and out of isolation)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import torch

from ..models.classifier import Classifier, ClassifierError

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
        with _process_settings_kept():
            return loader(**spec)
    except ValueError as exc:  # labels repeated, sample rate 0, unknown output kind…
        raise ClassifierError(str(exc)) from None


@contextmanager
def _process_settings_kept() -> Iterator[None]:
    """Put back the process-wide torch settings a model's code changed while it loaded (silero-vad's import sets one
    thread): they are the audit's (``--threads``), and every spec audited after it would inherit them."""
    threads, dtype, grad = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if torch.get_default_dtype() != dtype:
            torch.set_default_dtype(dtype)
        torch.set_grad_enabled(grad)
