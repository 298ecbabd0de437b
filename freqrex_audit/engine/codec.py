"""JSON round trip for the frozen result dataclasses (explanations, attacks, cross-model results).

Arrays become tagged lists, or entries of an ``.npz`` sidecar when :meth:`Result.save` is given one,
so a result written today reads back to an equal object tomorrow.
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
import types
import typing
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

__all__ = ["Result", "to_jsonable", "from_jsonable", "atomic_write_bytes", "timing_field"]

R = TypeVar("R", bound="Result")
SIDECAR_MIN_SIZE = 512
"""Arrays with at least this many elements go to the ``.npz`` sidecar when there is one."""


def timing_field(default: Any = 0.0) -> Any:
    """A wall-clock field: not compared, and left out of the canonical (deterministic) JSON."""
    if isinstance(default, dict):
        return dataclasses.field(default_factory=dict, compare=False, metadata={"timing": True})
    return dataclasses.field(default=default, compare=False, metadata={"timing": True})


def to_jsonable(value: Any, arrays: dict[str, np.ndarray] | None = None, key: str = "") -> Any:
    """Plain JSON types for dataclasses, arrays (tagged), tuples, numpy scalars and complex numbers."""
    if isinstance(value, Result):
        return value.to_dict(arrays, key)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: to_jsonable(getattr(value, f.name), arrays, f"{key}.{f.name}") for f in dataclasses.fields(value)}
    if isinstance(value, np.ndarray):
        if arrays is not None and value.size >= SIDECAR_MIN_SIZE:
            name = key.strip(".") or f"array{len(arrays)}"
            arrays[name] = value
            return {"__npz__": name}
        return {"__ndarray__": value.tolist(), "dtype": str(value.dtype), "shape": list(value.shape)}
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, (np.bool_,)):
        return bool(value)
    if isinstance(value, complex):
        return {"__complex__": [value.real, value.imag]}
    if isinstance(value, dict):
        return {str(k): to_jsonable(v, arrays, f"{key}.{k}") for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [to_jsonable(v, arrays, f"{key}.{i}") for i, v in enumerate(value)]
    return value


def _from_jsonable(value: Any, hint: Any, arrays: Any) -> Any:
    """Inverse of :func:`to_jsonable`, guided by the dataclass field's type hint."""
    if isinstance(value, dict):
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        if "__npz__" in value:
            if arrays is None:
                raise ValueError(f"array {value['__npz__']!r} lives in an .npz sidecar that was not given")
            return np.asarray(arrays[value["__npz__"]])
        if "__complex__" in value:
            return complex(*value["__complex__"])
    origin = typing.get_origin(hint)
    if origin in (typing.Union, types.UnionType):
        options = [a for a in typing.get_args(hint) if a is not type(None)]
        if value is None:
            return None
        for option in options:
            if isinstance(option, type) and issubclass(option, Result) and isinstance(value, dict):
                return option.from_dict(value, arrays)
        return _from_jsonable(value, options[0] if len(options) == 1 else Any, arrays)
    if isinstance(hint, type) and issubclass(hint, Result) and isinstance(value, dict):
        return hint.from_dict(value, arrays)
    if origin is tuple and isinstance(value, list):
        args = typing.get_args(hint)
        item = args[0] if args and (len(args) == 2 and args[1] is Ellipsis) else Any
        return tuple(_from_jsonable(v, item, arrays) for v in value)
    if origin is dict and isinstance(value, dict):
        args = typing.get_args(hint)
        item = args[1] if len(args) == 2 else Any
        return {k: _from_jsonable(v, item, arrays) for k, v in value.items()}
    if origin is list and isinstance(value, list):
        args = typing.get_args(hint)
        return [_from_jsonable(v, args[0] if args else Any, arrays) for v in value]
    if isinstance(value, list):
        return [_from_jsonable(v, Any, arrays) for v in value]
    if isinstance(value, dict):
        return {k: _from_jsonable(v, Any, arrays) for k, v in value.items()}
    return value


def from_jsonable(value: Any, arrays: Any = None) -> Any:
    """Inverse of :func:`to_jsonable` for plain containers (no dataclass hint): tagged arrays come back."""
    return _from_jsonable(value, Any, arrays)


def atomic_write_bytes(path: str | Path, data: bytes) -> Path:
    """Write a file so readers see the old content or the new, never half of it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


class Result:
    """Mixin for frozen dataclasses that round-trip through JSON."""

    def to_dict(self, arrays: dict[str, np.ndarray] | None = None, key: str = "",
                timings: bool = True) -> dict[str, Any]:
        """Plain-JSON dict; arrays are inlined, or collected into ``arrays`` for a sidecar.

        ``timings=False`` leaves out wall-clock fields, so equal results give byte-identical JSON.
        """
        return {f.name: to_jsonable(getattr(self, f.name), arrays, f"{key}.{f.name}")
                for f in dataclasses.fields(self)  # type: ignore[arg-type]
                if timings or not f.metadata.get("timing")}

    @classmethod
    def from_dict(cls: type[R], data: dict[str, Any], arrays: Any = None) -> R:
        hints = typing.get_type_hints(cls)
        names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: _from_jsonable(v, hints.get(k, Any), arrays) for k, v in data.items() if k in names})

    def to_json(self, timings: bool = False) -> str:
        """Canonical JSON: sorted keys, and no wall-clock fields unless ``timings``."""
        return json.dumps(self.to_dict(timings=timings), sort_keys=True)

    @classmethod
    def from_json(cls: type[R], text: str) -> R:
        return cls.from_dict(json.loads(text))

    def save(self, path: str | Path, sidecar: bool = True) -> Path:
        """Write ``path`` (JSON) and, with ``sidecar``, large arrays to ``path`` with suffix ``.npz``."""
        path = Path(path)
        arrays: dict[str, np.ndarray] | None = {} if sidecar else None
        text = json.dumps(self.to_dict(arrays), sort_keys=True, indent=1)
        if arrays:
            import io

            buffer = io.BytesIO()
            np.savez_compressed(buffer, **arrays)
            atomic_write_bytes(path.with_suffix(".npz"), buffer.getvalue())
        return atomic_write_bytes(path, text.encode())

    @classmethod
    def load(cls: type[R], path: str | Path) -> R:
        path = Path(path)
        data = json.loads(path.read_text())
        sidecar = path.with_suffix(".npz")
        if sidecar.exists():
            with np.load(sidecar) as arrays:
                return cls.from_dict(data, {k: arrays[k] for k in arrays.files})
        return cls.from_dict(data)
