"""The input window a classifier actually consumes, and the long-audio policy that follows from it.

Feature extractors with a fixed input length (AST's ``max_length`` frames, Whisper's ``n_samples``)
ignore every sample past their first window. Masking and mutating those samples costs synthesis and
FFT time without changing any answer, and the frequencies found would describe audio the model never
heard. So the audit and ``explain`` crop a longer clip to the model's window first and say so in the
sample's notes.

Policy (README: "Long audio"): the **first** window is audited (what the model itself classifies when
given the whole clip); a clip no longer than the window, or a model without a fixed window
(``input_window`` None: Wav2Vec2-style models, plain callables), is audited whole.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["crop_to_input_window", "extractor_window", "window_note"]

from .adapters.features import AST_HOP_LENGTH


def extractor_window(extractor: Any) -> int | None:
    """Samples a Hugging Face feature extractor reads from the start of a clip; None when unbounded.

    AST: ``max_length`` frames of ``len(window)`` (400) samples every 160 → (max_length − 1)·160 + 400.
    Whisper: ``n_samples`` (padded or truncated to it). Anything else (Wav2Vec2-style): None.
    """
    kind = type(extractor).__name__
    if kind == "ASTFeatureExtractor" and getattr(extractor, "max_length", None):
        window = getattr(extractor, "window", None)
        frame = len(window) if window is not None else 400
        return (int(extractor.max_length) - 1) * AST_HOP_LENGTH + frame
    if kind == "WhisperFeatureExtractor" and getattr(extractor, "n_samples", None):
        return int(extractor.n_samples)
    return None


def window_note(n_samples: int, window: int, sample_rate: int) -> str:
    """The sample note that tells results and report the clip was cropped, and to what."""
    return (f"cropped to the model's {window / sample_rate:g} s input window "
            f"(first {window} of {n_samples} samples; the model ignores the rest)")


def crop_to_input_window(x: np.ndarray, classifier: Any) -> tuple[np.ndarray, str | None]:
    """``x`` cut to the classifier's ``input_window`` (first window), with the note; unchanged and None when
    the model has no fixed window or the clip already fits."""
    window = getattr(classifier, "input_window", None)
    if not window or len(x) <= int(window):
        return x, None
    window = int(window)
    return np.ascontiguousarray(x[:window]), window_note(len(x), window, int(classifier.sample_rate))
