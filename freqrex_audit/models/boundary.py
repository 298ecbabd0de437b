"""What crosses the model boundary: declared output kinds, checked probability rows, unique labels.

A classifier declares what its ``predict`` returns (``probabilities``, ``logits`` or
``log_probabilities``; ``probs`` is an alias of ``probabilities``). Adapters turn logits and
log-probabilities into probabilities with :func:`to_probabilities`; the QueryEngine then checks every
batch with :func:`check_probabilities`, so log-probabilities or unnormalised scores can never be read
as confidences (a silent wrong verdict) — the error says which ``outputs:`` the numbers look like.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import Sequence

import numpy as np
import torch

__all__ = ["OUTPUT_KINDS", "OUTPUT_ALIASES", "output_kind", "to_probabilities", "check_probabilities",
           "check_labels", "check_sample_rate", "ROW_TOLERANCE"]

OUTPUT_KINDS = ("probabilities", "logits", "log_probabilities")
OUTPUT_ALIASES = {"probs": "probabilities"}
ROW_TOLERANCE = 5e-3
"""How far a probability may fall outside [0, 1], and a row's sum away from 1 (float16 models included)."""


def output_kind(kind: str) -> str:
    """The canonical output kind for ``kind`` (aliases resolved); ValueError for anything else."""
    canonical = OUTPUT_ALIASES.get(kind, kind) if isinstance(kind, str) else kind
    if canonical not in OUTPUT_KINDS:
        raise ValueError(f"outputs must be one of {', '.join(OUTPUT_KINDS)} (or 'probs'), not {kind!r}")
    return canonical


def to_probabilities(out: torch.Tensor, kind: str) -> torch.Tensor:
    """Probabilities from a model's raw output of the declared ``kind`` (softmax over the last axis)."""
    kind = output_kind(kind)
    if kind == "probabilities":
        return out
    out = torch.as_tensor(out)
    if not out.is_floating_point():
        out = out.double()
    if kind == "logits":
        return torch.softmax(out, dim=-1)
    return torch.exp(out)


def check_probabilities(probs: np.ndarray, name: str, batch: int, n_labels: int) -> str | None:
    """Why ``probs`` is not a [batch, n_labels] array of probability rows (None when it is).

    The message names the model and, from what the numbers look like, the ``outputs:`` to declare.
    """
    if probs.shape != (batch, n_labels):
        return (f"{name}: predict returned shape {tuple(probs.shape)}, expected {(batch, n_labels)} "
                f"(batch, number of labels)")
    if not np.all(np.isfinite(probs)):
        return f"{name}: predict returned NaN or infinite scores"
    if probs.size == 0:
        return None
    low, high = float(probs.min()), float(probs.max())
    sums = probs.sum(axis=1)
    worst = float(np.max(np.abs(sums - 1.0)))
    if low >= -ROW_TOLERANCE and high <= 1 + ROW_TOLERANCE and worst <= ROW_TOLERANCE:
        return None
    if high <= ROW_TOLERANCE and np.allclose(np.exp(probs).sum(axis=1), 1.0, atol=1e-2):
        hint = "these look like log-probabilities: declare outputs: log_probabilities"
    elif low < -ROW_TOLERANCE or high > 1 + ROW_TOLERANCE:
        hint = "these look like unnormalised scores: declare outputs: logits (a softmax is applied)"
    else:
        hint = ("the rows do not sum to 1 (independent sigmoid scores?): declare outputs: logits to have them "
                "softmaxed, or normalise them in the model")
    return (f"{name}: predict did not return probabilities (values in [{low:.4g}, {high:.4g}], row sums up to "
            f"{worst:.3g} away from 1); {hint}")


def check_labels(labels: Sequence[object], name: str) -> list[str]:
    """The labels as strings; ValueError when there are fewer than two (a lone label is always the top-1, so
    nothing could be flipped and every gate would pass unmeasured) or one is repeated (its verdicts would merge)."""
    if isinstance(labels, (str, bytes, Mapping)) or not isinstance(labels, Iterable):
        raise ValueError(f"{name}: labels must be a list of class names, got {type(labels).__name__}")
    labels = [str(label) for label in labels]
    if len(labels) < 2:
        raise ValueError(f"{name}: a classifier needs at least two labels, got {len(labels)} ({labels!r}): with one, "
                         f"every clip keeps its label whatever is done to it, so nothing could be measured")
    seen: set[str] = set()
    repeated = sorted({label for label in labels if label in seen or seen.add(label)})  # type: ignore[func-returns-value]
    if repeated:
        raise ValueError(f"{name}: labels must be unique; repeated: {', '.join(map(repr, repeated))}")
    return labels


def check_sample_rate(sample_rate: object, name: str) -> int:
    """An integer sample rate within the rates audio files may have (audio.MIN_SAMPLE_RATE–MAX_SAMPLE_RATE);
    ValueError otherwise (0 Hz puts every frequency at 0 Hz; 10⁹ Hz would resample a 1-s clip to 4 GB)."""
    from ..audio.io import MAX_SAMPLE_RATE, MIN_SAMPLE_RATE

    if isinstance(sample_rate, bool) or not isinstance(sample_rate, (int, np.integer, float)) or \
            not math.isfinite(sample_rate) or not float(sample_rate).is_integer() or int(sample_rate) < 1:
        raise ValueError(f"{name}: sample_rate must be a positive integer (samples per second), got {sample_rate!r}")
    if not MIN_SAMPLE_RATE <= int(sample_rate) <= MAX_SAMPLE_RATE:
        raise ValueError(f"{name}: sample_rate {int(sample_rate)} Hz is outside the supported "
                         f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz")
    return int(sample_rate)
