"""ONNX classifiers through onnxruntime: inputs, outputs and shapes are read from the model file.

How the audio, state and sample-rate inputs are found, batched and streamed is the rule of
:mod:`.exported`. The CUDA execution provider is used when the device is CUDA and onnxruntime has it
(``onnxruntime-gpu``); otherwise the model runs on the CPU provider and only its scores move to the
device. The fingerprint is the hash of the file's bytes (plus labels, rate, outputs and window).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..models.classifier import ClassifierError, FunctionClassifier, resolve_device
from .exported import ExportedModel, TensorInfo, fingerprint_file, parse_window

__all__ = ["load_onnx_classifier", "onnx_providers"]

_ONNX_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64, "tensor(float16)": np.float16,
               "tensor(int64)": np.int64, "tensor(int32)": np.int32, "tensor(int16)": np.int16,
               "tensor(int8)": np.int8, "tensor(uint8)": np.uint8, "tensor(bool)": np.bool_}


def onnx_providers(device_type: str) -> list[str]:
    """Execution providers for a torch device type: CUDA first when asked for and installed, CPU always."""
    import onnxruntime

    available = onnxruntime.get_available_providers()
    if device_type == "cuda" and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    return ["CPUExecutionProvider"]


def _info(node: Any, source: Path) -> TensorInfo:
    if node.type not in _ONNX_TYPES:
        raise ClassifierError(f"{source}: {node.name!r} has the unsupported element type {node.type}")
    shape = tuple(d if isinstance(d, int) and d >= 0 else None for d in (node.shape or ()))
    return TensorInfo(node.name, shape, np.dtype(_ONNX_TYPES[node.type]))


def load_onnx_classifier(path: str, labels: Sequence[str] | None = None, sample_rate: int | None = None,
                         device: str = "auto", outputs: str = "probs", window: Mapping[str, Any] | None = None,
                         threads: int | None = None, **unused: Any) -> FunctionClassifier:
    """Load an ``.onnx`` file as a classifier; ``labels`` and ``sample_rate`` come from the spec."""
    try:
        import onnxruntime
    except ImportError:
        raise ClassifierError(f"{path}: ONNX models need onnxruntime: pip install 'freqrex_audit[onnx]'") from None
    source = Path(path)
    if not source.is_file():
        raise ClassifierError(f"{source}: ONNX model file not found")
    if not labels or not sample_rate:
        raise ClassifierError(f"{source}: an ONNX model needs 'labels' and 'sample_rate' in its spec")
    target = resolve_device(device)
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3  # no warnings about unused initialisers on stderr
    options.inter_op_num_threads = 1
    if threads:
        options.intra_op_num_threads = int(threads)
    providers = onnx_providers(target.type)
    try:
        session = onnxruntime.InferenceSession(str(source), sess_options=options, providers=providers)
    except Exception as exc:
        raise ClassifierError(f"{source}: cannot be loaded by onnxruntime ({type(exc).__name__}: {exc})") from None
    inputs = [_info(node, source) for node in session.get_inputs()]
    outs = [_info(node, source) for node in session.get_outputs()]
    names = [o.name for o in outs]
    model = ExportedModel(source, inputs, outs, lambda feeds: session.run(names, feeds), int(sample_rate),
                          len(labels), outputs, parse_window(window, str(source)))
    model.providers = session.get_providers()
    classifier = FunctionClassifier(model, labels, int(sample_rate), device=target, name=source.stem, outputs=outputs)
    classifier.fingerprint = fingerprint_file(source, "onnx", list(labels), int(sample_rate), outputs, model.window)
    return classifier
