"""Ground truth for every explainer: on a planted model whose causal band is known, the method's kept part holds
the band, and its faithfulness beats a random mask keeping the same share of the method's own representation
(rfft bins, STFT cells, latent features) and one keeping the same share of its energy. The clip hides a quiet
causal tone under loud distractors, so a magnitude-only mask of the same share misses the band (checked: the
test would fail for it), and a random mask keeps only its share of the band.
"""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit.engine import FreqReXConfig, explain
from freqrex_audit.engine.lmac import LMACConfig, explain_lmac, lmac_masks, stft_masked_pair, train_lmac
from freqrex_audit.engine.methods import energy_share, freqrex_method, judge, summarize
from freqrex_audit.models.classifier import QueryEngine
from freqrex_audit.models.whitebox import white_box

from .explainer_models import CENTRE, band_clip, band_energy_share, band_model, training_clips

SR = 8000
FRAME = 256
LMAC = LMACConfig(steps=80, batch=8, frame_size=FRAME, seed=0)
RANDOM_DRAWS = 20
"""Random masks are compared on average: one draw may hit the band by luck (that is what random means)."""


def _random_share(shape: tuple, k: int, seed: int) -> np.ndarray:
    mask = np.zeros(int(np.prod(shape)), bool)
    mask[np.random.default_rng(seed).choice(mask.size, k, replace=False)] = True
    return mask.reshape(shape)


def _random_energy(energy: np.ndarray, share: float, seed: int) -> np.ndarray:
    flat, rng = energy.ravel(), np.random.default_rng(seed)
    order = rng.permutation(flat.size)
    cumulative = np.cumsum(flat[order]) / flat.sum()
    mask = np.zeros(flat.size, bool)
    mask[order[: int(np.searchsorted(cumulative, share)) + 1]] = True
    return mask.reshape(energy.shape)


@pytest.fixture(scope="module")
def planted():
    clf = band_model(sr=SR)
    return clf, QueryEngine(clf), white_box(clf)


@pytest.fixture(scope="module")
def decoder(planted):
    clf, _, wb = planted
    return train_lmac(wb, training_clips(48, sr=SR), LMAC)


def test_the_planted_model_and_clip_are_what_the_tests_assume(planted):
    clf, engine, _ = planted
    x = band_clip(sr=SR)
    assert engine.query(x[None])[0].argmax() == 0  # "band"
    without = np.fft.irfft(np.fft.rfft(x) * (np.abs(np.fft.rfftfreq(len(x), 1 / SR) - CENTRE) > 60), len(x))
    assert engine.query(without[None].astype(np.float32))[0].argmax() == 1  # the band alone decides


def _stft_mask_ff(engine, x, mask, target):
    kept, removed = stft_masked_pair(torch.as_tensor(x[None]), torch.as_tensor(mask[None], dtype=torch.float32), FRAME)
    probs, faith = judge(engine, x, kept[0].numpy(), removed[0].numpy(), target)
    return faith, kept[0].numpy()


def test_lmac_keeps_the_band_and_beats_random_and_magnitude_masks(planted, decoder):
    _, engine, wb = planted
    x = band_clip(sr=SR, seed=3)
    result = explain_lmac(engine, wb, decoder, x)
    assert result.available and result.method == "lmac"
    assert band_energy_share(result.kept, x, SR) > 0.9      # the kept part holds the band …
    assert band_energy_share(result.removed, x, SR) < 0.1   # … and the removed part lost it
    assert result.faithfulness["ff"] > 0.9 and result.faithfulness["fid_in"] == 1.0
    _, energy = lmac_masks(wb, decoder, x)
    energy = energy[0]
    k = int(result.mask.sum())
    assert 0 < result.kept_share < 0.3
    for draw in (lambda seed: _random_share(energy.shape, k, seed),  # the same share of STFT cells
                 lambda seed: _random_energy(energy, result.energy_share, seed)):  # the same share of energy
        ff = np.mean([_stft_mask_ff(engine, x, draw(seed), result.target)[0]["ff"] for seed in range(RANDOM_DRAWS)])
        assert result.faithfulness["ff"] > ff + 0.5
    loudest = np.zeros(energy.size, bool)
    loudest[np.argsort(-energy.ravel())[:k]] = True
    faith, kept = _stft_mask_ff(engine, x, loudest.reshape(energy.shape), result.target)
    assert band_energy_share(kept, x, SR) < 0.5  # a magnitude-only mask misses the quiet causal band
    assert result.faithfulness["ff"] > faith["ff"] + 0.5


def test_freqrex_as_a_method_keeps_the_band_and_beats_random_bins(planted):
    _, engine, _ = planted
    x = band_clip(sr=SR, seed=3)
    exp = explain(engine, x, FreqReXConfig(seed=0))
    result = freqrex_method(engine, x, exp)
    hz = np.fft.rfftfreq(len(x), 1 / SR)[result.mask]
    assert np.all(np.abs(hz - CENTRE) <= 60)  # every kept bin is in the causal band
    assert result.faithfulness["fid_in"] == 1.0
    power = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    k = int(result.mask.sum())
    ours = result.probs[1][result.target]
    spectrum = np.fft.rfft(x)

    def kept_confidence(mask: np.ndarray) -> float:
        kept = np.fft.irfft(spectrum * mask, len(x)).astype(np.float32)
        removed = np.fft.irfft(spectrum * ~mask, len(x)).astype(np.float32)
        return judge(engine, x, kept, removed, result.target)[0][1][result.target]

    for draw in (lambda seed: _random_share(power.shape, k, seed),  # the same share of rfft bins
                 lambda seed: _random_energy(power, result.energy_share, seed)):  # the same share of energy
        mean = np.mean([kept_confidence(draw(seed)) for seed in range(RANDOM_DRAWS)])
        assert ours > mean + 0.5  # the kept bins keep the decision; random ones of the same share do not
    loudest = np.argsort(-power)[:k]
    assert not np.any(np.abs(np.fft.rfftfreq(len(x), 1 / SR)[loudest] - CENTRE) <= 60)


def test_lmac_is_deterministic_under_a_seed(planted):
    _, engine, wb = planted
    clips = training_clips(16, sr=SR)
    config = LMACConfig(steps=6, batch=4, frame_size=FRAME, seed=5)
    a, b = train_lmac(wb, clips, config), train_lmac(wb, clips, config)
    for (name, p), q in zip(a.decoder.state_dict().items(), b.decoder.state_dict().values()):
        assert torch.equal(p, q), name
    x = band_clip(sr=SR)
    first, second = explain_lmac(engine, wb, a, x), explain_lmac(engine, wb, b, x)
    assert np.array_equal(first.mask, second.mask) and np.array_equal(first.kept, second.kept)
    assert first.to_json() == second.to_json()


def test_summarize_uses_the_engine_faithfulness_with_counts_and_intervals(planted, decoder):
    _, engine, wb = planted
    results = [explain_lmac(engine, wb, decoder, band_clip(sr=SR, seed=s)) for s in range(3)]
    summary = summarize(results)
    assert summary["n"] == 3 and summary["fid_in"]["k"] == 3 and summary["fid_in"]["n"] == 3
    assert summary["ff"]["low"] <= summary["ff"]["value"] <= summary["ff"]["high"]
    assert summary["queries"] == results[0].queries and summary["kept_share"] > 0
    assert abs(summary["energy_share"] - np.mean([r.energy_share for r in results])) < 1e-12
    assert energy_share(np.ones(4), np.array([True, False, False, False])) == 0.25


def test_the_guidance_stage_keeps_the_band_and_more_of_the_clip(planted, decoder):
    import dataclasses

    _, engine, wb = planted
    guided = train_lmac(wb, training_clips(48, sr=SR), dataclasses.replace(LMAC, guidance_steps=40, guidance=4.0))
    x = band_clip(sr=SR, seed=3)
    plain, tuned = explain_lmac(engine, wb, decoder, x), explain_lmac(engine, wb, guided, x)
    assert band_energy_share(tuned.kept, x, SR) > 0.9 and tuned.faithfulness["fid_in"] == 1.0
    assert tuned.energy_share >= plain.energy_share  # pulled toward the clip where the decision holds
