"""The black-box classifier the engine queries, and the QueryEngine that batches and counts the queries.

A :class:`Classifier` needs only ``labels``, ``sample_rate`` and ``predict`` (a batch of waveforms to a
batch of probabilities). Every query the engine makes goes through a :class:`QueryEngine`, which
splits the work into batches on the classifier's device, runs them without autograd, counts them,
halves the batch on CUDA out-of-memory and checks what comes back.
"""

from __future__ import annotations

import threading
import time
from typing import Callable, Sequence

import numpy as np
import torch

from ..audio import spectrum as spec
from .fingerprint import NOT_CACHEABLE_HINT, fingerprint_and_reason
from .origins import AlreadyHung, ClassifierError, ClassifierTimeout, describe_exception, source_of
from .padding import pad_mode, padded_rows, resolved
from .process_settings import torch_settings_kept
from ..runtime import deadline
from .boundary import check_labels, check_probabilities, check_sample_rate, output_kind, to_probabilities

__all__ = ["Classifier", "ClassifierError", "ClassifierTimeout", "QueryEngine", "resolve_device", "model_info",
           "cached_probabilities", "PRECISIONS", "to_device", "describe_exception", "source_of", "model_raised"]

PRECISIONS = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}
"""``precision`` (spec ``model.precision``, ``bench --precision``) -> the autocast dtype (None: plain fp32)."""
PRECISION_TOLERANCE = 0.02
"""Largest |confidence difference| of the top label between reduced precision and fp32 on the clip that
still lets the audit trust reduced precision (the label must be the same too)."""


def to_device(x: torch.Tensor, device: torch.device) -> torch.Tensor:
    """``x`` on ``device``; a host tensor bound for CUDA goes through pinned memory with a non-blocking copy."""
    if device.type != "cuda" or x.device.type != "cpu":
        return x.to(device)
    return x.pin_memory().to(device, non_blocking=True)


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
    outputs: str = "probabilities"  # what predict returns once the adapter has converted it
    warnings: list[str] = []  # load-time findings (self-check, cache) that must reach every view; set per instance
    input_window: int | None = None  # samples the model reads from the clip's start (None: all of it); see input_window.py
    origin: str | None = None  # ``file:line`` of the user's code behind the model (errors point there), if known
    fingerprint_problem: str | None = None  # why there is no fingerprint (the attribute that holds a handle…)

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:  # pragma: no cover - interface
        raise NotImplementedError

    def to(self, device: str | torch.device) -> "Classifier":
        """Move the classifier to ``device`` (a no-op for pure functions)."""
        self.device = resolve_device(device)
        return self

    @classmethod
    def from_callable(cls, fn: Callable[[torch.Tensor], torch.Tensor], labels: Sequence[str], sample_rate: int,
                      device: str | torch.device = "cpu", name: str | None = None,
                      outputs: str = "probabilities") -> "Classifier":
        """Wrap ``fn(Tensor[B, T]) -> Tensor[B, C]``; ``outputs`` says what fn returns: ``probabilities``
        (alias ``probs``), ``logits`` (softmaxed) or ``log_probabilities`` (exponentiated)."""
        return FunctionClassifier(fn, labels, sample_rate, device=device, name=name, outputs=outputs)

    def __repr__(self) -> str:
        return f"{type(self).__name__}(name={self.name!r}, labels={len(self.labels)}, sample_rate={self.sample_rate})"


class FunctionClassifier(Classifier):
    """A classifier backed by any Python function or ``torch.nn.Module``."""

    def __init__(self, fn: Callable[[torch.Tensor], torch.Tensor], labels: Sequence[str], sample_rate: int,
                 device: str | torch.device = "cpu", name: str | None = None, outputs: str = "probabilities"):
        self.name = name or getattr(fn, "__qualname__", type(fn).__name__)
        if not callable(fn):
            raise ValueError(f"{self.name}: the model must be callable (waveforms [B, T] -> scores [B, C]), "
                             f"got {type(fn).__name__}")
        self.fn = fn
        self.labels = check_labels(labels, self.name)
        self.sample_rate = check_sample_rate(sample_rate, self.name)
        self.raw_outputs = output_kind(outputs)
        self.warnings = []
        self.device = resolve_device(device)
        if isinstance(fn, torch.nn.Module):
            fn.to(self.device).eval()
        self.fingerprint, self.fingerprint_problem = fingerprint_and_reason(fn, self.labels, self.sample_rate,
                                                                           self.raw_outputs)
        self.origin = source_of(fn)

    def to(self, device: str | torch.device) -> "FunctionClassifier":
        super().to(device)
        if isinstance(self.fn, torch.nn.Module):
            self.fn.to(self.device)
        return self

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        return to_probabilities(self.fn(waveforms), self.raw_outputs)


def model_info(clf: Classifier | None, cache: object | None = None) -> dict:
    """The model section of results: identity, whether results can be cached, and every load/run warning."""
    fingerprint = getattr(clf, "fingerprint", None)
    warnings = [*list(getattr(clf, "warnings", None) or []), *list(getattr(cache, "warnings", None) or [])]
    if clf is not None and not fingerprint:
        why = getattr(clf, "fingerprint_problem", None) or "its code or state cannot be reduced to content"
        warnings.append(f"{clf.name}: not cacheable, its results are not cached: {why}; {NOT_CACHEABLE_HINT}")
    info = {"name": getattr(clf, "name", None), "fingerprint": fingerprint,
            "labels": list(getattr(clf, "labels", []) or []), "sample_rate": getattr(clf, "sample_rate", None),
            "cacheable": bool(fingerprint),  # False: no fingerprint, so never cached (a warning says so)
            "warnings": list(dict.fromkeys(warnings))}
    if getattr(clf, "self_check", None):
        info["self_check"] = dict(clf.self_check)  # type: ignore[union-attr]
        info["self_check"].pop("warnings", None)
    return info


def cached_probabilities(values: object, n_labels: int) -> np.ndarray:
    """A cached probability row, validated like a fresh one (ValueError: the entry is not usable)."""
    probs = np.asarray(values, dtype=np.float64)
    problem = check_probabilities(probs[None] if probs.ndim == 1 else probs, "cache entry", 1, n_labels)
    if problem:
        raise ValueError(problem)
    return probs


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

    def __init__(self, classifier: Classifier, batch_size: int = 64, timeout_s: float | None = None,
                 precision: str = "fp32", pad_calls: str | bool = "off"):  # "auto": as the model's self-check found
        if batch_size < 1:
            raise ValueError(f"batch_size must be ≥ 1, got {batch_size}")
        if precision not in PRECISIONS:
            raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        try:
            name = getattr(classifier, "name", "classifier")
            check_labels(getattr(classifier, "labels", None) or [], name)
            check_sample_rate(getattr(classifier, "sample_rate", None), name)
        except ValueError as exc:
            raise ClassifierError(str(exc)) from None
        self.classifier = classifier
        self.labels = tuple(classifier.labels)  # frozen: a model that changes its labels mid-run is refused
        self.batch_size = int(batch_size)
        # "pairs": a one-row call goes as two rows; "full": as batch_size rows; "auto": pairs where the self-check saw
        # a lone row round otherwise (models.padding)
        self.pad_calls = resolved(pad_mode(pad_calls), getattr(classifier, "self_check", None))
        self.timeout_s = timeout_s
        self.hung: str | None = None  # the timeout message once a call has hung
        self.queries = 0
        self.calls = 0  # model calls (batches sent): queries / calls is the mean batch the engine filled
        self.seconds = 0.0
        self.call_sizes: list[int] = []  # the batch size of every model call, in order (bench replays them)
        self.on_batch: Callable[[int], None] | None = None  # told the query count after every model call (progress)
        self.precision = precision  # what was asked for
        self.autocast: torch.dtype | None = PRECISIONS[precision]  # what runs (None: fp32, also after a fallback)

    @property
    def device(self) -> torch.device:
        return self.classifier.device

    @property
    def origin(self) -> str | None:
        """Where the model's code is defined (``file:line``), when it is the user's."""
        return getattr(self.classifier, "origin", None)

    @property
    def _where(self) -> str:
        return f" (the model's code: {self.origin})" if self.origin else ""

    def query(self, waveforms: torch.Tensor | np.ndarray) -> np.ndarray:
        """Probabilities [N, C] (float64, host) for a batch of N waveforms [N, T]."""
        waveforms = to_device(spec.as_tensor(waveforms), self.device)  # integer PCM is refused there
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        return self._run(waveforms.shape[0], lambda rows: waveforms[rows].clone())  # the caller's clip: the model gets a copy

    def query_spectral(self, spectrum: torch.Tensor, factors: torch.Tensor, n_samples: int) -> np.ndarray:
        """Probabilities for ``irfft(spectrum * factors[i])``; waveforms are built one batch at a time.

        ``factors`` is [N, K]: a bool mask selects bins, a complex tensor mutates them.
        """
        spectrum = to_device(spectrum, self.device)
        factors = to_device(factors, self.device)

        def build(rows: slice) -> torch.Tensor:
            chunk = factors[rows]
            if chunk.dtype == torch.bool:
                return spec.masked_waveforms(spectrum, chunk, n_samples)
            return spec.mutated_waveforms(spectrum, chunk, n_samples)

        return self._run(factors.shape[0], build)

    def _run(self, count: int, build: Callable[[slice], torch.Tensor]) -> np.ndarray:
        """``build(rows)`` must return a tensor the model may own (fresh, or a copy): a model that writes into its
        input cannot corrupt the audit's clip. Synthesised batches are fresh, so they are not copied again."""
        outputs: list[np.ndarray] = []
        start = 0
        with torch.inference_mode():
            while start < count:
                stop = min(start + self.batch_size, count)
                try:
                    probs = self._ask(build(slice(start, stop)))
                except torch.OutOfMemoryError:
                    if self.batch_size == 1:
                        raise
                    self.batch_size = max(1, self.batch_size // 2)
                    if torch.cuda.is_available():
                        torch.cuda.empty_cache()
                    continue
                outputs.append(probs)
                start = stop
        if not outputs:
            return np.zeros((0, len(self.classifier.labels)))
        return np.concatenate(outputs)

    def _ask(self, batch: torch.Tensor) -> np.ndarray:
        """One model call, counted (queries, calls, its size; ``on_batch`` told), padded as ``pad_calls`` says with
        copies of its first row (never counted, their scores dropped): see :func:`pad_mode`."""
        rows = batch.shape[0]
        width = padded_rows(rows, self.pad_calls, self.batch_size)
        if width > rows:
            batch = torch.cat([batch, batch[:1].expand(width - rows, *batch.shape[1:])])
        probs = self._predict(batch)[:rows]
        self.queries += rows
        self.calls += 1
        self.call_sizes.append(rows)
        if self.on_batch is not None:
            self.on_batch(self.queries)
        return probs

    def check_precision(self, x: np.ndarray | torch.Tensor) -> str | None:
        """Trust reduced precision for clip ``x`` only if its top label matches fp32's and the confidence is
        within ``PRECISION_TOLERANCE``; otherwise fall back to fp32 and return the warning (2 queries, counted).

        Returns None when precision is fp32 or the check passed."""
        if PRECISIONS[self.precision] is None:
            return None
        self.autocast = None
        exact = self.query(x)[0]
        self.autocast = PRECISIONS[self.precision]
        reduced = self.query(x)[0]
        top = int(exact.argmax())
        drift = abs(float(reduced[top]) - float(exact[top]))
        if int(reduced.argmax()) == top and drift <= PRECISION_TOLERANCE:
            return None
        self.autocast = None
        return (f"{self.classifier.name}: {self.precision} disagrees with fp32 on the clip (top label "
                f"{int(reduced.argmax())} vs {top}, confidence drift {drift:.3g} > {PRECISION_TOLERANCE}); "
                f"this clip runs in fp32")

    def _model_call(self) -> Callable[[torch.Tensor], torch.Tensor]:
        """The classifier's predict, under autocast when reduced precision is on (autocast is per thread, so it
        is entered inside the call, which may run in the timeout worker thread), with torch's process-wide
        settings put back after it: a model's call that changes the thread count (or the default dtype, or the
        grad mode) would change every later query's numbers."""
        dtype, predict = self.autocast, self.classifier.predict
        device_type = self.device.type if self.device.type in ("cuda", "cpu") else "cpu"

        def call(batch: torch.Tensor) -> torch.Tensor:
            with torch_settings_kept():
                if dtype is None:
                    return predict(batch)
                with torch.autocast(device_type=device_type, dtype=dtype):
                    return predict(batch)

        return call

    def _predict(self, batch: torch.Tensor) -> np.ndarray:
        name = self.classifier.name
        if self.hung:
            raise AlreadyHung(self.hung)
        deadline.check(f"a call with {batch.shape[0]} queries")  # the session deadline: no new model work
        left = deadline.remaining()
        capped = left is not None and (self.timeout_s is None or left < self.timeout_s)  # the deadline comes first
        timeout_s = max(left, 0.001) if capped else self.timeout_s
        began = time.perf_counter()
        predict = self._model_call()
        if timeout_s is None or getattr(self.classifier, "kills_on_timeout", False):
            own = getattr(self.classifier, "timeout_s", None)
            if capped and hasattr(self.classifier, "timeout_s"):
                self.classifier.timeout_s = timeout_s  # the watchdog kills the model process at the deadline
            try:  # a subprocess model enforces the timeout itself, with a hard kill (freqrex_audit.adapters.sandbox)
                out = predict(batch)
            except ClassifierTimeout as exc:
                if capped:
                    raise deadline.DeadlineReached(f"not measured: {deadline.message()} during a model call "
                                                   f"(the model process was killed)") from None
                self.hung = str(exc)
                raise
            except _PASSED_THROUGH:
                raise
            except (Exception, SystemExit, GeneratorExit) as exc:  # noqa: BLE001 - a Ctrl-C still stops the run
                raise model_raised(name, exc, self.origin) from exc
            finally:
                if capped and hasattr(self.classifier, "timeout_s"):
                    self.classifier.timeout_s = own
        else:
            out = _call_with_timeout(predict, batch, timeout_s, name, self.origin)
            if out is _TIMED_OUT:
                if capped:  # abandoned for the deadline: not the model's fault
                    raise deadline.DeadlineReached(f"not measured: {deadline.message()} during a model call "
                                                   f"(the call was abandoned)")
                self.hung = (f"{name}: a call with {batch.shape[0]} queries did not return within the "
                             f"{self.timeout_s:g} s query timeout (model.timeout_s); the model is treated as hung")
                raise ClassifierTimeout(self.hung)
        self.seconds += time.perf_counter() - began
        if list(getattr(self.classifier, "labels", None) or []) != list(self.labels):
            raise ClassifierError(f"{name}: its labels changed during the run (from {list(self.labels)!r} to "
                                  f"{list(getattr(self.classifier, 'labels', None) or [])!r}); scores cannot be "
                                  f"matched to labels, so the model cannot be audited")
        try:
            out = host_scores(out, name)
        except ClassifierError as exc:
            raise ClassifierError(f"{exc}{self._where}") from None
        problem = check_probabilities(out, name, batch.shape[0], len(self.labels))
        if problem:
            raise ClassifierError(problem + self._where)
        return np.clip(out, 0.0, 1.0)


_PASSED_THROUGH = (torch.OutOfMemoryError, ClassifierError, deadline.DeadlineReached)
"""Raised by a model call and handed on as they are: out-of-memory (the engine backs off), already-named model
errors and the session deadline. Anything else the model raises becomes a ClassifierError naming the model."""


def model_raised(name: str, exc: BaseException, origin: str | None = None) -> ClassifierError:
    """A ClassifierError for an exception raised inside a model's predict: the model, the exception, and where
    (the user's line; else ``origin``, where the model's code is defined)."""
    return ClassifierError(f"{name}: predict raised {describe_exception(exc, origin)}")


def host_scores(out: object, name: str) -> np.ndarray:
    """A model's output as a float64 host array; ClassifierError naming the model for anything that is not real
    numbers (complex scores, a tensor with no data such as a meta tensor, objects, strings)."""
    try:
        if isinstance(out, torch.Tensor):
            complex_ = out.is_complex()
            array = None if complex_ else out.detach().to("cpu", torch.float64).numpy()
        else:
            complex_ = np.iscomplexobj(out)
            array = None if complex_ else np.array(out, dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - TypeError, ValueError, NotImplementedError (meta tensors)…
        raise ClassifierError(f"{name}: predict returned {type(out).__name__}, not a [batch, labels] array "
                              f"of numbers ({type(exc).__name__}: {exc})") from None
    if complex_ or array is None:
        raise ClassifierError(f"{name}: predict returned complex numbers, not real probabilities")
    return array


_TIMED_OUT = object()


def _call_with_timeout(predict: Callable[[torch.Tensor], torch.Tensor], batch: torch.Tensor, timeout_s: float,
                       name: str = "classifier", origin: str | None = None):
    """``predict(batch)`` in a daemon thread (so a stuck call never blocks exit); ``_TIMED_OUT`` if it is late.

    Out-of-memory, ClassifierError and the deadline are re-raised here, in the caller's thread; anything else the
    model raises — SystemExit and KeyboardInterrupt included (a real Ctrl-C reaches the main thread, never this
    worker) — becomes a ClassifierError naming the model, so a model cannot end the audit.
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
        error: BaseException = box["error"]  # type: ignore[assignment]
        if isinstance(error, _PASSED_THROUGH):
            raise error
        raise model_raised(name, error, origin) from error
    return box["out"]
