"""The model's input window (#21): reported by HF classifiers, honoured by audits and explain, noted in results."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit.adapters.transformers import extractor_window
from freqrex_audit.models.input_window import crop_to_input_window
from tests.audit_models import SR, write_fragile_dataset
from tests.audit_runs import audit, load, npz_arrays


def test_crop_keeps_first_window_and_says_so():
    clf = type("C", (), {"input_window": 100, "sample_rate": 1000})()
    x = np.arange(250, dtype=np.float32)
    cropped, note = crop_to_input_window(x, clf)
    assert np.array_equal(cropped, x[:100])
    assert note.startswith("cropped to the model's 0.1 s input window") and "100 of 250" in note
    short, none = crop_to_input_window(x[:80], clf)
    assert none is None and len(short) == 80
    clf.input_window = None
    assert crop_to_input_window(x, clf)[1] is None


@pytest.mark.parametrize("family, expected", [("ast", 99 * 160 + 400), ("whisper", 16000), ("wav2vec2", None)])
def test_hf_classifier_reports_the_window_its_extractor_reads(tmp_path, family, expected):
    """The window is exactly what the model reads: its answer on a long clip equals that on the window."""
    from freqrex_audit.adapters.transformers import load_transformers_classifier
    from tests.hf_models import build_tiny_model

    clf = load_transformers_classifier(build_tiny_model(family, tmp_path / family), device="cpu")
    assert clf.input_window == expected
    if expected is None:
        return
    x = torch.randn(2, expected + 8000, generator=torch.Generator().manual_seed(0)) * 0.1
    whole, window = clf.predict(x), clf.predict(x[:, :expected])
    assert torch.allclose(whole, window, atol=1e-6)
    shorter = clf.predict(x[:, :expected - 2000])  # and the window is no larger than needed: its end matters
    assert not torch.allclose(window, shorter, atol=1e-6)


def test_extractor_window_unknown_extractor_is_unbounded():
    assert extractor_window(object()) is None


def audit_half_second_clips(tmp_path, monkeypatch, dataset: str = "{path: data}"):
    """Audit 0.5-s clips (4000 samples) with the 0.25-s-window model (2000 samples); results.json's path."""
    write_fragile_dataset(tmp_path / "data", per_class=1, seconds=0.5)
    (tmp_path / "spec.yaml").write_text(
        f'model: {{target: "tests.scale_models:windowed"}}\ndataset: {dataset}\nfreqrex: {{seed: 0}}\n'
        "attack: {budget: 5, pool: ranking}\nchecks:\n  accuracy: {min: 0.5}\n  sufficiency: {max_fraction: 0.5}\n")
    monkeypatch.chdir(tmp_path)
    return audit(tmp_path, "spec.yaml", page=True)


def test_cropped_clip_note_reaches_results_and_report(tmp_path, monkeypatch):
    results = audit_half_second_clips(tmp_path, monkeypatch)
    doc = load(results)
    samples = doc["specs"]["spec"]["samples"]
    arrays = npz_arrays(results)
    assert len(samples) == 2
    for sample in samples:
        assert any(n.startswith("cropped to the model's 0.25 s input window") for n in sample["notes"]), sample
        waveform = sample["explanation"]["waveform"]  # the explanation is of the window, not the whole clip
        assert len(arrays[waveform["__npz__"]]) == 2000
    html = (results.parent / "report.html").read_text()
    assert "input window" in html and "0.25 s" in html


def test_spec_window_seconds_sets_the_window(tmp_path):
    from freqrex_audit import load_classifier
    from freqrex_audit.specs.loader import load_spec

    (tmp_path / "data" / "loud").mkdir(parents=True)
    (tmp_path / "s.yaml").write_text('model: {target: "tests.audit_models:fragile", window_seconds: 0.25}\n'
                                     "dataset: {path: data}\nchecks: {accuracy: {min: 0.5}}\n")
    spec = load_spec(tmp_path / "s.yaml")
    clf = load_classifier(spec.model, device="cpu", base_dir=spec.base_dir, self_check=False)
    assert clf.input_window == SR // 4


def test_window_count_keeps_a_tail_of_at_least_half_a_window():
    from freqrex_audit.models.input_window import window_count

    assert [window_count(n, 100) for n in (50, 100, 149, 150, 250, 299, 300)] == [1, 1, 1, 2, 3, 3, 3]


def test_every_window_of_a_long_clip_is_audited_as_its_own_sample(tmp_path, monkeypatch):
    """dataset.windows: all — a 0.5 s clip and a 0.25 s window give two samples, @0s and @0.25s, each the exact
    quarter second of the recording it names, each with its note; the other results stay per recording."""
    from freqrex_audit.audio.io import load_audio

    results = audit_half_second_clips(tmp_path, monkeypatch, dataset="{path: data, windows: all}")
    samples = load(results)["specs"]["spec"]["samples"]
    arrays = npz_arrays(results)
    assert len(samples) == 4 and sorted({s["id"].split("@")[1] for s in samples}) == ["0.25s", "0s"]
    assert sum(bool(s.get("explanation")) for s in samples) >= 2  # windows were explained, not only listed
    assert "@0.25s" in (results.parent / "report.html").read_text()
    for sample in samples:
        start = 0 if sample["id"].endswith("@0s") else 2000
        (note,) = [n for n in sample["notes"] if n.startswith("window ")]
        assert f"{start / SR:g}–{(start + 2000) / SR:g} s" in note
        recording, _ = load_audio(tmp_path / "data" / sample["id"].split("@")[0], sample_rate=SR)
        if sample.get("explanation"):
            waveform = arrays[sample["explanation"]["waveform"]["__npz__"]]
            assert np.array_equal(waveform, recording[start:start + 2000])


def test_windows_all_is_validated_and_changes_the_config_hash(tmp_path):
    from freqrex_audit.runs.baselines import config_hash
    from freqrex_audit.specs.loader import SpecError, load_spec

    (tmp_path / "data" / "loud").mkdir(parents=True)
    body = 'model: {target: "tests.audit_models:fragile"}\ndataset: {path: data%s}\nchecks: {accuracy: {min: 0.5}}\n'
    (tmp_path / "a.yaml").write_text(body % "")
    (tmp_path / "b.yaml").write_text(body % ", windows: all")
    (tmp_path / "c.yaml").write_text(body % ", windows: every")
    first, every = load_spec(tmp_path / "a.yaml"), load_spec(tmp_path / "b.yaml")
    assert first.dataset.windows == "first" and every.dataset.windows == "all"
    assert config_hash(first) != config_hash(every)
    with pytest.raises(SpecError, match="windows"):
        load_spec(tmp_path / "c.yaml")
