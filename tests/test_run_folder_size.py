"""Run folders that scale (issue #33, point 5): what a run folder grows by per audited clip, measured with the
actual file sizes on disk, stays within 1.5× the clip's own audio file — it was ~5.6× when every subset signal
was also written as a WAV file and every array was stored as the engine handed it over."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from freqrex_audit.runs.packing import MEMBER
from tests.audit_models import write_robust_dataset
from tests.audit_runs import audit, load

SPEC = """
model: {target: "tests.audit_models:robust", batch_size: 64}
dataset: {path: data}
freqrex: {seed: 0}
attack: {budget: 200}
checks:
  sufficiency: {max_fraction: 0.9}
  fourier_attack: {max_success_rate: 1.0}
  stft_attack: {max_success_rate: 1.0}
"""


def _bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


@pytest.mark.slow
def test_a_run_folder_grows_by_at_most_one_and_a_half_times_the_audio_of_each_clip(tmp_path, monkeypatch):
    """Two audits of the same spec, 4 then 8 two-second clips (the attacks flip some: their adversarial clips
    are kept): the second run folder — results.json, results.npz, the report and the sidecar files the
    report wrote — is bigger by what 4 more clips cost. That per-clip growth is compared with the clips' own
    audio files (float32 WAVs, as the model reads them). The report's fixed part (the page, its players,
    the few sidecar files it links) is in both runs and cancels out."""
    monkeypatch.chdir(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC)
    runs, clips = [], []
    for per_class in (2, 4):
        write_robust_dataset(tmp_path / "data", per_class=per_class, seconds=2.0)  # adds clips, keeps the first
        clips.append(sorted((tmp_path / "data").rglob("*.wav")))
        runs.append(audit(tmp_path, "spec.yaml", "-q", "--threads", "1", page=True))
    first, second = runs
    samples = [s for s in load(second)["specs"]["spec"]["samples"] if s["explanation"]]
    assert len(samples) == 8 and sum(bool((s["fourier_attack"] or {}).get("adversarial")) for s in samples) >= 2
    added = [c for c in clips[1] if c not in clips[0]]
    audio = sum(c.stat().st_size for c in added) / len(added)  # the clips' own files: 4 bytes a sample + header
    growth = (_bytes(second.parent) - _bytes(first.parent)) / len(added)
    print(f"run folder growth {growth:,.0f} bytes a clip; clip audio {audio:,.0f} bytes ({growth / audio:.2f}×)")
    assert growth <= 1.5 * audio, (growth, audio)
    # nothing per clip is stored twice: no WAV but the report's few, the ranking rebuilt rather than stored
    with np.load(second.with_suffix(".npz")) as npz:
        assert MEMBER in npz.files and not any(k.endswith(".ranking") for k in npz.files)
    assert len(list((second.parent / "waveforms").rglob("*.wav"))) <= 3 * 4 + 2
