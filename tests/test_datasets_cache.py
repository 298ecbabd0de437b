"""datasets.py (order, balanced limits, manifests, truncation, bad clips) and cache.py (checksums, races)."""

from __future__ import annotations

import threading
from pathlib import Path

import numpy as np
import soundfile as sf

from freqrex_audit.audit.run import run_spec
from freqrex_audit.audit.cache import Cache, make_key
from freqrex_audit.audit.datasets import list_samples, load_clip
from freqrex_audit.specs.loader import DatasetSpec, load_spec
from tests.audit_models import SR, write_robust_dataset


def wav(path: Path, seconds: float, hz: float = 300.0) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(seconds * SR)) / SR
    sf.write(path, (0.3 * np.sin(2 * np.pi * hz * t)).astype(np.float32), SR, subtype="FLOAT")


def test_folder_order_and_balanced_limit(tmp_path):
    for label, count in (("b", 3), ("a", 1), ("c", 2)):
        for i in range(count):
            wav(tmp_path / label / f"{i}.wav", 0.1)
    (tmp_path / "b" / "notes.txt").write_text("not audio")
    dataset = DatasetSpec(tmp_path, "folder")
    assert [s.id for s in list_samples(dataset)] == ["a/0.wav", "b/0.wav", "b/1.wav", "b/2.wav", "c/0.wav", "c/1.wav"]
    assert [s.id for s in list_samples(dataset, limit=4)] == ["a/0.wav", "b/0.wav", "b/1.wav", "c/0.wav"]


def test_manifest_label_map_and_truncation(tmp_path):
    wav(tmp_path / "clips" / "x.wav", 0.5)
    (tmp_path / "m.csv").write_text("path,label,extra\nclips/x.wav,tone,1\nclips/missing.wav,tone,2\n")
    dataset = DatasetSpec(tmp_path / "m.csv", "csv", label_map=(("tone", "low"),))
    samples = list_samples(dataset)
    assert [(s.id, s.label) for s in samples] == [("clips/missing.wav", "low"), ("clips/x.wav", "low")]
    assert len(load_clip(samples[1], SR, clip_seconds=0.25)) == SR // 4  # the first clip_seconds


def test_bad_clips_are_reported_not_dropped_and_do_not_stop_the_audit(tmp_path):
    write_robust_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "data" / "low" / "broken.wav").write_bytes(b"RIFF not really a wav")
    sf.write(tmp_path / "data" / "high" / "silent.wav", np.zeros(800, np.float32), SR)
    (tmp_path / "spec.yaml").write_text("model: {target: 'tests.audit_models:robust'}\ndataset: {path: data}\n"
                                        "checks: {sufficiency: {}}\n")
    result = run_spec(load_spec(tmp_path / "spec.yaml"), "cpu")
    status = {r.sample.id: (r.status, r.reason) for r in result.samples}
    assert status["low/broken.wav"][0] == "skipped" and "cannot be decoded" in status["low/broken.wav"][1]
    assert status["high/silent.wav"][0] == "skipped" and "silence" in status["high/silent.wav"][1]
    assert status["low/000.wav"][0] == status["high/000.wav"][0] == "ok"
    skipped = [v for v in result.verdicts if v.check == "sufficiency" and v.passed is None]
    assert {v.key for v in skipped} == {"low/broken.wav", "high/silent.wav"}


def test_cache_round_trip_and_corrupt_entry_is_a_miss(tmp_path):
    cache = Cache(tmp_path)
    key = make_key("phase", "model", {"seed": 0})
    assert cache.get(key) is None
    cache.put(key, {"a": [1, 2]}, {"x": np.arange(5.0)})
    data, arrays = cache.get(key)
    assert data == {"a": [1, 2]} and np.array_equal(arrays["x"], np.arange(5.0))
    entry = next(tmp_path.rglob("*.frx"))
    blob = bytearray(entry.read_bytes())
    blob[-10] ^= 0xFF
    entry.write_bytes(bytes(blob))
    assert cache.get(key) is None and cache.corrupt == 1
    cache.put(key, {"a": 3})
    assert cache.get(key)[0] == {"a": 3}
    assert make_key("phase", "model", {"seed": 1}) != key


def test_another_runtime_version_is_another_key(monkeypatch):
    """An entry another onnxruntime computed need not be what this one computes: the numeric runtimes' versions are
    part of every key."""
    from freqrex_audit.audit import cache

    key = make_key("phase", "model", {"seed": 0})
    assert dict(cache.runtime_versions())["numpy"] == np.__version__
    monkeypatch.setattr(cache, "runtime_versions", lambda: (("onnxruntime", "0.0.1"),))
    assert make_key("phase", "model", {"seed": 0}) != key


def test_concurrent_writers_leave_a_complete_entry(tmp_path):
    cache = Cache(tmp_path)
    key = make_key("race")
    payload = {"values": list(range(2000))}

    def writer() -> None:
        for _ in range(10):
            cache.put(key, payload, {"w": np.ones(4096)})
            got = Cache(tmp_path).get(key)
            assert got is not None and got[0] == payload

    threads = [threading.Thread(target=writer) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert Cache(tmp_path).get(key)[0] == payload
    assert not [p for p in tmp_path.rglob("*.tmp")]


def test_a_killed_writers_old_temp_files_are_swept_fresh_ones_kept(tmp_path):
    import os
    import time

    cache = Cache(tmp_path)
    key = make_key("kept")
    cache.put(key, {"a": 1})
    folder = next(tmp_path.glob("*/"))
    old, fresh = folder / ".dead.frx.abc.tmp", folder / ".live.frx.def.tmp"
    old.write_bytes(b"half")
    fresh.write_bytes(b"being written")
    hours_ago = time.time() - 2 * 3600
    os.utime(old, (hours_ago, hours_ago))
    reopened = Cache(tmp_path)
    assert reopened.swept == 1 and not old.exists() and fresh.exists()
    assert reopened.get(key)[0] == {"a": 1}


def test_without_clip_seconds_a_long_clip_is_capped_with_a_note(tmp_path):
    from freqrex_audit.audit.datasets import MAX_CLIP_SECONDS, Sample, read_clip

    rate = 1000
    t = np.arange(int((MAX_CLIP_SECONDS + 5) * rate)) / rate
    path = tmp_path / "long.wav"
    sf.write(path, (0.3 * np.sin(2 * np.pi * 50 * t)).astype(np.float32), rate)
    clip = read_clip(Sample("long.wav", path, "x"), rate)
    assert len(clip.samples) == int(MAX_CLIP_SECONDS * rate)
    assert clip.notes == (f"longer than {MAX_CLIP_SECONDS:g} s: kept the first {MAX_CLIP_SECONDS:g} s of 65 s "
                          "(the cap when the spec sets no dataset.clip_seconds)",)


def test_pruning_deletes_the_least_recently_used_entries_and_nothing_else(tmp_path, capsys):
    """``freqrex-audit cache``: a hit makes an entry recently used; ``--older-than`` deletes what no run used for
    that long, ``--max-size`` then the least recently used until the rest fit; ``--dry-run`` deletes nothing; a
    file that is not an entry (the font cache, a user's file) is never touched."""
    import os
    import time

    from freqrex_audit.cli.main import main

    cache = Cache(tmp_path)
    keys = [make_key("entry", i) for i in range(4)]
    for key in keys:
        cache.put(key, {"i": key}, {"x": np.zeros(1000)})
    figures = Cache(tmp_path / "figures", suffix=".fig")
    figures.put(keys[0], {"png": "data:"})
    now = time.time()
    paths = [tmp_path / k[:2] / f"{k}.frx" for k in keys]
    for age_days, path in zip((40, 30, 20, 1), paths):
        os.utime(path, (now - age_days * 86400, now - age_days * 86400))
    (tmp_path / "matplotlib").mkdir()
    (tmp_path / "matplotlib" / "fontlist.json").write_text("{}")
    (tmp_path / paths[0].parent.name / "notes.txt").write_text("mine")
    assert Cache(tmp_path).get(keys[0]) is not None  # the oldest is used again: now the most recent
    size = paths[0].stat().st_size + next((tmp_path / "figures").rglob("*.fig")).stat().st_size

    assert main(["cache", str(tmp_path), "--older-than", "10", "--dry-run"]) == 0
    assert all(p.exists() for p in paths) and "would remove 2 least recently used entries" in capsys.readouterr().out
    assert main(["cache", str(tmp_path), "--older-than", "10"]) == 0
    assert [p.exists() for p in paths] == [True, False, False, True]
    assert "results: 2 entries" in capsys.readouterr().out
    assert main(["cache", str(tmp_path), "--max-size", str(size)]) == 0  # room for one results entry and the figure
    out = capsys.readouterr().out
    assert [p.exists() for p in paths] == [True, False, False, False], out
    assert "results: 1 entries" in out and "figures: 1 entries" in out
    assert (tmp_path / "matplotlib" / "fontlist.json").exists() and (paths[0].parent / "notes.txt").exists()
    assert Cache(tmp_path).get(keys[3]) is None  # a pruned entry is a miss: recomputed when a run needs it


def test_a_run_after_its_cache_is_pruned_recomputes_the_same_results(tmp_path):
    """Pruning costs only time: an audit whose every entry was deleted recomputes them, bit for bit."""
    from freqrex_audit.cli.main import main
    from tests.audit_runs import stable_text
    from tests.cluster_models import GOOD

    write_robust_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "good.yaml").write_text(GOOD)
    args = ["audit", str(tmp_path / "good.yaml"), "--cache", str(tmp_path / "cache"), "--report",
            str(tmp_path / "reports"), "--device", "cpu", "-q"]
    assert main(args) == 0
    assert main(["cache", str(tmp_path / "cache"), "--max-size", "0"]) == 0
    assert not list((tmp_path / "cache").rglob("*.frx")) and not list((tmp_path / "cache").rglob("*.fig"))
    assert main(args) == 0
    first, second = sorted((tmp_path / "reports").glob("*/results.json"))
    assert stable_text(first) == stable_text(second)
