"""audio.py: every format loads to the same float32; every bad input raises AudioError naming the file."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile as sf

from freqrex_audit.audio.io import AudioError, int16_roundtrip, load_audio, resample, save_audio, validate_waveform

from .conftest import tone_mix

FORMATS = [  # (suffix, soundfile subtype, tolerance = quantisation step)
    (".wav", "PCM_U8", 2 / 2**8),
    (".wav", "PCM_16", 2 / 2**16),
    (".wav", "PCM_24", 2 / 2**24),
    (".wav", "PCM_32", 1e-6),
    (".wav", "FLOAT", 1e-7),
    (".flac", "PCM_16", 2 / 2**16),
    (".flac", "PCM_24", 2 / 2**24),
]


@pytest.fixture
def clip():
    return 0.5 * tone_mix({440.0: 1.0, 1000.0: 0.5}) / 1.5


@pytest.mark.parametrize("suffix,subtype,tol", FORMATS)
def test_formats_load_to_same_float32(tmp_path, clip, suffix, subtype, tol):
    path = tmp_path / f"clip{suffix}"
    sf.write(path, clip, 8000, subtype=subtype)
    x, rate = load_audio(path)
    assert rate == 8000 and x.dtype == np.float32 and x.shape == clip.shape
    assert np.max(np.abs(x - clip)) <= tol


@pytest.mark.parametrize("fmt,subtype", [("OGG", "VORBIS"), ("MP3", "MPEG_LAYER_III")])
def test_lossy_formats_load(tmp_path, clip, fmt, subtype):
    path = tmp_path / f"clip.{fmt.lower()}"
    try:
        sf.write(path, clip, 8000, format=fmt, subtype=subtype)
    except Exception as exc:  # libsndfile built without this codec
        pytest.skip(f"libsndfile cannot write {fmt}: {exc}")
    x, rate = load_audio(path)
    assert rate == 8000 and x.dtype == np.float32
    assert np.corrcoef(x[: len(clip)][2000:3000], clip[2000:3000])[0, 1] > 0.8


def test_stereo_is_mixed_down_and_resampled(tmp_path, clip):
    path = tmp_path / "stereo.wav"
    sf.write(path, np.stack([clip, 0.5 * clip], axis=1), 8000, subtype="FLOAT")
    x, rate = load_audio(path, sample_rate=16000)
    assert rate == 16000 and x.shape == (2 * len(clip),)
    back = resample(x, 16000, 8000)
    assert np.max(np.abs(back[100:-100] - 0.75 * clip[100:-100])) < 1e-2


@pytest.mark.parametrize("content,problem", [
    (b"", "cannot be decoded"),
    (b"this is not audio at all" * 10, "cannot be decoded"),
    (b"RIFF\x24\x00\x00\x00WAVEfmt ", "cannot be decoded"),
])
def test_unreadable_files_name_the_file(tmp_path, content, problem):
    path = tmp_path / "bad.wav"
    path.write_bytes(content)
    with pytest.raises(AudioError, match="bad.wav") as info:
        load_audio(path)
    assert problem in str(info.value)


def test_missing_file(tmp_path):
    with pytest.raises(AudioError, match="missing.wav: file not found"):
        load_audio(tmp_path / "missing.wav")


@pytest.mark.parametrize("samples,problem", [
    (np.zeros(800, dtype=np.float32), "silence"),
    (np.array([0.1, np.nan, 0.2] * 100, dtype=np.float32), "NaN"),
    (np.array([0.1, np.inf] * 100, dtype=np.float32), "NaN or infinite"),
])
def test_bad_samples_in_files(tmp_path, samples, problem):
    path = tmp_path / "odd.wav"
    sf.write(path, samples, 8000, subtype="FLOAT")
    with pytest.raises(AudioError, match=f"odd.wav.*{problem}"):
        load_audio(path)


def test_empty_array_and_wrong_shape():
    with pytest.raises(AudioError, match="empty"):
        validate_waveform(np.zeros(0), "clip-7")
    with pytest.raises(AudioError, match="clip-8.*1-D"):
        validate_waveform(np.zeros((2, 10)), "clip-8")


def test_save_and_int16_roundtrip(tmp_path, clip):
    path = save_audio(tmp_path / "out.wav", clip, 8000)
    x, _ = load_audio(path)
    assert np.array_equal(x, clip)
    restored = int16_roundtrip(clip, 8000)
    assert restored.dtype == np.float32
    assert 0 < np.max(np.abs(restored - clip)) <= 1 / 2**15
