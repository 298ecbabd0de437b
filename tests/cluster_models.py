"""Models for the executor fault tests (importable as tests.cluster_models:NAME; labels [low, high], 8 kHz).

* ``crashing``: ``tests.hostile_models``' band-energy decision, except in an executor's worker process (a
  process-pool worker or a Ray worker), where its first call kills (``SIGKILL``) or stops (``SIGSTOP``) its
  own process, after writing ``marker`` so a test knows the worker got that far. The driver loads it and
  runs its self-check unharmed.
* ``settings_sensitive``: the same decision, shifted by torch's thread count and by whether
  ``FREQREX_ALLOWED_ROOTS`` is set: its numbers equal a serial run's only where both travelled.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
from pathlib import Path

import torch

from tests.hostile_models import _logits

SPEC = """
model: {target: "tests.%s", labels: [low, high], sample_rate: 8000, options: %s}
dataset: {path: data, clip_seconds: 0.25}
freqrex: {seed: 0, iterations: 2, min_iterations: 1, fragility_check: false}
attack: {query_budget: 30}
checks:
  accuracy: {min: 0.5}
  sufficiency: {max_fraction: 1.0}
"""
"""A small spec over ``tests.audit_models.write_robust_dataset``: ``SPEC % (target, options)``."""
GOOD = SPEC % ("hostile_models:slow", "{sleep_s: 0}")
"""A model that behaves, wherever it runs."""


def in_executor_worker() -> bool:
    """True in a process-pool worker (a named child) or a Ray worker (Ray's default_worker.py)."""
    return (multiprocessing.current_process().name != "MainProcess"
            or os.path.basename(sys.argv[0] if sys.argv else "") == "default_worker.py")


def crashing(device: str = "cpu", how: str = "SIGKILL", marker: str | None = None):
    def fn(x: torch.Tensor) -> torch.Tensor:
        if in_executor_worker():
            if marker:
                Path(marker).mkdir(parents=True, exist_ok=True)
                (Path(marker) / str(os.getpid())).write_text(how)
            os.kill(os.getpid(), getattr(signal, how))
        return torch.softmax(_logits(x), -1)

    return fn


def settings_sensitive(device: str = "cpu"):
    def fn(x: torch.Tensor) -> torch.Tensor:
        shift = 0.01 * torch.get_num_threads() + (0.005 if os.environ.get("FREQREX_ALLOWED_ROOTS") else 0.0)
        return torch.softmax(_logits(x) + shift * torch.tensor([1.0, -1.0]), -1)

    return fn
