"""Which files are specs: the ``freqrex_specs`` ini option, the one discovery rule pytest and the CLI
share, and finding a peer spec by name. Moved out of :mod:`freqrex_audit.specs.loader` (which re-exports it)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from ..runtime.paths import pytest_ini, shown_spec
from .safe_yaml import SpecError, read_spec_document

if TYPE_CHECKING:
    from .loader import Spec

__all__ = ["SPEC_SUFFIXES", "SPEC_DIRS", "spec_dirs_from_ini", "in_spec_dir", "find_specs", "find_peer"]

SPEC_SUFFIXES = (".yaml", ".yml")
SPEC_DIRS = ("model_specs",)
"""Default spec folders (the ``freqrex_specs`` ini option replaces them)."""


def spec_dirs_from_ini(start: str | Path = ".") -> tuple[list[str], Path]:
    """``freqrex_specs`` from the pytest ini file pytest would use from ``start``
    (:func:`~freqrex_audit.runtime.paths.pytest_ini`), with the folder it is relative to. Default:
    ``model_specs`` relative to that folder (``start`` when there is no ini file)."""
    folder, options = pytest_ini(start)
    value = (options or {}).get("freqrex_specs")
    dirs = value.split() if isinstance(value, str) else [str(v) for v in value] if value else list(SPEC_DIRS)
    return dirs, folder


def in_spec_dir(path: str | Path, dirs: list[str] | tuple[str, ...], root: str | Path) -> bool:
    """THE discovery rule: a spec is a ``*.yaml`` / ``*.yml`` file inside a spec folder. An entry of
    ``freqrex_specs`` that is a bare name (``model_specs``) is any folder of that name; one with a slash is
    a path relative to ``root`` (the ini file's folder). Files named explicitly are specs as well."""
    path = Path(path).resolve()
    if path.suffix not in SPEC_SUFFIXES:
        return False
    for entry in dirs:
        if "/" not in entry and entry in path.parent.parts:
            return True
        folder = (Path(root) / entry).resolve()
        if folder == path.parent or folder in path.parents:
            return True
    return False


def find_specs(paths: list[str | Path], dirs: list[str] | None = None, root: str | Path | None = None) -> list[Path]:
    """Spec files named directly, plus the specs (:func:`in_spec_dir`) under named folders — a named folder
    that is itself inside a spec folder gives all its YAML files (sorted), and so does a named folder that
    holds no spec folder at all (``audit my_specs/``). No paths: the spec folders."""
    if dirs is None:
        dirs, found_root = spec_dirs_from_ini()
        root = root if root is not None else found_root
    root = Path(root if root is not None else ".")
    if not paths:
        paths = [root / e for e in dirs if (root / e).is_dir()]
    found: list[Path] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            inside = sorted(p for p in item.rglob("*") if p.is_file() and in_spec_dir(p, dirs, root))
            # a folder named on purpose with no spec folder in it is itself a folder of specs
            found += inside or sorted(p for p in item.iterdir() if _looks_like_spec(p))
        else:
            found.append(item)
    return found


def _looks_like_spec(path: Path) -> bool:
    """A YAML file with a top-level ``model:`` key (read no further than its first 64 KiB)."""
    if not path.is_file() or path.suffix not in SPEC_SUFFIXES:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return False
    return re.search(r"^model\s*:", head, re.MULTILINE) is not None


def find_peer(spec: "Spec", name: str) -> Path:
    """The spec file named ``name`` (by its ``name`` key or file stem) in the same folder as ``spec``."""
    for candidate in sorted(spec.base_dir.iterdir()):
        if candidate.suffix not in SPEC_SUFFIXES or candidate.resolve() == spec.path:
            continue
        if candidate.stem == name:
            return candidate
        try:  # size-capped and bomb-checked like any spec: a 50 MB YAML beside it is not parsed
            raw, _ = read_spec_document(candidate)
        except Exception:  # noqa: BLE001 - an unreadable neighbour is simply not the peer
            continue
        if isinstance(raw, dict) and raw.get("name") == name:
            return candidate
    raise SpecError(shown_spec(spec.path), "peers", f"no spec named {name!r} in {spec.base_dir}")
