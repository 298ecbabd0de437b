"""Runtime-independent plumbing for classifiers shipped as one exported file (ONNX, TFLite).

The runtime adapters (:mod:`.onnx`, :mod:`.tflite`) only read the file's signature and run one call;
everything else — which input is the audio, which inputs are recurrent state, batching, streaming
windows, and turning the model's scores into one row per clip — is decided here, by one rule:

* **Audio input**: the first floating-point input that is not a state input. Its shape is
  ``[batch, samples]``, ``[samples]`` (no batch axis), or either with one extra axis of size 1
  (``[batch, 1, samples]``, ``[batch, samples, 1]``).
* **State inputs**: a float input whose twin is an output named ``<name>N``, ``<name>n``,
  ``<name>_out``, ``next_<name>`` or ``new_<name>`` (silero: ``state`` → ``stateN``; LSTMs: ``h`` →
  ``hn``). State starts at **zero for every call** (so clips never share state), dynamic axes of a
  state shape take the batch size, and after each window the twin output is fed back.
* **Integer scalar inputs** (silero's ``sr``) receive the sample rate. Any other input is an error.
* **Score output**: the first output that is not a state twin: ``[batch, C]``, ``[batch]`` or
  ``[batch, 1]``. One score column with two labels is the score of ``labels[1]`` (a sigmoid
  probability, or a logit): it becomes ``[1 - p, p]`` (logits ``[0, z]``, whose softmax is the sigmoid).
* **Batching**: one call for the whole batch when the batch axis is dynamic, else one call per clip.
* **Streaming** (``window: {samples, context, reduce}``): the clip is zero-padded to a multiple of
  ``samples`` and cut into consecutive windows; each call sees ``context`` samples carried over from
  the end of the previous call's input (zeros before the first) followed by the window, with state
  carried across windows. The clip's scores are the ``mean`` (default) or ``max`` of its windows'
  scores, taken in the declared output space. This is exactly silero-vad's own ``audio_forward`` rule
  (512-sample windows, 64 samples of context), which :mod:`freqrex_audit.zoo.vad` reduces by the mean.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence

import numpy as np
import torch

from ..models.classifier import ClassifierError

__all__ = ["TensorInfo", "Window", "ExportedModel", "fingerprint_file", "output_kind", "parse_window"]

_STATE_TWINS = ("{}N", "{}n", "{}_out", "next_{}", "new_{}")
_OUTPUT_ALIASES = {"probs": "probabilities", "probabilities": "probabilities", "logits": "logits",
                   "log_probs": "log_probabilities", "log_probabilities": "log_probabilities"}
REDUCTIONS = ("mean", "max")


@dataclass(frozen=True)
class TensorInfo:
    """One input or output of an exported model: name, shape (None for a dynamic axis), numpy dtype."""

    name: str
    shape: tuple[int | None, ...]
    dtype: np.dtype

    def describe(self) -> str:
        return f"{self.name}[{', '.join('?' if d is None else str(d) for d in self.shape)}] {self.dtype}"


@dataclass(frozen=True)
class Window:
    """A streaming model's window: ``samples`` new samples per call, ``context`` carried-over samples."""

    samples: int
    context: int = 0
    reduce: str = "mean"


def output_kind(outputs: str) -> str:
    """The canonical output kind for a spec value (``probs`` → ``probabilities``)."""
    try:
        return _OUTPUT_ALIASES[outputs]
    except KeyError:
        raise ClassifierError(f"model.outputs must be one of {', '.join(sorted(_OUTPUT_ALIASES))}, "
                              f"not {outputs!r}") from None


def parse_window(window: Mapping[str, Any] | Window | None, source: str) -> Window | None:
    """Validate a spec's ``window`` mapping (``samples`` ≥ 1, ``context`` ≥ 0, ``reduce`` mean|max)."""
    if window is None or isinstance(window, Window):
        return window
    unknown = set(window) - {"samples", "context", "reduce"}
    if unknown:
        raise ClassifierError(f"{source}: model.window has unknown keys {sorted(unknown)} "
                              f"(allowed: samples, context, reduce)")
    samples, context = window.get("samples"), window.get("context", 0)
    reduce = window.get("reduce", "mean")
    if isinstance(samples, bool) or not isinstance(samples, int) or samples < 1:
        raise ClassifierError(f"{source}: model.window.samples must be an integer ≥ 1, got {samples!r}")
    if isinstance(context, bool) or not isinstance(context, int) or context < 0:
        raise ClassifierError(f"{source}: model.window.context must be an integer ≥ 0, got {context!r}")
    if reduce not in REDUCTIONS:
        raise ClassifierError(f"{source}: model.window.reduce must be one of {', '.join(REDUCTIONS)}, got {reduce!r}")
    return Window(samples, context, reduce)


def fingerprint_file(path: str | Path, *settings: Any) -> str:
    """Short hash of a model file's bytes plus the settings that change its scores (labels, rate, window…)."""
    digest = hashlib.sha256(repr(settings).encode())
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()[:16]


class ExportedModel:
    """Callable ``waveforms [B, T] -> scores [B, C]`` around one runtime call, following the module's rule.

    ``run(feeds)`` takes ``{input name: array}`` and returns the outputs in ``outputs`` order; ``reset()``
    (optional) clears state the runtime keeps inside the model (TFLite variable tensors) before each clip batch.
    """

    def __init__(self, source: str | Path, inputs: Sequence[TensorInfo], outputs: Sequence[TensorInfo],
                 run: Callable[[dict[str, np.ndarray]], Sequence[np.ndarray]], sample_rate: int, n_labels: int,
                 outputs_kind: str = "probabilities", window: Window | None = None,
                 reset: Callable[[], None] | None = None):
        self.source = str(source)
        self.reset = reset
        self.providers: list[str] = []  # where the runtime runs it (onnxruntime's execution providers)
        self.inputs, self.outputs = list(inputs), list(outputs)
        self.run = run
        self.sample_rate = int(sample_rate)
        self.n_labels = int(n_labels)
        self.kind = output_kind(outputs_kind)
        self.window = window
        output_names = {o.name: i for i, o in enumerate(self.outputs)}
        self.state: dict[str, int] = {}  # state input name -> index of its twin output
        for info in self.inputs:
            twin = next((output_names[p.format(info.name)] for p in _STATE_TWINS
                         if p.format(info.name) in output_names), None)
            if twin is not None and np.issubdtype(info.dtype, np.floating):
                self.state[info.name] = twin
        self.rate_inputs = [i for i in self.inputs if i.name not in self.state and not i.shape
                            and np.issubdtype(i.dtype, np.integer)]
        audio = [i for i in self.inputs if i.name not in self.state and np.issubdtype(i.dtype, np.floating)]
        others = [i for i in self.inputs if i not in audio and i not in self.rate_inputs and i.name not in self.state]
        if not audio or others or len(audio) > 1:
            raise ClassifierError(f"{self.source}: cannot tell the audio input from the model's inputs "
                                  f"({self.signature()}); expected one float audio input, optional recurrent "
                                  f"state inputs with twin outputs (state -> stateN) and integer scalar "
                                  f"sample-rate inputs")
        self.audio = audio[0]
        self.score_index = next(i for i, o in enumerate(self.outputs) if i not in self.state.values())
        self.batched = len(self.audio.shape) >= 2 and self.audio.shape[0] is None
        self.layout = self._audio_layout()

    def signature(self) -> str:
        return (f"inputs {', '.join(i.describe() for i in self.inputs)}; "
                f"outputs {', '.join(o.describe() for o in self.outputs)}")

    def _audio_layout(self) -> tuple[bool, int | None, int | None]:
        """(has batch axis, position of a size-1 channel axis or None, fixed samples per call or None)."""
        shape = self.audio.shape
        if len(shape) == 1:
            return False, None, shape[0]
        if len(shape) == 2:
            return True, None, shape[1]
        if len(shape) == 3 and shape[1] == 1:
            return True, 1, shape[2]
        if len(shape) == 3 and shape[2] == 1:
            return True, 2, shape[1]
        raise ClassifierError(f"{self.source}: audio input {self.audio.describe()} is not [batch, samples], "
                              f"[samples] or [batch, 1, samples]; a TFLite model that reads TFLite-Micro "
                              f"features ([1, frames, channels]) needs options: {{frontend: micro}}")

    def expected_shape(self) -> str:
        return "[" + ", ".join("batch" if d is None and i == 0 and self.layout[0] else
                               ("samples" if d is None else str(d)) for i, d in enumerate(self.audio.shape)) + "]"

    def __call__(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(waveforms)
        device = x.device
        if x.ndim == 1:
            x = x[None]
        clips = x.detach().to("cpu", torch.float32).numpy()
        if self.batched or clips.shape[0] == 0:
            scores = self._clips(clips)
        else:  # fixed batch axis (or none): one call per clip
            scores = np.concatenate([self._clips(clips[i:i + 1]) for i in range(clips.shape[0])])
        return torch.from_numpy(self._as_labels(scores)).to(device)

    def _clips(self, clips: np.ndarray) -> np.ndarray:
        """Scores [B, C'] for clips [B, T]: one call, or one call per window with state carried over."""
        batch, length = clips.shape
        if self.reset is not None:
            self.reset()
        state = {info.name: np.zeros([batch if d is None else d for d in info.shape], info.dtype)
                 for info in self.inputs if info.name in self.state}
        if self.window is None:
            return self._call(clips, state)[0]
        step, context = self.window.samples, self.window.context
        padded = np.pad(clips, ((0, 0), (0, -length % step or 0)))
        carried = np.zeros((batch, context), np.float32)
        scores = []
        for start in range(0, max(padded.shape[1], step), step):
            chunk = padded[:, start:start + step]
            if chunk.shape[1] < step:  # an empty clip: one window of silence
                chunk = np.pad(chunk, ((0, 0), (0, step - chunk.shape[1])))
            frame = np.concatenate([carried, chunk], axis=1)
            out, state = self._call(frame, state)
            scores.append(out)
            carried = frame[:, frame.shape[1] - context:]
        stacked = np.stack(scores)
        return stacked.mean(axis=0) if self.window.reduce == "mean" else self._max(stacked)

    def _max(self, stacked: np.ndarray) -> np.ndarray:
        """Per-label maximum over windows; several probability columns are renormalised to sum to 1."""
        top = stacked.max(axis=0)
        if self.kind == "probabilities" and top.shape[1] > 1:
            top = top / np.clip(top.sum(axis=1, keepdims=True), 1e-12, None)
        return top

    def _call(self, frames: np.ndarray, state: dict[str, np.ndarray]) -> tuple[np.ndarray, dict[str, np.ndarray]]:
        has_batch, channel, fixed = self.layout
        if fixed is not None and frames.shape[1] != fixed:
            hint = (f"model.window gives {self.window.samples} samples + {self.window.context} of context; "
                    f"make them add up to {fixed}" if self.window else
                    f"set model.window: {{samples: {fixed}}} to stream longer clips through it, or clip the "
                    f"dataset to {fixed} samples")
            raise ClassifierError(f"{self.source}: input {self.audio.name!r} expects shape {self.expected_shape()} "
                                  f"({fixed} samples per call), got {frames.shape[1]} samples per call; {hint}")
        audio = frames if has_batch else frames[0]
        if channel is not None:
            audio = np.expand_dims(audio, channel)
        feeds = {self.audio.name: np.ascontiguousarray(audio, dtype=self.audio.dtype), **state}
        feeds.update({i.name: np.array(self.sample_rate, i.dtype) for i in self.rate_inputs})
        try:
            results = self.run(feeds)
        except ClassifierError:
            raise
        except Exception as exc:  # runtimes raise their own error types for shape and type mismatches
            raise ClassifierError(f"{self.source}: the model rejected input {self.audio.name!r} of shape "
                                  f"{list(audio.shape)}; it expects {self.expected_shape()} ({self.signature()}): "
                                  f"{type(exc).__name__}: {str(exc)[:300]}") from None
        scores = np.asarray(results[self.score_index], dtype=np.float64)
        scores = scores.reshape(frames.shape[0], -1)
        new_state = {name: np.asarray(results[twin], dtype=state[name].dtype) for name, twin in self.state.items()}
        return scores, new_state

    def _as_labels(self, scores: np.ndarray) -> np.ndarray:
        """[B, C] scores; one column with two labels becomes the pair (not-label-1, label-1)."""
        if scores.shape[1] == self.n_labels:
            return scores
        if scores.shape[1] == 1 and self.n_labels == 2:
            s = scores[:, 0]
            if self.kind == "probabilities":
                return np.stack([1.0 - s, s], axis=1)
            if self.kind == "logits":
                return np.stack([np.zeros_like(s), s], axis=1)
            return np.stack([np.log(-np.expm1(np.minimum(s, -1e-12))), s], axis=1)
        raise ClassifierError(f"{self.source}: output {self.outputs[self.score_index].name!r} gives "
                              f"{scores.shape[1]} scores per clip but the spec names {self.n_labels} labels")
