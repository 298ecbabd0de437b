"""The input window a classifier actually consumes, and the long-audio policy that follows from it.

Feature extractors with a fixed input length (AST's ``max_length`` frames, Whisper's ``n_samples``)
ignore every sample past their first window. Masking and mutating those samples costs synthesis and
FFT time without changing any answer, and the frequencies found would describe audio the model never
heard. So the audit and ``explain`` crop a longer clip to the model's window first and say so in the
sample's notes.

Policy (README: "Long audio"): the **first** window is audited (what the model itself classifies when
given the whole clip); a clip no longer than the window, or a model without a fixed window
(``input_window`` None: Wav2Vec2-style models, plain callables), is audited whole. With
``dataset.windows: all`` every window of a longer clip becomes a sample of its own
(:func:`expand_windows`, :func:`cut_window`): back to back from the start, the last one kept when it holds at
least half a window.
"""

from __future__ import annotations

from typing import Any

import dataclasses
import math

import numpy as np

__all__ = ["crop_to_input_window", "cut_window", "expand_windows", "window_note"]


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


def window_count(n_samples: int, window: int) -> int:
    """Windows a clip of ``n_samples`` is audited as under ``windows: all``: back to back, the last kept when it
    holds at least half a window (a shorter tail is a sliver the model would hear mostly as padding)."""
    if n_samples <= window:
        return 1
    full, tail = divmod(n_samples, window)
    return full + (1 if 2 * tail >= window else 0)


def expand_windows(samples: list, classifier: Any, max_seconds: float) -> list:
    """``dataset.windows: all``: each sample longer than the model's window becomes one sample per window,
    ids ``<id>@<start>s``. Lengths come from the file header (read at most ``max_seconds``); a clip whose
    header cannot be read stays one sample, and reading it later reports the problem."""
    import soundfile as sf

    window = getattr(classifier, "input_window", None)
    if not window:
        return list(samples)
    window, rate = int(window), int(classifier.sample_rate)
    out = []
    for sample in samples:
        try:
            seconds = 0.0 if sample.problem else min(float(sf.info(str(sample.path)).duration), max_seconds)
        except Exception:  # noqa: BLE001 - an unreadable header is reported when the clip is read
            seconds = 0.0
        count = window_count(int(math.floor(seconds * rate)), window) if math.isfinite(seconds) else 1
        if count == 1:
            out.append(sample)
            continue
        out += [dataclasses.replace(sample, id=f"{sample.id}@{k * window / rate:g}s", window=k) for k in range(count)]
    return out


def cut_window(x: np.ndarray, sample: Any, classifier: Any) -> tuple[np.ndarray, str | None]:
    """The clip a sample stands for: its input window (``windows: all``), else the first window
    (:func:`crop_to_input_window`); with the note that says which part of the recording it is."""
    index = getattr(sample, "window", None)
    window = getattr(classifier, "input_window", None)
    if index is None or not window:
        return crop_to_input_window(x, classifier)
    window, rate = int(window), int(classifier.sample_rate)
    start = index * window
    if start >= len(x):
        from ..audio.io import AudioError

        raise AudioError(str(sample.path), f"window {index + 1} starts at {start / rate:g} s, past the decoded "
                                           f"audio ({len(x) / rate:g} s): the file is shorter than its header says")
    part = np.ascontiguousarray(x[start:start + window])
    return part, (f"window {index + 1} of the recording: {start / rate:g}–{(start + len(part)) / rate:g} s "
                  f"(dataset.windows: all; the model's input window is {window / rate:g} s)")
