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
from typing import Any

__all__ = ["user_path", "ROOTS_ENV", "PROJECT_MARKERS", "allowed_roots", "outside_roots", "project_of",
           "folder_roots", "unwritable", "shown_name", "ZOO_ROOT", "resolve_zoo_path", "pytest_ini",
           "project_root", "shown_spec"]

ROOTS_ENV = "FREQREX_ALLOWED_ROOTS"
PROJECT_MARKERS = (".git", "pyproject.toml", "pytest.ini", "setup.cfg", "tox.ini")
"""Files or folders that mark a project's root (a repository, or where pytest would find its config)."""


ZOO_ROOT = Path(__file__).resolve().parent.parent / "zoo"
"""The bundled demo zoo (``freqrex_audit/zoo``): its recordings and models are data every layer may name."""


def user_path(value: object) -> Path:
    """A path a user wrote, ``~`` and ``~user`` expanded as the shell does: an unknown ``~user`` stays as written
    (a path that then does not exist, reported as such) where ``Path.expanduser`` raises a bare RuntimeError."""
    return Path(os.path.expanduser(str(value)))


def resolve_zoo_path(uri: str) -> Path:
    """``zoo://task/name`` → ``ZOO_ROOT/task/models/name`` if it exists, else ``ZOO_ROOT/task/name``.

    ``zoo://task`` names the task folder. ``.`` and ``..`` components are refused, so a zoo name
    never leaves the zoo.
    """
    if not isinstance(uri, str) or not uri.startswith("zoo://"):
        raise ValueError(f"{uri!r} is not a zoo:// name")
    parts = [p for p in uri[len("zoo://"):].split("/") if p]
    if not parts or any(p in ("..", ".") or "\\" in p for p in parts):
        raise FileNotFoundError(f"{uri}: not a valid zoo name (expected zoo://task/name)")
    task = ZOO_ROOT / parts[0]
    if len(parts) == 1:
        candidates = [task]
    else:
        candidates = [task.joinpath("models", *parts[1:]), task.joinpath(*parts[1:])]
    for path in candidates:
        if path.exists():
            return path
    if not task.is_dir():
        available = sorted(p.name for p in ZOO_ROOT.iterdir()
                           if p.is_dir() and not p.name.startswith(("_", ".")))
        raise FileNotFoundError(f"{uri}: no such zoo task {parts[0]!r} (tasks: {', '.join(available) or 'none'})")
    entries = sorted({p.name for p in (task / "models").iterdir() if p.is_dir()} if (task / "models").is_dir() else set())
    entries += sorted(p.name for p in task.iterdir() if p.is_dir() and p.name != "models")
    raise FileNotFoundError(f"{uri}: no such entry in zoo task {parts[0]!r} (models and data: {', '.join(entries)})")


def project_of(folder: str | Path) -> Path:
    """The nearest folder at or above ``folder`` (absolute, links *not* followed) holding a project marker."""
    folder = Path(os.path.abspath(folder))
    project = next((d for d in (folder, *folder.parents) if any((d / m).exists() for m in PROJECT_MARKERS)), folder)
    return project.resolve()  # the project folder itself may be reached through a link (e.g. /tmp on macOS)


def folder_roots(folder: str | Path) -> tuple[Path, ...]:
    """Allowed roots for something living in ``folder``: its project, the bundled zoo, ``$FREQREX_ALLOWED_ROOTS``."""
    extra = [user_path(p).resolve() for p in os.environ.get(ROOTS_ENV, "").split(os.pathsep) if p.strip()]
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


def pytest_ini(start: str | Path = ".") -> tuple[Path, dict[str, Any] | None]:
    """The folder and the options of the ini file pytest would use from ``start`` (pytest.ini, pyproject.toml
    ``[tool.pytest.ini_options]``, tox.ini, setup.cfg ``[tool:pytest]``; nearest folder first): pytest's
    rootdir. ``(start, None)`` when there is none. Values are strings (ini files) or TOML values."""
    import configparser

    try:
        import tomllib
    except ImportError:  # Python 3.10: pyproject.toml is not read
        tomllib = None

    here = Path(start).resolve()
    for folder in (here, *here.parents):
        for name, section in (("pytest.ini", "pytest"), ("pyproject.toml", None), ("tox.ini", "pytest"),
                              ("setup.cfg", "tool:pytest")):
            path = folder / name
            if not path.is_file() or (section is None and tomllib is None):
                continue
            try:
                if section is None:
                    ini = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
                    ini = ini.get("ini_options") if isinstance(ini, dict) else None
                    if not isinstance(ini, dict):
                        continue
                    return folder, ini
                parser = configparser.ConfigParser(interpolation=None)
                parser.read(path, encoding="utf-8")
                if not parser.has_section(section):
                    if name != "pytest.ini":  # an empty pytest.ini still marks the rootdir
                        continue
                    return folder, {}
                return folder, dict(parser.items(section))
            except (OSError, ValueError, configparser.Error):  # TOMLDecodeError is a ValueError
                continue
    return here, None


def project_root(start: str | Path = ".") -> Path:
    """The project a run belongs to: the folder of pytest's ini file found from ``start`` (pytest's rootdir),
    else ``start`` itself."""
    return pytest_ini(start)[0]


def shown_spec(path: str | Path) -> str:
    """THE name of a spec file in every view (results.json's ``spec_file``, pytest's node ids, the CLI's and the
    report's messages): relative to :func:`project_root` of the working directory when below it (as pytest
    names node ids from its rootdir), else the path as given; never undecodable."""
    path = Path(path)
    try:
        return shown_name(path.resolve().relative_to(project_root()).as_posix())
    except (ValueError, OSError):
        return shown_name(path)


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
