"""The report's explainers section: per clip, each method's kept signal as a player and a spectrogram side by
side; per method, a table of AI, AD, AG, FF and Fid-In with k/n and 95 % intervals, what it kept and what it cost.

A view over the results document only (``specs.<spec>.samples[].methods`` and ``tables.explainers``): the
report renders from a saved run folder alone.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from ..engine.codec import from_jsonable
from . import figures
from .figure_cache import cached_figure
from .clip_figures import stft_db

if TYPE_CHECKING:
    from .cards import AudioBudget

__all__ = ["explainers_view", "MAX_EXPLAINER_CLIPS"]

MAX_EXPLAINER_CLIPS = 4
"""Clips whose kept signals the section shows (the table covers every clip the methods ran on)."""


@cached_figure
def _spectrograms(original: np.ndarray, kept: list[tuple[str, np.ndarray | None]], rate: int) -> str:
    """Log-magnitude STFTs of the clip and of each method's kept signal, on one colour scale (80 dB)."""
    plt = figures.plt
    panels = [("original", original), *kept]
    images = [None if signal is None else stft_db(signal, rate) for _, signal in panels]
    top = max(db.max() for db in images if db is not None)
    fig, axes = plt.subplots(1, len(panels), figsize=(3.4 * len(panels), 2.6), sharey=True)
    axes = np.atleast_1d(axes)
    for ax, (name, _), db in zip(axes, panels, images):
        ax.set_title(name)
        ax.set_xlabel("time (s)")
        if db is None:
            ax.text(0.5, 0.5, "not available", ha="center", va="center", transform=ax.transAxes)
            continue
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, len(original) / rate, 0, rate / 2000))
    axes[0].set_ylabel("frequency (kHz)")
    fig.tight_layout()
    return figures.png_uri(fig)


def _interval(entry: dict | None, percent: bool = False) -> dict:
    entry = entry or {}
    scale = 100.0 if percent else 1.0
    value = entry.get("value")
    return {"value": None if value is None else scale * value, "k": entry.get("k"), "n": entry.get("n"),
            "low": None if entry.get("low") is None else scale * entry["low"],
            "high": None if entry.get("high") is None else scale * entry["high"]}


def _seconds(timing: dict, method: str) -> float | None:
    """Mean wall time per clip of a method, from the run's timings (results.json keeps it out of the tables)."""
    values = [t["methods"][method] for t in (timing.get("samples") or {}).values()
              if method in (t.get("methods") or {})]
    return float(np.mean(values)) if values else None


def _table(summaries: dict[str, dict], timing: dict) -> list[dict]:
    rows = []
    for method, s in summaries.items():
        rows.append({"method": method, "n": s.get("n", 0), "not_measured": s.get("not_measured", 0),
                     "reason": s.get("reason"),
                     **{name: _interval(s.get(name)) for name in ("ai", "ad", "ag", "ff", "fid_in")},
                     "kept_share": s.get("kept_share"), "energy_share": s.get("energy_share"),
                     "queries": s.get("queries"), "gradient_calls": s.get("gradient_calls"),
                     "seconds": _seconds(timing, method)})
    return rows


def explainers_view(spec: dict, arrays: dict, budget: "AudioBudget", anchor: str, timing: dict | None = None,
                    max_clips: int = MAX_EXPLAINER_CLIPS) -> dict | None:
    """The section's context, or None when the spec ran no explainers."""
    summaries = (spec.get("tables") or {}).get("explainers") or {}
    if not summaries:
        return None
    methods = list(summaries)
    clips: list[dict[str, Any]] = []
    for index, sample in enumerate(spec.get("samples") or []):
        found = sample.get("methods") or {}
        if not found or sample.get("explanation") is None or len(clips) >= max_clips:
            continue
        exp = sample["explanation"]
        rate = int(exp["sample_rate"])
        original = np.asarray(from_jsonable(exp["waveform"], arrays), np.float32)
        players, kept = [], []
        for method in methods:
            m = found.get(method) or {}
            signal = from_jsonable(m.get("kept"), arrays) if m.get("available") else None
            signal = None if signal is None else np.asarray(signal, np.float32)
            kept.append((method, signal))
            probs = from_jsonable(m.get("probs"), arrays) if m.get("available") else None
            target = m.get("target")
            players.append({
                "method": method, "available": bool(m.get("available")), "reason": m.get("reason"),
                "uri": budget.uri(signal, rate, f"{anchor}-{index}-{method}") if signal is not None else None,
                "kept_label": None if probs is None else m["labels"][int(np.argmax(probs[1]))],
                "p_kept": None if probs is None else float(probs[1][target]),
                "p_removed": None if probs is None else float(probs[2][target]),
                "kept_share": m.get("kept_share"), "energy_share": m.get("energy_share"),
                "representation": m.get("representation")})
        clips.append({"id": sample["id"], "label": sample.get("label"), "predicted": sample.get("predicted"),
                      "confidence": sample.get("confidence"), "players": players,
                      "original": budget.uri(original, rate, f"{anchor}-{index}-original"),
                      "figure": _spectrograms(original, kept, rate)})
    ran = sum(1 for s in spec.get("samples") or [] if s.get("methods"))
    return {"anchor": anchor, "methods": methods, "table": _table(summaries, timing or {}), "clips": clips,
            "clips_left_out": max(0, ran - len(clips)),
            "notes": list((timing or {}).get("explainers") or [])}
