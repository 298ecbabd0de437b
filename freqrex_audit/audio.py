"""Audio in and out: load any soundfile format as float32 mono at a chosen rate, validate it, save it.

Everything the engine sees passes through :func:`load_audio` or :func:`validate_waveform`, so a bad
clip is stopped here with an :class:`AudioError` that names the file and what is wrong with it.
"""

from __future__ import annotations

import io
from fractions import Fraction
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

__all__ = [
    "AudioError",
    "load_audio",
    "save_audio",
    "resample",
    "to_mono",
    "validate_waveform",
    "int16_roundtrip",
    "encode_audio",
]

SILENCE_PEAK = 1e-7
"""Peak amplitude at or below which a clip counts as digital silence (an explanation of nothing)."""


class AudioError(ValueError):
    """A clip that cannot be analysed; the message names the source and the problem."""

    def __init__(self, source: str | Path, problem: str):
        self.source = str(source)
        self.problem = problem
        super().__init__(f"{self.source}: {problem}")


def to_mono(samples: np.ndarray) -> np.ndarray:
    """Average the channels of a (frames, channels) array; 1-D input is returned as is."""
    samples = np.asarray(samples)
    if samples.ndim == 1:
        return samples
    if samples.ndim != 2:
        raise ValueError(f"expected (frames, channels) audio, got shape {samples.shape}")
    return samples.mean(axis=1)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) by the exact rational ratio of the rates."""
    if from_rate == to_rate:
        return samples
    ratio = Fraction(int(to_rate), int(from_rate))
    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(samples.dtype, copy=False)


def validate_waveform(samples: np.ndarray, source: str | Path = "<waveform>") -> np.ndarray:
    """Return ``samples`` as contiguous float32 mono, or raise AudioError if it is empty, NaN/inf or silent."""
    samples = np.asarray(samples)
    if samples.ndim != 1:
        raise AudioError(source, f"expected mono 1-D samples, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(source, "contains no samples (empty clip)")
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(source, f"contains {bad} NaN or infinite sample(s)")
    if float(np.max(np.abs(samples))) <= SILENCE_PEAK:
        raise AudioError(source, "is digital silence (all samples are zero): there is nothing to explain")
    return np.ascontiguousarray(samples, dtype=np.float32)


def load_audio(path: str | Path, sample_rate: int | None = None) -> tuple[np.ndarray, int]:
    """Read any format soundfile supports (wav, flac, ogg, mp3…) as validated float32 mono.

    With ``sample_rate`` the clip is resampled to it; the returned rate is the clip's rate after that.
    """
    path = Path(path)
    if not path.exists():
        raise AudioError(path, "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    try:
        samples, rate = sf.read(str(path), dtype="float32", always_2d=True)
    except Exception as exc:  # soundfile raises LibsndfileError, RuntimeError, TypeError… for bad files
        detail = str(exc).strip() or type(exc).__name__
        raise AudioError(path, f"cannot be decoded as audio ({detail})") from None
    if samples.shape[0] == 0:
        raise AudioError(path, "contains no samples (empty clip)")
    mono = to_mono(samples)
    if sample_rate is not None and int(sample_rate) != rate:
        mono = resample(mono, rate, int(sample_rate))
        rate = int(sample_rate)
    return validate_waveform(mono, path), int(rate)


def save_audio(path: str | Path, samples: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write mono samples; the format follows the suffix (``.wav`` float by default, ``.flac`` 16-bit)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples, dtype=np.float32)
    if subtype is None:
        subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    sf.write(str(path), samples, int(sample_rate), subtype=subtype)
    return path


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str = "FLAC", subtype: str = "PCM_24") -> bytes:
    """Encode samples to bytes in memory (FLAC 24-bit by default: lossless, so tiny attacks stay audible)."""
    buffer = io.BytesIO()
    peak = float(np.max(np.abs(samples))) if np.size(samples) else 0.0
    clipped = np.clip(samples, -1.0, 1.0) if peak > 1.0 else samples
    sf.write(buffer, np.asarray(clipped, dtype=np.float32), int(sample_rate), format=fmt, subtype=subtype)
    return buffer.getvalue()


def int16_roundtrip(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """What a 16-bit PCM WAV file of ``samples`` reads back as (clipped to [-1, 1], quantised)."""
    buffer = io.BytesIO()
    sf.write(buffer, np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0), int(sample_rate),
             format="WAV", subtype="PCM_16")
    buffer.seek(0)
    restored, _ = sf.read(buffer, dtype="float32")
    return restored

