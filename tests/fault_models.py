"""Misbehaving versions of ``tests.audit_models.fragile`` for the fault tests (importable as targets).

* ``slow_fragile``: fragile, but every predict call sleeps ``FREQREX_TEST_DELAY`` seconds (read at call
  time from the environment, so the model's fingerprint does not depend on it).
* ``oom_fragile``: fragile, but raises ``torch.OutOfMemoryError`` for batches larger than ``max_batch``
  (what a GPU model does above the batch size that fits in memory).
* ``nan_model`` / ``wrong_shape``: return NaN scores / three scores for a two-label model.
"""

from __future__ import annotations

import os
import time

import torch

from freqrex_audit import Classifier
from tests.audit_models import SR, _tone_bin_amplitude

OOM_RAISED = [0]
"""How many times ``oom_fragile`` ran out of memory (in this process)."""


def _fragile_scores(x: torch.Tensor) -> torch.Tensor:
    score = (_tone_bin_amplitude(x, 440.0) - 0.2) * 40
    return torch.softmax(torch.stack([-score, score], dim=-1), dim=-1)


def fragile(device: str = "cpu") -> Classifier:
    """The well-behaved reference: ``tests.audit_models.fragile``'s decision, same name."""
    return Classifier.from_callable(_fragile_scores, ["quiet", "loud"], SR, device=device, name="fragile")


def slow_fragile(device: str = "cpu") -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        time.sleep(float(os.environ.get("FREQREX_TEST_DELAY", "0")))
        return _fragile_scores(x)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="fragile")


def oom_fragile(device: str = "cpu", max_batch: int = 8) -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > max_batch:
            OOM_RAISED[0] += 1
            raise torch.OutOfMemoryError(f"CUDA out of memory (simulated: batch {x.shape[0]} > {max_batch})")
        return _fragile_scores(x)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="fragile")


def nan_model(device: str = "cpu") -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 2), float("nan"))

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="nan_model")


def wrong_shape(device: str = "cpu") -> Classifier:
    def fn(x: torch.Tensor) -> torch.Tensor:
        return torch.full((x.shape[0], 3), 1 / 3)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="wrong_shape")
