"""Classifier adapters, one module per model family, behind :func:`load_classifier`.

A model is described by a dict (the ``model`` section of a spec) or a string: a ``zoo://task/model``
name, a Hugging Face model directory, a hub id in the local cache (``hf://org/name``), a TorchScript,
ONNX or TFLite file, or ``package.module:factory``. A path may also be ``package://pkg.sub/file``: a
file shipped inside an installed Python package (how a zoo descriptor names silero's ONNX file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from ..classifier import Classifier, ClassifierError

__all__ = ["load_classifier", "MODEL_TYPES", "MODEL_DESCRIPTOR"]

MODEL_TYPES = ("transformers", "torchscript", "onnx", "tflite", "callable")
MODEL_DESCRIPTOR = "freqrex_model.yaml"
"""A model directory may carry this file: a model dict (paths relative to the directory)."""


def _as_model_dict(model: str | Path | Mapping[str, Any], base_dir: Path | None) -> dict[str, Any]:
    """Turn the string forms into a model dict with an explicit ``type``."""
    if isinstance(model, Mapping):
        return dict(model)
    text = str(model)
    if text.startswith("hf://"):
        return {"type": "transformers", "id": text[len("hf://"):]}
    if text.startswith("zoo://"):
        from ..zoo import resolve_zoo_path

        return {"path": str(resolve_zoo_path(text))}
    if ":" in text and not Path(text).exists() and not text.startswith("/") and "\\" not in text:
        return {"type": "callable", "target": text}
    return {"path": text}


def _infer_type(model: dict[str, Any], base_dir: Path) -> dict[str, Any]:
    """Fill in ``type`` and make ``path`` absolute, reading a directory's descriptor if it has one."""
    if str(model.get("path", "")).startswith("package://"):
        model = {**model, "path": str(package_file(str(model["path"])))}
    if model.get("path"):
        path = Path(str(model["path"])).expanduser()
        model = {**model, "path": str(path if path.is_absolute() else base_dir / path)}
    if "type" in model:
        return model
    if "target" in model:
        return {**model, "type": "callable"}
    if "id" in model:
        return {**model, "type": "transformers"}
    if not model.get("path"):
        raise ClassifierError("model: give a 'type' with a 'path' (transformers, torchscript, onnx, tflite), "
                              "an 'id' (a cached hub model) or a 'target' (callable)")
    path = Path(model["path"])
    descriptor = path / MODEL_DESCRIPTOR
    if descriptor.is_file():
        described = yaml.safe_load(descriptor.read_text()) or {}
        if not isinstance(described, dict):
            raise ClassifierError(f"{descriptor}: expected a mapping of model settings")
        overrides = {k: v for k, v in model.items() if k != "path"}
        return _infer_type({**described, **overrides}, path)
    if (path / "config.json").is_file():
        return {**model, "type": "transformers"}
    if path.suffix in (".pt", ".pth", ".jit", ".ts", ".torchscript"):
        return {**model, "type": "torchscript"}
    if path.suffix in (".onnx", ".tflite"):
        return {**model, "type": path.suffix[1:]}
    if not path.exists():
        raise ClassifierError(f"{path}: model path not found")
    raise ClassifierError(f"{path}: cannot tell the model type (no config.json or {MODEL_DESCRIPTOR}); "
                          f"set 'type' to one of {', '.join(MODEL_TYPES)}")


def package_file(uri: str) -> Path:
    """``package://pkg.sub/name`` → that file inside the installed package (no download, no code run)."""
    from importlib import resources

    package, _, name = uri[len("package://"):].partition("/")
    try:
        path = Path(str(resources.files(package).joinpath(name)))
    except ModuleNotFoundError:
        raise ClassifierError(f"{uri}: the package {package!r} is not installed") from None
    if not name or ".." in Path(name).parts or not path.is_file():
        raise ClassifierError(f"{uri}: no file {name!r} in the installed package {package!r}")
    return path


def load_classifier(model: str | Path | Mapping[str, Any], device: str = "auto",
                    base_dir: str | Path | None = None) -> Classifier:
    """Load a classifier from a model dict or string, or wrap a ``pipeline("audio-classification")`` object.

    Relative paths resolve against ``base_dir``.
    """
    from .transformers import classifier_from_pipeline, is_audio_pipeline

    if is_audio_pipeline(model):
        return classifier_from_pipeline(model, device=device)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    spec = _infer_type(_as_model_dict(model, base), base)
    if spec.get("device") in (None, "auto"):
        spec["device"] = device
    kind = spec.pop("type")
    if kind == "transformers":
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
    return loader(**spec)
