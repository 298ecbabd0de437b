"""The black-box classifier the engine queries, and the QueryEngine that batches and counts the queries.

A :class:`Classifier` needs only ``labels``, ``sample_rate`` and ``predict`` (a batch of waveforms to a
batch of probabilities). Every query the engine makes goes through a :class:`QueryEngine`, which
splits the work into batches on the classifier's device, runs them without autograd, counts them,
halves the batch on CUDA out-of-memory and checks what comes back.
"""

from __future__ import annotations

import hashlib
import threading
import time
from typing import Callable, Sequence

import numpy as np
import torch

from . import spectrum as spec

__all__ = ["Classifier", "ClassifierError", "ClassifierTimeout", "QueryEngine", "resolve_device"]


class ClassifierError(RuntimeError):
    """The classifier could not be loaded or returned something unusable; the message names the model."""


class ClassifierTimeout(ClassifierError):
    """One model call ran past the engine's ``timeout_s``; the engine refuses further queries to that model."""


def resolve_device(device: str | torch.device | None = "auto") -> torch.device:
    """``"auto"`` (or None) means CUDA when available, else CPU; anything else is passed to torch."""
    if device is None or str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(device)


class Classifier:
    """A black-box audio classifier: ``predict(Tensor[B, T]) -> Tensor[B, C]`` of probabilities.

    Subclasses (the adapters) set ``labels``, ``sample_rate``, ``device`` and ``name`` and implement
    :meth:`predict`. ``fingerprint`` identifies the model's content for the result cache.
    """

    labels: list[str]
    sample_rate: int
    device: torch.device
    name: str = "classifier"
    fingerprint: str = ""

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def to(self, device: str | torch.device) -> "Classifier":
        """Move the classifier to ``device`` (a no-op for pure functions)."""
        self.device = resolve_device(device)
        return self

    @classmethod
    def from_callable(cls, fn: Callable[[torch.Tensor], torch.Tensor], labels: Sequence[str], sample_rate: int,
                      device: str | torch.device = "cpu", name: str | None = None,
                      outputs: str = "probs") -> "Classifier":
        """Wrap ``fn(Tensor[B, T]) -> Tensor[B, C]`` (``outputs="logits"`` to have a softmax applied)."""
        return FunctionClassifier(fn, labels, sample_rate, device=device, name=name, outputs=outputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, labels={len(self.labels)}, sample_rate={self.sample_rate})"


class FunctionClassifier(Classifier):
    """A classifier backed by any Python function or ``torch.nn.Module``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], labels: Sequence[str], sample_rate: int,
                 device: str | torch.device = "cpu", name: str | None = None, outputs: str = "probs"):
        if outputs not in ("probs", "logits"):
            raise ValueError(f"outputs must be 'probs' or 'logits', not {outputs!r}")
        self.fn = fn
        self.labels = [str(label) for label in labels]
        self.sample_rate = int(sample_rate)
        self.outputs = outputs
        self.name = name or getattr(fn, "__qualname__", type(fn).__name__)
        self.device = resolve_device(device)
        if isinstance(fn, torch.nn.Module):
            fn.to(self.device).eval()
        self.fingerprint = _fingerprint_of(fn, self.labels, self.sample_rate)

    def to(self, device: str | torch.device) -> "FunctionClassifier":
        super().to(device)
        if isinstance(self.fn, torch.nn.Module):
            self.fn.to(self.device)
        return self

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        out = self.fn(waveforms)
        return torch.softmax(out, dim=-1) if self.outputs == "logits" else out


def _fingerprint_of(fn: object, labels: Sequence[str], sample_rate: int) -> str:
    """Content hash: module weights when there are any, else the function's qualified name and code."""
    digest = hashlib.sha256(f"{labels}|{sample_rate}".encode())
    if isinstance(fn, torch.nn.Module):
        for key, value in sorted(fn.state_dict().items()):
            digest.update(key.encode())
            digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    target = getattr(fn, "__func__", fn)
    digest.update(f"{getattr(target, '__module__', '')}.{getattr(target, '__qualname__', type(fn).__name__)}".encode())
    code = getattr(target, "__code__", None) or getattr(getattr(type(fn), "__call__", None), "__code__", None)
    if code is not None:
        digest.update(code.co_code)
        digest.update(repr(code.co_consts).encode())
    for cell in getattr(target, "__closure__", None) or ():  # settings a factory captured (bands, thresholds)
        try:
            _hash_value(digest, cell.cell_contents)
        except ValueError:  # an empty cell
            digest.update(b"<empty>")
    return digest.hexdigest()[:16]


def _hash_value(digest: "hashlib._Hash", value: object, depth: int = 0) -> None:
    """Feed a captured value into the fingerprint: arrays by content, functions by code, else by repr."""
    if isinstance(value, torch.Tensor):
        digest.update(value.detach().cpu().contiguous().numpy().tobytes())
    elif isinstance(value, np.ndarray):
        digest.update(np.ascontiguousarray(value).tobytes())
    elif callable(value) and hasattr(value, "__code__") and depth < 3:
        digest.update(value.__code__.co_code)
        digest.update(repr(value.__code__.co_consts).encode())
        for cell in value.__closure__ or ():
            _hash_value(digest, cell.cell_contents, depth + 1)
    elif isinstance(value, (int, float, str, bytes, bool, tuple, list, dict, type(None))):
        digest.update(repr(value).encode())
    else:
        digest.update(type(value).__qualname__.encode())


class QueryEngine:
    """Runs batches of queries against a classifier and counts every one.

    ``batch_size`` bounds how many waveforms go to the model at once; on CUDA out-of-memory the
    batch is halved and retried, and the smaller size is kept. Results do not depend on batch size
    beyond floating-point noise.

    ``timeout_s`` bounds one model call (one batch): the call runs in a daemon worker thread, and if it
    has not returned in time a :class:`ClassifierTimeout` is raised at once. The stuck call cannot be
    killed, so the engine is then marked hung and every later query fails fast with the same error —
    a hanging model fails its spec instead of hanging CI.
    """

    def __init__(self, classifier: Classifier, batch_size: int = 64, timeout_s: float | None = None):
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        self.classifier = classifier
        self.batch_size = int(batch_size)
        self.timeout_s = timeout_s
        self.hung: str | None = None  # the timeout message once a call has hung
        self.queries = 0
        self.seconds = 0.0

    @property
    def device(self) -> torch.device:
        return self.classifier.device

    def query(self, waveforms: torch.Tensor | np.ndarray) -> np.ndarray:
        """Probabilities [N, C] (float64, host) for a batch of N waveforms [N, T]."""
        waveforms = spec.as_tensor(waveforms, self.device)
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        return self._run(waveforms.shape[0], lambda rows: waveforms[rows])

    def query_spectral(self, spectrum: torch.Tensor, factors: torch.Tensor, n_samples: int) -> np.ndarray:
        """Probabilities for ``irfft(spectrum * factors[i])``; waveforms are built one batch at a time.

        ``factors`` is [N, K]: a bool mask selects bins, a complex tensor mutates them.
        """
        spectrum = spectrum.to(self.device)
        factors = factors.to(self.device)

        def build(rows: slice) -> torch.Tensor:
            chunk = factors[rows]
            if chunk.dtype == torch.bool:
                return spec.masked_waveforms(spectrum, chunk, n_samples)
            return spec.mutated_waveforms(spectrum, chunk, n_samples)

        return self._run(factors.shape[0], build)

    def _run(self, count: int, build: Callable[[slice], torch.Tensor]) -> np.ndarray:
        outputs: list[np.ndarray] = []
        start = 0
        with torch.inference_mode():
            while start < count:
                stop = min(start + self.batch_size, count)
                try:
                    probs = self._predict(build(slice(start, stop)))
                except torch.OutOfMemoryError:
                    if self.batch_size == 1:
                        raise
                    self.batch_size = max(1, self.batch_size // 2)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    continue
                outputs.append(probs)
                self.queries += stop - start
                start = stop
        if not outputs:
            return np.zeros((0, len(self.classifier.labels)))
        return np.concatenate(outputs)

    def _predict(self, batch: torch.Tensor) -> np.ndarray:
        name = self.classifier.name
        if self.hung:
            raise ClassifierTimeout(self.hung)
        began = time.perf_counter()
        if self.timeout_s is None:
            out = self.classifier.predict(batch)
        else:
            out = _call_with_timeout(self.classifier.predict, batch, self.timeout_s)
            if out is _TIMED_OUT:
                self.hung = (f"{name}: a call with {batch.shape[0]} queries did not return within the "
                             f"{self.timeout_s:g} s query timeout (model.timeout_s); the model is treated as hung")
                raise ClassifierTimeout(self.hung)
        self.seconds += time.perf_counter() - began
        if not isinstance(out, torch.Tensor):
            out = torch.as_tensor(np.asarray(out))
        expected = (batch.shape[0], len(self.classifier.labels))
        if tuple(out.shape) != expected:
            raise ClassifierError(f"{name}: predict returned shape {tuple(out.shape)}, expected {expected} "
                                  f"(batch, number of labels)")
        out = out.detach().to("cpu", torch.float64).numpy()
        if not np.all(np.isfinite(out)):
            raise ClassifierError(f"{name}: predict returned NaN or infinite scores")
        return out


_TIMED_OUT = object()


def _call_with_timeout(predict: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, timeout_s: float):
    """``predict(batch)`` in a daemon thread (so a stuck call never blocks exit); ``_TIMED_OUT`` if it is late.

    Exceptions (out-of-memory included) are re-raised here, in the caller's thread.
    """
    box: dict[str, object] = {}

    def work() -> None:
        try:
            with torch.inference_mode():  # inference mode is per thread
                box["out"] = predict(batch)
        except BaseException as exc:  # noqa: BLE001 - handed back to the caller
            box["error"] = exc

    worker = threading.Thread(target=work, name="freqrex-query", daemon=True)
    worker.start()
    worker.join(timeout_s)
    if worker.is_alive():
        return _TIMED_OUT
    if "error" in box:
        raise box["error"]  # type: ignore[misc]
    return box["out"]
