"""L-MAC (Listenable Maps for Audio Classifiers, Paissan, Ravanelli & Subakan 2024): a decoder that reads a
classifier's hidden representations and outputs a mask over the clip's linear STFT magnitude.

The masked magnitude is inverted with the clip's own phase, so the explanation is a waveform one can listen
to, whatever features the classifier computes internally. The decoder is trained once per (model, training
clips) on clips the audit does not score, with the paper's loss on the model's own decision ŷ:

    L = CE(f(x_in), ŷ) + β · L_out + λ · mean(M),    x_in = istft(M·|X|·e^{iφ}),  x_out = istft((1−M)·|X|·e^{iφ})

where ``L_out`` pushes the decision away on the masked-out signal. The paper writes −CE(f(x_out), ŷ); it is
unbounded (it rewards driving p_out(ŷ) to 10⁻³⁰), so this uses the bounded −log(1 − p_out(ŷ)), which has
the same minimiser and the same gradient direction. The optional **guidance** stage (the paper's fine-tuning
for audio quality) adds γ·|log(1+M·|X|) − log(1+|X|)| on the clips whose masked-in signal keeps ŷ: the mask
is pulled toward the whole spectrogram only where that does not cost the decision.

Decoder (``MaskDecoder``, ~60 k parameters): hidden tokens [B, N, D] → LayerNorm → linear to ``width`` → a
learned map from the N tokens to the STFT's frames (so any token layout works: time steps of Wav2Vec2 or
Whisper, AST's frequency×time patches) → two 1-D convolutions over frames → ``bands`` mask logits per frame
→ linear interpolation to the STFT's frequency bins → sigmoid. At explanation time the mask is binarised at
``threshold`` (the paper's binary mask). The decoder is trained for one clip length L (the training clips');
a clip of another length is explained window by window of L samples (the last one zero-padded).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch
import torch.nn.functional as F

from ..audio import spectrum as spec
from ..models.classifier import QueryEngine
from ..models.whitebox import WhiteBox
from .configs import LMACConfig
from .methods import MethodExplanation, energy_share, judge

__all__ = ["LMACConfig", "MaskDecoder", "TrainedDecoder", "train_lmac", "explain_lmac", "stft_masked_pair",
           "lmac_masks", "save_decoder", "load_decoder", "clips_digest", "DECODER_FILE", "DECODER_FACTS"]

DECODER_FILE = "decoder.safetensors"
DECODER_FACTS = "lmac.json"
"""A saved decoder is a folder with its weights and its facts: config, shapes, and what it was trained for."""


class MaskDecoder(torch.nn.Module):
    """Hidden tokens [B, N, D] → mask logits [B, F, frames] over the linear STFT (see the module docstring)."""

    def __init__(self, n_tokens: int, dim: int, n_frames: int, n_freq: int, width: int = 64, bands: int = 64):
        super().__init__()
        self.n_freq = int(n_freq)
        self.norm = torch.nn.LayerNorm(dim)
        self.proj = torch.nn.Linear(dim, width)
        self.tokens_to_frames = torch.nn.Linear(n_tokens, n_frames)
        self.conv = torch.nn.Sequential(
            torch.nn.Conv1d(width, width, 5, padding=2), torch.nn.GELU(),
            torch.nn.Conv1d(width, width, 5, padding=2), torch.nn.GELU(),
            torch.nn.Conv1d(width, bands, 1))

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        z = self.proj(self.norm(tokens))                       # [B, N, W]
        z = self.tokens_to_frames(z.transpose(1, 2))           # [B, W, frames]
        logits = self.conv(z)[:, None]                         # [B, 1, bands, frames]
        return F.interpolate(logits, size=(self.n_freq, logits.shape[-1]), mode="bilinear", align_corners=True)[:, 0]


@dataclass
class TrainedDecoder:
    """A trained decoder with what it was trained for: clip length, token shape, config, and provenance
    (``meta``: model fingerprint, training clips' hash, labels, training log), saved next to its weights."""

    decoder: MaskDecoder
    config: LMACConfig
    clip_samples: int
    n_tokens: int
    dim: int
    meta: dict[str, Any] = field(default_factory=dict)

    def shape_facts(self) -> dict[str, int]:
        return {"clip_samples": self.clip_samples, "n_tokens": self.n_tokens, "dim": self.dim}


def clips_digest(clips: np.ndarray) -> str:
    """16-hex SHA-256 of training clips (dtype, shape, bytes): a decoder trained on other clips never matches."""
    import hashlib

    clips = np.ascontiguousarray(clips, dtype=np.float32)
    return hashlib.sha256(f"{clips.dtype}|{clips.shape}|".encode() + clips.tobytes()).hexdigest()[:16]


def save_decoder(trained: TrainedDecoder, folder: str | Path) -> Path:
    """Write ``decoder.safetensors`` and ``lmac.json`` (config, shapes, ``meta``) into ``folder``."""
    import json

    from safetensors.torch import save_file

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    save_file({k: v.detach().cpu().contiguous() for k, v in trained.decoder.state_dict().items()},
              str(folder / DECODER_FILE))
    facts = {"config": trained.config.to_dict(), **trained.shape_facts(), "meta": trained.meta}
    (folder / DECODER_FACTS).write_text(json.dumps(facts, indent=1, sort_keys=True) + "\n")
    return folder


def load_decoder(folder: str | Path) -> TrainedDecoder:
    """A decoder saved by :func:`save_decoder`."""
    import json

    from safetensors.torch import load_file

    folder = Path(folder)
    facts = json.loads((folder / DECODER_FACTS).read_text())
    config = LMACConfig.from_dict(facts["config"])
    state = load_file(str(folder / DECODER_FILE))
    n_frames = state["tokens_to_frames.weight"].shape[0]
    decoder = MaskDecoder(facts["n_tokens"], facts["dim"], n_frames, config.frame_size // 2 + 1, config.width,
                          config.bands)
    decoder.load_state_dict(state)
    return TrainedDecoder(decoder.eval(), config, facts["clip_samples"], facts["n_tokens"], facts["dim"],
                          facts.get("meta", {}))


def stft_masked_pair(x: torch.Tensor, mask: torch.Tensor, frame_size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Masked-in and masked-out waveforms: ``istft(M·|X|·e^{iφ})`` and ``istft((1−M)·|X|·e^{iφ})``, φ = x's phase."""
    S = spec.stft(x, frame_size)
    magnitude = S.abs()
    phase = torch.polar(torch.ones_like(magnitude), torch.angle(S))
    n = x.shape[-1]
    return (spec.istft(mask * magnitude * phase, frame_size, n),
            spec.istft((1 - mask) * magnitude * phase, frame_size, n))


def _decisions(wb: WhiteBox, clips: torch.Tensor, chunk: int = 32) -> torch.Tensor:
    with torch.no_grad():
        return torch.cat([wb.forward(clips[i:i + chunk])[0].argmax(-1) for i in range(0, len(clips), chunk)])


def train_lmac(wb: WhiteBox, clips: np.ndarray, config: LMACConfig = LMACConfig(),
               progress: Callable[[int, int], None] | None = None) -> TrainedDecoder:
    """Train an L-MAC decoder for ``wb`` on ``clips`` [N, L] (clips the audit will not score).

    Targets are the model's own decisions on the clips (an explainer explains the model, not the labels).
    Deterministic for a seed and a thread count. ``progress(step, total)`` is called every 10 steps.
    """
    x_all = torch.as_tensor(np.asarray(clips, np.float32), device=wb.device)
    if x_all.ndim != 2 or len(x_all) == 0:
        raise ValueError(f"L-MAC needs training clips [N, L], got shape {tuple(x_all.shape)}")
    rng = np.random.default_rng([config.seed, 31])
    with wb.frozen(), torch.enable_grad():
        with torch.no_grad():
            _, tokens = wb.forward(x_all[:1], hidden=True)
            n_frames, n_freq = spec.stft(x_all[:1], config.frame_size).shape[-1], config.frame_size // 2 + 1
        decisions = _decisions(wb, x_all)
        torch.manual_seed(config.seed)
        decoder = MaskDecoder(tokens.shape[1], tokens.shape[2], n_frames, n_freq, config.width, config.bands)
        decoder.to(wb.device).train()
        optimiser = torch.optim.Adam(decoder.parameters(), lr=config.lr)
        total = config.steps + config.guidance_steps
        log: list[dict] = []
        began = time.perf_counter()
        for step in range(total):
            idx = rng.integers(0, len(x_all), config.batch)
            gains = torch.as_tensor(rng.uniform(0.6, 1.4, (config.batch, 1)).astype(np.float32), device=wb.device)
            x, y = x_all[idx] * gains, decisions[idx]
            with torch.no_grad():
                _, tokens = wb.forward(x, hidden=True)
            mask = torch.sigmoid(decoder(tokens))
            x_in, x_out = stft_masked_pair(x, mask, config.frame_size)
            log_in = wb.forward(x_in)[0]
            loss_in = F.nll_loss(log_in, y)
            p_out = wb.forward(x_out)[0].gather(1, y[:, None])[:, 0].exp()
            loss_out = -torch.log1p(-p_out.clamp(max=1 - 1e-4)).mean()
            loss = loss_in + config.out_weight * loss_out + config.l1 * mask.mean()
            if step >= config.steps:  # guidance: stay close to the clip where the decision holds
                keeps = (log_in.argmax(-1) == y).float().detach()
                magnitude = spec.stft(x, config.frame_size).abs()
                distance = (torch.log1p(mask * magnitude) - torch.log1p(magnitude)).abs().mean(dim=(1, 2))
                loss = loss + config.guidance * (distance * keeps).mean()
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
            if step % 50 == 0 or step == total - 1:
                log.append({"step": step, "loss_in": round(loss_in.item(), 4), "loss_out": round(loss_out.item(), 4),
                            "mask_mean": round(mask.mean().item(), 4)})
            if progress is not None and (step % 10 == 0 or step == total - 1):
                progress(step + 1, total)
    decoder.eval()
    meta = {"labels": list(wb.labels), "sample_rate": wb.sample_rate, "train_clips": int(len(x_all)),
            "train_seconds": round(time.perf_counter() - began, 1), "log": log, "reads": wb.describe}
    return TrainedDecoder(decoder, config, int(x_all.shape[1]), int(tokens.shape[1]), int(tokens.shape[2]), meta)


def _windows(x: np.ndarray, length: int) -> np.ndarray:
    """``x`` cut into windows of ``length`` samples, the last one zero-padded ([W, length])."""
    count = max(1, -(-len(x) // length))
    padded = np.zeros(count * length, np.float32)
    padded[: len(x)] = x
    return padded.reshape(count, length)


def lmac_masks(wb: WhiteBox, trained: TrainedDecoder, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The soft mask [W, F, frames] of each window of ``x`` and its STFT energy |X|² (same shape)."""
    windows = torch.as_tensor(_windows(np.asarray(x, np.float32), trained.clip_samples), device=wb.device)
    with torch.no_grad(), wb.frozen():
        _, tokens = wb.forward(windows, hidden=True)
        if tuple(tokens.shape[1:]) != (trained.n_tokens, trained.dim):
            raise ValueError(f"the model's hidden tokens are {tuple(tokens.shape[1:])}, the decoder was trained on "
                             f"{(trained.n_tokens, trained.dim)}: it belongs to another model or clip length")
        soft = torch.sigmoid(trained.decoder(tokens))
        energy = spec.stft(windows, trained.config.frame_size).abs() ** 2
    return soft.cpu().numpy(), energy.cpu().numpy()


def explain_lmac(engine: QueryEngine, wb: WhiteBox, trained: TrainedDecoder, x: np.ndarray) -> MethodExplanation:
    """L-MAC on one clip: the binary mask over the STFT cells of each window, the masked-in and masked-out
    waveforms (original phase), judged by the model (3 queries). One forward pass with hidden states (and
    one per window) is the decoder's cost; no gradient is needed at explanation time."""
    began = time.perf_counter()
    x = np.asarray(x, np.float32)
    config = trained.config
    soft, energy = lmac_masks(wb, trained, x)
    binary = soft > config.threshold
    windows = torch.as_tensor(_windows(x, trained.clip_samples))
    kept, removed = stft_masked_pair(windows, torch.as_tensor(binary, dtype=torch.float32), config.frame_size)
    kept = kept.reshape(-1)[: len(x)].numpy()
    removed = removed.reshape(-1)[: len(x)].numpy()
    q0 = engine.queries
    probs, faith = judge(engine, x, kept, removed)
    target = int(np.argmax(probs[0]))
    mask = np.concatenate(list(binary), axis=-1)  # windows side by side along the frames axis
    return MethodExplanation(
        method="lmac", available=True, representation=f"linear STFT cells [frequency, frame] (frame "
        f"{config.frame_size}, hop {config.frame_size // 4}, Hann)", target=target, target_label=wb.labels[target],
        labels=tuple(wb.labels), sample_rate=wb.sample_rate, mask=mask, kept=kept, removed=removed, probs=probs,
        faithfulness=faith, kept_share=float(mask.mean()), energy_share=energy_share(np.concatenate(list(energy), -1), mask),
        queries=engine.queries - q0 + len(binary), gradient_calls=0, seed=config.seed,
        details={"threshold": config.threshold, "windows": len(binary), "window_samples": trained.clip_samples,
                 "soft_mask_mean": float(soft.mean()), "decoder": dict(trained.meta.get("identity", {})),
                 "reads": trained.meta.get("reads", "")},
        seconds=time.perf_counter() - began)
