"""Metrics over signals, explanations and probabilities: SNR, spectral statistics, faithfulness.

Conventions (one place, so reports and tests agree):

* **SNR** (dB) = 10·log10(‖x‖² / ‖x′ − x‖²); +inf when x′ == x.
* **Spectral entropy** is the Shannon entropy (bits) of the normalised power spectrum, divided by
  log2 of the number of spectral points when ``normalise`` (the default), so it lies in [0, 1]:
  0 for all power in one bin (a pure tone at a bin centre), ≈ 1 for white noise. NaN for silence.
* **Faithfulness** follows the L-MAC line of work (Paissan et al. 2024), with c the class the model
  gives the original clip, p = prob of c on the original, p_in on the masked-in (kept subset) signal,
  p_out on the masked-out (complement) signal. Reported as *fractions* in [0, 1] (the papers print
  AI / AD / AG as percentages: multiply by 100):

  - AI  (Average Increase)  = mean 1[p_in > p]
  - AD  (Average Drop)      = mean max(0, p − p_in) / p
  - AG  (Average Gain)      = mean max(0, p_in − p) / (1 − p)        (0 when p = 1)
  - FF  (Faithfulness on spectra) = mean (p − p_out)
  - Fid-In (Input Fidelity) = mean 1[argmax f(x_in) = argmax f(x)]

  Higher AI, AG, FF, Fid-In and lower AD are better.
* **Insertion / deletion**: keep (insertion) or remove (deletion) the top-k bins of the
  responsibility ranking for k on a grid from 0 to K; the AUC is the trapezoid area of the target's
  probability over the kept/removed share k/K ∈ [0, 1]. A good ranking has high insertion and low
  deletion AUC.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np
import torch

from ..audio import spectrum as spec
from ..models.classifier import Classifier, QueryEngine
from .codec import Result
from .summaries import wilson  # noqa: F401  (re-exported: one Wilson interval everywhere)
from .explanation import Explanation, as_engine

__all__ = [
    "ClassResponsibility", "Faithfulness", "FrequencyHistogram", "InsertionDeletion", "InverseHistogram",
    "MannWhitney", "WelchPSD", "class_responsibility", "explanation_faithfulness", "faithfulness",
    "insertion_deletion", "inverse_histogram", "linf", "mann_whitney", "necessary_histogram", "snr_db",
    "spectral_entropy", "welch_psd", "wilson",
]


# --------------------------------------------------------------------------- signal metrics

def _pair(x: np.ndarray, x_adv: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    x = np.asarray(x, dtype=np.float64)
    x_adv = np.asarray(x_adv, dtype=np.float64)
    if x.shape != x_adv.shape:
        raise ValueError(f"signals differ in shape: {x.shape} vs {x_adv.shape}")
    return x, x_adv


def snr_db(x: np.ndarray, x_adv: np.ndarray) -> float:
    """Signal-to-noise ratio of a perturbed signal in dB: 10·log10(‖x‖² / ‖x′ − x‖²) (+inf if equal)."""
    x, x_adv = _pair(x, x_adv)
    noise = float(np.sum((x_adv - x) ** 2))
    power = float(np.sum(x ** 2))
    if noise == 0.0:
        return float("inf")
    if power == 0.0:
        return float("-inf")
    return 10.0 * float(np.log10(power / noise))


def linf(x: np.ndarray, x_adv: np.ndarray) -> float:
    """Largest absolute sample change ‖x′ − x‖∞."""
    x, x_adv = _pair(x, x_adv)
    return float(np.max(np.abs(x_adv - x))) if x.size else 0.0


@dataclass(frozen=True)
class WelchPSD(Result):
    """Welch power spectral density (scipy.signal.welch, Hann window, density scaling)."""

    hz: np.ndarray
    power: np.ndarray
    sample_rate: int
    nperseg: int


def welch_psd(x: np.ndarray, sr: int, nperseg: int = 256) -> WelchPSD:
    """Welch PSD of a mono clip; ``nperseg`` is capped at the clip length."""
    x = np.asarray(x, dtype=np.float64)
    nperseg = int(min(nperseg, len(x)))
    import scipy.signal  # here, not at import: the engine loads without scipy on a bench machine

    hz, power = scipy.signal.welch(x, fs=sr, nperseg=nperseg)
    return WelchPSD(hz=hz, power=power, sample_rate=int(sr), nperseg=nperseg)


def spectral_entropy(x: np.ndarray, sr: int | None = None, *, method: str = "periodogram",
                     normalise: bool = True, nperseg: int = 256) -> float:
    """Entropy of the normalised power spectrum (bits; divided by log2(#points) when ``normalise``).

    ``method="periodogram"`` uses |rfft(x)|² (a pure tone at a bin centre scores 0);
    ``method="welch"`` uses :func:`welch_psd` (smoother, a tone spreads over a few bins). ``sr`` only
    matters for Welch's frequency axis, never for the value. NaN for a silent clip.
    """
    x = np.asarray(x, dtype=np.float64)
    if method == "periodogram":
        power = np.abs(np.fft.rfft(x)) ** 2
    elif method == "welch":
        power = welch_psd(x, sr or 1, nperseg).power
    else:
        raise ValueError(f"method must be 'periodogram' or 'welch', not {method!r}")
    total = power.sum()
    if not np.isfinite(total) or total <= 0 or len(power) < 2:
        return float("nan")
    p = power / total
    p = p[p > 0]
    h = float(-np.sum(p * np.log2(p)))
    return h / np.log2(len(power)) if normalise else h


@dataclass(frozen=True)
class MannWhitney(Result):
    """Two-sided Mann–Whitney U test; ``effect`` is the rank-biserial correlation 2U/(n_a·n_b) − 1."""

    statistic: float
    pvalue: float
    effect: float
    n_a: int
    n_b: int


def mann_whitney(a: Sequence[float], b: Sequence[float]) -> MannWhitney:
    """Mann–Whitney U between two samples (e.g. two classes' spectral entropies); NaNs are dropped.

    With an empty side the statistic, p-value and effect are NaN.
    """
    a = np.asarray(a, dtype=np.float64)
    b = np.asarray(b, dtype=np.float64)
    a, b = a[np.isfinite(a)], b[np.isfinite(b)]
    if len(a) == 0 or len(b) == 0:
        return MannWhitney(float("nan"), float("nan"), float("nan"), len(a), len(b))
    import scipy.stats

    test = scipy.stats.mannwhitneyu(a, b, alternative="two-sided")
    u = float(test.statistic)
    return MannWhitney(u, float(test.pvalue), 2.0 * u / (len(a) * len(b)) - 1.0, len(a), len(b))


# --------------------------------------------------------------------------- faithfulness

@dataclass(frozen=True)
class Faithfulness(Result):
    """L-MAC faithfulness of masked-in / masked-out signals, as fractions (see the module docstring)."""

    ai: float
    ad: float
    ag: float
    ff: float
    fid_in: float
    n: int
    skipped: int = 0


def faithfulness(p_orig: np.ndarray, p_in: np.ndarray, p_out: np.ndarray | None = None,
                 target: np.ndarray | None = None) -> Faithfulness:
    """AI, AD, AG, FF, Fid-In from probabilities [N, C] of original, masked-in and masked-out signals.

    ``target`` (N class indices) defaults to the original's top-1. Without ``p_out`` FF is NaN.
    """
    p_orig = np.atleast_2d(np.asarray(p_orig, dtype=np.float64))
    p_in = np.atleast_2d(np.asarray(p_in, dtype=np.float64))
    if p_in.shape != p_orig.shape:
        raise ValueError(f"p_in has shape {p_in.shape}, p_orig {p_orig.shape}")
    n = p_orig.shape[0]
    if n == 0:
        nan = float("nan")
        return Faithfulness(nan, nan, nan, nan, nan, 0)
    target = p_orig.argmax(1) if target is None else np.asarray(target, dtype=np.int64)
    rows = np.arange(n)
    p, q = p_orig[rows, target], p_in[rows, target]
    ai = float(np.mean(q > p))
    ad = float(np.mean(np.maximum(0.0, p - q) / np.maximum(p, 1e-12)))
    head = 1.0 - p
    ag = float(np.mean(np.where(head > 0, np.maximum(0.0, q - p) / np.where(head > 0, head, 1.0), 0.0)))
    if p_out is None:
        ff = float("nan")
    else:
        p_out = np.atleast_2d(np.asarray(p_out, dtype=np.float64))
        if p_out.shape != p_orig.shape:
            raise ValueError(f"p_out has shape {p_out.shape}, p_orig {p_orig.shape}")
        ff = float(np.mean(p - p_out[rows, target]))
    fid_in = float(np.mean(p_in.argmax(1) == target))
    return Faithfulness(ai=ai, ad=ad, ag=ag, ff=ff, fid_in=fid_in, n=n)


def _masked_probs(engine: QueryEngine, explanation: Explanation, masks: np.ndarray) -> np.ndarray:
    x = spec.as_tensor(explanation.waveform, engine.device)
    return engine.query_spectral(spec.rfft(x), torch.from_numpy(masks), len(explanation.waveform))


def explanation_faithfulness(classifier: Classifier | QueryEngine, explanations: Sequence[Explanation],
                             kind: str = "sufficient") -> Faithfulness:
    """Faithfulness of each explanation's ``kind`` subset, querying original, subset and complement.

    Target = the explanation's ``target``. Explanations whose subset was not found are skipped and
    counted in ``skipped``. Three queries per explanation, one batch each.
    """
    engine = as_engine(classifier)
    orig, kept, removed, targets = [], [], [], []
    skipped = 0
    for exp in explanations:
        bins = exp.bins(kind)
        if bins is None:
            skipped += 1
            continue
        mask = np.zeros((3, exp.n_bins), dtype=bool)
        mask[0] = True
        mask[1, bins] = True
        mask[2] = ~mask[1]
        probs = _masked_probs(engine, exp, mask)
        orig.append(probs[0])
        kept.append(probs[1])
        removed.append(probs[2])
        targets.append(exp.target)
    if not orig:
        nan = float("nan")
        return Faithfulness(nan, nan, nan, nan, nan, 0, skipped)
    result = faithfulness(np.array(orig), np.array(kept), np.array(removed), np.array(targets))
    return Faithfulness(result.ai, result.ad, result.ag, result.ff, result.fid_in, result.n, skipped)


@dataclass(frozen=True)
class InsertionDeletion(Result):
    """Target probability as the top-ranked bins are inserted (kept) or deleted, and the AUCs."""

    fractions: np.ndarray
    insertion: np.ndarray
    deletion: np.ndarray
    insertion_auc: float
    deletion_auc: float
    queries: int


def insertion_deletion(classifier: Classifier | QueryEngine, explanation: Explanation,
                       n_points: int = 32) -> InsertionDeletion:
    """Insertion / deletion curves along ``explanation.ranking`` on a grid of ``n_points`` prefix sizes.

    All 2·n_points masked clips go to the model in one batched call (through the QueryEngine).
    """
    if n_points < 2:
        raise ValueError(f"n_points must be ≥ 2, got {n_points}")
    engine = as_engine(classifier)
    k_total = explanation.n_bins
    ks = np.unique(np.rint(np.linspace(0, k_total, n_points)).astype(np.int64))
    position = np.empty(k_total, dtype=np.int64)
    position[np.asarray(explanation.ranking, dtype=np.int64)] = np.arange(k_total)
    keep = position[None, :] < ks[:, None]
    began = engine.queries
    probs = _masked_probs(engine, explanation, np.concatenate([keep, ~keep]))
    target = explanation.target
    ins, dele = probs[: len(ks), target], probs[len(ks):, target]
    fractions = ks / k_total
    return InsertionDeletion(fractions=fractions, insertion=ins, deletion=dele,
                             insertion_auc=float(np.trapezoid(ins, fractions)),
                             deletion_auc=float(np.trapezoid(dele, fractions)), queries=engine.queries - began)


# --------------------------------------------------------------------------- explanation statistics

@dataclass(frozen=True)
class InverseHistogram(Result):
    """How often each label is the inverse classification, overall and per original (target) class.

    ``missing`` counts explanations without an inverse label (no necessary/sufficient set).
    """

    counts: dict[str, int]
    by_class: dict[str, dict[str, int]]
    missing: int


def inverse_histogram(explanations: Sequence[Explanation], removed: str = "inverse") -> InverseHistogram:
    """Counts of inverse-classification labels (by name), as in the FreqReX paper's inversion table.

    ``removed``: ``"inverse"`` (the clip without its necessary set, else sufficient; the rule is recorded
    per explanation) or ``"inverse_complete"`` (without its complete set: the transferability paper's).
    """
    attribute = {"inverse": "inverse_label", "inverse_complete": "complete_inverse_label"}[removed]
    counts: Counter[str] = Counter()
    by_class: dict[str, Counter[str]] = {}
    missing = 0
    for exp in explanations:
        index = getattr(exp, attribute)
        if index is None:
            missing += 1
            continue
        name = exp.labels[index]
        counts[name] += 1
        by_class.setdefault(exp.target_label, Counter())[name] += 1
    return InverseHistogram(counts=dict(sorted(counts.items())),
                            by_class={c: dict(sorted(v.items())) for c, v in sorted(by_class.items())},
                            missing=missing)


@dataclass(frozen=True)
class FrequencyHistogram(Result):
    """Counts of a subset's frequencies (Hz) over explanations, overall and per target class."""

    edges_hz: np.ndarray
    counts: np.ndarray
    by_class: dict[str, np.ndarray]
    kind: str
    n_explanations: int
    missing: int


def necessary_histogram(explanations: Sequence[Explanation], bins_hz: int | Sequence[float] = 64,
                        kind: str = "necessary") -> FrequencyHistogram:
    """How often each frequency band appears in the necessary sets (the FreqReX paper's Figure 3).

    ``bins_hz`` is a number of equal bands from 0 to the highest Nyquist among the clips, or the
    band edges in Hz. Every bin of every explanation's subset counts once in the band holding its
    centre frequency. Explanations without the subset are counted in ``missing``.
    """
    found = [(exp, exp.hz(kind)) for exp in explanations]
    missing = sum(hz is None for _, hz in found)
    if np.ndim(bins_hz) == 0:
        nyquist = max((exp.sample_rate / 2 for exp in explanations), default=1.0)
        edges = np.linspace(0.0, nyquist, int(bins_hz) + 1)
    else:
        edges = np.asarray(bins_hz, dtype=np.float64)
    total = np.zeros(len(edges) - 1, dtype=np.int64)
    by_class: dict[str, np.ndarray] = {}
    for exp, hz in found:
        if hz is None:
            continue
        counts, _ = np.histogram(hz, bins=edges)
        total += counts
        by_class[exp.target_label] = by_class.get(exp.target_label, np.zeros_like(total)) + counts
    return FrequencyHistogram(edges_hz=edges, counts=total, by_class=dict(sorted(by_class.items())), kind=kind,
                              n_explanations=len(found) - missing, missing=missing)


@dataclass(frozen=True)
class ClassResponsibility(Result):
    """Average responsibility per target class on a common Hz grid (the FreqReX paper's Figure 2)."""

    hz: np.ndarray
    by_class: dict[str, np.ndarray]
    counts: dict[str, int]
    normalise: str


def _normalised(r: np.ndarray, how: str) -> np.ndarray:
    r = np.asarray(r, dtype=np.float64)
    if how == "max":
        top = r.max() if r.size else 0.0
        return r / top if top > 0 else r
    if how == "sum":
        total = r.sum()
        return r / total if total > 0 else r
    if how == "softmax":
        e = np.exp(r - r.max())
        return e / e.sum()
    if how == "none":
        return r
    raise ValueError(f"normalise must be 'max', 'sum', 'softmax' or 'none', not {how!r}")


def class_responsibility(explanations: Sequence[Explanation], n_points: int = 256,
                         normalise: str = "max") -> ClassResponsibility:
    """Per-class mean of each clip's responsibility map, linearly interpolated onto a common Hz grid.

    Clips of different lengths have different K, so every map is first put on its own bins' centre
    frequencies, normalised (default ``"max"``: each clip's peak is 1, so every clip weighs the same
    whatever its iteration count or length; ``"sum"``, ``"softmax"`` — the paper's Figure 2 — or
    ``"none"``), then interpolated onto ``n_points`` frequencies from 0 to the lowest Nyquist among
    the clips (so every clip covers the whole grid).
    """
    if not explanations:
        return ClassResponsibility(hz=np.zeros(0), by_class={}, counts={}, normalise=normalise)
    top = min(exp.sample_rate / 2 for exp in explanations)
    grid = np.linspace(0.0, top, int(n_points))
    sums: dict[str, np.ndarray] = {}
    counts: dict[str, int] = {}
    for exp in explanations:
        hz = spec.bin_to_hz(np.arange(exp.n_bins), len(exp.waveform), exp.sample_rate)
        curve = np.interp(grid, hz, _normalised(exp.responsibility, normalise))
        name = exp.target_label
        sums[name] = sums.get(name, 0.0) + curve
        counts[name] = counts.get(name, 0) + 1
    return ClassResponsibility(hz=grid, by_class={c: sums[c] / counts[c] for c in sorted(sums)},
                               counts=dict(sorted(counts.items())), normalise=normalise)

