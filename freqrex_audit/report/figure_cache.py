"""Drawn report figures kept in the result cache, so a rerun over cached results does not draw them again.

A report figure is a pure function of its arguments and of the code that draws it; its key hashes both (the
arguments' arrays byte for byte, the drawing modules' sources, matplotlib's, Pillow's and numpy's versions). On a
warm cache a rerun's report costs its HTML, not its plots: drawing was most of such a rerun (matplotlib lays out
every tick of every panel; a sample card takes ~0.2 s). Entries live in ``<cache>/figures/`` through the result
cache's own :class:`~freqrex_audit.audit.cache.Cache` (atomic writes, checksums: a damaged entry is drawn again).
"""

from __future__ import annotations

import functools
import hashlib
import re
from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from contextvars import ContextVar
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from ..audit.cache import Cache

__all__ = ["cached_figure", "figures_cached_in"]

DRAWING_SOURCES = ("figures.py", "palette.py", "explainers.py", "clip_figures.py")
"""The modules (beside this one) whose code decides how a cached figure looks."""
PNG_URI = re.compile(r"data:image/png;base64,(?:[A-Za-z0-9+/]{4})+(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?")
FIGURE_SUFFIX = ".fig"
"""A figure entry's file ending (results are ``.frx``): ``<cache>/figures/ab/abcdef….fig``."""

_ACTIVE: ContextVar[Cache | None] = ContextVar("freqrex_figure_cache", default=None)
Draw = TypeVar("Draw", bound=Callable[..., Any])


class Unhashable(TypeError):
    """An argument the key cannot describe: the figure is drawn, not cached."""


@contextmanager
def figures_cached_in(cache_dir: str | Path | None) -> Iterator[None]:
    """Within the block, :func:`cached_figure` functions read and write ``<cache_dir>/figures`` (None: draw all)."""
    token = _ACTIVE.set(Cache(Path(cache_dir) / "figures", suffix=FIGURE_SUFFIX) if cache_dir is not None else None)
    try:
        yield
    finally:
        _ACTIVE.reset(token)


def cached_figure(draw: Draw) -> Draw:
    """``draw`` (arguments → a PNG data URI), answered from the active figure cache when it holds the same figure."""

    @functools.wraps(draw)
    def cached(*args: Any, **kwargs: Any) -> Any:
        cache = _ACTIVE.get()
        if cache is None or not cache.enabled:
            return draw(*args, **kwargs)
        try:
            key = _key(draw, args, kwargs)
        except Unhashable:
            return draw(*args, **kwargs)
        hit = cache.get(key)
        uri = hit[0].get("uri") if hit is not None and isinstance(hit[0], dict) else None
        if _is_png_uri(uri):  # a kept PNG and nothing else goes into the page
            return uri
        uri = draw(*args, **kwargs)
        if _is_png_uri(uri):
            cache.put(key, {"uri": uri})
        return uri

    return cached  # type: ignore[return-value]


def _is_png_uri(value: Any) -> bool:
    return isinstance(value, str) and PNG_URI.fullmatch(value) is not None


@functools.lru_cache(maxsize=1)
def drawing_version() -> str:
    """The drawing code's sources and the libraries that rasterise: a change to either draws every figure anew."""
    import matplotlib
    import PIL

    digest = hashlib.sha256(f"{matplotlib.__version__}|{PIL.__version__}|{np.__version__}".encode())
    here = Path(__file__).resolve().parent
    for name in DRAWING_SOURCES:
        digest.update(name.encode())
        digest.update((here / name).read_bytes())
    return digest.hexdigest()


def _key(draw: Callable[..., Any], args: tuple, kwargs: dict) -> str:
    digest = hashlib.sha256(f"{drawing_version()}|{draw.__module__}.{draw.__qualname__}".encode())
    _feed(digest, args)
    _feed(digest, sorted(kwargs.items()))
    return digest.hexdigest()


def _feed(digest: Any, value: Any) -> None:
    """Hash ``value`` with its types and order (a reordered mapping draws its panels in another order)."""
    if isinstance(value, np.ndarray):
        array = np.ascontiguousarray(value)
        if array.dtype.kind not in "biufc":
            raise Unhashable(f"an array of {array.dtype}")
        digest.update(f"a|{array.dtype.str}|{array.shape}|".encode())
        digest.update(array.tobytes())
    elif value is None or isinstance(value, (bool, int, float, str, np.generic)):
        digest.update(f"s|{type(value).__name__}|{value!r}|".encode())
    elif isinstance(value, Mapping):
        digest.update(f"m|{len(value)}|".encode())
        for name, item in value.items():
            _feed(digest, name)
            _feed(digest, item)
    elif isinstance(value, (list, tuple)):
        numbers = _numeric(value)
        if numbers is not None:
            digest.update(f"n|{type(value).__name__}|".encode())
            _feed(digest, numbers)
            return
        digest.update(f"l|{type(value).__name__}|{len(value)}|".encode())
        for item in value:
            _feed(digest, item)
    else:
        raise Unhashable(type(value).__name__)


def _numeric(value: list | tuple) -> np.ndarray | None:
    """A flat list of plain numbers as one array (hashing 8,001 floats one by one is slow); None otherwise."""
    if not value or not all(type(v) in (int, float) for v in value):
        return None
    try:
        return np.asarray(value, dtype=np.float64 if any(type(v) is float for v in value) else np.int64)
    except OverflowError:  # an int past int64: hashed one by one
        return None
