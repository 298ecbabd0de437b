"""Load any model a spec or a user names as a checked classifier: :func:`load_classifier`.

A model is described by a dict (the ``model`` section of a spec) or a string: a ``zoo://task/model``
name, a Hugging Face model directory, a hub id in the local cache (``hf://org/name``), a TorchScript,
ONNX or TFLite file, or ``package.module:factory``. A path may also be ``package://pkg.sub/file``: a
file shipped inside an installed Python package (how a zoo descriptor names silero's ONNX file).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Mapping

import yaml

from ..models.boundary import check_labels, check_sample_rate, output_kind
from ..models.self_check import self_check as run_self_check
from ..models.classifier import Classifier, ClassifierError
from ..runtime.paths import folder_roots, outside_roots, shown_name, user_path
from .registry import MODEL_TYPES, load_in_process

__all__ = ["load_classifier", "MODEL_DESCRIPTOR", "package_file"]

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
        from ..runtime.paths import resolve_zoo_path

        return {"path": str(resolve_zoo_path(text))}
    if ":" in text and not Path(text).exists() and not text.startswith("/") and "\\" not in text:
        return {"type": "callable", "target": text}
    return {"path": text}


def _infer_type(model: dict[str, Any], base_dir: Path, roots: tuple[Path, ...] | None) -> dict[str, Any]:
    """Fill in ``type`` and make ``path`` absolute, reading a directory's descriptor if it has one.

    A descriptor (``freqrex_model.yaml``) is data that ships with a model: it may set labels, rates and
    relative paths, but never ``trust_remote_code`` (only the spec can) and never a path outside the roots.
    """
    if str(model.get("path", "")).startswith("package://"):
        model = {**model, "path": str(package_file(str(model["path"])))}
    if model.get("path"):
        path = user_path(model["path"])
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
        described = _read_descriptor(descriptor)
        overrides = {k: v for k, v in model.items() if k != "path"}
        if "sample_rate" in described and "sample_rate" in overrides and \
                str(described["sample_rate"]) != str(overrides["sample_rate"]):
            raise ClassifierError(f"model.sample_rate is {overrides['sample_rate']} Hz but the model's descriptor "
                                  f"{shown_name(descriptor)} says {described['sample_rate']} Hz; the model hears one "
                                  f"rate: remove model.sample_rate from the spec (clips are resampled to the model's)")
        merged = _infer_type({**described, **overrides}, path, roots)
        if merged.get("path") and not str(described.get("path", "")).startswith("package://"):
            problem = outside_roots(Path(merged["path"]), roots if roots is not None else folder_roots(path))
            if problem:
                raise ClassifierError(f"{shown_name(descriptor)}: path: {problem}")
        return merged
    if (path / "config.json").is_file():
        return {**model, "type": "transformers"}
    if path.suffix in (".pt", ".pth", ".jit", ".ts", ".torchscript"):
        return {**model, "type": "torchscript"}
    if path.suffix in (".onnx", ".tflite"):
        return {**model, "type": path.suffix[1:]}
    if not path.exists():
        raise ClassifierError(f"{shown_name(path)}: model path not found")
    raise ClassifierError(f"{shown_name(path)}: cannot tell the model type (no config.json or {MODEL_DESCRIPTOR}); "
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


DESCRIPTOR_KEYS = ("type", "path", "target", "labels", "sample_rate", "outputs", "batch_size", "options", "window")
"""What a model folder's descriptor may set; trust_remote_code, device and isolation belong to the spec."""


def _read_descriptor(descriptor: Path) -> dict[str, Any]:
    """The descriptor's settings; errors name the file and key, never echo its content."""
    from ..specs.safe_yaml import yaml_load

    try:
        described = yaml_load(descriptor.read_text(encoding="utf-8")) or {}
    except (yaml.YAMLError, UnicodeDecodeError, ValueError) as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1})" if mark else ""
        raise ClassifierError(f"{shown_name(descriptor)}: is not a valid YAML model descriptor{where}: "
                              f"{getattr(exc, 'problem', None) or type(exc).__name__}") from None
    if not isinstance(described, dict):
        raise ClassifierError(f"{shown_name(descriptor)}: expected a mapping of model settings, "
                              f"got {type(described).__name__}")
    if "trust_remote_code" in described:
        raise ClassifierError(f"{shown_name(descriptor)}: trust_remote_code: a model descriptor cannot enable "
                              f"remote code; only the spec can (model.trust_remote_code: true)")
    unknown = sorted(str(k) for k in described if k not in DESCRIPTOR_KEYS)
    if unknown:
        raise ClassifierError(f"{shown_name(descriptor)}: unknown key(s) {', '.join(unknown)}; "
                              f"allowed: {', '.join(DESCRIPTOR_KEYS)}")
    return described


def load_classifier(model: str | Path | Mapping[str, Any], device: str = "auto",
                    base_dir: str | Path | None = None, roots: tuple[Path, ...] | None = None,
                    self_check: bool = True) -> Classifier:
    """Load a classifier from a model dict or string; relative paths resolve against ``base_dir``.

    Paths a model folder's descriptor names must stay inside ``roots`` (default: the roots of the
    folder's own project). ``outputs`` is honoured by every adapter. ``isolation: subprocess`` runs the
    model in a child process that is killed when a call passes ``timeout_s``. ``self_check`` queries
    three probe clips (see :func:`freqrex_audit.models.self_check.self_check`); its findings go to
    ``classifier.warnings`` and ``classifier.self_check``. A ``pipeline("audio-classification")`` object
    is wrapped as it is.
    """
    from .transformers import classifier_from_pipeline, is_audio_pipeline

    if is_audio_pipeline(model):
        return _checked(classifier_from_pipeline(model, device=device), None, self_check)
    base = Path(base_dir) if base_dir is not None else Path.cwd()
    if roots is None and base_dir is not None:
        roots = folder_roots(base)
    spec = _infer_type(_as_model_dict(model, base), base, roots)
    if spec.get("device") in (None, "auto"):
        spec["device"] = device
    timeout_s = spec.pop("timeout_s", None)
    declared_fingerprint = spec.pop("fingerprint", None)
    spec.pop("precision", None)  # the QueryEngine's business (audit.py), not the loader's
    window_seconds = spec.pop("window_seconds", None)
    isolation = spec.pop("isolation", "thread")
    if "outputs" in spec:
        try:
            spec["outputs"] = output_kind(spec["outputs"])
        except ValueError as exc:
            raise ClassifierError(f"model.outputs: {exc}") from None
    if isolation == "subprocess":
        from .sandbox import SubprocessClassifier

        clf: Classifier = SubprocessClassifier(spec, timeout_s=timeout_s)
    elif isolation == "thread":
        clf = load_in_process(spec)
    else:
        raise ClassifierError(f"model.isolation must be 'thread' or 'subprocess', got {isolation!r}")
    if window_seconds:
        clf.input_window = max(1, round(float(window_seconds) * clf.sample_rate))
    _same_rate(spec.get("sample_rate"), clf)
    if declared_fingerprint:
        clf.fingerprint = _declared(str(declared_fingerprint), spec, clf)
        clf.fingerprint_problem = None
    return _checked(clf, timeout_s, self_check)


def _same_rate(declared: object, clf: Classifier) -> None:
    """``model.sample_rate`` must be the rate the model itself says it hears (a Classifier a factory built, a
    transformers extractor…): clips are resampled to the model's rate, so a spec rate that differs is a mistake
    that would otherwise be ignored. ClassifierError naming both."""
    if declared is None or getattr(clf, "sample_rate", None) is None:
        return
    if int(str(declared)) != int(clf.sample_rate):
        where = f" ({clf.origin})" if getattr(clf, "origin", None) else ""
        raise ClassifierError(f"model.sample_rate is {declared} Hz but the model {clf.name!r}{where} says "
                              f"{clf.sample_rate} Hz; the model hears one rate: remove model.sample_rate from the "
                              f"spec, or fix whichever is wrong (clips are resampled to the model's rate)")


def _declared(text: str, spec: dict[str, Any], clf: Classifier) -> str:
    """The fingerprint a spec declares (``model.fingerprint``), bound to everything else that names the model: its
    type, target and the bytes of the target's module, path, options, labels, rate, outputs and window."""
    from ..models.fingerprint import declared, file_digest
    from ..runtime.imports import module_file

    source = module_file(str(spec["target"])) if spec.get("target") else None
    return declared(text, spec.get("type"), spec.get("target"), file_digest(source) if source else None,
                    spec.get("path"), spec.get("options"), list(clf.labels), int(clf.sample_rate),
                    spec.get("outputs"), spec.get("window"))


def _checked(clf: Classifier, timeout_s: float | None, self_check: bool) -> Classifier:
    """Give ``clf`` its own warnings list and, with ``self_check``, the load-time probe's findings."""
    name = str(getattr(clf, "name", None) or type(clf).__name__)
    try:  # whatever built it (a factory's own Classifier subclass too): ≥ 2 unique labels, a sane rate
        check_labels(getattr(clf, "labels", None) or [], name)
        check_sample_rate(getattr(clf, "sample_rate", None), name)
    except ValueError as exc:
        raise ClassifierError(str(exc)) from None
    if not isinstance(getattr(clf, "warnings", None), list) or clf.warnings is Classifier.warnings:
        clf.warnings = []
    if self_check:
        report = run_self_check(clf, timeout_s)
        clf.self_check = report  # type: ignore[attr-defined]
        clf.warnings.extend(report["warnings"])
    return clf
