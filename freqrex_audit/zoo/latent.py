"""``zoo://instruments/latent``: the latent-explanation paper's setup on the zoo, a classifier head on the frozen
encoder of the zoo's codec (``instruments/codec``, see ``train_codec.py``).

The head (:class:`TransformerHead`, ~9 k parameters: a linear map of the 32 latent channels to 32, one
transformer encoder layer with 2 heads, mean over frames, a linear layer to the 4 instruments) classifies the
codec's continuous latents; trained by ``python -m freqrex_audit.zoo.train_latent`` on the
training clips' latents with the encoder frozen. As a classifier it maps waveforms to logits through
encoder and head (:class:`~freqrex_audit.engine.latent.LatentHeadClassifier`), so every explainer can run on
it; the latent explainer differentiates the head directly, in latent space, as the paper does.
"""

from __future__ import annotations

import json

import torch

from ..engine.latent import LatentHeadClassifier, load_codec
from ..models.classifier import Classifier, resolve_device
from . import ZOO_ROOT

CODEC_DIR = ZOO_ROOT / "instruments" / "codec"
HEAD_DIR = ZOO_ROOT / "instruments" / "models" / "latent"


class TransformerHead(torch.nn.Module):
    """Latents [B, D, T'] → logits [B, C]: linear to ``width``, one transformer layer, mean over frames, linear."""

    def __init__(self, dim: int, n_classes: int, width: int = 32, heads: int = 2):
        super().__init__()
        self.inp = torch.nn.Linear(dim, width)
        self.layer = torch.nn.TransformerEncoderLayer(width, heads, 2 * width, dropout=0.1, batch_first=True)
        self.out = torch.nn.Linear(width, n_classes)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.out(self.layer(self.inp(z.transpose(1, 2))).mean(1))


def latent_classifier(device: str = "cpu") -> Classifier:
    """The factory named by ``instruments/models/latent/freqrex_model.yaml``."""
    from safetensors.torch import load_file

    facts = json.loads((HEAD_DIR / "head.json").read_text())
    codec = load_codec(CODEC_DIR, name="zoo://instruments/codec")
    head = TransformerHead(facts["dim"], len(facts["labels"]), facts["width"], facts["heads"])
    head.load_state_dict(load_file(str(HEAD_DIR / "head.safetensors")))
    module = LatentHeadClassifier(codec, head).to(resolve_device(device)).eval()
    return Classifier.from_callable(module, facts["labels"], codec.sample_rate, device=device, name="latent",
                                    outputs="logits")
