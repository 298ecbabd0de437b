"""Audio in and out: load any soundfile format as float32 mono at a chosen rate, validate it, save it.

Everything the engine sees passes through :func:`load_audio` or :func:`validate_waveform`, so a bad
clip is stopped here with an :class:`AudioError` that names the file and what is wrong with it.
"""

from __future__ import annotations

import io
import errno
import math
import os
import re
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

# soundfile and scipy are imported where they are used: the engine imports this module for its checks
# (validate_waveform, check_same_clip), and a bench machine (benchmarks/gpu.py) may have neither.
if TYPE_CHECKING:
    import soundfile as sf

from ..runtime.paths import shown_name
from .wav_header import wav_length_problem

__all__ = [
    "AudioError",
    "load_audio",
    "read_audio",
    "AudioClip",
    "clipped_share",
    "save_audio",
    "resample",
    "to_mono",
    "validate_waveform",
    "float_samples",
    "check_same_clip",
    "int16_roundtrip",
    "encode_audio",
]

SILENCE_PEAK = 1e-7
"""Peak amplitude at or below which a clip counts as digital silence (an explanation of nothing)."""

MIN_SAMPLE_RATE = 1_000
"""Lowest file sample rate accepted (Hz); lower rates are corrupt headers, not audio to classify."""
MAX_SAMPLE_RATE = 768_000
"""Highest file sample rate accepted (Hz)."""
MIN_SAMPLES = 16
"""Shortest clip analysed: 16 samples give 9 rfft bins; fewer leave FreqReX almost nothing to partition (a 1-sample
clip is one DC bin), so a shorter clip is refused rather than explained as noise."""
MAX_PEAK = 1_000.0
"""A loaded clip peaking above this (60 dB over full scale) is refused: float samples on an integer scale."""
OVER_FULL_SCALE = 1e-3
"""A float clip peaking more than this above 1.0 gets a note (it is analysed, but is not what a 16-bit file holds)."""
CLIP_LEVEL, CLIP_RUN, CLIP_SHARE = 0.9, 3, 0.01
"""Hard clipping: ≥ CLIP_SHARE of the samples in runs of ≥ CLIP_RUN identical values at a peak ≥ CLIP_LEVEL."""
_BLOCK = 1 << 16


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


def checked_rate(value: object, what: str) -> int:
    """``value`` as a sample rate in Hz, or ValueError naming ``what``: an integer in [MIN_SAMPLE_RATE,
    MAX_SAMPLE_RATE]. Every rate a caller hands the audio layer passes here (0 was scipy's "up and down must
    be >= 1", 10⁹ a 4 GB buffer)."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) and not (
            isinstance(value, (float, np.floating)) and float(value).is_integer()):
        raise ValueError(f"{what} must be a whole number of Hz, got {value!r}")
    if not MIN_SAMPLE_RATE <= int(value) <= MAX_SAMPLE_RATE:
        raise ValueError(f"{what} must be {MIN_SAMPLE_RATE:,}–{MAX_SAMPLE_RATE:,} Hz, got {value!r}")
    return int(value)


def resample(samples: np.ndarray, from_rate: int, to_rate: int) -> np.ndarray:
    """Polyphase resampling (scipy.signal.resample_poly) by the exact rational ratio of the rates (each
    checked by :func:`checked_rate`)."""
    from_rate, to_rate = checked_rate(from_rate, "resample: from_rate"), checked_rate(to_rate, "resample: to_rate")
    if from_rate == to_rate:
        return samples
    ratio = Fraction(int(to_rate), int(from_rate))
    from scipy.signal import resample_poly

    return resample_poly(samples, ratio.numerator, ratio.denominator).astype(samples.dtype, copy=False)


def validate_waveform(samples: np.ndarray, source: str | Path = "<waveform>") -> np.ndarray:
    """Return ``samples`` as contiguous float32 mono, or raise AudioError if it is empty, NaN/inf or silent."""
    samples = float_samples(samples, source)
    if samples.ndim != 1:
        raise AudioError(source, f"expected mono 1-D samples, got shape {samples.shape}")
    if samples.size == 0:
        raise AudioError(source, "contains no samples (empty clip)")
    if samples.size < MIN_SAMPLES:
        raise AudioError(source, f"has only {samples.size} sample(s); at least {MIN_SAMPLES} are needed to explain "
                                 f"a clip ({MIN_SAMPLES // 2 + 1} frequency bins)")
    if not np.all(np.isfinite(samples)):
        bad = int(np.count_nonzero(~np.isfinite(samples)))
        raise AudioError(source, f"contains {bad} NaN or infinite sample(s)")
    if float(np.max(np.abs(samples))) <= SILENCE_PEAK:
        raise AudioError(source, "is digital silence (all samples are zero): there is nothing to explain")
    return np.ascontiguousarray(samples, dtype=np.float32)


def float_samples(samples: object, source: str | Path = "<waveform>") -> np.ndarray:
    """``samples`` as a float array; integer PCM is refused (int16 read as floats would be 32768x too loud).

    Convert explicitly first, e.g. ``x.astype(np.float32) / 32768`` for int16.
    """
    array = samples.detach().cpu().numpy() if hasattr(samples, "detach") else np.asarray(samples)
    if array.dtype.kind in "iub":
        full = {1: 128, 2: 32768, 4: 2147483648, 8: 2 ** 63}.get(array.dtype.itemsize, 32768)
        raise AudioError(source, f"samples are {array.dtype} (integer PCM), not floats in [-1, 1]; convert "
                                 f"explicitly, e.g. x.astype(np.float32) / {full}")
    if array.dtype.kind not in "f":
        raise AudioError(source, f"samples must be a float array, got dtype {array.dtype}")
    return array


def check_same_clip(x: np.ndarray, waveform: np.ndarray, what: str = "explanation") -> None:
    """Refuse to attack or verify ``x`` with an ``explanation`` computed for another clip (length or content differ).

    Called at the entry of the attacks: an explanation's bins only mean something for its own waveform.
    """
    x, waveform = np.asarray(x), np.asarray(waveform)
    if x.shape != waveform.shape:
        raise ValueError(f"the {what} was computed for a clip of {waveform.shape[-1] if waveform.ndim else 0} "
                         f"samples, not this one ({x.shape[-1] if x.ndim else 0} samples)")
    if not np.array_equal(x.astype(np.float32), waveform.astype(np.float32)):
        raise ValueError(f"the {what} was computed for another clip (same length, different samples): explain "
                         f"this clip first")


def load_audio(path: str | Path, sample_rate: int | None = None,
               max_seconds: float | None = None) -> tuple[np.ndarray, int]:
    """Read any format soundfile supports (wav, flac, ogg, mp3…) as validated float32 mono.

    With ``sample_rate`` the clip is resampled to it; the returned rate is the clip's rate after that.
    With ``max_seconds`` only the first ``max_seconds`` are kept (and little more is read from the file).
    Anything unusable raises :class:`AudioError` naming the file; see :func:`read_audio` for the rules.
    """
    clip = read_audio(path, sample_rate, max_seconds)
    return clip.samples, clip.sample_rate


@dataclass(frozen=True)
class AudioClip:
    """A loaded clip: float32 mono ``samples`` at ``sample_rate``, what the file was, and notes on it.

    ``notes`` are facts worth telling a reader that do not stop the analysis (hard clipping, the clip
    was cut to ``max_seconds``); an audit stores them with the clip's record.
    """

    samples: np.ndarray
    sample_rate: int
    source_rate: int
    channels: int
    source_seconds: float | None
    notes: tuple[str, ...] = ()


def read_audio(path: str | Path, sample_rate: int | None = None, max_seconds: float | None = None) -> AudioClip:
    """:func:`load_audio` with the file's facts and notes. The rules, each an :class:`AudioError` naming the file:

    * missing file, directory, empty (0-byte) file, text or other non-audio bytes, a file libsndfile
      cannot decode: "cannot be decoded as audio (…)";
    * a WAV whose data chunk is shorter than its header declares (a cut-short copy): "is truncated" —
      never half a clip analysed as if it were whole;
    * a sample rate outside [MIN_SAMPLE_RATE, MAX_SAMPLE_RATE] (a corrupt header);
    * no samples, or fewer than MIN_SAMPLES; NaN or ±inf samples; a peak above MAX_PEAK (float samples on an
      integer scale; a clip peaking above full scale but below it loads with a note);
      digital silence (also when the channels cancel out in the mono mix-down, or when the kept first
      ``max_seconds`` are silent).

    Any bit depth, any channel count (averaged to mono) and any rate in range (resampled exactly with
    ``resample_poly``) load. A clip that looks hard-clipped loads with a note. With ``max_seconds`` the
    file is read in blocks only up to what the first ``max_seconds`` (plus the resampling filter's
    reach) need, so the kept samples equal those of reading the whole file, resampling, then cutting.
    """
    if sample_rate is not None:  # the caller's arguments first: they are not the file's problem
        sample_rate = checked_rate(sample_rate, "load_audio: sample_rate")
    if max_seconds is not None and not (isinstance(max_seconds, (int, float)) and 0 < max_seconds < math.inf):
        raise ValueError(f"load_audio: max_seconds must be a positive number of seconds, got {max_seconds!r}")
    path = Path(path)
    if not path.exists():
        raise AudioError(path, link_problem(path) or "file not found")
    if path.is_dir():
        raise AudioError(path, "is a directory, not an audio file")
    try:
        size = path.stat().st_size
    except OSError as exc:
        raise AudioError(path, f"cannot be read ({exc.strerror or exc})") from None
    if size == 0:
        raise AudioError(path, "cannot be decoded as audio: the file is empty (0 bytes)")
    truncated = wav_length_problem(path, size)
    if truncated:
        raise AudioError(path, truncated)
    import soundfile as sf

    try:
        with sf.SoundFile(str(path)) as handle:
            rate, channels, declared = int(handle.samplerate), int(handle.channels), int(handle.frames)
            if not MIN_SAMPLE_RATE <= rate <= MAX_SAMPLE_RATE:
                raise AudioError(path, f"has a sample rate of {rate} Hz, outside the supported "
                                       f"{MIN_SAMPLE_RATE}–{MAX_SAMPLE_RATE} Hz (a corrupt header?)")
            keep = None if max_seconds is None else max(1, math.ceil(float(max_seconds) * rate))
            want = None if keep is None else keep + _resample_reach(rate, sample_rate)
            raw = _read_blocks(handle, channels, want)
    except AudioError:
        raise
    except Exception as exc:  # noqa: BLE001 - soundfile raises LibsndfileError, RuntimeError, TypeError…
        raise AudioError(path, _decode_problem(path, exc)) from None
    if raw.shape[0] == 0:
        raise AudioError(path, "contains no samples (empty clip)")
    finite = np.isfinite(raw)
    if not finite.all():
        raise AudioError(path, f"contains {int(raw.size - np.count_nonzero(finite))} NaN or infinite sample(s)")
    peak = float(np.max(np.abs(raw)))
    if peak > MAX_PEAK:
        raise AudioError(path, f"has samples up to {peak:.3g}, far beyond full scale (±1): float samples "
                               f"stored on an integer scale? Rescale them to [-1, 1]")
    raw = raw.astype(np.float32)  # within ±MAX_PEAK now, so nothing overflows
    seconds = declared / rate if declared > 0 else None
    cut = keep is not None and (raw.shape[0] > keep or (declared > keep))
    notes: list[str] = []
    if peak > 1.0 + OVER_FULL_SCALE:
        notes.append(f"peaks at {peak:.3g}, above full scale (±1): analysed as is, but a 16-bit copy of it would "
                     f"be clipped")
    share, level = clipped_share(raw if keep is None else raw[:keep])
    if share >= CLIP_SHARE:
        notes.append(f"looks hard-clipped: {share:.0%} of its samples sit in flat runs at its peak "
                     f"(±{level:.2f}); analysed as is")
    mono = to_mono(raw)
    out_rate = rate
    if sample_rate is not None and int(sample_rate) != rate:
        mono = resample(mono, rate, int(sample_rate))
        out_rate = int(sample_rate)
    if max_seconds is not None:
        n = max(1, int(round(float(max_seconds) * out_rate)))
        mono = mono[:n]
        if cut:
            total = f" of {seconds:.3g} s" if seconds else ""
            notes.append(f"longer than {max_seconds:g} s: kept the first {max_seconds:g} s{total}")
    if mono.size and float(np.max(np.abs(mono))) <= SILENCE_PEAK:
        kept = raw if keep is None else raw[:keep]
        if channels > 1 and float(np.max(np.abs(kept))) > SILENCE_PEAK:
            raise AudioError(path, f"its {channels} channels cancel out when mixed down to mono: digital silence")
        if cut:
            raise AudioError(path, f"its first {max_seconds:g} s are digital silence")
    return AudioClip(validate_waveform(mono, path), out_rate, rate, channels, seconds, tuple(notes))


def link_problem(path: Path) -> str | None:
    """Why a symlink cannot be followed (a loop, or a target that does not exist), else None."""
    if not path.is_symlink():
        return None
    try:
        path.resolve(strict=True)
    except RuntimeError:  # Python < 3.13 reports a loop this way
        return "is a symlink loop"
    except OSError as exc:
        if exc.errno == errno.ELOOP:
            return "is a symlink loop"
        try:
            target = os.readlink(path)
        except OSError:
            target = "?"
        return f"is a dangling symlink (its target {shown_name(target)} does not exist)"
    return None


def clipped_share(samples: np.ndarray) -> tuple[float, float]:
    """Share of samples in flat runs at a channel's positive or negative peak, and that peak's magnitude.

    Only peaks at ≥ CLIP_LEVEL of full scale count, and only runs of ≥ CLIP_RUN identical samples (a
    sampled sine's crest is not flat; a clipped one is). Heuristic: a full-scale, very low 8-bit tone
    has flat quantised crests too.
    """
    x = np.asarray(samples, dtype=np.float64)
    x = x[:, None] if x.ndim == 1 else x
    if x.size == 0:
        return 0.0, 0.0
    flat, level = 0, 0.0
    for channel in x.T:
        for side in (channel, -channel):
            top = float(side.max())
            if top < CLIP_LEVEL:
                continue
            on = side >= top - 1e-6 * top
            edges = np.diff(np.concatenate(([0], on.astype(np.int8), [0])))
            lengths = np.flatnonzero(edges == -1) - np.flatnonzero(edges == 1)
            count = int(lengths[lengths >= CLIP_RUN].sum())
            if count:
                flat, level = flat + count, max(level, top)
    return flat / x.size, level


def _read_blocks(handle: "sf.SoundFile", channels: int, want: int | None) -> np.ndarray:
    """Read up to ``want`` frames (all when None) in blocks, so a header's claimed length never sizes a buffer."""
    blocks, total = [], 0
    while want is None or total < want:
        count = _BLOCK if want is None else min(_BLOCK, want - total)
        block = handle.read(count, dtype="float64", always_2d=True)  # float64: huge DOUBLE samples stay finite
        if block.ndim != 2 or block.shape[1] != channels:
            raise ValueError(f"decoder returned samples of shape {block.shape} for {channels} channel(s)")
        if block.shape[0] == 0:
            break
        blocks.append(block)
        total += block.shape[0]
        if block.shape[0] < count:
            break
    return np.concatenate(blocks) if blocks else np.zeros((0, channels), np.float64)


def _resample_reach(rate: int, target: int | None) -> int:
    """Input frames past a cut that resample_poly's filter still reads (its half length, plus slack)."""
    if target is None or int(target) == rate:
        return 0
    ratio = Fraction(int(target), int(rate))
    return math.ceil(10 * max(ratio.numerator, ratio.denominator) / ratio.numerator) + 2


def _decode_problem(path: Path, exc: Exception) -> str:
    """libsndfile's complaint without the path it repeats, and a plainer word for text files."""
    detail = str(exc).strip() or type(exc).__name__
    detail = re.sub(r"^Error opening .*?: ", "", detail, flags=re.S).strip() or type(exc).__name__
    try:
        with path.open("rb") as fh:
            head = fh.read(1024)
    except OSError:
        head = b""
    if head and _looks_like_text(head):
        return f"cannot be decoded as audio: it looks like a text file ({detail})"
    return f"cannot be decoded as audio ({detail})"


def _looks_like_text(head: bytes) -> bool:
    if b"\0" in head:
        return False
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as exc:
        if exc.start < len(head) - 3:
            return False
        text = head[: exc.start].decode("utf-8")
    printable = sum(ch.isprintable() or ch in "\r\n\t" for ch in text)
    return len(text) >= 16 and printable >= 0.95 * len(text)


def save_audio(path: str | Path, samples: np.ndarray, sample_rate: int, subtype: str | None = None) -> Path:
    """Write mono samples; the format follows the suffix (``.wav`` float by default, ``.flac`` 16-bit)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    samples = np.asarray(samples, dtype=np.float32)
    if subtype is None:
        subtype = "FLOAT" if path.suffix.lower() == ".wav" else None
    import soundfile as sf

    sf.write(str(path), samples, int(sample_rate), subtype=subtype)
    return path


def encode_audio(samples: np.ndarray, sample_rate: int, fmt: str = "FLAC", subtype: str = "PCM_24") -> bytes:
    """Encode samples to bytes in memory (FLAC 24-bit by default: lossless, so tiny attacks stay audible)."""
    import soundfile as sf

    buffer = io.BytesIO()
    peak = float(np.max(np.abs(samples))) if np.size(samples) else 0.0
    clipped = np.clip(samples, -1.0, 1.0) if peak > 1.0 else samples
    sf.write(buffer, np.asarray(clipped, dtype=np.float32), int(sample_rate), format=fmt, subtype=subtype)
    return buffer.getvalue()


def int16_roundtrip(samples: np.ndarray, sample_rate: int) -> np.ndarray:
    """What a 16-bit PCM WAV file of ``samples`` reads back as (clipped to [-1, 1], quantised), through
    libsndfile; without soundfile (a bench machine, ``benchmarks/gpu.py``) through :func:`int16_quantised`."""
    clipped = np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0)
    try:
        import soundfile as sf
    except ImportError:
        return int16_quantised(clipped)
    buffer = io.BytesIO()
    sf.write(buffer, clipped, int(sample_rate), format="WAV", subtype="PCM_16")
    buffer.seek(0)
    restored, _ = sf.read(buffer, dtype="float32")
    return restored


def int16_quantised(samples: np.ndarray) -> np.ndarray:
    """libsndfile 1.2's float → PCM_16 → float in numpy: scale to 32-bit, round half to even, keep the top 16
    bits (a floor), read back over 32768. Equal bit for bit to soundfile on libsndfile 1.2.2 (tested); used only
    where soundfile is missing, since other libsndfile versions have rounded differently."""
    scaled = np.rint(np.clip(np.asarray(samples, dtype=np.float32), -1.0, 1.0).astype(np.float64) * 2147483648.0)
    pcm = (np.clip(scaled, -2147483648.0, 2147483647.0).astype(np.int64) >> 16).astype(np.int16)
    return pcm.astype(np.float32) / np.float32(32768)
