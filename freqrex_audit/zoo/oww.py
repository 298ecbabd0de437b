"""openWakeWord's "hey jarvis" detector as a clip classifier: ONNX files shipped inside the openwakeword 0.4.0
wheel (code Apache-2.0; its pretrained models CC BY-NC-SA 4.0), run by onnxruntime. Used by
``benchmarks/peers/hey-jarvis.yaml`` (#29); install with ``pip install --no-deps openwakeword==0.4.0``
(0.4.0 is the last release whose wheel carries the models; its tflite-runtime dependency is not needed).

openWakeWord's own pipeline, batched: int16-scale float audio, ``melspectrogram.onnx`` (then x/10 + 2),
``embedding_model.onnx`` on 76-frame windows every 8 frames, the wake-word model on 16 consecutive
embeddings; a clip's score is its highest window score. ``predict_clip`` pads 1 s of zeros on each side;
0.5 s is used here, which keeps 7 full windows on a 1.5-s clip at 35 % less cost (both give the same
labels on the benchmark's three clips). Output ``[1 - p, p]`` for ``["other", "hey_jarvis"]``.
"""

from __future__ import annotations

import hashlib
from importlib import resources

import numpy as np
import torch

from ..models.classifier import Classifier, resolve_device

SAMPLE_RATE = 16000
PAD = 8000  # samples of zeros on each side
WINDOW, STEP, CONTEXT = 76, 8, 16


def _model_dir():
    try:
        return resources.files("openwakeword").joinpath("resources/models")
    except ModuleNotFoundError:
        raise ModuleNotFoundError("the hey-jarvis benchmark model needs openwakeword 0.4.0: "
                                  "pip install --no-deps openwakeword==0.4.0") from None


class OpenWakeWordClassifier(Classifier):
    """One openWakeWord model (``word``) behind the three ONNX sessions, one thread each."""

    def __init__(self, word: str = "hey_jarvis_v0.1", device: str | torch.device = "cpu"):
        import onnxruntime as ort

        base = _model_dir()
        if not base.joinpath(word + ".onnx").is_file():
            raise FileNotFoundError(f"{word}.onnx is not in {base} (openwakeword 0.4.0 ships it; later wheels do not)")
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = 1
        session = lambda name: ort.InferenceSession(str(base.joinpath(name)), options,  # noqa: E731
                                                    providers=["CPUExecutionProvider"])
        self.mel, self.embed, self.detect = (session("melspectrogram.onnx"), session("embedding_model.onnx"),
                                             session(word + ".onnx"))
        self.labels = ["other", word.split("_v")[0]]
        self.sample_rate = SAMPLE_RATE
        self.device = resolve_device(device)
        self.name = f"openwakeword-{word}"
        digest = hashlib.sha256()
        for name in ("melspectrogram.onnx", "embedding_model.onnx", word + ".onnx"):
            digest.update(base.joinpath(name).read_bytes())
        self.fingerprint = digest.hexdigest()[:16]

    def scores(self, x: np.ndarray) -> np.ndarray:
        """The highest window score per clip, [B]."""
        pad = np.zeros((x.shape[0], PAD), np.float32)
        audio = np.concatenate([pad, x.astype(np.float32), pad], axis=1) * 32767.0
        spec = self.mel.run(None, {self.mel.get_inputs()[0].name: audio})[0].reshape(x.shape[0], -1, 32) / 10.0 + 2.0
        starts = range(0, spec.shape[1] - WINDOW, STEP)
        windows = np.stack([spec[:, s:s + WINDOW] for s in starts], axis=1)
        emb = self.embed.run(None, {self.embed.get_inputs()[0].name: windows.reshape(-1, WINDOW, 32, 1)})[0]
        emb = emb.reshape(x.shape[0], len(starts), 96)
        n = len(starts) - CONTEXT + 1
        if n < 1:
            raise ValueError(f"{self.name}: a clip needs at least {(CONTEXT * STEP + WINDOW) * 160 - 2 * PAD} samples")
        runs = np.stack([emb[:, i:i + CONTEXT] for i in range(n)], axis=1).reshape(-1, CONTEXT, 96).astype(np.float32)
        name = self.detect.get_inputs()[0].name
        out = [self.detect.run(None, {name: runs[i:i + 1]})[0].reshape(-1) for i in range(len(runs))]  # batch of 1
        return np.concatenate(out).reshape(x.shape[0], n).max(axis=1)

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        x = torch.as_tensor(waveforms).detach().to("cpu", torch.float32).numpy()
        if x.ndim == 1:
            x = x[None]
        p = torch.as_tensor(self.scores(x), dtype=torch.float32).clamp(0.0, 1.0)
        return torch.stack([1.0 - p, p], dim=1).to(self.device)


def hey_jarvis_classifier(device: str = "cpu") -> Classifier:
    """The factory ``benchmarks/peers/hey-jarvis.yaml`` names."""
    return OpenWakeWordClassifier("hey_jarvis_v0.1", device=device)
