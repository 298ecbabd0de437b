"""Content-addressed on-disk store of analysis results, shared by runs and by xdist workers.

A key is the SHA-256 of everything the result depends on: the model's fingerprint (code *and* state,
see :mod:`freqrex_audit.models.fingerprint`; options and output kind included), the hash of the exact samples
analysed, the configs as JSON, the phase, the result-schema version, the engine version (the package
version plus a hash of the engine's source, so changing the algorithms invalidates old entries) and the
versions of the numeric runtimes (:data:`NUMERIC_RUNTIMES`: a model's runtime rounds differently by version,
so an entry another version computed is not what this environment computes).
A model that cannot be fingerprinted is not cached at all.

A checksum only proves an entry is what was written, not that it is a valid result: :meth:`Cache.load`
decodes and validates an entry, and one that does not decode is counted (``invalid``) and recomputed.
A cache folder that cannot be written is switched off with one warning naming it.

An entry is one file ``ROOT/ab/abcdef….frx``: a magic line, the SHA-256 of the payload, then the
payload (an ``.npz`` holding the JSON text and the arrays). Writes are atomic (temp file + rename),
so concurrent workers writing the same key each leave a complete file; reads verify the checksum and
treat a damaged entry as a miss, so it is recomputed and rewritten.
"""

from __future__ import annotations

import functools
import hashlib
import io
import json
import os
import platform
import re
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np

from ..engine.codec import atomic_write_bytes

__all__ = ["Cache", "CacheEntry", "cache_entries", "prune_cache", "engine_version", "hash_array", "make_key",
           "RESULT_SCHEMA_VERSION"]

T = TypeVar("T")

MAGIC = b"FRXCACHE1\n"
RESULT_SCHEMA_VERSION = 3
"""Bump when the layout of a cached result changes; old entries then simply miss."""
STALE_TMP_SECONDS = 3600
"""A temp file older than this is a writer's leftover (a killed process), not a write in progress."""


@functools.lru_cache(maxsize=1)
def engine_version() -> str:
    """Package version plus a hash of the engine sources (results depend on both)."""
    from .._version import __version__

    digest = hashlib.sha256(__version__.encode())
    package = Path(__file__).resolve().parent.parent
    for source in engine_sources(package):
        digest.update(source.relative_to(package).as_posix().encode())
        digest.update(source.read_bytes())
    return f"{__version__}+{digest.hexdigest()[:12]}"


ENGINE_SOURCES = ("engine/*.py", "audio/spectrum.py", "models/classifier.py", "models/boundary.py", "models/padding.py")
"""The sources a cached result depends on (beyond the model's own fingerprint), relative to the package."""


def engine_sources(package: Path) -> list[Path]:
    """Every file :data:`ENGINE_SOURCES` names, sorted; a pattern that matches nothing is an error (after a
    move, a skipped file would let a stale cache pass for a fresh one)."""
    found: list[Path] = []
    for pattern in ENGINE_SOURCES:
        matches = sorted(package.glob(pattern))
        if not matches:
            raise RuntimeError(f"cache: no engine source matches {pattern!r} under {package}; the result cache "
                               f"cannot tell which engine computed a result")
        found += matches
    return found


def hash_array(x: np.ndarray) -> str:
    """SHA-256 of an array's dtype, shape and bytes."""
    x = np.ascontiguousarray(x)
    digest = hashlib.sha256(f"{x.dtype}|{x.shape}|".encode())
    digest.update(x.tobytes())
    return digest.hexdigest()


NUMERIC_RUNTIMES = ("torch", "numpy", "scipy", "transformers", "onnxruntime", "ai-edge-litert")
"""Libraries whose version can move a result's last bits (the models' runtimes, the FFTs, the resampling), and
through the search's path its discrete outcomes: an entry another version computed is not what this environment
computes. (The CPU's instruction set does the same and is not in the key: a cache is a machine's own.)"""


@functools.lru_cache(maxsize=1)
def runtime_versions() -> tuple[tuple[str, str | None], ...]:
    """The installed version of each of :data:`NUMERIC_RUNTIMES` (None when absent), read once per process."""
    from .._version import package_versions

    return tuple(package_versions(*NUMERIC_RUNTIMES).items())


def computed_by(*distributions: str) -> dict[str, str | None]:
    """Which code computed a result, as results.json's ``run.versions`` and ``bench --peers --json`` record it: this
    package, its engine (as the cache keys it), Python, every one of :data:`NUMERIC_RUNTIMES`, and the other
    installed ``distributions`` named (None when absent)."""
    from .._version import __version__, package_versions

    return {"freqrex_audit": __version__, "engine": engine_version(), "python": platform.python_version(),
            **dict(runtime_versions()), **package_versions(*distributions)}


def make_key(*parts: Any) -> str:
    """Hash of the JSON of ``parts``, the engine version and the numeric runtimes' versions."""
    text = json.dumps([engine_version(), RESULT_SCHEMA_VERSION, runtime_versions(), *parts], sort_keys=True,
                      default=str)
    return hashlib.sha256(text.encode()).hexdigest()


class Cache:
    """``get(key) -> (data, arrays) | None`` and ``put(key, data, arrays)``; ``root=None`` disables it. Entries end
    in ``suffix`` (the report's figures use their own, so counting a folder's results never counts figures);
    ``lasting`` is False for a run's scratch folder, which ends with the run."""

    def __init__(self, root: str | Path | None, suffix: str = ".frx", lasting: bool = True):
        self.root = Path(root) if root is not None else None
        self.suffix = suffix
        self.lasting = lasting  # False: a scratch folder that ends with its run (``--no-cache``)
        self.hits = 0
        self.misses = 0
        self.corrupt = 0
        self.invalid = 0
        self.warnings: list[str] = []
        self.swept = self._sweep_leftovers()

    def counts(self) -> dict[str, int]:
        """Hits, misses, corrupt and invalid entries so far (a run's share is the difference of two readings)."""
        return {"hits": self.hits, "misses": self.misses, "corrupt": self.corrupt, "invalid": self.invalid}

    def _sweep_leftovers(self) -> int:
        """Delete temp files that writers killed mid-write left behind (never read as entries; just litter)."""
        if self.root is None or not self.root.is_dir():
            return 0
        cutoff, swept = time.time() - STALE_TMP_SECONDS, 0
        for tmp in self.root.glob("*/.*.tmp"):
            try:
                if tmp.stat().st_mtime < cutoff:
                    tmp.unlink()
                    swept += 1
            except OSError:  # another process swept it first
                pass
        return swept

    @property
    def enabled(self) -> bool:
        return self.root is not None

    def _path(self, key: str) -> Path:
        assert self.root is not None
        return self.root / key[:2] / f"{key}{self.suffix}"

    def get(self, key: str) -> tuple[Any, dict[str, np.ndarray]] | None:
        if self.root is None:
            return None
        path = self._path(key)
        try:
            blob = path.read_bytes()
        except OSError:
            self.misses += 1
            return None
        try:
            if not blob.startswith(MAGIC):
                raise ValueError("bad magic")
            checksum, payload = blob[len(MAGIC):len(MAGIC) + 64], blob[len(MAGIC) + 65:]
            if hashlib.sha256(payload).hexdigest().encode() != checksum:
                raise ValueError("checksum mismatch")
            with np.load(io.BytesIO(payload), allow_pickle=False) as npz:
                arrays = {k: npz[k] for k in npz.files}
            data = json.loads(arrays.pop("__json__").tobytes().decode())
        except Exception:
            self.corrupt += 1
            self.misses += 1
            return None
        self.hits += 1
        try:  # its last use, which `freqrex-audit cache --max-size / --older-than` prunes by
            os.utime(path)
        except OSError:  # a read-only cache folder: it is still read
            pass
        return data, arrays

    def load(self, key: str, decode: Callable[[Any, dict[str, np.ndarray]], T]) -> T | None:
        """``decode(data, arrays)`` of the entry, or None; an entry that fails to decode or validate is invalid.

        Invalid entries (right checksum, wrong content: hand-edited, another layout) are counted in
        ``invalid`` and ``corrupt`` and treated as a miss, so the caller recomputes and overwrites them.
        """
        hit = self.get(key)
        if hit is None:
            return None
        try:
            return decode(*hit)
        except Exception:  # noqa: BLE001 - any decoding failure means: not a usable result
            self.hits -= 1
            self.misses += 1
            self.invalid += 1
            self.corrupt += 1
            return None

    def put(self, key: str, data: Any, arrays: dict[str, np.ndarray] | None = None) -> None:
        if self.root is None:
            return
        buffer = io.BytesIO()
        text = np.frombuffer(json.dumps(data, sort_keys=True).encode(), dtype=np.uint8)
        np.savez(buffer, __json__=text, **(arrays or {}))
        payload = buffer.getvalue()
        blob = MAGIC + hashlib.sha256(payload).hexdigest().encode() + b"\n" + payload
        try:
            atomic_write_bytes(self._path(key), blob)
        except OSError as exc:  # a read-only cache folder: run uncached, say so once, never blame the model
            self.warnings.append(f"cache folder {self.root} is not writable ({exc.strerror or type(exc).__name__}); "
                                 f"results are not cached")
            self.root = None


ENTRY_NAME = re.compile(r"^[0-9a-f]{64}\.(frx|fig)$")
"""What a cache entry's file is called (``ab/abcdef….frx``, figures ``figures/ab/….fig``): pruning deletes nothing
else, so a folder given by mistake loses nothing."""


@dataclass(frozen=True)
class CacheEntry:
    """One entry file: where, what kind (``results`` or ``figures``), its size and its last use (mtime, touched on
    every hit)."""

    path: Path
    kind: str
    size: int
    used: float


def cache_entries(root: str | Path) -> list[CacheEntry]:
    """Every entry under ``root`` (results ``??/*.frx``, figures ``figures/??/*.fig``), least recently used first."""
    root, found = Path(root), []
    for kind, pattern in (("results", "??/*.frx"), ("figures", "figures/??/*.fig")):
        for path in root.glob(pattern):
            if ENTRY_NAME.match(path.name) and path.name.startswith(path.parent.name):
                try:
                    stat = path.stat()
                except OSError:  # removed by another process meanwhile
                    continue
                found.append(CacheEntry(path, kind, stat.st_size, stat.st_mtime))
    return sorted(found, key=lambda e: (e.used, str(e.path)))


def prune_cache(entries: list[CacheEntry], older_than_s: float | None = None, max_bytes: int | None = None,
                now: float | None = None) -> list[CacheEntry]:
    """The entries to delete, least recently used first: every one unused for ``older_than_s``, then more until
    the rest fit in ``max_bytes``. Deleting an entry only costs its recomputation (results are keyed by content)."""
    now = time.time() if now is None else now
    doomed = [e for e in entries if older_than_s is not None and now - e.used > older_than_s]
    if max_bytes is not None:
        gone = set(doomed)
        kept = [e for e in entries if e not in gone]
        total = sum(e.size for e in kept)
        for entry in kept:  # least recently used first
            if total <= max_bytes:
                break
            doomed.append(entry)
            total -= entry.size
    return sorted(doomed, key=lambda e: (e.used, str(e.path)))
