"""Sufficient composition (FreqReX paper §6.1, Table 2): does the model still hear class c in the
superposition of all of c's sufficient signals?

For one model and one class c, the signals are put on a common length, ordered by confidence
(highest first; ties keep input order) and added greedily to a running *average*: an addition is
kept only if the average of everything kept so far plus the candidate still has top-1 label c.
The ratio kept / available is the paper's composition ratio; the composite waveform (the average of
the kept signals) is part of the result so it can be listened to.

**Common length.** ``length="max"`` (default) zero-pads shorter signals at the end — zero is audio's
neutral value, the same convention the engine uses for removed frequencies, and no signal loses
content; ``"min"`` trims every signal to the shortest; an int pads/trims to exactly that many
samples.

**Batching.** The greedy pass is sequential by definition, but its queries are batched
speculatively: the next w candidates are queried at once as if all were kept (the running averages
of the prefixes); everything up to the first rejection is exactly what a one-at-a-time pass would
decide, the rest is discarded. w doubles after a fully accepted window and resets to 1 after a
rejection, so a consistent class costs O(log n) model calls and a conflicting one wastes at most the
remainder of a window. Decisions do not depend on w; ``queries`` counts the discarded ones too.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Sequence

import numpy as np

from ..audio.io import resample
from ..models.classifier import Classifier, QueryEngine
from .codec import Result
from .explanation import Explanation, as_engine

__all__ = ["CompositionResult", "class_spectra", "common_length", "compose", "compose_explanations",
           "composite_spectra", "entropy_tests"]


@dataclass(frozen=True)
class CompositionResult(Result):
    """One class's greedy superposition of signals.

    label / label_name: the class c. available: signals offered; kept: their indices (input order)
    that stayed in the composite, in the order they were added; tried: every index in trial order
    (confidence, highest first) and accepted: the decision for each. ratio = len(kept) / available
    (NaN with no signals). composite: the average of the kept signals at ``sample_rate`` (zeros when
    none was kept); composite_label / composite_confidence: the model's top-1 and its score on it.
    missing: signals that could not be offered (e.g. explanations without that subset).
    """

    label: int
    label_name: str
    sample_rate: int
    length: int
    available: int
    kept: tuple[int, ...]
    tried: tuple[int, ...]
    accepted: tuple[bool, ...]
    ratio: float
    composite: np.ndarray
    composite_label: int | None
    composite_confidence: float | None
    queries: int
    missing: int = 0
    kind: str = "signal"


def common_length(signals: Sequence[np.ndarray], length: str | int = "max") -> np.ndarray:
    """Stack 1-D signals into [N, L]: zero-pad at the end (``"max"``), trim (``"min"``) or fit to an int L."""
    if not signals:
        return np.zeros((0, 0), dtype=np.float32)
    sizes = [len(s) for s in signals]
    if length == "max":
        n = max(sizes)
    elif length == "min":
        n = min(sizes)
    elif isinstance(length, (int, np.integer)) and not isinstance(length, bool) and length > 0:
        n = int(length)
    else:
        raise ValueError(f"length must be 'max', 'min' or a positive int, not {length!r}")
    out = np.zeros((len(signals), n), dtype=np.float32)
    for i, s in enumerate(signals):
        s = np.asarray(s, dtype=np.float32).reshape(-1)[:n]
        out[i, : len(s)] = s
    return out


def _label_index(labels: Sequence[str], label: int | str) -> int:
    if isinstance(label, str):
        if label not in labels:
            raise ValueError(f"label {label!r} is not one of the classifier's labels {list(labels)}")
        return list(labels).index(label)
    if not 0 <= int(label) < len(labels):
        raise ValueError(f"label index {label} is out of range for {len(labels)} labels")
    return int(label)


def compose(classifier: Classifier | QueryEngine, signals: Sequence[np.ndarray], label: int | str,
            confidences: Sequence[float] | None = None, length: str | int = "max",
            sample_rate: int | None = None, kind: str = "signal", missing: int = 0) -> CompositionResult:
    """Greedy average of ``signals`` that keeps class ``label`` (see the module docstring).

    signals: 1-D waveforms at ``sample_rate`` (default: the classifier's; others are resampled).
    confidences: one score per signal deciding the order (highest first); None keeps input order.
    """
    engine = as_engine(classifier)
    clf = engine.classifier
    c = _label_index(clf.labels, label)
    if confidences is not None and len(confidences) != len(signals):
        raise ValueError(f"{len(confidences)} confidences for {len(signals)} signals")
    rate = clf.sample_rate
    waves = [np.asarray(s, dtype=np.float32).reshape(-1) for s in signals]
    if sample_rate is not None and sample_rate != rate:
        waves = [resample(w, sample_rate, rate) for w in waves]
    stacked = common_length(waves, length)
    n = len(waves)
    order = list(range(n)) if confidences is None else sorted(range(n), key=lambda i: (-float(confidences[i]), i))
    began = engine.queries

    total = np.zeros(stacked.shape[1], dtype=np.float64)
    kept: list[int] = []
    tried: list[int] = []
    accepted: list[bool] = []
    position, window = 0, 1
    while position < n:
        batch = order[position: position + window]
        sums = total + np.cumsum(stacked[batch].astype(np.float64), axis=0)
        averages = sums / (len(kept) + np.arange(1, len(batch) + 1))[:, None]
        top = engine.query(averages.astype(np.float32)).argmax(1)
        for j, index in enumerate(batch):
            ok = bool(top[j] == c)
            tried.append(index)
            accepted.append(ok)
            position += 1
            if not ok:
                break
            kept.append(index)
            total = total + stacked[index]
        window = window * 2 if all(top == c) else 1

    composite = (total / len(kept)).astype(np.float32) if kept else np.zeros(stacked.shape[1], dtype=np.float32)
    composite_label = composite_confidence = None
    if kept:
        probs = engine.query(composite[None])[0]
        composite_label, composite_confidence = int(probs.argmax()), float(probs.max())
    return CompositionResult(
        label=c, label_name=clf.labels[c], sample_rate=rate, length=int(stacked.shape[1]), available=n,
        kept=tuple(kept), tried=tuple(tried), accepted=tuple(accepted),
        ratio=len(kept) / n if n else float("nan"), composite=composite, composite_label=composite_label,
        composite_confidence=composite_confidence, queries=engine.queries - began, missing=missing, kind=kind)


def compose_explanations(classifier: Classifier | QueryEngine, explanations: Sequence[Explanation],
                         kind: str = "sufficient", length: str | int = "max") -> dict[str, CompositionResult]:
    """Composition per target class of the explanations' ``kind`` signals, keyed by label name.

    The order within a class is the model's confidence on each signal (``<kind>_confidence``; the
    original clip's confidence for ``kind="original"`` or when absent). Explanations whose subset
    was not found are not offered and are counted in ``missing``. Explanations must come from a
    model with the classifier's label set (checked by name).
    """
    engine = as_engine(classifier)
    labels = list(engine.classifier.labels)
    groups: dict[int, list[Explanation]] = {}
    for exp in explanations:
        if list(exp.labels) != labels:
            raise ValueError(f"explanation labels {list(exp.labels)} differ from the classifier's {labels}")
        groups.setdefault(exp.target, []).append(exp)
    results: dict[str, CompositionResult] = {}
    for target in sorted(groups):
        signals, scores, missing = [], [], 0
        for exp in groups[target]:
            signal = exp.signal(kind)
            if signal is None:
                missing += 1
                continue
            score = getattr(exp, f"{kind}_confidence", None)
            signals.append(resample(signal, exp.sample_rate, engine.classifier.sample_rate))
            scores.append(exp.confidence if score is None else score)
        results[labels[target]] = compose(engine, signals, target, confidences=scores, length=length,
                                          kind=kind, missing=missing)
    return results


def composite_spectra(found: Mapping[str, CompositionResult], explanations: Sequence[Explanation],
                      kind: str = "sufficient", nperseg: int = 256) -> dict[str, dict]:
    """The transferability paper's §5.1–5.2 per class, as plain JSON: the composite's Welch PSD and
    spectral entropy, and the spectral entropy of every clip's ``kind`` signal (for the class tests).

    One implementation, used by the audit's results and the report; see :func:`class_spectra` (what it
    computes from waveforms alone) and :func:`entropy_tests`.
    """
    signals: dict[str, list[np.ndarray]] = {}
    for exp in explanations:
        signal = exp.signal(kind)
        if signal is not None:
            signals.setdefault(exp.target_label, []).append(signal)
    return {name: class_spectra(result.composite if len(result.kept) > 0 else None, result.sample_rate,
                                signals.get(name, []), nperseg)
            for name, result in found.items()}


def class_spectra(composite: np.ndarray | None, sample_rate: int, signals: Sequence[np.ndarray],
                  nperseg: int = 256) -> dict:
    """One class's §5.1–5.2 figures from waveforms alone: the composite's spectral entropy and Welch PSD
    (None without a composite) and the spectral entropy of each clip signal (silent ones left out).

    What both the audit and :mod:`freqrex_audit.runs.spectra` (the rebuild from a run folder) call."""
    from .metrics import spectral_entropy, welch_psd  # metrics imports explain; keep the module light

    psd = welch_psd(composite, sample_rate, nperseg) if composite is not None else None
    entropies = [_finite(spectral_entropy(signal)) for signal in signals]
    return {
        "composite_entropy": _finite(spectral_entropy(composite)) if composite is not None else None,
        "psd_hz": None if psd is None else [float(v) for v in psd.hz],
        "psd_power": None if psd is None else [float(v) for v in psd.power],
        "signal_entropies": [v for v in entropies if v is not None],
    }


def entropy_tests(spectra: Mapping[str, dict]) -> dict[str, dict]:
    """Mann–Whitney U between every pair of classes' signal spectral entropies (the paper's §5.2)."""
    from .metrics import mann_whitney

    names = sorted(spectra)
    tests: dict[str, dict] = {}
    for i, a in enumerate(names):
        for b in names[i + 1:]:
            test = mann_whitney(spectra[a].get("signal_entropies", []), spectra[b].get("signal_entropies", []))
            tests[f"{a} vs {b}"] = {k: _finite(v) if isinstance(v, float) else v for k, v in test.to_dict().items()}
    return tests


def _finite(value: float) -> float | None:
    """JSON-safe number: None for NaN / inf (a silent signal has no spectral entropy)."""
    return float(value) if np.isfinite(value) else None
