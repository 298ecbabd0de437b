"""Where a spec may read from: its project, the bundled zoo, and folders the user allows explicitly.

A release gate reads model specs that arrive in pull requests. A spec must not be able to point the audit
at ``/etc``, ``~/.ssh`` or another checkout through ``..``, an absolute path or a symlink, so every path a
spec names (and every clip a manifest lists) must resolve inside one of :func:`allowed_roots`.
"""

from __future__ import annotations

import os
from pathlib import Path

__all__ = ["ROOTS_ENV", "PROJECT_MARKERS", "allowed_roots", "outside_roots"]

ROOTS_ENV = "FREQREX_ALLOWED_ROOTS"
PROJECT_MARKERS = (".git", "pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")
"""Files or folders that mark a project's root (a repository, or where pytest would find its config)."""


def allowed_roots(spec_path: str | Path) -> tuple[Path, ...]:
    """Folders a spec's paths may resolve into: its project, the bundled zoo and ``$FREQREX_ALLOWED_ROOTS``.

    The project is the nearest folder at or above the spec's that holds one of ``PROJECT_MARKERS``
    (``.git``, ``pyproject.toml``, a pytest config file), else the spec's own folder.
    ``FREQREX_ALLOWED_ROOTS`` adds folders (``os.pathsep``-separated), e.g. a shared dataset mount.
    """
    folder = Path(spec_path).resolve().parent
    project = next((d for d in (folder, *folder.parents) if any((d / m).exists() for m in PROJECT_MARKERS)), folder)
    from .zoo import ZOO_ROOT

    extra = [Path(p).expanduser().resolve() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys([project, ZOO_ROOT.resolve(), *extra]))


def outside_roots(path: Path, roots: tuple[Path, ...]) -> str | None:
    """Why ``path`` (after following symlinks) may not be used, or None when it lies inside a root."""
    if not roots:
        return None
    real = path.resolve()
    if any(real.is_relative_to(root) for root in roots):
        return None
    shown = ", ".join(str(r) for r in roots)
    return (f"{path} resolves to {real}, outside the allowed roots ({shown}); keep models and data inside the "
            f"spec's project or add the folder to ${ROOTS_ENV}")

