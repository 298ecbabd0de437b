"""Content fingerprints of Python models, for the result cache: code *and* state.

Two models that could answer differently must never share cached verdicts. So a fingerprint covers a
function's code (nested code objects included), the values it closes over or reads from its globals,
an object's attributes (tensors and arrays by content), a module's state dict, partials' arguments and
bound methods' instances. Anything that cannot be reduced to content (an open socket, a C object with
hidden state) makes the model *unfingerprintable*: :func:`fingerprint_of` returns ``""`` and the
model's results are not cached (the audit says so), rather than risking a stale verdict.
"""

from __future__ import annotations

import functools
import hashlib
import threading
import types
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["fingerprint_of", "combine", "Unfingerprintable"]

MAX_DEPTH = 8
_OPAQUE_OK = (torch.device, torch.dtype, np.dtype, type(threading.Lock()), type(threading.RLock()),
              types.ModuleType, type)
"""Objects hashed by their repr or name: they carry no state that changes a model's answers."""


class Unfingerprintable(ValueError):
    """A value whose content cannot be hashed; the model is then not cached."""


def fingerprint_of(fn: object, labels: Sequence[str], sample_rate: int, *extra: object) -> str:
    """16-hex content hash of ``fn`` (code and state) plus labels, rate and ``extra``; ``""`` if impossible."""
    digest = hashlib.sha256(f"{list(labels)}|{sample_rate}".encode())
    try:
        _feed(digest, list(extra), 0, set())
        _feed(digest, fn, 0, set())
    except (Unfingerprintable, RecursionError):
        return ""
    return digest.hexdigest()[:16]


def _feed(digest: "hashlib._Hash", value: Any, depth: int, seen: set[int]) -> None:
    if depth > MAX_DEPTH:
        raise Unfingerprintable(f"nested deeper than {MAX_DEPTH}")
    update = digest.update
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        update(f"{type(value).__name__}:{value!r};".encode())
        return
    if id(value) in seen:
        update(b"<seen>")
        return
    seen.add(id(value))
    if isinstance(value, torch.Tensor):
        update(f"tensor{tuple(value.shape)}{value.dtype};".encode())
        update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
               if value.numel() else b"")
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise Unfingerprintable("an object array")
        update(f"array{value.shape}{value.dtype};".encode())
        update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        update(f"{type(value).__name__}[{len(items)}](".encode())
        for item in items:
            _feed(digest, item, depth + 1, seen)
        update(b")")
    elif isinstance(value, dict):
        update(f"dict[{len(value)}](".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key, depth + 1, seen)
            _feed(digest, value[key], depth + 1, seen)
        update(b")")
    elif isinstance(value, _OPAQUE_OK):
        update(f"{getattr(value, '__qualname__', None) or value!r};".encode())
    elif isinstance(value, types.CodeType):
        _feed_code(digest, value, depth, seen)
    elif isinstance(value, functools.partial):
        _feed(digest, (value.func, value.args, value.keywords), depth + 1, seen)
    elif isinstance(value, types.MethodType):
        _feed(digest, (value.__func__, value.__self__), depth + 1, seen)
    elif isinstance(value, types.FunctionType):
        _feed_function(digest, value, depth, seen)
    elif isinstance(value, (types.BuiltinFunctionType, np.ufunc)):
        update(f"builtin:{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', value)!r};".encode())
    elif getattr(value, "fingerprint", None) and isinstance(value.fingerprint, str) and hasattr(value, "predict"):
        update(f"classifier:{value.fingerprint};".encode())  # a wrapped Classifier: its own content hash
    elif isinstance(value, torch.nn.Module):
        _feed_module(digest, value, depth, seen)
    elif isinstance(value, np.random.Generator):
        _feed(digest, value.bit_generator.state, depth + 1, seen)
    else:
        _feed_object(digest, value, depth, seen)


def _feed_code(digest: "hashlib._Hash", code: types.CodeType, depth: int, seen: set[int]) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:  # nested functions' code by content, never by their address
        _feed(digest, const, depth + 1, seen)


def _feed_function(digest: "hashlib._Hash", fn: types.FunctionType, depth: int, seen: set[int]) -> None:
    digest.update(f"function:{fn.__module__}.{fn.__qualname__};".encode())
    _feed_code(digest, fn.__code__, depth, seen)
    _feed(digest, (fn.__defaults__, fn.__kwdefaults__), depth + 1, seen)
    for cell in fn.__closure__ or ():  # settings and weights a factory captured
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            digest.update(b"<empty>")
            continue
        _feed(digest, contents, depth + 1, seen)
    for name in _global_names(fn.__code__):  # module-level weights or tables the function reads
        if name in fn.__globals__:
            global_value = fn.__globals__[name]
            if not isinstance(global_value, types.ModuleType):
                _feed(digest, global_value, depth + 1, seen)


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))


def _feed_module(digest: "hashlib._Hash", module: torch.nn.Module, depth: int, seen: set[int]) -> None:
    for sub_name, sub in module.named_modules():
        digest.update(f"module:{sub_name}:{type(sub).__module__}.{type(sub).__qualname__};".encode())
        forward = getattr(type(sub), "forward", None)
        if isinstance(forward, types.FunctionType):
            _feed_code(digest, forward.__code__, depth + 1, seen)
        plain = {k: v for k, v in vars(sub).items() if not k.startswith("_") and k != "training"}
        _feed(digest, plain, depth + 1, seen)
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        _feed(digest, tensor, depth + 1, seen)


def _feed_object(digest: "hashlib._Hash", value: Any, depth: int, seen: set[int]) -> None:
    """A callable instance or a plain object: its class's code and all of its attributes."""
    cls = type(value)
    digest.update(f"object:{cls.__module__}.{cls.__qualname__};".encode())
    state: dict[str, Any] = {}
    if hasattr(value, "__dict__"):
        state.update(vars(value))
    for slot in getattr(cls, "__slots__", ()) or ():
        if isinstance(slot, str) and hasattr(value, slot):
            state[slot] = getattr(value, slot)
    if not state and not hasattr(value, "__dict__"):
        raise Unfingerprintable(f"a {cls.__qualname__} object has no readable state")
    for klass in cls.__mro__[:-1]:  # the code of the methods that compute the answer
        for attr in ("__call__", "predict", "forward"):
            method = vars(klass).get(attr)
            if isinstance(method, types.FunctionType):
                _feed_code(digest, method.__code__, depth + 1, seen)
    _feed(digest, state, depth + 1, seen)


def combine(fingerprint: str, *parts: object) -> str:
    """``fingerprint`` extended with ``parts`` (options, output kind); ``""`` stays ``""`` (not cacheable)."""
    if not fingerprint:
        return ""
    digest = hashlib.sha256(fingerprint.encode())
    try:
        _feed(digest, list(parts), 0, set())
    except (Unfingerprintable, RecursionError):
        return ""
    return digest.hexdigest()[:16]
