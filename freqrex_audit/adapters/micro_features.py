"""TFLite wake-word models that read TFLite-Micro audio features (microWakeWord, micro_speech).

Such a model takes int8 *features*, not audio: ``[1, stride, channels]`` frames from the TFLite-Micro
audio frontend (40 channels every 10 ms at 16 kHz, from ``pymicro-features``), and keeps streaming
state inside the model. The rule is pymicro-wakeword's own detector, so the audit scores the model as it
is run on a device:

* a clip becomes 16-bit PCM (the frontend's input) and then features, from a fresh frontend;
* consecutive groups of ``stride`` frames go to a fresh interpreter (so clips never share state);
* per-step probabilities are averaged over ``smoothing`` consecutive steps (the detector's sliding
  window) and the clip's score is the highest average: ``[1 - p, p]`` for the spec's two labels.

A spec or descriptor turns it on with ``options: {frontend: micro, smoothing: 5}``;
``xnnpack: false`` runs TFLite's builtin kernels, bit-identical to the C library pymicro-wakeword
ships (XNNPACK's int8 kernels round differently, by up to 12/256 on the zoo clips).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Callable, Mapping

import numpy as np
import torch

from ..models.classifier import ClassifierError

__all__ = ["MicroFeatureModel", "micro_options", "FRONTEND_RATE"]

FRONTEND_RATE = 16000
"""The TFLite-Micro frontend's fixed input rate (30 ms windows every 10 ms)."""
_CHUNK = 160  # samples per frontend call (10 ms)
_OPTIONS = ("frontend", "smoothing", "xnnpack")


def micro_options(options: Mapping[str, Any] | None, source: str) -> dict[str, Any] | None:
    """The validated ``options`` of a feature-input TFLite model, or None when it takes audio."""
    options = dict(options or {})
    if options.get("frontend") is None:
        unknown = set(options) & {"smoothing", "xnnpack"}
        if unknown:
            raise ClassifierError(f"{source}: model.options {sorted(unknown)} need options.frontend: micro")
        return None
    unknown = sorted(set(options) - set(_OPTIONS))
    if unknown:
        raise ClassifierError(f"{source}: model.options has unknown keys {unknown} (allowed: {', '.join(_OPTIONS)})")
    if options["frontend"] != "micro":
        raise ClassifierError(f"{source}: model.options.frontend must be 'micro' (the TFLite-Micro audio "
                              f"frontend), got {options['frontend']!r}")
    smoothing = options.get("smoothing", 1)
    if isinstance(smoothing, bool) or not isinstance(smoothing, int) or smoothing < 1:
        raise ClassifierError(f"{source}: model.options.smoothing must be an integer ≥ 1, got {smoothing!r}")
    xnnpack = options.get("xnnpack", True)
    if not isinstance(xnnpack, bool):
        raise ClassifierError(f"{source}: model.options.xnnpack must be true or false, got {xnnpack!r}")
    return {"frontend": "micro", "smoothing": smoothing, "xnnpack": xnnpack}


def _frontend_class() -> type:
    try:
        from pymicro_features import MicroFrontend
    except ImportError:
        raise ClassifierError("options.frontend: micro needs the TFLite-Micro audio frontend: "
                              "pip install 'freqrex_audit[tflite]' (pymicro-features)") from None
    return MicroFrontend


class MicroFeatureModel:
    """Callable ``waveforms [B, T] -> probabilities [B, 2]`` for a feature-input streaming TFLite model.

    ``make_runner()`` returns a fresh ``_TFLiteRunner`` (a new interpreter: fresh streaming state); its
    ``inputs[0]`` must be ``[1, stride, channels]`` and its first output one probability.
    """

    def __init__(self, source: str | Path, make_runner: Callable[[], Any], sample_rate: int, n_labels: int,
                 smoothing: int = 1):
        self.source = str(source)
        if int(sample_rate) != FRONTEND_RATE:
            raise ClassifierError(f"{self.source}: the TFLite-Micro frontend reads {FRONTEND_RATE} Hz audio; "
                                  f"the spec says sample_rate {sample_rate}")
        if n_labels != 2:
            raise ClassifierError(f"{self.source}: a wake-word model scores one label; give two labels "
                                  f"(not the word, the word), got {n_labels}")
        self.frontend = _frontend_class()
        self.make_runner = make_runner
        self.smoothing = int(smoothing)
        probe = make_runner()
        shape = tuple(int(d) for d in probe.inputs[0]["shape"])
        if len(shape) != 3 or shape[0] != 1:
            raise ClassifierError(f"{self.source}: input {probe.inputs[0]['name']!r} has shape {list(shape)}; "
                                  f"a micro-frontend model takes [1, stride, channels] features")
        self.stride, self.channels = shape[1], shape[2]
        self.input_name = str(probe.inputs[0]["name"])

    def features(self, clip: np.ndarray) -> np.ndarray:
        """The frontend's feature frames [frames, channels] for one float clip in [-1, 1]."""
        pcm = np.clip(np.round(clip.astype(np.float64) * 32767), -32768, 32767).astype("<i2").tobytes()
        frontend, frames, offset = self.frontend(), [], 0
        while offset + 2 * _CHUNK <= len(pcm):
            result = frontend.process_samples(pcm[offset:offset + 2 * _CHUNK])
            offset += 2 * max(int(result.samples_read), 1)
            if result.features:
                frames.append(np.asarray(result.features, dtype=np.float32))
        if frames and len(frames[0]) != self.channels:
            raise ClassifierError(f"{self.source}: the frontend gives {len(frames[0])} channels per frame, "
                                  f"the model expects {self.channels}")
        return np.stack(frames) if frames else np.zeros((0, self.channels), np.float32)

    def step_probabilities(self, clip: np.ndarray) -> np.ndarray:
        """One probability per ``stride`` frames, from a fresh interpreter (the detector's raw stream)."""
        frames = self.features(clip)
        runner = self.make_runner()
        steps = []
        for start in range(0, len(frames) - self.stride + 1, self.stride):
            out = runner({self.input_name: frames[None, start:start + self.stride]})[0]
            steps.append(float(np.asarray(out).reshape(-1)[0]))
        return np.asarray(steps, dtype=np.float64)

    def clip_probability(self, clip: np.ndarray) -> float:
        """The highest ``smoothing``-step mean of the clip's step probabilities (0 with no step)."""
        steps = self.step_probabilities(clip)
        if steps.size == 0:
            return 0.0
        width = min(self.smoothing, steps.size)
        means = np.convolve(steps, np.full(width, 1.0 / width), mode="valid")
        return float(np.clip(means.max(), 0.0, 1.0))

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(waveforms)
        device = x.device
        clips = (x[None] if x.ndim == 1 else x).detach().to("cpu", torch.float32).numpy()
        p = np.array([self.clip_probability(clip) for clip in clips], dtype=np.float64)
        return torch.from_numpy(np.stack([1.0 - p, p], axis=1)).to(device)
