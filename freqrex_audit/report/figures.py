"""matplotlib figures for the HTML report, returned as ``data:image/png;base64,...`` URIs.

Every function draws numbers read from the results file; nothing is computed here except display-only
reductions (envelopes of long waveforms). Figures use the Okabe-Ito palette (safe for the common colour
vision deficiencies), label both axes with units, and draw every class the model has, saying so when a
class has no data rather than leaving it out.
"""

from __future__ import annotations

import base64
import io
import threading
from typing import Mapping, Sequence

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import matplotlib.figure  # noqa: E402
import matplotlib.ticker  # noqa: E402,F401
import numpy as np  # noqa: E402
from matplotlib.backends.backend_agg import FigureCanvasAgg  # noqa: E402
from matplotlib.transforms import Bbox  # noqa: E402

from .figure_cache import cached_figure  # noqa: E402
from .palette import COLOURS, OKABE_ITO  # noqa: E402

__all__ = ["png_uri", "envelope", "sample_panels", "class_responsibility", "necessary_histogram",
           "inverse_counts", "composite_psd", "tallest_per_column", "fitted_png_uri", "MAX_PLOT_POINTS", "OKABE_ITO"]

MAX_PLOT_POINTS = 2000
"""Waveforms and spectra longer than this are drawn from a min/max envelope of this many points."""
DPI = 80
plt.rcParams.update({"font.size": 12, "axes.titlesize": 13, "axes.labelsize": 12, "legend.fontsize": 11,
                     "xtick.labelsize": 11, "ytick.labelsize": 11, "axes.spines.top": False,
                     "axes.spines.right": False, "svg.fonttype": "none", "axes.titley": 1.0})


def png_uri(fig: "plt.Figure") -> str:
    """Render and close a figure; return it as a base64 PNG data URI."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return _data_uri(_palette_png(buffer.getvalue()))


def _data_uri(png: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(png).decode("ascii")


CARD_LAYOUT = {"left": 0.065, "right": 0.985, "bottom": 0.205, "top": 0.874, "wspace": 0.36}
"""A sample card's fixed margins: the widest ``tight_layout`` chose over a 143-gate demo run's 42 cards (left
0.055–0.061, right ≥ 0.985, bottom 0.205, top 0.874, wspace 0.29–0.33) plus room. Laying the card out once
instead of through ``tight_layout`` and ``bbox_inches="tight"`` (two more passes over every tick and label)
made a card ~1.6× faster; ``fitted_png_uri`` still falls back to ``tight_layout`` when a label would not fit."""


def fitted_png_uri(fig: "plt.Figure", gap_px: float = 2.0, close: bool = True) -> str:
    """Like ``png_uri`` for a figure laid out with fixed margins, in one draw: the figure is drawn once, checked
    (every panel, with its ticks, labels, title and legend, inside the figure and clear of its neighbour; else
    ``tight_layout`` and a second draw), then cropped to its ink plus ``bbox_inches="tight"``'s 0.1 in pad.
    ``close=False`` keeps the figure open (the reused sample card)."""
    fig.set_dpi(DPI)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    boxes = sorted((ax.get_tightbbox(renderer) for ax in fig.axes if ax.get_visible()), key=lambda b: b.x0)
    width, height = fig.canvas.get_width_height()
    fits = all(b.x0 >= 0 and b.y0 >= 0 and b.x1 <= width and b.y1 <= height for b in boxes) and all(
        right.x0 - left.x1 >= gap_px for left, right in zip(boxes, boxes[1:]))
    if not fits:
        fig.tight_layout()
        fig.canvas.draw()
    rgb = np.array(fig.canvas.buffer_rgba())[..., :3]  # a copy: a kept figure's buffer is drawn over next time
    if close:
        plt.close(fig)
    ink = np.any(rgb != 255, axis=2)
    rows, cols = np.flatnonzero(ink.any(axis=1)), np.flatnonzero(ink.any(axis=0))
    if len(rows):
        pad = round(0.1 * DPI)
        rgb = rgb[max(rows[0] - pad, 0):rows[-1] + 1 + pad, max(cols[0] - pad, 0):cols[-1] + 1 + pad]
    from PIL import Image

    return _data_uri(_palette(Image.fromarray(np.ascontiguousarray(rgb))))


def _palette_png(png: bytes, colours: int = 64) -> bytes:
    """The PNG with a 64-colour palette: a plot has few colours, and this makes it 2–4× smaller."""
    from PIL import Image

    small = _palette(Image.open(io.BytesIO(png)).convert("RGB"), colours)
    return small if len(small) < len(png) else png


def _palette(image, colours: int = 64) -> bytes:
    """An RGB image as an optimised PNG with a ``colours``-colour palette."""
    from PIL import Image

    out = io.BytesIO()
    image.quantize(colors=colours, method=Image.Quantize.MEDIANCUT).save(out, format="PNG", optimize=True)
    return out.getvalue()


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


def tallest_per_column(bins: np.ndarray, heights: np.ndarray, n_bins: int,
                       columns: int = MAX_PLOT_POINTS // 2) -> np.ndarray:
    """The bins to draw as vertical lines from 0: of each run of ``n_bins / columns`` adjacent bins, the one
    with the tallest line. Lines from 0 that are far closer than a pixel cover one another, so the panel looks
    the same, and drawing thousands of them (a complete set can hold most of a spectrum's 8,001+ bins) is what
    made a sample card slow."""
    bins = np.asarray(bins)
    if len(bins) <= columns:
        return bins
    width = -(-max(int(n_bins), 1) // columns)
    keys = bins // width
    order = np.lexsort((-np.asarray(heights, dtype=np.float64), keys))
    first = np.ones(len(order), dtype=bool)
    first[1:] = keys[order][1:] != keys[order][:-1]
    return bins[order[first]]


def _khz(ax: "plt.Axes") -> None:
    ax.set_xlabel("frequency (kHz)")
    ax.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda v, _: f"{v / 1000:g}"))


_CARD_LOCK = threading.Lock()
_CARD: list = []
"""The one sample-card figure of this process, made on first use and cleared for each card."""


def _blank_card() -> "tuple[plt.Figure, np.ndarray]":
    """The sample card's figure and its 4 axes, emptied: a card reuses one figure because making 4 axes and their
    ticks was ~30 % of drawing one (a report draws up to 12 cards per spec). The fixed margins are set again (a
    ``tight_layout`` fallback moves them); ``tests/test_report.py`` holds each card to a new figure's bytes."""
    style = dict(matplotlib.rcParams)
    if not _CARD or _CARD[0][2] != style:  # a style changed since (a caller's rc_context): axes and ticks keep the old
        fig = matplotlib.figure.Figure(figsize=(16, 3.2), dpi=DPI)  # not pyplot's: nothing else shows or closes it
        FigureCanvasAgg(fig)
        _CARD[:] = [(fig, fig.subplots(1, 4), style)]
    fig, axes, _ = _CARD[0]
    for ax in axes:  # as a new figure's axes are: no artists, no legend, null data limits, the unit view, autoscaled
        for artist in [*ax.lines, *ax.collections, *ax.texts]:
            artist.remove()
        if ax.get_legend() is not None:
            ax.get_legend().remove()
        ax.dataLim.set_points(Bbox.null().get_points())
        ax.ignore_existing_data_limits = True
        ax.set_xlim(0, 1, auto=True)  # a panel left without data shows a new axes' unit square
        ax.set_ylim(0, 1, auto=True)
        ax.set_xlabel("")
        ax.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
    fig.subplots_adjust(**CARD_LAYOUT)
    return fig, axes


@cached_figure
def sample_panels(waveform: np.ndarray, sample_rate: int, hz: np.ndarray, responsibility: np.ndarray,
                  magnitude: np.ndarray, subsets: Mapping[str, np.ndarray | None],
                  sufficient_signal: np.ndarray | None) -> str:
    """The paper's Figure 1: (a) signal, (b) responsibility over frequency, (c) the sufficient /
    necessary / complete bins over the spectrum, (d) the reconstructed sufficient signal."""
    with _CARD_LOCK:
        return _draw_sample_panels(*_blank_card(), waveform, sample_rate, hz, responsibility, magnitude, subsets,
                                   sufficient_signal)


def _draw_sample_panels(fig: "plt.Figure", axes: np.ndarray, waveform: np.ndarray, sample_rate: int, hz: np.ndarray,
                        responsibility: np.ndarray, magnitude: np.ndarray, subsets: Mapping[str, np.ndarray | None],
                        sufficient_signal: np.ndarray | None) -> str:
    t = np.arange(len(waveform)) / sample_rate
    axes[0].plot(*envelope(t, waveform), lw=0.6, color=COLOURS["signal"])
    axes[0].set(title="(a) clip", xlabel="time (s)", ylabel="amplitude")
    axes[1].plot(*envelope(hz, responsibility), lw=0.8, color=COLOURS["responsibility"])
    axes[1].set(title="(b) responsibility", ylabel="score")
    _khz(axes[1])
    axes[2].plot(*envelope(hz, magnitude), lw=0.5, color=COLOURS["spectrum"], label="spectrum")
    for kind in ("complete", "necessary", "sufficient"):  # largest first so each smaller set stays visible
        bins = subsets.get(kind)
        if bins is not None and len(bins):
            drawn = tallest_per_column(bins, magnitude[bins], len(hz))
            axes[2].vlines(hz[drawn], 0, magnitude[drawn], color=COLOURS[kind], lw=1.0,
                           label=f"{kind} ({len(bins):,} bin{'' if len(bins) == 1 else 's'})")
    axes[2].set(title="(c) subsets on the spectrum", ylabel="|X(f)| (linear)")
    _khz(axes[2])
    axes[2].legend(loc="upper right", framealpha=0.9, edgecolor="none")
    if sufficient_signal is not None:
        axes[3].plot(*envelope(t, waveform), lw=0.5, color=COLOURS["background"], label="clip")
        axes[3].plot(*envelope(t, sufficient_signal), lw=0.6, color=COLOURS["sufficient"], label="sufficient")
        axes[3].legend(loc="upper right", framealpha=0.9, edgecolor="none")
    else:
        axes[3].text(0.5, 0.5, "no sufficient set found", ha="center", va="center", transform=axes[3].transAxes)
    axes[3].set(title="(d) sufficient signal", xlabel="time (s)", ylabel="amplitude")
    return fitted_png_uri(fig, close=False)


def _grid(n: int, cols: int = 4, row_height: float = 2.8):
    cols = max(1, min(cols, n))
    rows = -(-n // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(4.0 * cols, row_height * rows + 0.4), squeeze=False, sharex=True,
                             sharey=True)
    for ax in axes.ravel()[n:]:
        ax.set_visible(False)
    return fig, axes.ravel(), cols


def _no_data(ax: "plt.Axes", label: str, why: str) -> None:
    ax.set_title(label)
    ax.text(0.5, 0.5, why, ha="center", va="center", transform=ax.transAxes, color="#555")


@cached_figure
def class_responsibility(series: Mapping[str, Mapping[str, Sequence[float]]], classes: Sequence[str]) -> str:
    """Figure 2: average responsibility per class over frequency; one panel per model class."""
    names = list(classes) + [c for c in series if c not in classes]
    fig, axes, cols = _grid(len(names))
    for i, (ax, label) in enumerate(zip(axes, names)):
        s = series.get(label)
        if s is None:
            _no_data(ax, label, "no analysed clips")
        else:
            # shown in % of the class's total responsibility per bin (the stored value is a share)
            ax.plot(*envelope(np.asarray(s["hz"]), 100 * np.asarray(s["value"])), lw=0.9,
                    color=COLOURS["responsibility"])
            ax.set_title(str(label))
        if i % cols == 0:
            ax.set_ylabel("mean responsibility\n(% of total per bin)")
        _khz(ax)
    fig.tight_layout()
    return png_uri(fig)


@cached_figure
def necessary_histogram(series: Mapping[str, Mapping[str, Sequence[float]]], classes: Sequence[str]) -> str:
    """Figure 3: how often each frequency band is in a clip's necessary set, per model class."""
    names = list(classes) + [c for c in series if c not in classes]
    fig, axes, cols = _grid(len(names))
    for i, (ax, label) in enumerate(zip(axes, names)):
        s = series.get(label)
        counts = np.asarray((s or {}).get("counts") or [], dtype=float)
        if s is None or not counts.sum():
            _no_data(ax, label, "no necessary sets")  # a class without clips has none either (see Figure 2)
        else:
            ax.stairs(counts, np.asarray(s["hz_edges"], dtype=float), fill=True, color=COLOURS["necessary"])
            ax.set_title(str(label))
            ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
        if i % cols == 0:
            ax.set_ylabel("necessary bins\n(count per band)")
        _khz(ax)
    fig.tight_layout()
    return png_uri(fig)


@cached_figure
def inverse_counts(by_class: Mapping[str, Mapping[str, int]], to_labels: Sequence[str]) -> str:
    """Inverse classification: per clip class (x), the labels its clips get once the necessary frequencies
    are removed, stacked; a clip that keeps its own label is not an inversion and is not drawn."""
    classes = list(by_class)
    fig, ax = plt.subplots(figsize=(max(5.0, 1.0 * len(classes) + 3.0), 3.2))
    bottom = np.zeros(len(classes))
    for i, to in enumerate(to_labels):
        heights = np.array([by_class[c].get(to, 0) for c in classes], dtype=float)
        ax.bar(range(len(classes)), heights, bottom=bottom, color=OKABE_ITO[i % len(OKABE_ITO)], label=str(to))
        bottom += heights
    ax.set_xticks(range(len(classes)), [str(c) for c in classes], rotation=20, ha="right")
    ax.set(xlabel="clip's class", ylabel="clips (count)")
    ax.yaxis.set_major_locator(matplotlib.ticker.MaxNLocator(integer=True))
    ax.legend(title="label without its\nnecessary frequencies", frameon=False, bbox_to_anchor=(1.02, 1),
              loc="upper left")
    fig.tight_layout()
    return png_uri(fig)


@cached_figure
def composite_psd(series: Mapping[str, Mapping[str, Sequence[float] | None]], classes: Sequence[str]) -> str:
    """The transferability paper's §5.1: Welch PSD of each class's composite (log power), one panel a class."""
    names = list(classes) + [c for c in series if c not in classes]
    fig, axes, cols = _grid(len(names))
    for i, (ax, label) in enumerate(zip(axes, names)):
        s = series.get(label) or {}
        hz, power = s.get("psd_hz"), s.get("psd_power")
        if not hz or not power:
            _no_data(ax, label, "no composite")
        else:
            power = np.asarray(power, dtype=float)
            ax.semilogy(np.asarray(hz, dtype=float), np.maximum(power, np.finfo(float).tiny), lw=0.9,
                        color=COLOURS["sufficient"])
            ax.set_title(str(label))
        if i % cols == 0:
            ax.set_ylabel("composite PSD\n(power / Hz)")
        _khz(ax)
    fig.tight_layout()
    return png_uri(fig)
