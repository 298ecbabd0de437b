"""What the zoo ships for the explainers, and the one interface over them (API and CLI).

The codec round-trips the held-out clips at the SNR its results.json states; every instrument model has its
L-MAC decoder (found by fingerprint, so CI never retrains); the latent paper's head scores its recorded
accuracy; ``fa.explain_with`` returns one result type for every method (each method's determinism under a seed
is tested on the planted models, test_explainers_ground_truth / _latent, FreqReX's in test_determinism);
gradient methods say "not available" on the zoo's TorchScript, ONNX and TFLite models; ``freqrex-audit explain
--method`` writes explanation.json with the method, its kept part, faithfulness, cost and time.
"""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

import freqrex_audit as fa
from freqrex_audit.audit.explainers import shipped_decoder
from freqrex_audit.engine.latent import load_codec
from freqrex_audit.engine.lmac import LMACConfig
from freqrex_audit.engine.methods import METHODS, MethodExplanation
from freqrex_audit.runtime.paths import ZOO_ROOT

INSTRUMENTS = ZOO_ROOT / "instruments"
CODEC = INSTRUMENTS / "codec"
CLIP = INSTRUMENTS / "eval" / "violin" / "violin_000.flac"


def test_the_zoo_codec_round_trips_held_out_clips_at_its_stated_snr():
    from freqrex_audit.zoo.train_codec import held_out_snr
    from freqrex_audit.zoo.train import load_split

    stated = json.loads((CODEC / "results.json").read_text())["held_out_snr_db"]
    measured = held_out_snr(CODEC, load_split("eval")[0])
    assert measured.keys() == stated.keys()
    for name, value in stated.items():  # continuous latents, then the k-means codebooks at each bandwidth
        assert measured[name] == pytest.approx(value, abs=0.05), name
    assert stated["continuous"] >= max(v for k, v in stated.items() if k != "continuous")
    codec = load_codec(CODEC)
    assert codec.mean.shape == codec.std.shape == (32,) and torch.all(codec.std > 0)


@pytest.mark.parametrize("name", ["ast", "wav2vec2", "hubert", "whisper"])
def test_each_instrument_model_has_its_decoder_and_it_explains(name):
    clf = fa.load_classifier(f"zoo://instruments/{name}", device="cpu")
    decoder = shipped_decoder(clf, LMACConfig().to_dict())
    assert decoder is not None, "no shipped decoder matches this model's fingerprint: retrain it (zoo README)"
    assert decoder.meta["identity"]["train"] == "zoo://instruments/train"
    x, _ = fa.load_audio(CLIP, sample_rate=clf.sample_rate)
    result = fa.explain_with(clf, x[:16000], "lmac")
    assert result.available and "shipped with the zoo" in result.details["notes"][0]
    assert 0 < result.kept_share < 0.6 and result.faithfulness["fid_in"] == 1.0


def test_the_latent_head_scores_its_recorded_accuracy():
    facts = json.loads((INSTRUMENTS / "models" / "latent" / "head.json").read_text())
    clf = fa.load_classifier("zoo://instruments/latent", device="cpu")
    samples = sorted(p for p in (INSTRUMENTS / "eval").glob("*/*.flac"))
    x = np.stack([fa.load_audio(p, sample_rate=16000)[0][:16000] for p in samples])
    labels = [p.parent.name for p in samples]
    predicted = fa.QueryEngine(clf).query(x).argmax(1)
    assert np.mean([clf.labels[i] == y for i, y in zip(predicted, labels)]) == pytest.approx(facts["eval_accuracy"])


def test_explain_with_gives_one_result_type_for_every_method():
    clf = fa.load_classifier("zoo://instruments/whisper", device="cpu")
    x, _ = fa.load_audio(CLIP, sample_rate=16000)
    x = x[:16000]
    for method in METHODS:
        result = fa.explain_with(clf, x, method)
        assert isinstance(result, MethodExplanation) and result.method == method and result.available
        assert result.mask.dtype == bool and result.kept.shape == result.removed.shape == x.shape
        assert set(result.faithfulness) == {"ai", "ad", "ag", "ff", "fid_in"} and result.queries >= 3
        assert result.gradient_calls == (32 if method == "latent" else 0)
    paper = fa.explain_with(fa.load_classifier("zoo://instruments/latent", device="cpu"), x, "latent")
    assert paper.details["mode"].startswith("paper") and "latent_kept_agrees" in paper.details


@pytest.mark.parametrize("model, family", [("zoo://vad/silero", "TorchScript"), ("zoo://vad/silero-onnx", "ONNX"),
                                           ("zoo://wakeword/okay-nabu", "TFLite")])
def test_gradient_methods_are_not_available_on_exported_models(model, family):
    if family == "ONNX":
        pytest.importorskip("onnxruntime")
    if family == "TFLite":
        pytest.importorskip("ai_edge_litert")
    clf = fa.load_classifier(model, device="cpu")
    x = np.zeros(clf.sample_rate, np.float32)
    for method in ("lmac", "latent"):
        result = fa.explain_with(clf, x, method)
        assert not result.available and family in result.reason and result.probs is None


@pytest.mark.parametrize("method", METHODS)
def test_cli_explain_writes_the_method_its_kept_part_faithfulness_and_cost(tmp_path, method):
    from freqrex_audit.cli.main import main

    out = tmp_path / method
    assert main(["explain", "zoo://instruments/whisper", str(CLIP), "--method", method, "--out", str(out),
                 "--device", "cpu", "--cache", "none"]) == 0
    doc = json.loads((out / "explanation.json").read_text())
    assert doc["method"] == method and doc["available"]
    assert {"mask", "kept", "faithfulness", "queries", "gradient_calls", "seconds", "kept_share",
            "energy_share", "representation"} <= set(doc)
    assert (out / "kept.wav").is_file() and (out / "removed.wav").is_file()
    if method == "freqrex":  # the FreqReX explanation still loads as one
        assert fa.Explanation.load(out / "explanation.json").target_label == doc["target_label"]
