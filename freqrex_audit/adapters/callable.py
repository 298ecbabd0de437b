"""Classifiers from Python code: ``"package.module:factory"`` returns a Classifier (or a callable)."""

from __future__ import annotations

import importlib
from typing import Any, Sequence

from ..classifier import Classifier, ClassifierError, resolve_device


def import_target(target: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ClassifierError(f"callable target {target!r} must look like 'package.module:factory'")
    try:
        obj: Any = importlib.import_module(module_name)
    except ImportError as exc:
        raise ClassifierError(f"callable target {target!r}: cannot import {module_name!r} ({exc})") from None
    for part in attribute.split("."):
        if not hasattr(obj, part):
            raise ClassifierError(f"callable target {target!r}: {module_name!r} has no attribute {part!r}")
        obj = getattr(obj, part)
    return obj


def load_callable_classifier(target: str, device: str = "auto", labels: Sequence[str] | None = None,
                             sample_rate: int | None = None, options: dict[str, Any] | None = None,
                             **unused: Any) -> Classifier:
    """Call the factory with ``device`` and ``options``; a plain function becomes a Classifier via labels/rate."""
    factory = import_target(target)
    options = dict(options or {})
    made = factory(device=str(resolve_device(device)), **options) if _accepts_device(factory) else factory(**options)
    if isinstance(made, Classifier):
        return made.to(resolve_device(device))
    if callable(made):
        if labels is None or sample_rate is None:
            raise ClassifierError(f"callable target {target!r} returned a plain function: "
                                  "the model needs 'labels' and 'sample_rate'")
        return Classifier.from_callable(made, labels, sample_rate, device=resolve_device(device), name=target)
    raise ClassifierError(f"callable target {target!r} returned {type(made).__name__}, not a Classifier")


def _accepts_device(factory: Any) -> bool:
    import inspect

    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "device" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
