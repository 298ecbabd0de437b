"""Content fingerprints of Python models, for the result cache: code *and* state, never an address.

Two models that could answer differently must never share cached verdicts, and the same model must get the
same fingerprint in every process (or the cache never hits). So a fingerprint covers a function's code
(nested code objects included), the values it closes over or reads from its globals, an object's attributes
(tensors and arrays by content), a module's state dict, partials' arguments and bound methods' instances,
a loaded native library by its file's bytes and an onnxruntime session by its model's bytes. It never
hashes an address, a handle or an object id: a repr that shows one (``<… at 0x7f…>``) is not used, locks are
hashed by their type. Anything that cannot be reduced to content (a ctypes pointer or buffer, a pybind11 or
other C object with hidden state, an open socket) makes the model *unfingerprintable*:
:func:`fingerprint_and_reason` returns ``""`` and says which attribute and why, and the model's results are
not cached (the audit says so once, and how to declare a fingerprint), rather than risking a stale verdict.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import re
import threading
import types
from typing import Any, Sequence

import numpy as np
import torch

__all__ = ["fingerprint_of", "fingerprint_and_reason", "combine", "declared", "file_digest", "Unfingerprintable",
           "NOT_CACHEABLE_HINT"]

MAX_DEPTH = 8
_LOCKS = (type(threading.Lock()), type(threading.RLock()), threading.Condition, threading.Event, threading.Semaphore)
"""Hashed by their type alone: they synchronise, they never change an answer (their repr shows an address)."""
_OPAQUE_OK = (torch.device, torch.dtype, np.dtype, types.ModuleType, type)
"""Objects hashed by their name or repr: they carry no state that changes a model's answers."""
_ADDRESS = re.compile(r"0x[0-9a-fA-F]{4,}")
_CTYPES_DATA = (ctypes._SimpleCData, ctypes._Pointer, ctypes.Structure, ctypes.Union, ctypes.Array,  # type: ignore[attr-defined]
                ctypes._CFuncPtr)  # type: ignore[attr-defined]
NOT_CACHEABLE_HINT = "declare model.fingerprint in the spec, or return a Classifier with a fingerprint"


class Unfingerprintable(ValueError):
    """A value whose content cannot be hashed; the model is then not cached. The message says which and why."""


def fingerprint_and_reason(fn: object, labels: Sequence[str], sample_rate: int,
                           *extra: object) -> tuple[str, str | None]:
    """16-hex content hash of ``fn`` (code and state) plus labels, rate and ``extra``, and None; or ``""`` and why
    not (the attribute path and what it holds, e.g. ``model.vad.handle: a ctypes c_void_p …``)."""
    digest = hashlib.sha256(f"{list(labels)}|{sample_rate}".encode())
    try:
        _feed(digest, list(extra), 0, set(), "options")
        _feed(digest, fn, 0, set(), "model")
    except Unfingerprintable as exc:
        return "", str(exc)
    except RecursionError:
        return "", "model: nested deeper than Python's recursion limit"
    return digest.hexdigest()[:16], None


def fingerprint_of(fn: object, labels: Sequence[str], sample_rate: int, *extra: object) -> str:
    """16-hex content hash of ``fn`` (code and state) plus labels, rate and ``extra``; ``""`` if impossible."""
    return fingerprint_and_reason(fn, labels, sample_rate, *extra)[0]


def declared(text: str, *parts: object) -> str:
    """A fingerprint from the user's declaration (``model.fingerprint``) and ``parts`` (target, the factory
    module's bytes, options, labels, rate…): stable across processes by construction."""
    digest = hashlib.sha256(f"declared:{text}".encode())
    _feed(digest, list(parts), 0, set(), "model")
    return digest.hexdigest()[:16]


_FILE_DIGESTS: dict[tuple[str, int, int], str] = {}


def file_digest(path: str | os.PathLike) -> str:
    """SHA-256 of a file's bytes (cached per path, size and modification time: a native library is read once)."""
    path = os.path.realpath(path)
    stat = os.stat(path)
    key = (path, stat.st_size, stat.st_mtime_ns)
    if key not in _FILE_DIGESTS:
        digest = hashlib.sha256()
        with open(path, "rb") as handle:
            for block in iter(lambda: handle.read(1 << 20), b""):
                digest.update(block)
        _FILE_DIGESTS[key] = digest.hexdigest()
    return _FILE_DIGESTS[key]


def _native(value: Any, where: str) -> str | None:
    """A content stand-in for a native object whose content is known (a loaded library's file, an onnxruntime
    session's model bytes); raises Unfingerprintable for native memory; None for everything else."""
    if isinstance(value, ctypes.CDLL):
        name = getattr(value, "_name", None)
        path = _library_file(str(name)) if name else None
        if path is None:
            raise Unfingerprintable(f"{where}: a native library whose file cannot be found ({name!r}); its code "
                                    f"cannot be hashed")
        return f"cdll:{os.path.basename(str(name))}:{file_digest(path)}"
    if isinstance(value, _CTYPES_DATA):
        return _refuse(value, where, "native memory (an address or a C buffer) whose content the fingerprint "
                                     "cannot read")
    cls = type(value)
    if cls.__name__ == "InferenceSession" and cls.__module__.startswith("onnxruntime"):
        model_bytes, model_path = getattr(value, "_model_bytes", None), getattr(value, "_model_path", None)
        content = hashlib.sha256(model_bytes).hexdigest() if isinstance(model_bytes, (bytes, bytearray)) and \
            model_bytes else file_digest(model_path) if model_path and os.path.isfile(str(model_path)) else None
        if content is None:
            return _refuse(value, where, "an onnxruntime session whose model bytes are not known")
        return f"onnx:{content}:{list(getattr(value, '_providers', []) or [])}"
    if type(cls).__name__ == "pybind11_type" or cls.__name__ == "PyCapsule":
        return _refuse(value, where, "a native (C/C++) object: its state lives behind a handle")
    return None


def _library_file(name: str) -> str | None:
    """The file of a loaded library named ``name`` (a path, or a soname such as ``libm.so.6`` that the dynamic
    loader resolved: read from this process's memory map on Linux)."""
    if os.path.isfile(name):
        return name
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            for line in maps:
                path = line.split(maxsplit=5)[-1].strip() if line.count(" ") >= 5 else ""
                if path.startswith("/") and os.path.basename(path) == os.path.basename(name) and os.path.isfile(path):
                    return path
    except OSError:
        pass
    return None


def _refuse(value: Any, where: str, why: str) -> str:
    raise Unfingerprintable(f"{where}: a {type(value).__module__}.{type(value).__qualname__} — {why}")


def _feed(digest: "hashlib._Hash", value: Any, depth: int, seen: set[int], where: str = "model") -> None:
    if depth > MAX_DEPTH:
        raise Unfingerprintable(f"{where}: nested deeper than {MAX_DEPTH} levels")
    update = digest.update
    if value is None or isinstance(value, (bool, int, float, complex, str, bytes, np.generic)):
        update(f"{type(value).__name__}:{value!r};".encode())
        return
    if id(value) in seen:
        update(b"<seen>")
        return
    seen.add(id(value))
    deeper = depth + 1
    if isinstance(value, torch.Tensor):
        update(f"tensor{tuple(value.shape)}{value.dtype};".encode())
        update(value.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy().tobytes()
               if value.numel() else b"")
    elif isinstance(value, np.ndarray):
        if value.dtype.hasobject:
            raise Unfingerprintable(f"{where}: an array of Python objects")
        update(f"array{value.shape}{value.dtype};".encode())
        update(np.ascontiguousarray(value).tobytes())
    elif isinstance(value, (list, tuple, set, frozenset)):
        items = sorted(value, key=repr) if isinstance(value, (set, frozenset)) else value
        update(f"{type(value).__name__}[{len(items)}](".encode())
        for i, item in enumerate(items):
            _feed(digest, item, deeper, seen, f"{where}[{i}]")
        update(b")")
    elif isinstance(value, dict):
        update(f"dict[{len(value)}](".encode())
        for key in sorted(value, key=repr):
            _feed(digest, key, deeper, seen, where)
            _feed(digest, value[key], deeper, seen, f"{where}[{key!r}]")
        update(b")")
    elif isinstance(value, _LOCKS):
        update(f"lock:{type(value).__qualname__};".encode())
    elif isinstance(value, _OPAQUE_OK):
        shown = getattr(value, "__qualname__", None) or repr(value)
        update(f"{_ADDRESS.sub('0x', shown)};".encode())
    elif isinstance(value, types.CodeType):
        _feed_code(digest, value, depth, seen, where)
    elif isinstance(value, functools.partial):
        _feed(digest, (value.func, value.args, value.keywords), deeper, seen, where)
    elif isinstance(value, types.MethodType):
        _feed(digest, (value.__func__, value.__self__), deeper, seen, where)
    elif isinstance(value, types.FunctionType):
        _feed_function(digest, value, depth, seen, where)
    elif isinstance(value, (types.BuiltinFunctionType, np.ufunc)):
        update(f"builtin:{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', None) or type(value).__name__};"
               .encode())
    elif getattr(value, "fingerprint", None) and isinstance(value.fingerprint, str) and hasattr(value, "predict"):
        update(f"classifier:{value.fingerprint};".encode())  # a wrapped Classifier: its own content hash
    elif isinstance(value, torch.nn.Module):
        _feed_module(digest, value, depth, seen, where)
    elif isinstance(value, np.random.Generator):
        _feed(digest, value.bit_generator.state, deeper, seen, where)
    else:
        stand_in = _native(value, where)
        if stand_in is not None:
            update(f"{stand_in};".encode())
        else:
            _feed_object(digest, value, depth, seen, where)


def _feed_code(digest: "hashlib._Hash", code: types.CodeType, depth: int, seen: set[int], where: str) -> None:
    digest.update(code.co_code)
    digest.update(repr(code.co_names).encode())
    for const in code.co_consts:  # nested functions' code by content, never by their address
        _feed(digest, const, depth + 1, seen, where)


def _feed_function(digest: "hashlib._Hash", fn: types.FunctionType, depth: int, seen: set[int], where: str) -> None:
    digest.update(f"function:{fn.__module__}.{fn.__qualname__};".encode())
    _feed_code(digest, fn.__code__, depth, seen, where)
    _feed(digest, (fn.__defaults__, fn.__kwdefaults__), depth + 1, seen, f"{where} defaults")
    names = fn.__code__.co_freevars
    for name, cell in zip(names, fn.__closure__ or ()):  # settings and weights a factory captured
        try:
            contents = cell.cell_contents
        except ValueError:  # an empty cell
            digest.update(b"<empty>")
            continue
        _feed(digest, contents, depth + 1, seen, f"{fn.__qualname__}:{name}")
    for name in _global_names(fn.__code__):  # module-level weights or tables the function reads
        if name in fn.__globals__:
            global_value = fn.__globals__[name]
            if not isinstance(global_value, types.ModuleType):
                _feed(digest, global_value, depth + 1, seen, f"{fn.__module__}.{name}")


def _global_names(code: types.CodeType) -> list[str]:
    names = list(code.co_names)
    for const in code.co_consts:
        if isinstance(const, types.CodeType):
            names += _global_names(const)
    return sorted(set(names))


def _feed_module(digest: "hashlib._Hash", module: torch.nn.Module, depth: int, seen: set[int], where: str) -> None:
    for sub_name, sub in module.named_modules():
        digest.update(f"module:{sub_name}:{type(sub).__module__}.{type(sub).__qualname__};".encode())
        forward = getattr(type(sub), "forward", None)
        if isinstance(forward, types.FunctionType):
            _feed_code(digest, forward.__code__, depth + 1, seen, where)
        plain = {k: v for k, v in vars(sub).items() if not k.startswith("_") and k != "training"}
        _feed(digest, plain, depth + 1, seen, f"{where}.{sub_name}" if sub_name else where)
    for key, tensor in module.state_dict().items():
        digest.update(key.encode())
        _feed(digest, tensor, depth + 1, seen, f"{where}.{key}")


def _feed_object(digest: "hashlib._Hash", value: Any, depth: int, seen: set[int], where: str) -> None:
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
        raise Unfingerprintable(f"{where}: a {cls.__module__}.{cls.__qualname__} object has no readable state "
                                f"(a native object?)")
    for klass in cls.__mro__[:-1]:  # the code of the methods that compute the answer
        for attr in ("__call__", "predict", "forward"):
            method = vars(klass).get(attr)
            if isinstance(method, types.FunctionType):
                _feed_code(digest, method.__code__, depth + 1, seen, where)
    digest.update(f"state[{len(state)}](".encode())
    for key in sorted(state, key=repr):
        _feed(digest, key, depth + 1, seen, where)
        _feed(digest, state[key], depth + 1, seen, f"{where}.{key}")
    digest.update(b")")


def combine(fingerprint: str, *parts: object) -> str:
    """``fingerprint`` extended with ``parts`` (options, output kind); ``""`` stays ``""`` (not cacheable)."""
    if not fingerprint:
        return ""
    digest = hashlib.sha256(fingerprint.encode())
    try:
        _feed(digest, list(parts), 0, set(), "options")
    except (Unfingerprintable, RecursionError):
        return ""
    return digest.hexdigest()[:16]
