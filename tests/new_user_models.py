"""Models a new user writes around real libraries (issue #30), addressed as ``tests.new_user_models:<name>``.

Each holds what such wrappers hold: a loaded native library (``ctypes.CDLL``: its ``_handle`` is an address
that changes with every process), a handle into native memory (``c_void_p``), a lock. Their scores are the
robust band-energy model's, so the audits they run are short and deterministic.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import threading

import torch

from freqrex_audit.models.classifier import Classifier
from tests.audit_models import SR, robust

LABELS = ["low", "high"]


class WithLibrary:
    """Holds a loaded C library (libm) and a lock, as a wrapper of a native model does; no hidden state."""

    def __init__(self) -> None:
        self.lib = ctypes.CDLL(ctypes.util.find_library("m") or "libm.so.6")
        self.lock = threading.Lock()
        self.inner = robust().fn

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        with self.lock:
            return self.inner(x)


class WithHandle(WithLibrary):
    """Also holds a handle into native memory (as ten-vad's ``vad_handler`` or a pybind session): the model's
    state lives behind it, so nothing the fingerprint can read says what the model answers."""

    def __init__(self) -> None:
        super().__init__()
        self.buffer = ctypes.create_string_buffer(64)
        self.handle = ctypes.c_void_p(ctypes.addressof(self.buffer))


def library_model(device: str = "cpu") -> Classifier:
    return Classifier.from_callable(WithLibrary(), LABELS, SR, device=device, name="with-library")


def handle_model(device: str = "cpu") -> Classifier:
    return Classifier.from_callable(WithHandle(), LABELS, SR, device=device, name="with-handle")


def handle_function(device: str = "cpu"):
    """A plain function over a native handle (labels and rate come from the spec)."""
    return WithHandle()


class Rated:
    """A model object that knows its own rate (like many libraries' models): 16 kHz."""

    sample_rate = 16000

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return robust().fn(x)


def rated_function():
    return Rated()


def logits_without_saying(device: str = "cpu") -> Classifier:
    """Returns logits but declares probabilities: the boundary refuses them and must point here."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.stack([x.sum(-1), -x.sum(-1)], dim=-1) * 100

    return Classifier.from_callable(fn, LABELS, SR, device=device, name="logits")


def fails_in_torch(device: str = "cpu") -> Classifier:
    """Raises inside torch's Python code (an STFT longer than the clip): the error must point at this file's
    line, not at torch/functional.py's."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        frames = torch.stft(x, n_fft=4096, return_complex=True).abs().mean(dim=(-1, -2))
        return torch.stack([frames, frames], dim=-1).softmax(-1)

    return Classifier.from_callable(fn, LABELS, SR, device=device, name="torch-shape")
