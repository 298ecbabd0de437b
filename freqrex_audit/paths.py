"""One path policy for everything that names a path: specs, datasets, manifest rows, model descriptors.

A release gate reads model specs that arrive in pull requests. A spec must not be able to point the audit
at ``/etc``, ``~/.ssh`` or another checkout through ``..``, an absolute path or a symlink, so every path a
spec names (every clip a manifest lists, every path a model folder's ``freqrex_model.yaml`` names) must
resolve inside one of :func:`allowed_roots`. The roots come from the spec *as named* — a spec reached
through a symlink belongs to the project holding the link, never to the link's target.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

__all__ = ["ROOTS_ENV", "PROJECT_MARKERS", "allowed_roots", "outside_roots", "project_of", "folder_roots",
           "unwritable", "shown_name"]

ROOTS_ENV = "FREQREX_ALLOWED_ROOTS"
PROJECT_MARKERS = (".git", "pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")
"""Files or folders that mark a project's root (a repository, or where pytest would find its config)."""


def project_of(folder: str | Path) -> Path:
    """The nearest folder at or above ``folder`` (absolute, links *not* followed) holding a project marker."""
    folder = Path(os.path.abspath(folder))
    project = next((d for d in (folder, *folder.parents) if any((d / m).exists() for m in PROJECT_MARKERS)), folder)
    return project.resolve()  # the project folder itself may be reached through a link (e.g. /tmp on macOS)


def folder_roots(folder: str | Path) -> tuple[Path, ...]:
    """Allowed roots for something living in ``folder``: its project, the bundled zoo, ``$FREQREX_ALLOWED_ROOTS``."""
    from .zoo import ZOO_ROOT

    extra = [Path(p).expanduser().resolve() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
    return tuple(dict.fromkeys([project_of(folder), ZOO_ROOT.resolve(), *extra]))


def allowed_roots(spec_path: str | Path) -> tuple[Path, ...]:
    """Folders a spec's paths may resolve into: its project, the bundled zoo and ``$FREQREX_ALLOWED_ROOTS``.

    The project is the nearest folder at or above the spec's *as named* (a symlinked spec is not followed
    to its target) that holds one of ``PROJECT_MARKERS``, else the spec's own folder.
    ``FREQREX_ALLOWED_ROOTS`` adds folders (``os.pathsep``-separated), e.g. a shared dataset mount.
    """
    return folder_roots(Path(os.path.abspath(spec_path)).parent)


def outside_roots(path: Path, roots: tuple[Path, ...]) -> str | None:
    """Why ``path`` (after following symlinks) may not be used, or None when it lies inside a root."""
    if not roots:
        return None
    if "\0" in os.fsdecode(path):  # a NUL byte (from a manifest row): no file system accepts it
        return f"{shown_name(path)!r} contains a NUL byte: not a file name"
    try:
        real = Path(path).resolve()
    except (OSError, RuntimeError):  # a symlink loop
        return f"{shown_name(path)} is a symlink loop"
    if any(real.is_relative_to(root) for root in roots):
        return None
    shown = ", ".join(str(r) for r in roots)
    return (f"{shown_name(path)} resolves to {shown_name(real)}, outside the allowed roots ({shown}); keep models "
            f"and data inside the spec's project or add the folder to ${ROOTS_ENV}")


def shown_name(path: str | Path) -> str:
    """A path as text that can always be printed: undecodable bytes of a non-UTF-8 name appear as ``\\xNN``."""
    text = os.fsdecode(path) if not isinstance(path, str) else path
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace") \
        if any("\udc80" <= c <= "\udcff" for c in text) else text


def unwritable(folder: str | Path, what: str) -> str | None:
    """Why the audit cannot write into ``folder`` (creating it if needed), or None when it can.

    Used for the report and cache folders, so a read-only one gives one clear error naming the folder
    (never a traceback, never blamed on the model).
    """
    folder = Path(folder)
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".freqrex-write-test-"):
            pass
    except OSError as exc:
        return f"the {what} folder {shown_name(folder)} is not writable ({exc.strerror or type(exc).__name__})"
    return None
