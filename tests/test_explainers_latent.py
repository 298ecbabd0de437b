"""Ground truth for the latent-space explainer, through the zoo codec: on the planted band model (16 kHz), the
decoded kept latents hold the causal band, the decoded removed ones lose most of it, and the method's FF beats
random latent features keeping the same share of the latent dimensions and the same share of their energy (z²),
on average over 20 draws, and the largest-|z| features of the same share (magnitude only).

Why FF and not the kept part's confidence: the noise that replaces the dropped features decodes to broadband
sound, which puts energy in the band too, so a random kept part also keeps the planted model's label (~0.9);
what random features do not do is take the band away when they are noised (the removed part keeps the label).
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit.engine.latent import LatentConfig, explain_latent, keep_and_noise, load_codec
from freqrex_audit.engine.methods import judge
from freqrex_audit.models.classifier import QueryEngine
from freqrex_audit.models.whitebox import white_box
from freqrex_audit.runtime.paths import ZOO_ROOT

from .explainer_models import CENTRE, DISTRACTORS, band_energy_share, band_model, tones

pytest.importorskip("captum")
SR = 16000
RANDOM_DRAWS = 20


@pytest.fixture(scope="module")
def setup():
    clf = band_model(sr=SR)
    codec = load_codec(ZOO_ROOT / "instruments" / "codec")
    x = tones({CENTRE: 0.06, **{f: a / 2 for f, a in DISTRACTORS.items()}}, seconds=0.5, sr=SR, seed=2)
    return clf, QueryEngine(clf), white_box(clf), codec, x


def _random_energy(energy: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    flat = energy.ravel()
    order = rng.permutation(flat.size)
    mask = np.zeros(flat.size, bool)
    mask[order[: int(np.searchsorted(np.cumsum(flat[order]) / flat.sum(), share)) + 1]] = True
    return mask.reshape(energy.shape)


def test_latent_keeps_the_band_and_beats_random_latent_features(setup):
    clf, engine, wb, codec, x = setup
    assert engine.query(x[None])[0].argmax() == 0
    result = explain_latent(engine, wb, codec, x, LatentConfig(keep=0.2))
    assert result.available and result.details["mode"] == "f(decode(z))"
    with torch.no_grad():
        z = codec.encode(torch.as_tensor(x[None]))
        roundtrip = codec.decode(z, len(x))[0].numpy()
    assert band_energy_share(result.kept, roundtrip, SR) > 0.5  # the decoded kept latents hold the band …
    assert band_energy_share(result.removed, roundtrip, SR) < 0.5  # … and noising them takes most of it away
    assert result.faithfulness["fid_in"] == 1.0
    energy = (z[0] ** 2).numpy()
    rng = np.random.default_rng(0)
    for kind in ("share", "energy"):
        ff = []
        for draw in range(RANDOM_DRAWS):
            if kind == "share":
                score = torch.as_tensor(rng.random(z.shape), dtype=torch.float32)
            else:
                score = torch.as_tensor(_random_energy(energy, result.energy_share, rng)[None], dtype=torch.float32)
            zk, zr, mask = keep_and_noise(z, score, float(mask_share(score, kind, result)), codec.mean, codec.std,
                                          result.seed)
            with torch.no_grad():
                kept, removed = codec.decode(torch.cat([zk, zr]), len(x)).numpy()
            probs, faith = judge(engine, x, kept, removed, result.target)
            ff.append(faith["ff"])
        assert result.faithfulness["ff"] > np.mean(ff) + 0.3, kind
    zk, zr, _ = keep_and_noise(z, z ** 2, result.kept_share, codec.mean, codec.std, result.seed)  # magnitude only
    with torch.no_grad():
        kept, removed = codec.decode(torch.cat([zk, zr]), len(x)).numpy()
    assert result.faithfulness["ff"] > judge(engine, x, kept, removed, result.target)[1]["ff"] + 0.3


def mask_share(score: torch.Tensor, kind: str, result) -> float:
    """The share keep_and_noise keeps: the method's for a random order, the drawn mask's for the energy draw."""
    return result.kept_share if kind == "share" else float((score > 0.5).float().mean())


def test_latent_is_deterministic_under_a_seed(setup):
    _, engine, wb, codec, x = setup
    a = explain_latent(engine, wb, codec, x, LatentConfig(seed=3))
    b = explain_latent(engine, wb, codec, x, LatentConfig(seed=3))
    c = explain_latent(engine, wb, codec, x, LatentConfig(seed=4))
    assert a.to_json() == b.to_json()
    assert np.array_equal(a.mask, c.mask) and not np.array_equal(a.kept, c.kept)  # the seed is the noise's


def test_a_codec_named_from_the_local_hub_cache_is_used_and_a_missing_one_is_not_downloaded(setup, tmp_path,
                                                                                              monkeypatch):
    """A user's real EnCodec checkpoint is named ``hf://org/name`` and read from the local hub cache only (here the
    zoo codec laid out as the hub would); a name not in the cache makes the method unavailable, saying why."""
    import socket

    from freqrex_audit.audit.explainers import explain_with
    from tests.test_adapters_hf_pipeline import cache_model

    clf, _, _, codec, x = setup
    cache_model(tmp_path / "hub", "someone/encodec-small", ZOO_ROOT / "instruments" / "codec")
    monkeypatch.setenv("HF_HUB_CACHE", str(tmp_path / "hub"))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr(socket.socket, "connect", lambda *a, **k: (_ for _ in ()).throw(AssertionError("network")))
    config = LatentConfig(codec="hf://someone/encodec-small", ig_steps=4)
    named = explain_with(clf, x, "latent", latent=config)
    assert named.available and named.details["codec_fingerprint"] == codec.fingerprint
    zoo = explain_with(clf, x, "latent", latent=LatentConfig(codec=str(ZOO_ROOT / "instruments" / "codec"), ig_steps=4))
    assert np.array_equal(named.mask, zoo.mask) and np.array_equal(named.kept, zoo.kept)
    missing = explain_with(clf, x, "latent", latent=LatentConfig(codec="hf://someone/not-fetched", ig_steps=4))
    assert not missing.available and "not in the local Hugging Face cache" in missing.reason
