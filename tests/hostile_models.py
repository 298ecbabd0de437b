"""Models that misbehave at the boundary (importable as tests.hostile_models:NAME for specs)."""

from __future__ import annotations

import numpy as np
import torch

from freqrex_audit import Classifier

SR = 8000
LABELS = ["low", "high"]


def _logits(x: torch.Tensor) -> torch.Tensor:
    power = torch.fft.rfft(x).abs() ** 2
    k = power.shape[-1] // 4
    share = power[:, :k].sum(-1) / power.sum(-1).clamp_min(1e-12)
    return torch.stack([8 * (share - 0.5), -8 * (share - 0.5)], dim=-1)


def log_probs(device: str = "cpu"):
    """A plain function returning log-probabilities (negative numbers)."""
    return lambda x: torch.log_softmax(_logits(x), dim=-1)


def logits_fn(device: str = "cpu"):
    """A plain function returning unnormalised scores."""
    return _logits


def logits_classifier(device: str = "cpu") -> Classifier:
    """A Classifier whose predict returns logits (declared by the spec, not by the factory)."""
    return Classifier.from_callable(_logits, LABELS, SR, device=device, name="logits_classifier",
                                    outputs="probabilities")


def reversed_rows(device: str = "cpu") -> Classifier:
    """Returns its batch rows in reverse order: every clip but the middle one gets another clip's answer."""
    return Classifier.from_callable(lambda x: torch.softmax(_logits(x), -1).flip(0), LABELS, SR, name="reversed")


def random_outputs(device: str = "cpu") -> Classifier:
    gen = torch.Generator().manual_seed(0)
    return Classifier.from_callable(lambda x: torch.softmax(8 * torch.randn(x.shape[0], 2, generator=gen), -1),
                                    LABELS, SR, name="random")


class WeightedScorer:
    """A callable object whose answer depends on its attribute ``weights`` (not on its code)."""

    def __init__(self, weights: np.ndarray):
        self.weights = weights

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        w = torch.as_tensor(self.weights, dtype=x.dtype)
        return torch.softmax(_logits(x) * w, dim=-1)


def scorer(device: str = "cpu", gain: float = 1.0) -> WeightedScorer:
    return WeightedScorer(np.array([gain, gain]))


NOT_CALLABLE = 42


def gil_hog(device: str = "cpu", after_calls: int = 0):
    """Probabilities for ``after_calls`` calls, then a C call that holds the GIL for 600 s (ctypes.PyDLL)."""
    import ctypes

    calls = [0]

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] > after_calls:
            ctypes.PyDLL(None).sleep(600)  # PyDLL: the GIL stays held for the whole C call
        return torch.softmax(_logits(x), -1)

    return fn


def windowed(device: str = "cpu", window: int = 800, outputs: str = "probabilities") -> Classifier:
    """Reads only its first ``window`` samples, like AST's max_length or Whisper's n_samples (input_window)."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        scores = _logits(x[:, :window])
        return scores if outputs == "logits" else torch.softmax(scores, -1)

    clf = Classifier.from_callable(fn, LABELS, SR, device=device, name="windowed")
    clf.input_window = window
    return clf


def slow(device: str = "cpu", sleep_s: float = 0.1, after_calls: int = 0, load_s: float = 0.0):
    """A well-behaved model that sleeps ``sleep_s`` per call after its first ``after_calls`` (e.g. the load's
    self-check) — a stand-in for a big model on a slow machine; loading it takes ``load_s``."""
    import time

    time.sleep(load_s)
    calls = [0]

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] > after_calls:
            time.sleep(sleep_s)
        return torch.softmax(_logits(x), -1)

    return fn


CLOCK = [0.0]
"""A fake wall clock for deadline tests: ``ticking`` advances it by ``tick_s`` per call (no real sleeping)."""


def ticking(device: str = "cpu", tick_s: float = 0.01):
    """Each call costs ``tick_s`` seconds of CLOCK: a slow model on a clock the test controls."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        CLOCK[0] += tick_s
        return torch.softmax(_logits(x), -1)

    return fn


def exits_on_call(device: str = "cpu", call: int = 5, how: str = "exit") -> Classifier:
    """Probabilities, except that call number ``call`` runs ``sys.exit(3)`` (``how="exit"``), raises
    KeyboardInterrupt (``"interrupt"``) or a RuntimeError (``"raise"``): a model that tries to end the run."""
    import sys

    calls = [0]

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == call:
            if how == "exit":
                sys.exit(3)
            if how == "interrupt":
                raise KeyboardInterrupt
            raise RuntimeError(f"boom on call {call}")
        return torch.softmax(_logits(x), -1)

    return Classifier.from_callable(fn, LABELS, SR, device=device, name=f"{how}s-on-call-{call}")


def relabelling(device: str = "cpu", after_calls: int = 4) -> Classifier:
    """Swaps its own labels after ``after_calls`` calls: the same scores would then read as the other class."""
    calls = [0]
    clf: list[Classifier] = []

    def fn(x: torch.Tensor) -> torch.Tensor:
        calls[0] += 1
        if calls[0] == after_calls + 1:
            clf[0].labels.reverse()
        return torch.softmax(_logits(x), -1)

    clf.append(Classifier.from_callable(fn, list(LABELS), SR, device=device, name="relabelling"))
    return clf[0]


def factory_exits(device: str = "cpu") -> Classifier:
    """A factory that calls sys.exit while building the model."""
    import sys

    sys.exit(1)


class OddRate(Classifier):
    """A hand-written Classifier subclass (not built by from_callable, so nothing checked it) with any rate/labels."""

    def __init__(self, sample_rate: int, labels: list[str]):
        self.sample_rate, self.labels, self.device, self.name = sample_rate, labels, torch.device("cpu"), "odd-rate"

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        return torch.full((waveforms.shape[0], len(self.labels)), 1 / len(self.labels))


def odd_rate(device: str = "cpu", sample_rate: int = 10 ** 9, labels: tuple[str, ...] = ("low", "high")) -> Classifier:
    return OddRate(sample_rate, list(labels))
