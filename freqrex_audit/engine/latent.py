"""Latent-space explanations through a neural audio codec (after Akman & Schuller 2024, arXiv 2410.07530).

An EnCodec model (transformers ``EncodecModel``) encodes the clip into continuous latent features z [D, T']
(the encoder's output, before the quantiser). Integrated Gradients (Captum) attributes the model's decision to
each latent feature; the top ``keep`` share is kept and every other feature is replaced by noise drawn from
that latent channel's distribution over the codec's training clips (which carries no information about this
clip); the decoder turns the result back into audio. The removed signal is the converse: the important
features noised, the rest kept.

Two uses, one function:

- **the paper's setup**: a classifier that *is* a head on the frozen codec encoder (:class:`LatentHeadClassifier`,
  e.g. ``zoo://instruments/latent``). IG runs on the head in latent space, exactly as in the paper; the paper's
  latent-level figures (does the head keep its decision on the kept latents, lose it on the removed ones) are in
  ``details``;
- **beyond the paper**: any white-box torch classifier f, explained through f(decode(z)). The codec's own
  reconstruction error then sits between the explanation and the model: ``details`` records the round trip
  (SNR of decode(encode(x)) and whether f keeps its label on it).

Either way the model judges the decoded kept / removed audio (:func:`~freqrex_audit.engine.methods.judge`),
like every other method.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ..models.classifier import QueryEngine
from ..models.whitebox import WhiteBox
from .configs import LatentConfig
from .methods import ExplainerUnavailable, MethodExplanation, energy_share, judge
from .metrics import snr_db

__all__ = ["LatentConfig", "CodecLatents", "LatentHeadClassifier", "load_codec", "explain_latent",
           "integrated_gradients", "keep_and_noise", "LATENT_STATS"]

LATENT_STATS = "latent_stats.json"
"""Written next to a codec's weights: per-channel mean and std of its latents over its training clips."""


class CodecLatents:
    """An EnCodec model used as an autoencoder of continuous latents: ``encode`` [B, T] → [B, D, T'],
    ``decode`` [B, D, T'] → [B, T]; ``mean`` / ``std`` per latent channel (the noise's distribution)."""

    def __init__(self, model: Any, mean: np.ndarray, std: np.ndarray, name: str, fingerprint: str):
        self.model = model.eval()
        for p in self.model.parameters():
            p.requires_grad_(False)
        self.sample_rate = int(model.config.sampling_rate)
        self.mean = torch.as_tensor(np.asarray(mean, np.float32))
        self.std = torch.as_tensor(np.asarray(std, np.float32))
        self.name, self.fingerprint = name, fingerprint

    def to(self, device: torch.device) -> "CodecLatents":
        self.model.to(device)
        self.mean, self.std = self.mean.to(device), self.std.to(device)
        return self

    @property
    def device(self) -> torch.device:
        return next(self.model.parameters()).device

    def encode(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.encoder(x.to(self.device, torch.float32)[:, None])

    def decode(self, z: torch.Tensor, n: int) -> torch.Tensor:
        y = self.model.decoder(z)[:, 0]
        return y[:, :n] if y.shape[-1] >= n else torch.nn.functional.pad(y, (0, n - y.shape[-1]))


def load_codec(path: str | Path, name: str | None = None) -> CodecLatents:
    """A codec from a local ``save_pretrained`` folder (never downloaded) with its ``latent_stats.json``."""
    from transformers import EncodecModel

    folder = Path(path)
    if not (folder / "config.json").is_file():
        raise ExplainerUnavailable(f"{folder}: not an EnCodec folder (no config.json)")
    stats_file = folder / LATENT_STATS
    if not stats_file.is_file():
        raise ExplainerUnavailable(f"{folder}: no {LATENT_STATS} (the per-channel mean and std of the codec's "
                                   f"latents, which the noise is drawn from); write it with "
                                   f"freqrex_audit.zoo.train_codec.latent_stats")
    from transformers.utils import logging as hf_logging

    shown = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # no "Loading weights" bar on stderr
    try:
        model = EncodecModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32)  # saved as float16
    finally:
        if shown:
            hf_logging.enable_progress_bar()
    stats = json.loads(stats_file.read_text())
    digest = hashlib.sha256()
    for f in sorted(folder.iterdir()):
        if f.is_file() and f.suffix in (".json", ".safetensors", ".bin"):
            digest.update(f.name.encode())
            digest.update(f.read_bytes())
    return CodecLatents(model, stats["mean"], stats["std"], name or folder.name, digest.hexdigest()[:16])


class LatentHeadClassifier(torch.nn.Module):
    """The paper's setup: a classifier head on a frozen codec encoder. ``forward(waveforms)`` returns logits;
    ``head(z)`` classifies latents directly, which is what the latent explainer differentiates."""

    def __init__(self, codec: CodecLatents, head: torch.nn.Module):
        super().__init__()
        self.codec_latents = codec
        self.encoder = codec.model.encoder
        self.head = head

    def forward(self, waveforms: torch.Tensor) -> torch.Tensor:
        return self.head(self.encoder(waveforms.float()[:, None]))


def integrated_gradients(forward: Any, z: torch.Tensor, target: int, steps: int, batch: int) -> torch.Tensor:
    """Captum's Integrated Gradients of ``forward(z)[:, target]`` from the all-zero latent to ``z``."""
    try:
        from captum.attr import IntegratedGradients
    except ImportError:
        raise ExplainerUnavailable("latent explanations need Captum: pip install 'freqrex_audit[explainers]'") from None
    with torch.enable_grad():
        return IntegratedGradients(forward).attribute(z, baselines=torch.zeros_like(z), target=int(target),
                                                      n_steps=int(steps), internal_batch_size=int(batch)).detach()


def keep_and_noise(z: torch.Tensor, attribution: torch.Tensor, keep: float, mean: torch.Tensor, std: torch.Tensor,
                   seed: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Keep the top ``keep`` share of features by attribution (ties: lower index first), noise the rest; and
    the converse (important features noised). Returns (kept latents, removed latents, mask), all [B, D, T']."""
    flat = attribution.reshape(attribution.shape[0], -1)
    k = max(1, int(round(keep * flat.shape[1])))
    order = torch.argsort(flat, dim=1, descending=True, stable=True)[:, :k]
    mask = torch.zeros_like(flat, dtype=torch.bool).scatter_(1, order, True).reshape(z.shape)
    generator = torch.Generator(device="cpu").manual_seed(int(seed))
    noise = torch.randn(z.shape, generator=generator).to(z.device) * std[None, :, None] + mean[None, :, None]
    return torch.where(mask, z, noise), torch.where(mask, noise, z), mask


def explain_latent(engine: QueryEngine, wb: WhiteBox, codec: CodecLatents, x: np.ndarray,
                   config: LatentConfig = LatentConfig()) -> MethodExplanation:
    """Latent-space explanation of one clip (see the module docstring): IG in the codec's latent space, the top
    ``config.keep`` share kept and the rest noised, decoded, judged by the model."""
    began = time.perf_counter()
    if codec.sample_rate != wb.sample_rate:
        raise ExplainerUnavailable(f"the codec {codec.name} runs at {codec.sample_rate} Hz, the model at "
                                   f"{wb.sample_rate} Hz")
    x = np.asarray(x, np.float32)
    n = len(x)
    q0 = engine.queries
    target = int(np.argmax(engine.query(x[None])[0]))
    head = wb.module.head if isinstance(wb.module, LatentHeadClassifier) else None
    with wb.frozen():
        with torch.no_grad():
            z = codec.encode(torch.as_tensor(x[None]))
            roundtrip = codec.decode(z, n)
        if head is not None:
            def forward(latents: torch.Tensor) -> torch.Tensor:
                return torch.softmax(head(latents), -1)
        else:
            def forward(latents: torch.Tensor) -> torch.Tensor:
                return wb.forward(codec.decode(latents, n))[0].exp()
        attribution = integrated_gradients(forward, z, target, config.ig_steps, config.ig_batch)
        z_kept, z_removed, mask = keep_and_noise(z, attribution, config.keep, codec.mean, codec.std, config.seed)
        with torch.no_grad():
            decoded = codec.decode(torch.cat([z_kept, z_removed]), n).cpu().numpy()
            details: dict[str, Any] = {"mode": "paper: head on the codec's latents" if head is not None
                                       else "f(decode(z))", "codec": codec.name, "codec_fingerprint": codec.fingerprint,
                                       "keep": config.keep, "ig_steps": config.ig_steps,
                                       "roundtrip_snr_db": snr_db(x, roundtrip[0].cpu().numpy())}
            if head is not None:
                latent = head(torch.cat([z, z_kept, z_removed])).argmax(-1).cpu().numpy()
                details["latent_kept_agrees"] = bool(latent[1] == latent[0])
                details["latent_removed_agrees"] = bool(latent[2] == latent[0])
            else:
                details["roundtrip_label"] = wb.labels[int(wb.forward(roundtrip)[0].argmax(-1)[0])]
    probs, faith = judge(engine, x, decoded[0], decoded[1], target)
    m = mask[0].cpu().numpy()
    return MethodExplanation(
        method="latent", available=True, representation=f"codec latent features [channel, frame] ({codec.name}: "
        f"{m.shape[0]} channels, {m.shape[1]} frames)", target=target, target_label=wb.labels[target],
        labels=tuple(wb.labels), sample_rate=wb.sample_rate, mask=m, kept=decoded[0], removed=decoded[1],
        probs=probs, faithfulness=faith, kept_share=float(m.mean()),
        energy_share=energy_share((z[0] ** 2).cpu().numpy(), m), queries=engine.queries - q0 + 1,  # + the round trip
        gradient_calls=int(config.ig_steps), seed=config.seed, details=details, seconds=time.perf_counter() - began)

