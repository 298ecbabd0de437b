"""The one import rule for a spec's ``model.target`` (``package.module:factory``), in every process.

A user's factory module lives in their project, not in an installed package. pytest, ``freqrex-audit``,
the ``isolation: subprocess`` child and executor workers must all find it the same way, so:

* the folders are pytest's rootdir (the folder of the ini file pytest would use, else the working
  directory) and the ini's ``pythonpath`` entries (relative to the rootdir), in that order;
* they are **appended** to ``sys.path`` (never ahead of installed packages: a project folder named like
  an installed package cannot shadow it); folders already on it stay where they are;
* child processes get the same folders through ``FREQREX_IMPORT_FOLDERS`` (:func:`child_env`) and append
  them on start (:func:`adopt_from_environment`);
* whether a target exists is checked without running any of the user's code (:func:`missing_target`:
  finders only, no ``__init__`` is executed), so a spec that asks for ``isolation: subprocess`` never runs
  its model's code in the controller.
"""

from __future__ import annotations

import importlib
import os
import sys
from pathlib import Path
from typing import Any, Iterable

from .paths import user_path

__all__ = ["ENV", "import_folders", "use_folders", "child_env", "adopt_from_environment", "missing_target",
           "module_file", "searched"]

ENV = "FREQREX_IMPORT_FOLDERS"
"""Environment variable (``os.pathsep``-separated) that hands the folders to child processes."""

_ADDED: list[str] = []  # the folders this process was given by the rule, in order (for messages)


def import_folders(start: str | Path = ".", rootdir: str | Path | None = None,
                   pythonpath: Iterable[str] | None = None) -> list[Path]:
    """pytest's rootdir and its ini's ``pythonpath`` entries (relative to the rootdir), as absolute folders.

    Without ``rootdir``, the ini pytest would use from ``start`` decides both (:func:`~freqrex_audit.runtime.paths.
    pytest_ini`); pytest itself passes ``config.rootpath`` and ``config.getini("pythonpath")``."""
    if rootdir is None:
        from .paths import pytest_ini

        found, ini = pytest_ini(start)
        rootdir = found
        raw: Any = (ini or {}).get("pythonpath", [])
        pythonpath = raw.split() if isinstance(raw, str) else [str(p) for p in raw or []]
    root = Path(rootdir).resolve()
    folders = [root]
    for entry in pythonpath or []:
        path = user_path(entry)
        folders.append((path if path.is_absolute() else root / path).resolve())
    return list(dict.fromkeys(folders))


def use_folders(folders: Iterable[str | Path]) -> list[str]:
    """Append ``folders`` to ``sys.path`` (those not already on it) and remember them; returns them as strings."""
    shown = [os.fspath(Path(f)) for f in folders]
    for folder in shown:
        if folder not in sys.path:
            sys.path.append(folder)
        if folder not in _ADDED:
            _ADDED.append(folder)
    importlib.invalidate_caches()
    return shown


def child_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """``env`` (default: this process's environment) plus the folders, for a child process."""
    out = dict(os.environ if env is None else env)
    if _ADDED:
        out[ENV] = os.pathsep.join(_ADDED)
    return out


def adopt_from_environment() -> list[str]:
    """In a child process: append the folders the parent handed over (``FREQREX_IMPORT_FOLDERS``)."""
    return use_folders(p for p in os.environ.get(ENV, "").split(os.pathsep) if p)


def searched() -> list[str]:
    """The folders the rule gave this process, for messages."""
    return list(_ADDED)


def _find(name: str) -> Any:
    """The module spec of ``name`` found by the import system's finders alone: no module (not even a parent
    package's ``__init__``) is executed. Already imported modules count as found."""
    if name in sys.modules:
        return getattr(sys.modules[name], "__spec__", None) or True
    parent, _, _ = name.rpartition(".")
    path = None
    if parent:
        found = _find(parent)
        if found is None:
            return None
        path = getattr(found, "submodule_search_locations", None) if found is not True else \
            getattr(sys.modules[parent], "__path__", None)
        if path is None:  # the parent is a plain module: it has no submodules
            return None
    for finder in sys.meta_path:
        find_spec = getattr(finder, "find_spec", None)
        if find_spec is None:
            continue
        try:
            spec = find_spec(name, path)
        except (ImportError, ValueError, TypeError):
            continue
        if spec is not None:
            return spec
    return None


def module_file(target: str) -> str | None:
    """The source file of a target's module (found, not imported), or None."""
    found = _find(str(target).partition(":")[0])
    if found is True:
        found = getattr(sys.modules.get(str(target).partition(":")[0]), "__spec__", None)
    origin = getattr(found, "origin", None)
    return origin if origin and os.path.isfile(origin) else None


def _near_modules(name: str) -> list[str]:
    """Modules and packages in the project's folders spelled like ``name`` (a typo's likely meaning)."""
    import difflib

    found: set[str] = set()
    for folder in _ADDED:
        try:
            entries = os.listdir(folder)
        except OSError:
            continue
        for entry in entries:
            stem = entry[:-3] if entry.endswith(".py") else entry
            if stem.isidentifier() and (entry.endswith(".py") or os.path.isdir(os.path.join(folder, entry))):
                found.add(stem)
    return difflib.get_close_matches(name, sorted(found), n=2, cutoff=0.8)


def missing_target(target: str) -> str | None:
    """Why ``package.module:factory`` cannot be imported (its module is not found), or None when it can be.
    The message names the target and the folders searched, and how to add one."""
    module, _, attribute = str(target).partition(":")
    if not module or not attribute:
        return f"{target!r} must look like 'package.module:factory'"
    if _find(module) is not None:
        return None
    project = ", ".join(_ADDED) or "none (no project folder was added)"
    near = _near_modules(module.partition(".")[0])
    hint = f" (did you mean {' or '.join(map(repr, near))}?)" if near else ""
    return (f"cannot import {module!r} for target {target!r}{hint}: no such module in the project's folders ({project}) "
            f"nor among the installed packages. The project's folders are pytest's rootdir and the ini's "
            f"'pythonpath' entries; put the module there, add its folder to 'pythonpath' in the ini file, or "
            f"install it (pip install -e .)")

