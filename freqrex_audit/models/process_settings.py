"""torch's process-wide settings, kept across a model's code: a model may change them while it loads or runs
(silero-vad's import sets one thread), and every clip and spec audited after it would inherit the change."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

__all__ = ["torch_settings_kept"]


@contextmanager
def torch_settings_kept() -> Iterator[None]:
    """Put back the thread count, default dtype and grad mode that the code run inside changed: they are the
    audit's (``--threads``), and a spec's numbers must not depend on which model ran before it."""
    threads, dtype, grad = torch.get_num_threads(), torch.get_default_dtype(), torch.is_grad_enabled()
    try:
        yield
    finally:
        if torch.get_num_threads() != threads:
            torch.set_num_threads(threads)
        if torch.get_default_dtype() != dtype:
            torch.set_default_dtype(dtype)
        if torch.is_grad_enabled() != grad:
            torch.set_grad_enabled(grad)
