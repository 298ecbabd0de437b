"""TFLite classifiers: a ``.tflite`` file run by the LiteRT interpreter, under the rule of :mod:`.exported`.

The interpreter comes from ``ai-edge-litert`` (``ai_edge_litert.interpreter``), else the older
``tflite-runtime``, else ``tensorflow.lite`` — whichever is installed. Input and output shapes are the
model's ``shape_signature``: a ``-1`` batch axis means one call for the whole batch (the input is
resized), a ``-1`` sample axis is resized to the clip. Quantised (int8/uint8) tensors are quantised and
dequantised with the model's own scale and zero point, so the rule sees float audio and float scores.
Variable tensors (state kept inside the model) are reset before every clip batch. The interpreter is
not thread-safe, so calls are serialised. The fingerprint is the hash of the file's bytes.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any, Mapping, Sequence

import numpy as np

from ..models.classifier import ClassifierError, FunctionClassifier, resolve_device
from .exported import ExportedModel, TensorInfo, fingerprint_file, output_kind, parse_window
from .micro_features import MicroFeatureModel, micro_options

__all__ = ["load_tflite_classifier", "tflite_interpreter_class"]


def tflite_interpreter_class() -> type:
    """The first installed TFLite interpreter: ai-edge-litert, tflite-runtime, then tensorflow.lite."""
    try:
        from ai_edge_litert.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        from tflite_runtime.interpreter import Interpreter
        return Interpreter
    except ImportError:
        pass
    try:
        import tensorflow as tf
        return tf.lite.Interpreter
    except (ImportError, AttributeError):
        raise ClassifierError("TFLite models need a TFLite interpreter: pip install 'freqrex_audit[tflite]' "
                              "(ai-edge-litert)") from None


def _builtin_kernels() -> Any:
    """LiteRT's resolver without default delegates: TFLite's builtin kernels instead of XNNPACK's."""
    try:
        from ai_edge_litert.interpreter import OpResolverType
    except ImportError:
        raise ClassifierError("model.options.xnnpack: false needs ai-edge-litert (pip install "
                              "'freqrex_audit[tflite]')") from None
    return OpResolverType.BUILTIN_WITHOUT_DEFAULT_DELEGATES


def _quantisation(detail: Mapping[str, Any]) -> tuple[float, int]:
    scale, zero = detail.get("quantization", (0.0, 0))
    return float(scale), int(zero)


def _info(detail: Mapping[str, Any]) -> TensorInfo:
    """Name, shape (None where the signature says -1) and the dtype the rule sees (float if quantised)."""
    signature = detail.get("shape_signature")
    dims = signature if signature is not None and len(signature) == len(detail["shape"]) else detail["shape"]
    dtype = np.dtype(detail["dtype"])
    if np.issubdtype(dtype, np.integer) and _quantisation(detail)[0] > 0:
        dtype = np.dtype(np.float32)
    return TensorInfo(str(detail["name"]), tuple(None if int(d) < 0 else int(d) for d in dims), dtype)


class _TFLiteRunner:
    """One ``invoke`` with named feeds: resizes inputs whose shape changed, (de)quantises, serialised."""

    def __init__(self, interpreter: Any):
        self.interpreter = interpreter
        self.inputs = interpreter.get_input_details()
        self.outputs = interpreter.get_output_details()
        self.shapes: dict[int, tuple[int, ...]] = {d["index"]: tuple(int(x) for x in d["shape"]) for d in self.inputs}
        self.lock = threading.Lock()
        interpreter.allocate_tensors()

    def reset(self) -> None:
        with self.lock:
            if hasattr(self.interpreter, "reset_all_variables"):
                self.interpreter.reset_all_variables()

    def __call__(self, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
        with self.lock:
            resized = False
            for detail in self.inputs:
                shape = tuple(int(x) for x in np.shape(feeds[detail["name"]]))
                if shape != self.shapes[detail["index"]]:
                    self.interpreter.resize_tensor_input(detail["index"], list(shape), strict=True)
                    self.shapes[detail["index"]] = shape
                    resized = True
            if resized:
                self.interpreter.allocate_tensors()
            for detail in self.inputs:
                value = feeds[detail["name"]]
                scale, zero = _quantisation(detail)
                if np.issubdtype(np.dtype(detail["dtype"]), np.integer) and scale > 0:
                    info = np.iinfo(detail["dtype"])
                    value = np.clip(np.round(value / scale + zero), info.min, info.max)
                self.interpreter.set_tensor(detail["index"], np.ascontiguousarray(value, dtype=detail["dtype"]))
            self.interpreter.invoke()
            results = []
            for detail in self.outputs:
                value = self.interpreter.get_tensor(detail["index"])
                scale, zero = _quantisation(detail)
                if np.issubdtype(value.dtype, np.integer) and scale > 0:
                    value = (value.astype(np.float64) - zero) * scale
                results.append(np.array(value))
            return results


def load_tflite_classifier(path: str, labels: Sequence[str] | None = None, sample_rate: int | None = None,
                           device: str = "auto", outputs: str = "probs", window: Mapping[str, Any] | None = None,
                           threads: int | None = None, options: Mapping[str, Any] | None = None,
                           **unused: Any) -> FunctionClassifier:
    """Load a ``.tflite`` file as a classifier; ``labels`` and ``sample_rate`` come from the spec.

    The interpreter runs on the CPU whatever the device; scores are moved to ``device``. With
    ``options: {frontend: micro}`` the model reads TFLite-Micro features (:mod:`.micro_features`).
    """
    source = Path(path)
    if not source.is_file():
        raise ClassifierError(f"{source}: TFLite model file not found")
    if not labels or not sample_rate:
        raise ClassifierError(f"{source}: a TFLite model needs 'labels' and 'sample_rate' in its spec")
    micro = micro_options(options, str(source))
    interpreter_class = tflite_interpreter_class()
    arguments: dict[str, Any] = {"model_path": str(source), "num_threads": int(threads) if threads else None}
    if micro:  # a fresh interpreter per clip (fresh streaming state): read the file once, not per clip
        arguments = {"model_content": source.read_bytes(), "num_threads": arguments["num_threads"]}
        if not micro["xnnpack"]:
            arguments["experimental_op_resolver_type"] = _builtin_kernels()

    def make_runner() -> _TFLiteRunner:
        try:
            return _TFLiteRunner(interpreter_class(**arguments))
        except Exception as exc:
            raise ClassifierError(f"{source}: cannot be loaded by the TFLite interpreter "
                                  f"({type(exc).__name__}: {exc})") from None

    if micro:
        if output_kind(outputs) != "probabilities":
            raise ClassifierError(f"{source}: a micro-frontend wake-word model gives probabilities; "
                                  f"leave model.outputs out")
        model: Any = MicroFeatureModel(source, make_runner, int(sample_rate), len(labels), micro["smoothing"])
        classifier = FunctionClassifier(model, labels, int(sample_rate), device=resolve_device(device),
                                        name=source.stem, outputs="probabilities")
        classifier.fingerprint = fingerprint_file(source, "tflite", list(labels), int(sample_rate), micro)
        return classifier
    runner = make_runner()
    model = ExportedModel(source, [_info(d) for d in runner.inputs], [_info(d) for d in runner.outputs], runner,
                          int(sample_rate), len(labels), outputs, parse_window(window, str(source)), reset=runner.reset)
    classifier = FunctionClassifier(model, labels, int(sample_rate), device=resolve_device(device), name=source.stem,
                                    outputs=outputs)
    classifier.fingerprint = fingerprint_file(source, "tflite", list(labels), int(sample_rate), outputs, model.window)
    return classifier
