"""Train the zoo's small EnCodec on its own instrument clips (there are no pretrained codec weights offline).

Run ``python -m freqrex_audit.zoo.train_codec`` (``--seed``, ``--threads``, ``--out``; ``--steps N`` shortens the
training for a try). The shipped codec is this command with its defaults (seed 0, one thread, 4,000 steps):
about an hour on one core. transformers has ``EncodecModel`` but no training loop, so this is one, kept small:

- a tiny config (16 kHz, 8 base filters, strides 4·4·4 → hop 64 = 250 latent frames per second, 32 latent
  channels, non-causal convolutions, one LSTM layer; ~0.15 M parameters), encoder and decoder trained together
  on random 0.25-s crops of the 160 training clips with random gain (×0.5–1.5), loss 100·L1(waveform) + a
  multi-resolution STFT loss (spectral convergence + log-magnitude L1 at frames 128, 256, 512, 1024), AdamW
  (β 0.8, 0.99), gradient clipping at 1, batch 16, one one-cycle schedule (4,000 steps, peak lr 2e-3). The
  first try, EnCodec's own shape at hop 160 with causal convolutions, reached 4.6 dB after 3,000 steps; this
  one learns faster;
- no quantiser in training: the explainer works on the encoder's continuous latents. The residual codebooks
  (4 × 256 entries; 2, 4, 8 kbit/s) are then fitted by k-means on the training latents, residual after
  residual, so ``EncodecModel.encode`` / ``decode`` round-trip like any EnCodec checkpoint;
- ``latent_stats.json``: each latent channel's mean and std over the training clips (the noise the latent
  explainer draws). Weights are saved as float16 safetensors and load as float32.

The held-out SNR (the 40 eval clips, never seen in training) is measured on the weights as saved, through the
continuous latents and through the codebooks at each bandwidth, and recorded in ``instruments/codec/results.json``.
Deterministic for a seed and thread count (numpy batch stream, seeded k-means).
"""

from __future__ import annotations

import argparse
import json
import platform
import time
from pathlib import Path

import numpy as np
import torch

from . import ZOO_ROOT
from .train import SAMPLE_RATE, load_split

CODEC_DIR = ZOO_ROOT / "instruments" / "codec"
PHASES = ((4000, 2e-3, 7),)
"""(steps, peak learning rate, batch-stream id) of each one-cycle phase."""
CROP = 4000
BATCH = 16


def codec_config():
    from transformers import EncodecConfig

    return EncodecConfig(sampling_rate=SAMPLE_RATE, num_filters=8, upsampling_ratios=[4, 4, 4], hidden_size=32,
                         num_lstm_layers=1, codebook_size=256, target_bandwidths=[2.0, 4.0, 8.0], normalize=False,
                         audio_channels=1, use_causal_conv=False)


def mr_stft_loss(x: torch.Tensor, y: torch.Tensor, frames: tuple[int, ...] = (128, 256, 512, 1024)) -> torch.Tensor:
    """Multi-resolution STFT loss: spectral convergence + log-magnitude L1, averaged over resolutions."""
    total = 0.0
    for n in frames:
        window = torch.hann_window(n, device=x.device)
        X = torch.stft(x, n, n // 4, window=window, return_complex=True).abs()
        Y = torch.stft(y, n, n // 4, window=window, return_complex=True).abs()
        sc = torch.linalg.norm(Y - X, dim=(1, 2)) / (torch.linalg.norm(X, dim=(1, 2)) + 1e-7)
        mag = (torch.log(X + 1e-5) - torch.log(Y + 1e-5)).abs().mean(dim=(1, 2))
        total = total + (sc + mag).mean()
    return total / len(frames)


def snr_db(x: np.ndarray, y: np.ndarray) -> float:
    x, y = np.asarray(x, np.float64), np.asarray(y, np.float64)
    return float(10 * np.log10(np.sum(x ** 2) / max(np.sum((x - y) ** 2), 1e-20)))


def train_phase(model, clips: torch.Tensor, steps: int, lr: float, stream: int, seed: int,
                held_out: np.ndarray | None = None) -> None:
    """One one-cycle phase of autoencoder training (see the module docstring); every 500 steps the loss and,
    with ``held_out`` clips, their mean SNR are printed (no effect on training)."""
    params = list(model.encoder.parameters()) + list(model.decoder.parameters())
    optimiser = torch.optim.AdamW(params, lr=lr, betas=(0.8, 0.99), weight_decay=0.0)
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimiser, max_lr=lr, total_steps=steps, pct_start=0.05)
    rng = np.random.default_rng([seed, stream])
    began = time.time()
    for step in range(steps):
        idx = rng.integers(0, len(clips), BATCH)
        starts = rng.integers(0, SAMPLE_RATE - CROP + 1, BATCH)
        x = torch.stack([clips[i, s:s + CROP] for i, s in zip(idx, starts)])
        x = x * torch.from_numpy(rng.uniform(0.5, 1.5, (BATCH, 1)).astype(np.float32))
        y = model.decoder(model.encoder(x[:, None]))[:, 0, :CROP]
        # 100·L1 + MR-STFT; written as 10·L1·10 because the shipped weights were made with that float32 order
        loss = 10.0 * (y - x).abs().mean() * 10 + mr_stft_loss(x, y)
        optimiser.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimiser.step()
        schedule.step()
        if step % 500 == 0 or step == steps - 1:
            shown = ""
            if held_out is not None:
                with torch.no_grad():
                    y = model.decoder(model.encoder(torch.from_numpy(held_out)[:, None]))[:, 0, :held_out.shape[1]]
                shown = f", held-out SNR {np.mean([snr_db(a, b) for a, b in zip(held_out, y.numpy())]):.2f} dB"
            print(f"  step {step + 1}/{steps}: loss {loss.item():.3f}{shown}, {time.time() - began:.0f} s", flush=True)


def kmeans(x: torch.Tensor, k: int, iterations: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
    """Plain Lloyd k-means from k random points; an empty cluster restarts at a random point."""
    centres = x[torch.randperm(len(x), generator=generator)[:k]].clone()
    for _ in range(iterations):
        assign = torch.cdist(x, centres).argmin(1)
        for j in range(k):
            chosen = x[assign == j]
            centres[j] = chosen.mean(0) if len(chosen) else x[torch.randint(len(x), (1,), generator=generator)][0]
    counts = torch.bincount(torch.cdist(x, centres).argmin(1), minlength=k).float()
    return centres, counts


@torch.no_grad()
def fit_codebooks(model, latents: torch.Tensor, seed: int) -> list[float]:
    """k-means codebooks, residual after residual; returns the residual energy share after each."""
    generator = torch.Generator().manual_seed(seed)
    vectors = latents.permute(0, 2, 1).reshape(-1, latents.shape[1])
    residual, shares = vectors.clone(), []
    for layer in model.quantizer.layers:
        centres, counts = kmeans(residual, model.config.codebook_size, 25, generator)
        book = layer.codebook
        book.embed.copy_(centres)
        book.embed_avg.copy_(centres * counts[:, None])
        book.cluster_size.copy_(counts)
        book.inited.fill_(1.0)
        residual = residual - centres[torch.cdist(residual, centres).argmin(1)]
        shares.append(float(residual.pow(2).sum() / vectors.pow(2).sum()))
    return shares


@torch.no_grad()
def held_out_snr(folder: Path, eval_clips: np.ndarray) -> dict[str, float]:
    """Mean SNR (dB) of the eval clips through the saved codec: continuous latents, then each bandwidth."""
    from transformers import EncodecModel

    model = EncodecModel.from_pretrained(folder, local_files_only=True, dtype=torch.float32).eval()
    x = torch.from_numpy(eval_clips)
    out = {"continuous": model.decoder(model.encoder(x[:, None]))[:, 0, :SAMPLE_RATE].numpy()}
    for bandwidth in model.config.target_bandwidths:
        codes = model.encode(x[:, None], bandwidth=bandwidth)
        out[f"{bandwidth:g} kbit/s"] = model.decode(codes.audio_codes, codes.audio_scales)[0][:, 0, :SAMPLE_RATE].numpy()
    return {k: round(float(np.mean([snr_db(a, b) for a, b in zip(eval_clips, y)])), 2) for k, y in out.items()}


def latent_stats(model, clips: np.ndarray) -> dict[str, list[float]]:
    """Per-channel mean and std of the encoder's latents over ``clips`` (written as latent_stats.json)."""
    with torch.no_grad():
        z = torch.cat([model.encoder(torch.from_numpy(clips[i:i + 40])[:, None]) for i in range(0, len(clips), 40)])
    return {"mean": z.mean(dim=(0, 2)).tolist(), "std": z.std(dim=(0, 2)).tolist(), "clips": len(clips)}


def main(argv: list[str] | None = None) -> None:
    from transformers import EncodecModel

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--steps", type=int, nargs=len(PHASES), default=[p[0] for p in PHASES],
                        help="steps of each one-cycle phase (one phase)")
    parser.add_argument("--save-trained", type=Path, default=None, help="also save the trained state dict here "
                        "(before the codebooks), to refit them later with --trained")
    parser.add_argument("--out", type=Path, default=CODEC_DIR)
    parser.add_argument("--trained", type=Path, default=None, help="a state dict saved after the training phases: "
                        "skip them and only fit the codebooks, save and measure")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    train_clips, _, _ = load_split("train")
    eval_clips, _, _ = load_split("eval")
    model = EncodecModel(codec_config())
    began = time.time()
    if args.trained is not None:
        model.load_state_dict(torch.load(args.trained, weights_only=True))
    else:
        for (_, lr, stream), steps in zip(PHASES, args.steps):
            print(f"phase: {steps} steps at peak lr {lr:g}", flush=True)
            train_phase(model, torch.from_numpy(train_clips), steps, lr, stream, args.seed, eval_clips)
        if args.save_trained is not None:
            torch.save(model.state_dict(), args.save_trained)
    model.eval()
    with torch.no_grad():
        latents = torch.cat([model.encoder(torch.from_numpy(train_clips[i:i + 40])[:, None])
                             for i in range(0, len(train_clips), 40)])
    shares = fit_codebooks(model, latents, args.seed)
    args.out.mkdir(parents=True, exist_ok=True)
    model.half().save_pretrained(args.out, safe_serialization=True)
    model.float()
    (args.out / "latent_stats.json").write_text(json.dumps(latent_stats(model, train_clips)) + "\n")
    snr = held_out_snr(args.out, eval_clips)
    import transformers

    results = {"held_out_snr_db": snr, "residual_energy_after_codebooks": [round(s, 4) for s in shares],
               "parameters": sum(p.numel() for p in model.parameters()), "train_clips": len(train_clips),
               "eval_clips": len(eval_clips), "phases": [[s, lr] for (_, lr, _), s in zip(PHASES, args.steps)],
               "seed": args.seed, "train_seconds": round(time.time() - began),
               "environment": {"torch": torch.__version__, "transformers": transformers.__version__,
                               "python": platform.python_version(), "threads": args.threads}}
    (args.out / "results.json").write_text(json.dumps(results, indent=1) + "\n")
    print(f"held-out SNR (dB): {snr}; written {args.out}")


if __name__ == "__main__":
    main()
