"""matplotlib figures for the HTML report, returned as ``data:image/png;base64,...`` URIs.

Every function takes numbers read from the results file and draws them; nothing is computed here
that the results do not already hold, except for display-only reductions (envelopes of long
waveforms, so a 30-s clip plots from ~2000 points instead of 480 000).
"""

from __future__ import annotations

import base64
import io
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402

__all__ = ["png_uri", "envelope", "sample_panels", "class_responsibility", "necessary_histogram",
           "transfer_heatmaps", "inverse_counts", "MAX_PLOT_POINTS"]

MAX_PLOT_POINTS = 2000
"""Waveforms and spectra longer than this are drawn from a min/max envelope of this many points."""
DPI = 80
COLOURS = {"sufficient": "#f28e2b", "necessary": "#edc948", "complete": "#e15759"}
plt.rcParams.update({"font.size": 8, "axes.titlesize": 9, "axes.spines.top": False, "axes.spines.right": False,
                     "svg.fonttype": "none"})


def png_uri(fig: "plt.Figure") -> str:
    """Render and close a figure; return it as a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")


def envelope(x: np.ndarray, y: np.ndarray, points: int = MAX_PLOT_POINTS) -> tuple[np.ndarray, np.ndarray]:
    """At most ``points`` (x, y) pairs that keep every peak: min and max of each chunk, interleaved."""
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if len(y) <= points:
        return x, y
    chunks = points // 2
    edges = np.linspace(0, len(y), chunks + 1).astype(int)
    lo = np.minimum.reduceat(y, edges[:-1])
    hi = np.maximum.reduceat(y, edges[:-1])
    xs = x[edges[:-1]]
    return np.repeat(xs, 2), np.column_stack([lo, hi]).ravel()


def sample_panels(waveform: np.ndarray, sample_rate: int, hz: np.ndarray, responsibility: np.ndarray,
                  magnitude: np.ndarray, subsets: Mapping[str, np.ndarray | None],
                  sufficient_signal: np.ndarray | None, title: str = "") -> str:
    """The paper's Figure 1: (a) signal, (b) responsibility over Hz, (c) sufficient / necessary /
    complete bins over the spectrum, (d) the reconstructed sufficient signal."""
    fig, axes = plt.subplots(1, 4, figsize=(13, 2.1))
    t = np.arange(len(waveform)) / sample_rate
    axes[0].plot(*envelope(t, waveform), lw=0.5, color="#4e79a7")
    axes[0].set(title="(a) signal", xlabel="s")
    axes[1].plot(*envelope(hz, responsibility), lw=0.7, color="#59a14f")
    axes[1].set(title="(b) responsibility", xlabel="Hz")
    axes[2].plot(*envelope(hz, magnitude), lw=0.4, color="#bab0ac")
    # complete ⊇ necessary ⊇ sufficient: draw the larger sets first so each added layer stays visible
    for kind in ("complete", "necessary", "sufficient"):
        bins = subsets.get(kind)
        if bins is not None and len(bins):
            axes[2].vlines(hz[bins], 0, magnitude[bins], color=COLOURS[kind], lw=0.8,
                           label=f"{kind} ({len(bins)})")
    axes[2].set(title="(c) subsets over the spectrum", xlabel="Hz")
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(fontsize=6, frameon=False, loc="upper right")
    if sufficient_signal is not None:
        axes[3].plot(*envelope(t, waveform), lw=0.5, color="#d9d9d9")
        axes[3].plot(*envelope(t, sufficient_signal), lw=0.5, color=COLOURS["sufficient"])
        axes[3].set(title="(d) sufficient signal", xlabel="s")
    else:
        axes[3].text(0.5, 0.5, "no sufficient subset found", ha="center", va="center", transform=axes[3].transAxes)
        axes[3].set(title="(d) sufficient signal")
    for ax in axes:
        ax.tick_params(labelsize=7)
    if title:
        fig.suptitle(title, fontsize=9, x=0.01, ha="left")
    fig.tight_layout()
    return png_uri(fig)


def _grid(n: int, width: float = 13, row_height: float = 1.7, cols: int = 4):
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width, row_height * rows + 0.3), squeeze=False,
                             sharex=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel()


def class_responsibility(series: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Figure 2: average (normalised) responsibility per class over Hz; one small panel per class."""
    fig, axes = _grid(len(series))
    for ax, (label, s) in zip(axes, series.items()):
        ax.plot(*envelope(np.asarray(s["hz"]), np.asarray(s["value"])), lw=0.7, color="#59a14f")
        ax.set_title(str(label))
        ax.set_yticks([])
    for ax in axes[-4:]:
        ax.set_xlabel("Hz")
    fig.tight_layout()
    return png_uri(fig)


def necessary_histogram(series: Mapping[str, Mapping[str, Sequence[float]]]) -> str:
    """Figure 3: how often each frequency band appears in necessary subsets, per class."""
    fig, axes = _grid(len(series))
    for ax, (label, s) in zip(axes, series.items()):
        edges, counts = np.asarray(s["hz_edges"], dtype=float), np.asarray(s["counts"], dtype=float)
        ax.stairs(counts, edges, fill=True, color="#edc948", alpha=0.9)
        ax.set_title(str(label))
    for ax in axes[-4:]:
        ax.set_xlabel("Hz")
    fig.tight_layout()
    return png_uri(fig)


def transfer_heatmaps(models: Sequence[str], matrices: Mapping[str, np.ndarray], flat_earthers: Sequence[str]) -> str:
    """α / β heatmaps (rows: source, columns: target), values written in; flat-earthers in red with ⚑."""
    fig, axes = plt.subplots(1, len(matrices), figsize=(3.3 * len(matrices), 3.0), squeeze=False)
    ticks = [f"⚑ {m}" if m in flat_earthers else str(m) for m in models]
    for ax, (title, m) in zip(axes[0], matrices.items()):
        m = np.asarray(m, dtype=float)
        ax.imshow(m, vmin=0, vmax=1, cmap="viridis")
        for (i, j), v in np.ndenumerate(m):
            if np.isfinite(v):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7,
                        color="black" if v > 0.6 else "white")
        ax.set_title(title)
        ax.set_xticks(range(len(models)), ticks, rotation=35, ha="right", fontsize=7)
        ax.set_yticks(range(len(models)), ticks, fontsize=7)
        for tick in list(ax.get_xticklabels()) + list(ax.get_yticklabels()):
            if tick.get_text().startswith("⚑"):
                tick.set_color("#c0392b")
        ax.set_xlabel("target")
        ax.spines[:].set_visible(False)
    axes[0][0].set_ylabel("source")
    fig.tight_layout()
    return png_uri(fig)


def inverse_counts(counts: Mapping[str, int]) -> str:
    """How often each label is what remains once the necessary frequencies are removed."""
    labels = list(counts)
    fig, ax = plt.subplots(figsize=(max(3.0, 0.5 * len(labels) + 1.5), 2.0))
    ax.bar(range(len(labels)), [counts[k] for k in labels], color="#76b7b2")
    ax.set_xticks(range(len(labels)), [str(k) for k in labels], rotation=30, ha="right")
    ax.set_ylabel("clips")
    fig.tight_layout()
    return png_uri(fig)
