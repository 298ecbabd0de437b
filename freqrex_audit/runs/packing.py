"""How ``results.npz`` stores its arrays (results schema 4): every array exactly, in fewer bytes.

The audit hands ``write`` a dict of arrays (``<spec>.<clip>.explanation.waveform`` …). Before schema 4 they
were saved as they came: int64 rankings and subsets, the clip once per explanation and the float32 subset
signals again as WAV files (5.6× the audited audio per clip, issue #33). :func:`pack` stores each one the
smallest exact way it knows and records how in one JSON member, ``__packing__``; :func:`unpack` gives the
very same arrays back (dtype, shape, bytes), so everything that reads a run sees what the audit wrote.

- ``set``: a sorted list of distinct bin indices (sufficient, necessary, complete, minimal, attack bins) as
  a bit mask over ``n`` bins (``np.packbits``).
- ``int``: other whole numbers in the smallest integer type that holds them.
- ``bits``: a boolean array as packed bits.
- ``shuffled``: float arrays (the clip, adversarial clips, composites) with their bytes grouped by
  significance (byte ``i`` of every value together), which deflate packs ~15 % smaller than raw floats.
- ``rank_bins``: an explanation's ranking is not stored at all: it is
  :func:`freqrex_audit.engine.subsets.rank_bins` of the stored responsibility and the clip's rfft
  magnitudes, rebuilt when the run is read and checked against the sha256 recorded here.

Every encoding is tried at write time and kept only when decoding it on this machine gives back the same
bytes (else the array is stored as it came). A ranking rebuilt later on another CPU, torch or thread count
that comes out different is still returned, and named in :attr:`Arrays.differs` with what differs, so a
reader never passes it off as the audited one (nor one rebuilt with a thread count that rounds differently:
the thread count is not recorded, so the same audit stays byte-identical on one worker or many).
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

import numpy as np

__all__ = ["Arrays", "pack", "unpack", "MEMBER", "FORMAT"]

MEMBER = "__packing__"
"""The npz member holding the packing recipes (a uint8 array of JSON text)."""
FORMAT = 1
_INTS = ("int8", "uint8", "int16", "uint16", "int32", "uint32", "int64", "uint64")
_FLOATS = ("float16", "float32", "float64")
MAX_ELEMENTS = 2 ** 31
"""No unpacked array is larger (a recipe claiming more is refused, not allocated)."""
MAX_UNPACKED_BYTES = 16 * 2 ** 30
"""No run's arrays unpack to more (a packed set expands at most 64×; the stored file is at most 4 GiB)."""


class Arrays(dict):
    """A run's arrays by name; ``differs``: arrays rebuilt on this machine that do not match the sha256
    recorded at audit time (name → what differs). ``rebuilt``: every array that was rebuilt rather than read."""

    def __init__(self, *args: Any, **kwargs: Any):
        super().__init__(*args, **kwargs)
        self.differs: dict[str, str] = {}
        self.rebuilt: set[str] = set()


def sha256_array(a: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(a).tobytes()).hexdigest()


def _small_int(a: np.ndarray) -> np.dtype:
    lo, hi = (int(a.min()), int(a.max())) if a.size else (0, 0)
    for name in _INTS:
        info = np.iinfo(name)
        if info.min <= lo and hi <= info.max:
            return np.dtype(name)
    return a.dtype


def _is_set(a: np.ndarray) -> bool:
    return a.ndim == 1 and a.dtype.kind in "iu" and a.size > 0 and int(a[0]) >= 0 and bool(np.all(np.diff(a) > 0))


def rebuild_ranking(responsibility: np.ndarray, waveform: np.ndarray) -> np.ndarray:
    """The ranking FreqReX derives (engine.explain): responsibility, ties by larger |X| (torch rfft), then bin."""
    from ..audio import spectrum as spec
    from ..engine.subsets import rank_bins

    magnitude = spec.rfft(spec.as_tensor(np.asarray(waveform, dtype=np.float32), "cpu")).abs().cpu().numpy()
    return rank_bins(np.asarray(responsibility), magnitude)


def _encode(name: str, a: np.ndarray, arrays: dict[str, np.ndarray]) -> tuple[dict, np.ndarray | None] | None:
    """(recipe, stored array or None) for one array, or None to store it as it is."""
    if name.endswith(".explanation.ranking") and a.ndim == 1 and a.dtype == np.int64:
        base = name[: -len("ranking")]
        resp, wave = arrays.get(base + "responsibility"), arrays.get(base + "waveform")
        if resp is not None and wave is not None and resp.size == a.size == wave.size // 2 + 1:
            return {"as": "rank_bins", "responsibility": base + "responsibility", "waveform": base + "waveform",
                    "dtype": "int64", "sha256": sha256_array(a)}, None
    if a.dtype.kind == "b":
        return {"as": "bits", "shape": list(a.shape)}, np.packbits(a.reshape(-1))
    if a.dtype.kind in "iu" and a.dtype.name in _INTS:
        small = _small_int(a)
        if _is_set(a) and (int(a[-1]) + 8) // 8 < a.size * small.itemsize:
            mask = np.zeros(int(a[-1]) + 1, dtype=bool)
            mask[a] = True
            return {"as": "set", "dtype": a.dtype.name, "n": int(mask.size)}, np.packbits(mask)
        if small != a.dtype:
            return {"as": "int", "dtype": a.dtype.name, "shape": list(a.shape)}, a.astype(small)
        return None
    if a.dtype.name in _FLOATS and a.dtype.itemsize > 1 and a.size:
        planes = np.ascontiguousarray(a).reshape(-1).view(np.uint8).reshape(-1, a.dtype.itemsize).T.copy()
        return {"as": "shuffled", "dtype": a.dtype.name, "shape": list(a.shape)}, planes
    return None


def _decode(name: str, recipe: dict, stored: dict[str, np.ndarray], out: Arrays) -> np.ndarray:
    how = recipe.get("as")
    if how == "rank_bins":
        resp, wave = out.get(recipe.get("responsibility")), out.get(recipe.get("waveform"))
        if resp is None or wave is None or resp.ndim != 1 or wave.ndim != 1 or resp.size != wave.size // 2 + 1:
            raise ValueError(f"{name}: its ranking cannot be rebuilt (responsibility / waveform missing or unequal)")
        ranking = rebuild_ranking(resp, wave)
        out.rebuilt.add(name)
        if sha256_array(ranking) != recipe.get("sha256"):
            out.differs[name] = ("rebuilt on this machine; differs from the audited ranking (its sha256 does not "
                                 "match the one recorded: another CPU, torch or thread count?)")
        return ranking
    data = stored.get(name)
    if data is None:
        raise ValueError(f"{name}: packed, but not in the file")
    if how == "set":
        n = int(recipe["n"])
        if recipe.get("dtype") not in _INTS or data.dtype != np.uint8 or not 0 < n <= min(data.size * 8, MAX_ELEMENTS):
            raise ValueError(f"{name}: not a packed bin set")
        return np.flatnonzero(np.unpackbits(data, count=n)).astype(recipe["dtype"])
    shape = tuple(int(s) for s in recipe.get("shape", ()))
    size = int(np.prod(shape)) if shape else 1
    if size > MAX_ELEMENTS or any(s < 0 for s in shape):
        raise ValueError(f"{name}: shape {shape} is larger than any array a run holds")
    if how == "bits":
        if data.dtype != np.uint8 or size > data.size * 8:
            raise ValueError(f"{name}: not packed bits")
        return np.unpackbits(data, count=size).astype(bool).reshape(shape)
    if how == "int":
        if recipe.get("dtype") not in _INTS or data.dtype.kind not in "iu" or data.size != size:
            raise ValueError(f"{name}: not a packed integer array")
        return data.astype(recipe["dtype"]).reshape(shape)
    if how == "shuffled":
        dtype = np.dtype(recipe["dtype"]) if recipe.get("dtype") in _FLOATS else None
        if dtype is None or data.dtype != np.uint8 or data.shape != (dtype.itemsize, size):
            raise ValueError(f"{name}: not a byte-shuffled float array")
        return np.ascontiguousarray(data.T).view(dtype).reshape(shape)
    raise ValueError(f"{name}: unknown packing {how!r}")


def _same(a: np.ndarray, b: np.ndarray) -> bool:
    return a.dtype == b.dtype and a.shape == b.shape and np.ascontiguousarray(a).tobytes() == \
        np.ascontiguousarray(b).tobytes()


def pack(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """The members of ``results.npz`` for ``arrays``: each array packed where that decodes back to the same
    bytes on this machine, plus :data:`MEMBER`, the recipes."""
    stored: dict[str, np.ndarray] = {}
    recipes: dict[str, dict] = {}
    for name in sorted(arrays):
        a = np.asarray(arrays[name])
        encoded = _encode(name, a, arrays)
        if encoded is not None:
            recipe, data = encoded
            check = Arrays({k: arrays[k] for k in (recipe.get("responsibility"), recipe.get("waveform")) if k in arrays})
            try:
                ok = _same(_decode(name, recipe, {name: data} if data is not None else {}, check), a) \
                    and not check.differs
            except ValueError:
                ok = False
            if ok:
                recipes[name] = recipe
                if data is not None:
                    stored[name] = data
                continue
        stored[name] = a
    if recipes:
        text = json.dumps({"format": FORMAT, "arrays": recipes}, sort_keys=True)
        stored[MEMBER] = np.frombuffer(text.encode(), dtype=np.uint8)
    return stored


def unpack(stored: dict[str, np.ndarray]) -> Arrays:
    """The arrays ``pack`` was given, from an npz's members (a file without :data:`MEMBER`, written before
    schema 4, is returned as it is). A malformed recipe is a ValueError naming the array."""
    out = Arrays()
    if MEMBER not in stored:
        out.update(stored)
        return out
    try:
        meta = json.loads(bytes(np.asarray(stored[MEMBER], dtype=np.uint8)).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"{MEMBER}: not the packing recipes ({exc})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not isinstance(meta.get("arrays"), dict):
        raise ValueError(f"{MEMBER}: packing format {meta.get('format') if isinstance(meta, dict) else meta!r} "
                         f"is not one this freqrex-audit reads ({FORMAT})")
    recipes = meta["arrays"]
    out.update({k: v for k, v in stored.items() if k != MEMBER and k not in recipes})
    rebuilds = []
    for name, recipe in sorted(recipes.items()):
        if not isinstance(recipe, dict):
            raise ValueError(f"{name}: not a packing recipe")
        if name == MEMBER:
            raise ValueError(f"{name}: a recipe for the recipes")
        if recipe.get("as") == "rank_bins":
            rebuilds.append((name, recipe))  # after the arrays they are rebuilt from
            continue
        out[name] = _decode(name, recipe, stored, out)
    for name, recipe in rebuilds:
        out[name] = _decode(name, recipe, stored, out)
    if sum(a.nbytes for a in out.values()) > MAX_UNPACKED_BYTES:
        raise ValueError(f"unpacks to more than {MAX_UNPACKED_BYTES:,} bytes, more than any run holds")
    return out
