"""Figures for one clip (shared by the CLI and the report): the Figure-1-style explanation and an attack's
before/after spectrograms. matplotlib is imported lazily with the Agg backend; each function writes a PNG."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..engine import Explanation, FourierAttack, STFTAttack
from .palette import COLOURS



def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _save(fig, path: str | Path, dpi: int) -> Path:
    """Write ``fig`` as ``path`` (its folder made) and free it."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=dpi)
    _pyplot().close(fig)
    return path


def explanation_figure(exp: Explanation, path: str | Path, title: str | None = None) -> Path:
    """Four panels: the signal, responsibility over Hz, the subsets' bins, the reconstructed sufficient signal."""
    plt = _pyplot()
    rate, n = exp.sample_rate, len(exp.waveform)
    t = np.arange(n) / rate
    hz = np.fft.rfftfreq(n, 1 / rate)
    fig, axes = plt.subplots(4, 1, figsize=(9, 9), constrained_layout=True)
    axes[0].plot(t, exp.waveform, lw=0.6, color=COLOURS["signal"])
    axes[0].set(title=title or f"clip: {exp.target_label} ({exp.confidence:.2f})", xlabel="time (s)",
                ylabel="amplitude")
    axes[1].plot(hz, exp.responsibility, lw=0.8, color=COLOURS["responsibility"])
    axes[1].set(title="responsibility", xlabel="frequency (Hz)", ylabel="responsibility (score)")
    for row, kind in enumerate(("sufficient", "necessary", "complete")):
        bins = exp.hz(kind)
        if bins is not None:
            axes[2].scatter(bins, np.full(len(bins), row), s=6, color=COLOURS[kind],
                            label=f"{kind} ({len(bins):,} of {exp.n_bins:,} bins)")
    axes[2].set(title="subsets", xlabel="frequency (Hz)", yticks=[0, 1, 2],
                yticklabels=["sufficient", "necessary", "complete"], xlim=(0, rate / 2))
    if axes[2].get_legend_handles_labels()[0]:
        axes[2].legend(loc="upper right", frameon=False)
    sufficient = exp.signal("sufficient")
    if sufficient is not None:
        axes[3].plot(t, exp.waveform, lw=0.5, color=COLOURS["spectrum"], label="original")
        axes[3].plot(t, sufficient, lw=0.6, color=COLOURS["sufficient"], label="sufficient")
        axes[3].legend(loc="upper right", frameon=False)
    axes[3].set(title="sufficient signal (reconstructed)", xlabel="time (s)", ylabel="amplitude")
    return _save(fig, path, dpi=100)


def attack_figure(x: np.ndarray, attack: FourierAttack | STFTAttack, path: str | Path, labels: list[str]) -> Path:
    """Spectrograms of the clip before and after the attack, titled with the labels."""
    plt = _pyplot()
    rate = attack.sample_rate
    fig, axes = plt.subplots(2, 1, figsize=(9, 6), constrained_layout=True, sharex=True)
    nfft = min(256, len(x))
    for ax, signal, name in ((axes[0], x, f"before: {labels[attack.original_label]}"),
                             (axes[1], attack.adversarial if attack.adversarial is not None else x,
                              f"after: {labels[attack.new_label] if attack.new_label is not None else 'unchanged'}")):
        with np.errstate(divide="ignore"):  # digital silence in a frame is -inf dB, drawn as the floor
            ax.specgram(signal, NFFT=nfft, Fs=rate, noverlap=nfft * 3 // 4)
        ax.set(title=name, ylabel="frequency (Hz)")
    axes[1].set_xlabel("time (s)")
    return _save(fig, path, dpi=100)


def stft_db(x: np.ndarray, rate: int) -> np.ndarray:
    """Log-magnitude STFT in dB [frequency, frame] (Hann; 512-sample frames at ≥ 16 kHz, else 256; hop frame/4)."""
    frame = 512 if rate >= 16000 else 256
    x = np.asarray(x, np.float64)
    if len(x) < frame:
        x = np.pad(x, (0, frame - len(x)))
    window = np.hanning(frame)
    frames = np.array([np.abs(np.fft.rfft(window * x[i:i + frame])) for i in range(0, len(x) - frame + 1, frame // 4)])
    return 20 * np.log10(frames.T + 1e-6)


def kept_figure(x: np.ndarray, kept: np.ndarray, rate: int, method: str, path: str | Path) -> Path:
    """Spectrograms of the clip and of what an explainer kept, on one colour scale (80 dB range)."""
    plt = _pyplot()
    panels = (("clip", stft_db(x, rate)), (f"{method}: kept", stft_db(kept, rate)))
    top = max(db.max() for _, db in panels)
    fig, axes = plt.subplots(1, 2, figsize=(10, 3.4), sharey=True, constrained_layout=True)
    for ax, (title, db) in zip(axes, panels):
        ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
                  extent=(0, len(x) / rate, 0, rate / 2000))
        ax.set(title=title, xlabel="time (s)")
    axes[0].set_ylabel("frequency (kHz)")
    return _save(fig, path, dpi=90)
