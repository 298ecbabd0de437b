"""Train ``zoo://instruments/latent``: the latent-explanation paper's setup, a classifier head on the frozen
encoder of the zoo codec (run ``python -m freqrex_audit.zoo.train_codec`` first).

Run ``python -m freqrex_audit.zoo.train_latent`` (``--seed``, ``--threads``). The head
(:class:`~freqrex_audit.zoo.latent.TransformerHead`) is trained on the codec latents of the 160 training clips
plus 5 augmented copies of each (the zoo classifiers' augmentation: gain, shifts, noise, filters; 960 clips),
AdamW, lr 2e-3, weight decay 0.01, 60 epochs, batch 32, each clip's latents scaled by 1 + 0.1·N(0, 1), and
written to ``instruments/models/latent/`` (``--out``) with its held-out accuracy (``head.json``). Deterministic
for a seed and thread count: the shipped head was made with ``--seed 0 --threads 1`` (the defaults) and
``--out`` elsewhere rewrites the same ``head.safetensors`` bytes.

The zoo's L-MAC decoders (``instruments/lmac/<model>/``) are made by the command any user has,
``freqrex-audit train-lmac zoo://instruments/<model> --train zoo://instruments/train --out
freqrex_audit/zoo/instruments/lmac/<model>`` (see the zoo README).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import torch

from .latent import CODEC_DIR, HEAD_DIR, TransformerHead
from .train import augment, load_split

DESCRIPTOR = """# zoo://instruments/latent: the latent-explanation paper's setup on the zoo: a transformer head on the
# frozen encoder of the zoo codec (instruments/codec). See freqrex_audit/zoo/latent.py and train_latent.py.
type: callable
target: "freqrex_audit.zoo.latent:latent_classifier"
"""


def train_head(seed: int, epochs: int = 60, copies: int = 5, out: Path = HEAD_DIR) -> dict:
    """The paper's setup: a classifier on the frozen codec encoder's latents (see the module docstring)."""
    from safetensors.torch import save_file

    from ..engine.latent import load_codec

    codec = load_codec(CODEC_DIR)
    clean_x, clean_y, classes = load_split("train")
    train_x, train_y = augment(clean_x, clean_y, copies, seed)  # the zoo classifiers' own augmentation
    eval_x, eval_y, _ = load_split("eval")
    with torch.no_grad():
        z_train = torch.cat([codec.encode(torch.from_numpy(train_x[i:i + 40])) for i in range(0, len(train_x), 40)])
        z_eval = codec.encode(torch.from_numpy(eval_x))
    torch.manual_seed(seed)
    head = TransformerHead(z_train.shape[1], len(classes))
    optimiser = torch.optim.AdamW(head.parameters(), 2e-3, weight_decay=0.01)
    labels = torch.from_numpy(train_y)
    generator = torch.Generator().manual_seed(seed)
    began = time.time()
    for _ in range(epochs):
        head.train()
        for idx in torch.randperm(len(z_train), generator=generator).split(32):
            z = z_train[idx] * (1 + 0.1 * torch.randn(len(idx), 1, 1, generator=generator))
            loss = torch.nn.functional.cross_entropy(head(z), labels[idx])
            optimiser.zero_grad()
            loss.backward()
            optimiser.step()
    head.eval()
    with torch.no_grad():
        eval_acc = float((head(z_eval).argmax(-1).numpy() == eval_y).mean())
        train_acc = float((head(z_train).argmax(-1).numpy() == train_y).mean())
    out.mkdir(parents=True, exist_ok=True)
    save_file({k: v.contiguous() for k, v in head.state_dict().items()}, str(out / "head.safetensors"))
    facts = {"labels": classes, "dim": int(z_train.shape[1]), "width": 32, "heads": 2, "epochs": epochs, "seed": seed,
             "augmented_copies": copies, "train_clips": len(train_x),
             "threads": torch.get_num_threads(),
             "eval_accuracy": eval_acc, "train_accuracy": train_acc, "eval_clips": len(eval_y),
             "parameters": sum(p.numel() for p in head.parameters()), "train_seconds": round(time.time() - began, 1)}
    (out / "head.json").write_text(json.dumps(facts, indent=1) + "\n")
    (out / "freqrex_model.yaml").write_text(DESCRIPTOR)
    print(f"latent head: held-out accuracy {eval_acc:.3f}, train {train_acc:.3f}", flush=True)
    return facts


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, default=HEAD_DIR, help="default: the zoo's instruments/models/latent")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    train_head(args.seed, out=args.out)


if __name__ == "__main__":
    main()
