"""Batched feature extraction in torch, on the model's device, for Hugging Face audio classifiers.

The Hugging Face feature extractors run numpy on the CPU one clip at a time; the engine sends
thousands of queries per clip, so that is where the time goes. This module re-implements the
extractors of the families the adapter supports as batched torch code that reads every setting
(mel filters, windows, lengths, normalisation constants) from the extractor object itself:

- ``Wav2Vec2FeatureExtractor`` (Wav2Vec2, HuBERT, DistilHuBERT, WavLM, Data2VecAudio, …):
  optional per-clip zero-mean / unit-variance normalisation; an all-ones attention mask when the
  extractor returns one (a batch here is always of equal-length clips, so nothing is padded).
- ``ASTFeatureExtractor``: Kaldi-style log-mel filter bank as HF's numpy path computes it (the
  path taken when torchaudio is absent): frames of ``len(window)`` samples every 10 ms, no
  centring, per-frame DC removal, pre-emphasis 0.97, the extractor's window and mel filters,
  power spectrum, mel floor, natural log; zero-padded or truncated to ``max_length`` frames, then
  ``(x - mean) / (2 * std)``.
- ``WhisperFeatureExtractor``: waveform padded (``padding_value``) or truncated to ``n_samples``,
  centred reflect-padded STFT (periodic Hann, ``n_fft``, ``hop_length``), last frame dropped,
  power spectrum through the extractor's ``mel_filters``, ``log10(max(., 1e-10))``, floored at the
  clip's maximum minus 8, then ``(x + 4) / 4``. Like the HF pipeline, no waveform normalisation.

Any other extractor falls back to calling the HF extractor itself (numpy on the CPU, clip batch
as a list) and moving its tensors to the device: correct, but as slow as HF.

Numerically the torch paths run in float32 where HF uses float64 for the AST filter bank; the
tests state and check the tolerances.
"""

from __future__ import annotations

from typing import Any, Callable

import numpy as np
import torch

__all__ = ["FeatureFunction", "feature_function", "wav2vec2_features", "ast_features", "whisper_features",
           "hf_features", "ON_DEVICE_EXTRACTORS"]

AST_HOP_LENGTH = 160
"""HF's numpy AST path steps frames by 160 samples (Kaldi's 10 ms at 16 kHz) whatever the rate."""
AST_PREEMPHASIS = 0.97
AST_MEL_FLOOR = 1.192092955078125e-07
"""Kaldi's float epsilon, the floor HF's numpy AST path applies to the mel energies."""
WHISPER_LOG_FLOOR = 1e-10


def _as_batch(waveforms: torch.Tensor) -> torch.Tensor:
    if waveforms.ndim == 1:
        waveforms = waveforms[None]
    if waveforms.ndim != 2:
        raise ValueError(f"expected waveforms [batch, samples], got shape {tuple(waveforms.shape)}")
    return waveforms.float()


def wav2vec2_features(waveforms: torch.Tensor, extractor: Any, cache: dict | None = None) -> dict[str, torch.Tensor]:
    """``Wav2Vec2FeatureExtractor`` on equal-length clips: ``input_values`` (+ ``attention_mask``)."""
    x = _as_batch(waveforms)
    if getattr(extractor, "do_normalize", False):
        var, mean = torch.var_mean(x, dim=-1, unbiased=False, keepdim=True)
        x = (x - mean) / torch.sqrt(var + 1e-7)
    inputs = {"input_values": x}
    if getattr(extractor, "return_attention_mask", False):
        inputs["attention_mask"] = torch.ones(x.shape, dtype=torch.int32, device=x.device)
    return inputs


def _constant(name: str, device: torch.device, make: Callable[[], Any], cache: dict | None) -> torch.Tensor:
    """A float32 constant (filters, window) on ``device``, kept in ``cache`` so it is built once."""
    key = (name, str(device))
    if cache is not None and key in cache:
        return cache[key]
    value = torch.as_tensor(np.asarray(make()), dtype=torch.float32, device=device)
    if cache is not None:
        cache[key] = value
    return value


def _ast_mel_filters(extractor: Any) -> np.ndarray:
    """The extractor's own filters; with torchaudio installed HF skips them, so build them as it would."""
    filters = getattr(extractor, "mel_filters", None)
    if filters is not None:
        return filters
    from transformers.audio_utils import mel_filter_bank

    return mel_filter_bank(num_frequency_bins=257, num_mel_filters=extractor.num_mel_bins, min_frequency=20,
                           max_frequency=extractor.sampling_rate // 2, sampling_rate=extractor.sampling_rate,
                           norm=None, mel_scale="kaldi", triangularize_in_mel_space=True)


def _ast_window(extractor: Any) -> np.ndarray:
    window = getattr(extractor, "window", None)
    if window is not None:
        return window
    from transformers.audio_utils import window_function

    return window_function(400, "hann", periodic=False)


def ast_features(waveforms: torch.Tensor, extractor: Any, cache: dict | None = None) -> dict[str, torch.Tensor]:
    """``ASTFeatureExtractor``: log-mel filter bank [B, max_length, num_mel_bins] as ``input_values``."""
    x = _as_batch(waveforms)
    device = x.device
    mel = _constant("mel", device, lambda: _ast_mel_filters(extractor), cache)  # [n_fft//2+1, n_mels]
    window = _constant("window", device, lambda: _ast_window(extractor), cache)  # [frame_length]
    frame_length = window.shape[0]
    fft_length = 2 * (mel.shape[0] - 1)
    batch, n_samples = x.shape
    n_frames = 1 + (n_samples - frame_length) // AST_HOP_LENGTH if n_samples >= frame_length else 0
    max_length = int(extractor.max_length)
    used = min(n_frames, max_length)
    fbank = torch.zeros(batch, max_length, mel.shape[1], dtype=torch.float32, device=device)
    if used:
        frames = x.unfold(-1, frame_length, AST_HOP_LENGTH)[:, :used]  # [B, F, L], a view
        frames = frames - frames.mean(dim=-1, keepdim=True)
        frames = torch.cat([frames[..., :1] * (1.0 - AST_PREEMPHASIS),
                            frames[..., 1:] - AST_PREEMPHASIS * frames[..., :-1]], dim=-1)
        spectrum = torch.fft.rfft(frames * window, n=fft_length)
        power = spectrum.real.square() + spectrum.imag.square()
        fbank[:, :used] = torch.log(torch.clamp(power @ mel, min=AST_MEL_FLOOR))
    if getattr(extractor, "do_normalize", True):
        fbank = (fbank - float(extractor.mean)) / (float(extractor.std) * 2)
    return {"input_values": fbank}


def _fit_length(x: torch.Tensor, length: int, value: float, side: str = "right") -> torch.Tensor:
    """Pad with ``value`` or truncate the last axis to ``length``, as ``SequenceFeatureExtractor.pad`` does."""
    n = x.shape[-1]
    if n > length:
        return x[..., :length]
    if n < length:
        pad = (0, length - n) if side == "right" else (length - n, 0)
        return torch.nn.functional.pad(x, pad, value=value)
    return x


def whisper_features(waveforms: torch.Tensor, extractor: Any, cache: dict | None = None) -> dict[str, torch.Tensor]:
    """``WhisperFeatureExtractor``: log-mel [B, feature_size, nb_max_frames] as ``input_features``.

    Short clips are zero-padded to ``n_samples`` (30 s for real Whisper); frames that lie wholly in
    that zero padding have zero power, so when the padding is zeros on the right and there is no
    dither only the frames that touch the clip go through the STFT and the rest get the log floor.
    """
    x = _as_batch(waveforms)
    device = x.device
    n_samples = int(extractor.n_samples)
    n_fft, hop = int(extractor.n_fft), int(extractor.hop_length)
    n_frames = n_samples // hop  # the STFT gives n_samples // hop + 1 frames; HF drops the last
    padding_value = float(extractor.padding_value)
    side = getattr(extractor, "padding_side", "right")
    dither = float(getattr(extractor, "dither", 0.0) or 0.0)
    window = _constant("window", device, lambda: torch.hann_window(n_fft).numpy(), cache)
    mel = _constant("mel", device, lambda: extractor.mel_filters, cache)  # [n_fft//2+1, n_mels]
    computed = n_samples
    if padding_value == 0.0 and side == "right" and not dither and x.shape[-1] + n_fft < n_samples:
        computed = x.shape[-1] + n_fft  # every frame past this one (and its reflection) is zeros
    x = _fit_length(x, computed, padding_value, side)
    if dither:
        x = x + dither * torch.randn_like(x)
    stft = torch.stft(x, n_fft, hop, window=window, return_complex=True)  # [B, F, computed // hop + 1]
    power = stft[..., :n_frames].abs() ** 2
    mel_power = mel.T @ power
    if mel_power.shape[-1] < n_frames:
        mel_power = torch.nn.functional.pad(mel_power, (0, n_frames - mel_power.shape[-1]))
    log_spec = torch.clamp(mel_power, min=WHISPER_LOG_FLOOR).log10()
    peak = log_spec.amax(dim=(1, 2), keepdim=True)
    log_spec = torch.maximum(log_spec, peak - 8.0)
    return {"input_features": (log_spec + 4.0) / 4.0}


def hf_features(waveforms: torch.Tensor, extractor: Any, cache: dict | None = None) -> dict[str, torch.Tensor]:
    """Fallback: the HF extractor itself (numpy on the CPU), its tensors moved to the waveforms' device."""
    x = _as_batch(waveforms)
    clips = list(x.detach().to("cpu", torch.float32).numpy())
    inputs = extractor(clips, sampling_rate=extractor.sampling_rate, return_tensors="pt")
    return {key: value.to(x.device) for key, value in inputs.items() if isinstance(value, torch.Tensor)}


ON_DEVICE_EXTRACTORS: dict[str, Callable[..., dict[str, torch.Tensor]]] = {
    "Wav2Vec2FeatureExtractor": wav2vec2_features,
    "ASTFeatureExtractor": ast_features,
    "WhisperFeatureExtractor": whisper_features,
}
"""Extractor class name -> on-device implementation. Only the transformers classes of exactly these
names qualify: a subclass may change the computation, so it takes the HF fallback."""


def _on_device_implementation(extractor: Any) -> Callable[..., dict[str, torch.Tensor]] | None:
    cls = type(extractor)
    if not cls.__module__.startswith("transformers."):
        return None
    return ON_DEVICE_EXTRACTORS.get(cls.__name__)


class FeatureFunction:
    """Waveforms [B, T] (float, on the device) -> the model's keyword inputs, on the same device.

    ``on_device`` tells whether the batched torch path is used (else the HF extractor on the CPU).
    """

    def __init__(self, extractor: Any, on_device: bool = True):
        self.extractor = extractor
        implementation = _on_device_implementation(extractor) if on_device else None
        self.on_device = implementation is not None
        self._implementation = implementation or hf_features
        self._cache: dict = {}

    def __call__(self, waveforms: torch.Tensor) -> dict[str, torch.Tensor]:
        return self._implementation(waveforms, self.extractor, self._cache)

    def __repr__(self) -> str:
        return f"FeatureFunction({type(self.extractor).__name__}, {self._implementation.__name__})"


def feature_function(extractor: Any, on_device: bool = True) -> FeatureFunction:
    """The batched feature function for ``extractor``: on-device when its class is known, else HF's."""
    return FeatureFunction(extractor, on_device=on_device)
