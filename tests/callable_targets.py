"""Factories for the callable-adapter tests, addressed as ``tests.callable_targets:<name>``."""

from __future__ import annotations

import torch

from freqrex_audit.models.classifier import Classifier

LABELS = ["low", "high"]
SAMPLE_RATE = 8000


def band_energy_logits(waveforms: torch.Tensor) -> torch.Tensor:
    """Logits [B, 2]: log energy below and above 1 kHz."""
    spectrum = torch.fft.rfft(waveforms.float()).abs() ** 2
    freqs = torch.fft.rfftfreq(waveforms.shape[-1], d=1 / SAMPLE_RATE).to(waveforms.device)
    low = spectrum[:, freqs < 1000].sum(-1)
    high = spectrum[:, freqs >= 1000].sum(-1)
    return torch.log(torch.stack([low, high], dim=-1) + 1e-9)


def make_classifier(device: str = "cpu") -> Classifier:
    """A factory that builds a full Classifier and receives the device."""
    return Classifier.from_callable(band_energy_logits, LABELS, SAMPLE_RATE, device=device, outputs="logits",
                                    name="band-energy")


def make_function(scale: float = 1.0):
    """A factory that returns a plain function of probabilities (labels and rate come from the spec)."""

    def probs(waveforms: torch.Tensor) -> torch.Tensor:
        return torch.softmax(scale * band_energy_logits(waveforms), dim=-1)

    return probs


def make_nothing():
    """A broken factory: returns something that is neither a Classifier nor callable."""
    return 42


class nested:  # noqa: N801 - addressed as "tests.callable_targets:nested.factory"
    @staticmethod
    def factory(device: str = "cpu") -> Classifier:
        return make_classifier(device=device)


def changes_process_settings(device: str = "cpu") -> Classifier:
    """A factory that changes torch's settings for the whole process: one thread, as silero-vad's import does, a
    float64 default dtype and gradients off."""
    torch.set_num_threads(1)
    torch.set_default_dtype(torch.float64)
    torch.set_grad_enabled(False)
    return make_classifier(device)


def changes_settings_when_called(device: str = "cpu") -> Classifier:
    """A model whose every call changes torch's process-wide settings (one thread, a float64 default dtype)."""

    def logits(waveforms: torch.Tensor) -> torch.Tensor:
        torch.set_num_threads(1)
        torch.set_default_dtype(torch.float64)
        return band_energy_logits(waveforms)

    return Classifier.from_callable(logits, LABELS, SAMPLE_RATE, device=device, outputs="logits", name="unruly")
