"""Classifiers from Python code: ``"package.module:factory"`` returns a Classifier (or a callable)."""

from __future__ import annotations

import importlib
import inspect
from typing import Any, Sequence

from ..models.boundary import output_kind
from ..models.classifier import (Classifier, ClassifierError, FunctionClassifier, describe_exception, resolve_device,
                                 source_of)
from ..models.fingerprint import combine, fingerprint_and_reason
from ..runtime.imports import missing_target


def import_target(target: str) -> Any:
    """Import ``package.module:attribute`` (the attribute may be dotted)."""
    module_name, _, attribute = target.partition(":")
    if not module_name or not attribute:
        raise ClassifierError(f"callable target {target!r} must look like 'package.module:factory'")
    missing = missing_target(target)  # the module itself is not there: say where it was looked for
    if missing:
        raise ClassifierError(f"model.target: {missing}")
    try:
        obj: Any = importlib.import_module(module_name)
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - the module's own code failed (or exited) on import
        raise ClassifierError(f"callable target {target!r}: importing {module_name!r} raised "
                              f"{describe_exception(exc)}") from None
    for part in attribute.split("."):
        try:
            obj = getattr(obj, part)
        except Exception:  # noqa: BLE001 - AttributeError, or a property / __getattr__ that raises
            raise ClassifierError(f"callable target {target!r}: {module_name!r} has no attribute {part!r}") from None
    return obj


def load_callable_classifier(target: str, device: str = "auto", labels: Sequence[str] | None = None,
                             sample_rate: int | None = None, options: dict[str, Any] | None = None,
                             outputs: str = "probabilities", **unused: Any) -> Classifier:
    """Call the factory with ``device`` and ``options``; a plain function becomes a Classifier via labels/rate.

    ``outputs`` (what the model returns) is honoured for both: a returned Classifier's scores are converted
    too. ``options`` go into the fingerprint, so other options never reuse cached results.
    """
    factory = import_target(target)
    if not callable(factory):
        raise ClassifierError(f"callable target {target!r} is a {type(factory).__name__}, not a function or class "
                              f"that builds the model")
    kind = output_kind(outputs)
    options = dict(options or {})
    try:
        made = factory(device=str(resolve_device(device)), **options) if _accepts_device(factory) else \
            factory(**options)
    except TypeError as exc:
        raise ClassifierError(f"callable target {target!r} could not be called with model.options "
                              f"{sorted(options)}: {exc}") from None
    except ClassifierError:
        raise
    except (Exception, SystemExit) as exc:  # noqa: BLE001 - a factory that fails (or exits) fails its spec only
        raise ClassifierError(f"callable target {target!r}: the factory raised {describe_exception(exc)}") from None
    if isinstance(made, Classifier):
        made = made.to(resolve_device(device))
        if not made.fingerprint and not made.fingerprint_problem:  # none of its own: hash what it holds
            made.fingerprint, made.fingerprint_problem = fingerprint_and_reason(made, made.labels, made.sample_rate)
        made.origin = getattr(made, "origin", None) or source_of(made) or source_of(factory)
        if kind != "probabilities":
            wrapped = FunctionClassifier(made.predict, made.labels, made.sample_rate, device=made.device,
                                         name=made.name, outputs=kind)
            wrapped.fingerprint = combine(made.fingerprint, "outputs", kind)
            wrapped.input_window = made.input_window  # the model still reads only its window
            made = wrapped
        made.fingerprint = combine(made.fingerprint, "target", target, "options", options)
        return made
    if callable(made):
        own = getattr(made, "sample_rate", None)  # a model object that knows its rate must agree with the spec
        if isinstance(own, int) and not isinstance(own, bool) and sample_rate is not None and own != int(sample_rate):
            raise ClassifierError(f"model.sample_rate is {sample_rate} Hz but the model {target!r} returned "
                                  f"({source_of(made) or source_of(factory) or target}) says sample_rate = {own} Hz; "
                                  f"the model hears one rate: fix the spec (clips are resampled to it)")
        if labels is None or sample_rate is None:
            raise ClassifierError(f"callable target {target!r} returned a plain function: "
                                  "the model needs 'labels' and 'sample_rate'")
        try:
            clf = Classifier.from_callable(made, labels, sample_rate, device=resolve_device(device), name=target,
                                           outputs=kind)
        except ValueError as exc:
            raise ClassifierError(str(exc)) from None
        clf.fingerprint = combine(clf.fingerprint, "options", options)
        clf.origin = clf.origin or source_of(factory)
        return clf
    raise ClassifierError(f"callable target {target!r} returned {type(made).__name__}, not a Classifier")


def _accepts_device(factory: Any) -> bool:
    try:
        parameters = inspect.signature(factory).parameters
    except (TypeError, ValueError):
        return False
    return "device" in parameters or any(p.kind is p.VAR_KEYWORD for p in parameters.values())
