"""Models for the scale tests (importable as tests.scale_models:NAME): a fixed-window classifier."""

from __future__ import annotations

from freqrex_audit import Classifier
from tests.audit_models import SR, fragile

WINDOW = SR // 4
"""0.25 s at 8 kHz: like AST or Whisper, the model reads only the clip's first window."""


def windowed(device: str = "cpu") -> Classifier:
    """``fragile`` (440 Hz bin decides) on the first ``WINDOW`` samples only, reporting that window."""
    inner = fragile(device)
    clf = Classifier.from_callable(lambda x: inner.predict(x[:, :WINDOW]), inner.labels, SR, device=device,
                                   name="windowed")
    clf.input_window = WINDOW
    return clf
