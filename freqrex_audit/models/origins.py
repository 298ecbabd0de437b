"""Where a model's error is: the user's file and line, never this package's or a library's.

:func:`describe_exception` writes ``Type: message (file:line)`` with *line* the deepest frame of the user's
code; when the traceback has none (the error came from torch's Python code, or from this package checking what
the model returned), the model's ``origin`` is named instead: where the user's function or class is defined
(:func:`source_of`). Errors that already name the model and its code (:class:`NamedError`) add no line of ours.
"""

from __future__ import annotations

import os
import sysconfig
from typing import Any

__all__ = ["NamedError", "ClassifierError", "ClassifierTimeout", "AlreadyHung", "describe_exception", "user_frame", "shown_source",
           "source_of"]


class NamedError(RuntimeError):
    """An error whose message already names the model and where its code is (``ClassifierError``)."""


class ClassifierError(NamedError):
    """The classifier could not be loaded or returned something unusable; the message names the model."""


class ClassifierTimeout(ClassifierError):
    """One model call ran past the engine's ``timeout_s``; the engine refuses further queries to that model."""


class AlreadyHung(ClassifierTimeout):
    """A call refused, never made, because the model hung on an earlier call (or on another clip's rows in the
    same call): the clip asking was not analysed, the model's hang is another clip's error."""


def describe_exception(exc: BaseException, origin: str | None = None) -> str:
    """``Type: message (file:line)`` — what failed and where, without a whole traceback. *Where* is the user's
    code (:func:`user_frame`): the deepest frame outside this package, installed packages and the standard
    library; when the traceback has none (the error came from a library the model called, or from this
    package checking what the model returned), ``origin`` (where the model's code is defined) is named."""
    import traceback

    frames = traceback.extract_tb(exc.__traceback__) if exc.__traceback__ else []
    mine = user_frame(frames)
    if mine is not None:
        where = f" ({shown_source(mine.filename)}:{mine.lineno})"
    elif isinstance(exc, NamedError):  # already says which model and where its code is: not this package's line
        where = ""
    elif origin:
        where = f" (in a call from the model's code, {origin})" if frames else f" ({origin})"
    else:
        where = f" ({shown_source(frames[-1].filename)}:{frames[-1].lineno})" if frames else ""
    return f"{type(exc).__name__}: {exc}{where}"


_PACKAGE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))  # freqrex_audit/
_ZOO = os.path.join(_PACKAGE, "zoo")


def _library(filename: str) -> bool:
    """Code that is not the user's: this package (its zoo of demo models aside), installed packages, the
    standard library, frozen import machinery."""
    if filename.startswith("<"):
        return True
    path = os.path.abspath(filename)
    if path.startswith(_PACKAGE + os.sep) and not path.startswith(_ZOO + os.sep):
        return True
    parts = set(path.split(os.sep))
    if {"site-packages", "dist-packages"} & parts:
        return True
    return any(path.startswith(prefix + os.sep) for prefix in _STDLIB)


_STDLIB = tuple(dict.fromkeys(os.path.abspath(p) for p in (sysconfig.get_paths().get("stdlib"),
                                                             sysconfig.get_paths().get("platstdlib")) if p))


def user_frame(frames: list) -> Any:
    """The deepest traceback frame in the user's code (see :func:`_library`), or None."""
    return next((f for f in reversed(frames) if not _library(f.filename)), None)


def shown_source(filename: str) -> str:
    """A source file as a person finds it: relative to the working directory when below it, else as is."""
    try:
        relative = os.path.relpath(filename)
    except ValueError:
        return filename
    return filename if relative.startswith("..") else relative


def source_of(obj: Any) -> str | None:
    """``file:line`` where ``obj`` (a function, a class, a callable object's class, a module) is defined in
    the user's code; None when that is unknown or not the user's code."""
    import inspect

    target = obj
    if not (inspect.isfunction(target) or inspect.ismethod(target) or inspect.isclass(target)
            or inspect.ismodule(target)):
        target = type(obj)
    target = inspect.unwrap(getattr(target, "__func__", target)) if callable(target) else target
    try:
        filename = inspect.getsourcefile(target)
        if not filename or _library(filename):  # checked first: finding a line parses the whole file
            return None
        line = 1 if inspect.ismodule(target) else inspect.getsourcelines(target)[1]
    except (TypeError, OSError):
        return None
    return f"{shown_source(filename)}:{line}"
