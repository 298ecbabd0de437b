"""The frequency view of a clip: batched rfft / irfft, bin masks → waveforms, STFT / ISTFT, bin ↔ Hz.

All functions take and return torch tensors on whatever device they are given, so the engine keeps
spectra, masks and waveforms on the classifier's device. A subset ``S`` of rfft bins is heard as
``irfft(X * 1_S, n=T)``: removing a frequency sets its bin to zero.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = [
    "n_bins",
    "rfft",
    "irfft",
    "masked_waveforms",
    "mutated_waveforms",
    "stft",
    "istft",
    "bin_to_hz",
    "hz_to_bin",
    "nearest_stft_bins",
    "as_tensor",
]


def as_tensor(x: np.ndarray | torch.Tensor, device: torch.device | str | None = None) -> torch.Tensor:
    """float32 tensor on ``device`` (no copy when it already is one); integer PCM is refused, never rescaled
    silently (:func:`freqrex_audit.audio.io.float_samples`)."""
    if isinstance(x, torch.Tensor) and x.is_floating_point():
        return x.to(device=device or x.device, dtype=torch.float32)
    from .io import float_samples

    samples = np.ascontiguousarray(float_samples(x), dtype=np.float32)
    if not samples.flags.writeable:  # a read-only buffer (a memory map, an npz array): torch would share it
        samples = samples.copy()
    return torch.as_tensor(samples, device=device)


def n_bins(n_samples: int) -> int:
    """Number of rfft bins of a real clip of ``n_samples`` samples: K = T // 2 + 1."""
    return n_samples // 2 + 1


def rfft(x: torch.Tensor) -> torch.Tensor:
    """Complex spectrum of real waveforms along the last axis ([..., T] → [..., K]).

    On the CPU through scipy's pocketfft, as :func:`irfft`: torch's CPU FFT (MKL) splits one long transform over
    its threads, so a 1.5-s clip's spectrum moved by up to 1e-4 between 1 and 2 threads, and a quantising model
    (okay-nabu's int8 TFLite) answered differently: the same clip's explanation took 503 queries at 2 threads and
    535 at 1. pocketfft gives the same numbers whatever the thread count and the batch. (A tensor that needs
    gradients keeps torch's transform, which autograd can follow.)
    """
    if x.device.type == "cpu" and not x.requires_grad:
        import scipy.fft

        values = scipy.fft.rfft(x.detach().numpy(), axis=-1, workers=max(1, torch.get_num_threads()))
        return torch.from_numpy(np.ascontiguousarray(values))
    return torch.fft.rfft(x, dim=-1)


def irfft(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """Real waveforms of length ``n`` from rfft spectra ([..., K] → [..., n]), each row independent of the batch.

    A batched FFT may take another code path than a single one (torch on CPU: up to 1e-6 apart for
    T = 16000), and a quantising model can turn that into a different label. On the CPU the whole batch goes
    to scipy's pocketfft in one call, which transforms every row exactly as it transforms it alone (tested
    for batch sizes 1–70 and odd lengths); elsewhere rows go one at a time. Either way the waveform a
    search queried is bit for bit the one ``Explanation.signal`` hands out.
    """
    if spectrum.device.type == "cpu":
        return _pocketfft_irfft(spectrum, n)
    if spectrum.ndim < 2 or spectrum.shape[0] == 1 and spectrum.ndim == 2:
        return torch.fft.irfft(spectrum, n=n, dim=-1)
    flat = spectrum.reshape(-1, spectrum.shape[-1])
    rows = [torch.fft.irfft(row[None], n=n, dim=-1)[0] for row in flat]
    return torch.stack(rows).reshape(*spectrum.shape[:-1], n)


def _pocketfft_irfft(spectrum: torch.Tensor, n: int) -> torch.Tensor:
    """CPU irfft through scipy.fft (batch-invariant), on as many threads as torch may use."""
    return torch.from_numpy(_irfft_values(spectrum.detach().resolve_conj().numpy(), n))


def _irfft_values(values: np.ndarray, n: int) -> np.ndarray:
    """pocketfft's irfft of host spectra (float32 for complex64 input)."""
    import scipy.fft

    out = scipy.fft.irfft(values, n=n, axis=-1, workers=max(1, torch.get_num_threads()))
    return np.ascontiguousarray(out, dtype=np.float32 if values.dtype == np.complex64 else None)


def masked_waveforms(spectrum: torch.Tensor, masks: torch.Tensor, n: int) -> torch.Tensor:
    """Waveforms keeping only the bins each mask selects: ``irfft(X * mask_b)`` for a [B, K] bool batch."""
    if masks.shape[-1] != spectrum.shape[-1]:
        raise ValueError(f"mask has {masks.shape[-1]} bins, spectrum has {spectrum.shape[-1]}")
    if spectrum.device.type == "cpu" and masks.device.type == "cpu" and masks.dtype == torch.bool:
        # numpy's complex64 × bool is bit for bit torch's complex64 × float32 0/1 (tests/test_engine_speed.py)
        # and ~15× cheaper on the CPU (profiled, #33): no float copy of the masks, one pass, no thread pool
        values = spectrum.detach().resolve_conj().numpy() * masks.numpy()
        return torch.from_numpy(_irfft_values(values, n))
    return irfft(spectrum * masks.to(device=spectrum.device, dtype=spectrum.real.dtype), n)


def mutated_waveforms(spectrum: torch.Tensor, multipliers: torch.Tensor, n: int) -> torch.Tensor:
    """Waveforms with each bin multiplied by a complex factor: ``irfft(X * m_b)`` for a [B, K] batch."""
    return irfft(spectrum * multipliers.to(spectrum.device), n)


def _window(frame_size: int, device: torch.device) -> torch.Tensor:
    return torch.hann_window(frame_size, periodic=True, device=device, dtype=torch.float32)


def stft(x: torch.Tensor, frame_size: int) -> torch.Tensor:
    """Complex STFT with a Hann window and hop = frame_size / 4 ([..., T] → [..., F, frames])."""
    return torch.stft(x, n_fft=frame_size, hop_length=frame_size // 4, window=_window(frame_size, x.device),
                      center=True, return_complex=True)


def istft(spec: torch.Tensor, frame_size: int, length: int) -> torch.Tensor:
    """Inverse of :func:`stft`, trimmed or padded to ``length`` samples."""
    return torch.istft(spec, n_fft=frame_size, hop_length=frame_size // 4, window=_window(frame_size, spec.device),
                       center=True, length=length)


def bin_to_hz(bins: np.ndarray | int, n_samples: int, sample_rate: int) -> np.ndarray:
    """Centre frequency in Hz of rfft bins of a clip of ``n_samples`` samples."""
    return np.asarray(bins, dtype=np.float64) * sample_rate / n_samples


def hz_to_bin(hz: np.ndarray | float, n_samples: int, sample_rate: int) -> np.ndarray:
    """Nearest rfft bin of a frequency in Hz (clamped to the valid range)."""
    bins = np.rint(np.asarray(hz, dtype=np.float64) * n_samples / sample_rate).astype(np.int64)
    return np.clip(bins, 0, n_bins(n_samples) - 1)


def nearest_stft_bins(bins: np.ndarray, n_samples: int, frame_size: int) -> np.ndarray:
    """STFT bins (of a ``frame_size`` frame) nearest to the given rfft bins, deduplicated, in first-seen order."""
    mapped = np.clip(np.rint(np.asarray(bins, dtype=np.float64) * frame_size / n_samples), 0, frame_size // 2)
    _, first = np.unique(mapped.astype(np.int64), return_index=True)
    return mapped.astype(np.int64)[np.sort(first)]
