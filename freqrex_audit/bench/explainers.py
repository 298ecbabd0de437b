"""The explainer comparisons README quotes, reproduced by ``freqrex-audit bench --explainers``.

- :func:`compare_methods`: on held-out clips of a model, L-MAC against gradient saliency and against random
  masks keeping the same share of STFT cells (and the same share of energy), the magnitude-only mask of the
  same share, FreqReX's sufficient set, and the latent method against random latent features of the same
  share: every row judged by the engine's faithfulness (AI, AD, AG, FF, Fid-In) through
  :func:`~freqrex_audit.engine.methods.summarize`. This is L-MAC's faithfulness claim, measured small;
- :func:`latent_paper`: the latent-explanation paper's two numbers on its own setup (``zoo://instruments/latent``,
  a head on the codec's latents): *classification agreement* (the head keeps its decision on the kept latent
  features) and *accuracy drop on important-feature removal*, at several kept shares, against random features.

Both are deterministic for a seed (and a thread count).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ..audit.explainers import ExplainerKit, training_clips
from ..engine import FreqReXConfig, explain
from ..engine.latent import LatentConfig, integrated_gradients, keep_and_noise
from ..engine.lmac import LMACConfig, lmac_masks, stft_masked_pair
from ..engine.methods import MethodExplanation, energy_share, judge, summarize
from ..models.classifier import Classifier, QueryEngine
from ..runtime.paths import ZOO_ROOT
from ..specs.loader import ExplainerSettings
from ..audit.cache import Cache

__all__ = ["compare_methods", "latent_paper", "format_methods", "format_latent_paper", "EVAL_CLIPS"]

EVAL_CLIPS = ZOO_ROOT / "instruments" / "eval"
CODEC = ZOO_ROOT / "instruments" / "codec"


def _row(name: str, probs: np.ndarray, faith: dict, target: int, share: float, energy: float,
         queries: int = 3, gradient_calls: int = 0, seconds: float = 0.0) -> MethodExplanation:
    return MethodExplanation(method=name, available=True, target=target, probs=probs, faithfulness=faith,
                             kept_share=share, energy_share=energy, queries=queries, gradient_calls=gradient_calls,
                             seconds=seconds)


def _saliency(wb: Any, x: np.ndarray, target: int, frame: int) -> np.ndarray:
    """|∂ log p_target / ∂|X|| over the STFT magnitude, the signal rebuilt with the clip's phase (1 gradient call)."""
    from ..audio import spectrum as spec

    with wb.frozen(), torch.enable_grad():
        S = spec.stft(torch.as_tensor(x[None]), frame)
        magnitude = S.abs().detach().requires_grad_(True)
        phase = torch.polar(torch.ones_like(magnitude), torch.angle(S))
        log_p = wb.forward(spec.istft(magnitude * phase, frame, len(x)))[0]
        log_p[0, target].backward()
    return magnitude.grad.abs()[0].numpy()


def _top(score: np.ndarray, k: int) -> np.ndarray:
    mask = np.zeros(score.size, bool)
    mask[np.argsort(-score.ravel(), kind="stable")[:k]] = True
    return mask.reshape(score.shape)


def _random_share(shape: tuple, k: int, rng: np.random.Generator) -> np.ndarray:
    mask = np.zeros(int(np.prod(shape)), bool)
    mask[rng.choice(mask.size, k, replace=False)] = True
    return mask.reshape(shape)


def _random_energy(energy: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Random cells, in random order, until they hold ``share`` of the energy."""
    flat = energy.ravel()
    order = rng.permutation(flat.size)
    cumulative = np.cumsum(flat[order]) / max(flat.sum(), 1e-30)
    mask = np.zeros(flat.size, bool)
    mask[order[: int(np.searchsorted(cumulative, share)) + 1]] = True
    return mask.reshape(energy.shape)


def eval_clips(clf: Classifier, limit: int | None, folder: Path = EVAL_CLIPS) -> np.ndarray:
    clips = training_clips(folder, clf)  # the same reading rule: model rate, one length
    return clips if limit is None else clips[:: max(1, len(clips) // limit)][:limit]


def compare_methods(model: str, clips: int | None = None, seed: int = 0, device: str = "cpu",
                    methods: Sequence[str] = ("freqrex", "lmac", "latent")) -> dict[str, dict]:
    """Every row of the comparison for one model (see the module docstring), as ``summarize`` dicts. The
    methods (and their baselines) are independent: running them apart gives the same rows."""
    from ..adapters.loader import load_classifier

    clf = load_classifier(model, device=device)
    engine = QueryEngine(clf)
    settings = ExplainerSettings(methods=tuple(methods), lmac=LMACConfig(),
                                 latent=LatentConfig(codec=str(CODEC), seed=seed))
    kit = ExplainerKit(settings, clf, Cache(None))
    kit.prepare()
    rng = np.random.default_rng(seed)
    frame = settings.lmac.frame_size
    rows: dict[str, list[MethodExplanation]] = {}
    for x in eval_clips(clf, clips):
        exp = explain(engine, x, FreqReXConfig(seed=seed)) if "freqrex" in methods else None
        results = kit.explain(engine, x, exp)
        for name, result in results.items():
            rows.setdefault(name, []).append(result)
        lm = results.get("lmac")
        if lm is not None and lm.available:
            target, k = lm.target, int(lm.mask.sum())
            soft, energy = lmac_masks(kit.wb, kit.decoder, x)
            energy = np.concatenate(list(energy), -1)
            began = time.perf_counter()
            saliency = _saliency(kit.wb, x, target, frame)
            spent = time.perf_counter() - began
            masks = {"saliency (same share)": _top(saliency, k), "magnitude only (same share)": _top(energy, k),
                     "random (same share)": _random_share(energy.shape, k, rng),
                     "random (same energy)": _random_energy(energy, lm.energy_share, rng)}
            for name, mask in masks.items():
                kept, removed = stft_masked_pair(torch.as_tensor(x[None]), torch.as_tensor(mask[None], dtype=torch.float32),
                                                 frame)
                probs, faith = judge(engine, x, kept[0].numpy(), removed[0].numpy(), target)
                rows.setdefault(name, []).append(_row(name, probs, faith, target, float(mask.mean()),
                                                      energy_share(energy, mask), 3,
                                                      1 if name.startswith("saliency") else 0,
                                                      spent if name.startswith("saliency") else 0.0))
        la = results.get("latent")
        if la is not None and la.available:
            with torch.no_grad():
                z = kit.codec.encode(torch.as_tensor(x[None]))
            noise = torch.as_tensor(np.random.default_rng([seed, len(rows["latent"])]).random(z.shape),
                                    dtype=torch.float32)
            zk, zr, mask = keep_and_noise(z, noise, settings.latent.keep, kit.codec.mean, kit.codec.std, seed)
            with torch.no_grad():
                kept, removed = kit.codec.decode(torch.cat([zk, zr]), len(x)).numpy()
            probs, faith = judge(engine, x, kept, removed, la.target)
            m = mask[0].numpy()
            rows.setdefault("latent: random features (same share)", []).append(
                _row("latent random", probs, faith, la.target, float(m.mean()), energy_share((z[0] ** 2).numpy(), m)))
    return {name: summarize(results) for name, results in rows.items()}


def latent_paper(shares: Sequence[float] = (0.05, 0.1, 0.2, 0.3, 0.5), seed: int = 0, steps: int = 32,
                 device: str = "cpu") -> dict[str, Any]:
    """The paper's classification agreement and accuracy drop on ``zoo://instruments/latent`` (eval clips)."""
    from ..adapters.loader import load_classifier
    from ..audit.datasets import list_samples, read_clip
    from ..specs.loader import DatasetSpec

    clf = load_classifier("zoo://instruments/latent", device=device)
    module = clf.fn
    codec, head = module.codec_latents, module.head
    samples = list_samples(DatasetSpec(path=EVAL_CLIPS, type="folder"))
    x = np.stack([read_clip(s, clf.sample_rate).samples for s in samples]).astype(np.float32)
    labels = np.array([clf.labels.index(s.label) for s in samples])
    with torch.no_grad():
        z = codec.encode(torch.as_tensor(x))
        predicted = head(z).argmax(-1).numpy()
    began = time.perf_counter()
    attribution = torch.cat([integrated_gradients(lambda latents: torch.softmax(head(latents), -1), z[i:i + 1],
                                                  int(predicted[i]), steps, steps) for i in range(len(z))])
    seconds = (time.perf_counter() - began) / len(z)
    accuracy = float((predicted == labels).mean())
    out: dict[str, Any] = {"clips": len(z), "accuracy": accuracy, "ig_steps": steps, "ig_seconds_per_clip": seconds,
                           "shares": {}}
    rng = np.random.default_rng(seed)
    for share in shares:
        row = {}
        for name, score in (("ig", attribution), ("random", torch.as_tensor(rng.random(z.shape), dtype=torch.float32))):
            zk, zr, _ = keep_and_noise(z, score, share, codec.mean, codec.std, seed)
            with torch.no_grad():
                kept, removed = head(zk).argmax(-1).numpy(), head(zr).argmax(-1).numpy()
                heard = head(codec.encode(codec.decode(zk, x.shape[1]))).argmax(-1).numpy()
            row[name] = {"agreement": float((kept == predicted).mean()),
                         "agreement_audio": float((heard == predicted).mean()),
                         "accuracy_removed": float((removed == labels).mean()),
                         "accuracy_drop": accuracy - float((removed == labels).mean())}
        out["shares"][f"{share:g}"] = row
    return out


def _cell(entry: dict | None) -> str:
    if not entry or entry.get("value") is None:
        return "—"
    text = f"{entry['value']:.2f}"
    return text + (f" ({entry['k']}/{entry['n']})" if "k" in entry else f" [{entry['low']:.2f}, {entry['high']:.2f}]")


def format_methods(model: str, table: dict[str, dict]) -> str:
    """A markdown table of one model's comparison."""
    lines = [f"**{model}**", "", "| method | clips | AI | AD | AG | FF | Fid-In | kept share | energy kept | "
             "queries / clip | gradient calls / clip | s / clip |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for name, s in table.items():
        if not s.get("n"):
            lines.append(f"| {name} | 0 | not measured: {s.get('reason')} |||||||||| ")
            continue
        lines.append(f"| {name} | {s['n']} | " + " | ".join(_cell(s.get(m)) for m in ("ai", "ad", "ag", "ff", "fid_in"))
                     + f" | {100 * s['kept_share']:.1f} % | {100 * s['energy_share']:.1f} % | {s['queries']:.0f} | "
                       f"{s['gradient_calls']:.0f} | {s['seconds']:.2f} |")
    return "\n".join(lines)


def format_latent_paper(result: dict) -> str:
    """A markdown table of the paper-setup measurements."""
    lines = [f"zoo://instruments/latent on {result['clips']} held-out clips: head accuracy {result['accuracy']:.3f}; "
             f"IG {result['ig_steps']} steps, {result['ig_seconds_per_clip']:.2f} s per clip", "",
             "| kept share | agreement (IG) | agreement (random) | agreement through audio (IG) | accuracy drop on "
             "removal (IG) | accuracy drop (random) |", "|---|---|---|---|---|---|"]
    for share, row in result["shares"].items():
        lines.append(f"| {float(share):.0%} | {row['ig']['agreement']:.3f} | {row['random']['agreement']:.3f} | "
                     f"{row['ig']['agreement_audio']:.3f} | {row['ig']['accuracy_drop']:.3f} | "
                     f"{row['random']['accuracy_drop']:.3f} |")
    return "\n".join(lines)
