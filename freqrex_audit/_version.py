"""The package version, apart from ``__init__`` so that importing it costs nothing, and the versions of
installed distributions a run records beside it."""

import importlib.metadata

__version__ = "0.1.0"


def package_versions(*distributions: str) -> dict[str, str | None]:
    """Each installed distribution's version (None when absent), read from its metadata, never by importing
    it (importing transformers only to read its version took ~1 s a run)."""
    versions: dict[str, str | None] = {}
    for name in distributions:
        try:
            versions[name] = importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            versions[name] = None
    return versions
