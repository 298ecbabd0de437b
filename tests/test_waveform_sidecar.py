"""The run folder's waveform sidecar: the files are exactly the signals the audit measured (re-querying the
model gives the recorded confidences), written on demand from results.npz and checked against the sha256
the audit recorded (a rebuild that differs says so), a cached run records the same, the report links them
(and says when they cannot be had), and §5.1–5.2 of the transferability paper rebuild from the folder alone."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest

from freqrex_audit.audit.run import run_spec
from freqrex_audit.runs.write import write_results
from freqrex_audit.audit.cache import Cache
from freqrex_audit.models.classifier import QueryEngine
from freqrex_audit.cli.main import main
from freqrex_audit.engine.explanation import Explanation
from freqrex_audit.report import render_report
from freqrex_audit.specs.loader import load_spec
from freqrex_audit.runs.spectra import compare_spectra, rebuild_spectra, recorded_spectra
from freqrex_audit.runs.waveforms import (FOLDER, RunSignals, SidecarError, load_signal, read_wav, sha256_of,
                                          wav_bytes)
from tests.audit_models import robust, write_robust_dataset
from tests.audit_runs import assert_same_arrays, load, npz_arrays, stable_text

SPEC = """
model: {target: "tests.audit_models:robust", batch_size: 64}
dataset: {path: data}
freqrex: {seed: 0}
checks:
  sufficiency: {max_fraction: 0.9}
  composition: {min_ratio: 0.0}
"""


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """A cold run and a run from its cache (written as the CLI writes them, without the attacks), of 3 + 3
    clips of a band-energy model (many-bin subsets, so the spectral entropies differ between clips)."""
    project = tmp_path_factory.mktemp("sidecar")
    write_robust_dataset(project / "data", per_class=3)
    (project / "spec.yaml").write_text(SPEC)
    spec, cache = load_spec(project / "spec.yaml"), Cache(project / "cache")
    stages = frozenset({"predict", "explain", "verify", "cross"})
    paths = []
    for name in ("cold", "cached"):
        result = run_spec(spec, "cpu", cache, stages=stages)
        paths.append(write_results([result], project / name, device="cpu"))
    assert cache.hits > 0 and result.queries == 0  # the second run came from the cache
    return tuple(paths)


def _section(results: Path) -> dict:
    return load(results)["specs"]["spec"]


def test_clip_files_are_the_signals_the_model_was_asked_about(runs):
    cold, _ = runs
    run, section, arrays = cold.parent, _section(cold), npz_arrays(cold)
    index = section["waveforms"]
    analysed = [s for s in section["samples"] if s["explanation"]]
    assert len(analysed) == 6 and sorted(index["clips"]) == sorted(s["id"] for s in analysed)
    assert not list((run / FOLDER).rglob("*.wav"))  # the audit writes no file: they are handed out on demand
    assert main(["waveforms", str(run)]) == 0
    model = QueryEngine(robust())  # the audit's own query path, a fresh model
    checked = 0
    for sample in analysed:
        exp = Explanation.from_dict(sample["explanation"], arrays)
        clip = index["clips"][sample["id"]]
        assert clip["label"] == exp.target_label and clip["total_bins"] == exp.n_bins
        for kind in ("sufficient", "minimal", "necessary", "complete"):
            entry = clip["signals"].get(kind)
            if exp.bins(kind) is None:
                assert entry is None
                continue
            assert entry["path"].startswith(f"{FOLDER}/") and entry["bins"] == len(exp.bins(kind))
            data = (run / entry["path"]).read_bytes()
            assert sha256_of(data) == entry["sha256"]
            samples, rate = read_wav(run / entry["path"])
            assert rate == entry["sample_rate"] == exp.sample_rate and samples.dtype == np.float32
            assert np.array_equal(samples, exp.signal(kind))  # bit for bit, no quantisation
            # re-query the model on the file alone: the recorded confidence comes back
            p = float(model.query(samples[None])[0, exp.target])
            assert abs(p - entry["confidence"]) <= 1e-6, (sample["id"], kind, p, entry["confidence"])
            checked += 1
    assert checked >= 12  # every clip has at least a sufficient and a minimal signal


def test_class_composites_are_the_average_of_the_kept_clips_and_give_the_recorded_label(runs):
    cold, _ = runs
    run, section = cold.parent, _section(cold)
    classes, clips = section["waveforms"]["classes"], section["waveforms"]["clips"]
    assert sorted(classes) == ["high", "low"]
    model = QueryEngine(robust())  # the audit's own query path, a fresh model
    for label, entry in classes.items():
        assert entry["kept_ids"] and section["composition"][label]["kept"] == len(entry["kept_ids"])
        composite = load_signal(run, entry)
        # compose's own arithmetic: float64 running sum in the order the signals were kept, / n, to float32
        total = np.zeros(len(composite), dtype=np.float64)
        for clip_id in entry["kept_ids"]:
            total = total + load_signal(run, clips[clip_id]["signals"]["sufficient"])
        assert np.array_equal(composite, (total / len(entry["kept_ids"])).astype(np.float32))
        probs = model.query(composite[None])[0]
        assert model.classifier.labels[int(probs.argmax())] == entry["label"] == label
        assert abs(float(probs.max()) - entry["confidence"]) <= 1e-6


def test_a_cached_run_writes_the_same_files(runs):
    cold, cached = runs
    a, b = _section(cold)["waveforms"], _section(cached)["waveforms"]
    assert a == b and stable_text(cold) == stable_text(cached)  # composition from the cache included
    assert_same_arrays(npz_arrays(cold), npz_arrays(cached))
    assert any(k.endswith(".composite") for k in npz_arrays(cold))
    assert cold.with_suffix(".npz").read_bytes() == cached.with_suffix(".npz").read_bytes()
    assert main(["waveforms", str(cold.parent)]) == main(["waveforms", str(cached.parent)]) == 0
    files_a = sorted(p.relative_to(cold.parent) for p in (cold.parent / FOLDER).rglob("*.wav"))
    files_b = sorted(p.relative_to(cached.parent) for p in (cached.parent / FOLDER).rglob("*.wav"))
    assert files_a == files_b and len(files_a) >= 14
    for rel in files_a:
        assert sha256_of((cold.parent / rel).read_bytes()) == sha256_of((cached.parent / rel).read_bytes())


def test_the_papers_spectral_analysis_rebuilds_from_the_run_folder_alone(runs, tmp_path):
    cold, _ = runs
    folder = tmp_path / "copy"  # results.json and results.npz only: no sidecar files, no model, no cache
    folder.mkdir()
    shutil.copy(cold, folder / "results.json")
    shutil.copy(cold.with_suffix(".npz"), folder / "results.npz")
    rebuilt, recorded = rebuild_spectra(folder), recorded_spectra(folder)
    assert rebuilt["spec"] == recorded["spec"]  # exactly: the same functions on the same float32 samples
    assert compare_spectra(folder, tolerance=0.0) == []
    classes = rebuilt["spec"]["classes"]
    assert len(classes["low"]["signal_entropies"]) == len(classes["high"]["signal_entropies"]) == 3
    assert classes["low"]["psd_power"] and all(c["composite_entropy"] is not None for c in classes.values())
    test = rebuilt["spec"]["tests"]["high vs low"]
    assert test["n_a"] == test["n_b"] == 3 and 0.0 < test["pvalue"] <= 1.0
    assert main(["spectra", str(folder), "--json", str(tmp_path / "spectra.json")]) == 0
    assert json.loads((tmp_path / "spectra.json").read_text()) == json.loads(json.dumps(rebuilt, sort_keys=True))

    assert not (folder / FOLDER).exists()  # spectra rebuilt the signals in memory and wrote nothing
    assert main(["waveforms", str(folder)]) == 0 and rebuild_spectra(folder) == rebuilt  # from the files: the same

    # a changed file is caught by its sha256, named, never silently analysed
    victim = next((folder / FOLDER).rglob("*-sufficient.wav"))
    samples, rate = read_wav(victim)
    victim.write_bytes(wav_bytes(samples * 1.001, rate))
    with pytest.raises(SidecarError, match="changed since the run"):
        rebuild_spectra(folder)
    assert main(["spectra", str(folder)]) == 2


def test_the_report_links_the_sidecar_and_says_when_it_is_missing(runs, tmp_path, capsys):
    cold, _ = runs
    folder = tmp_path / "run"
    shutil.copytree(cold.parent, folder)
    shutil.rmtree(folder / FOLDER, ignore_errors=True)  # as the audit left it (other tests write the files)
    html = render_report(folder / "results.json", max_sample_cards=1).read_text()
    hrefs = [h for h in (part.split('"', 1)[0] for part in html.split('href="')[1:]) if h.startswith(FOLDER)]
    assert hrefs and all((folder / h).is_file() for h in hrefs)
    linked = {h.rsplit("/", 1)[-1] for h in hrefs}
    assert any(h.endswith("-composite.wav") for h in hrefs) and "float32 WAV (exact)" in html
    assert "Mann–Whitney" in html and "sidecar-missing" not in html

    # a page written elsewhere links the files relative to itself
    elsewhere = render_report(folder / "results.json", tmp_path / "pages" / "r.html", max_sample_cards=0)
    hrefs = [h for h in (part.split('"', 1)[0] for part in elsewhere.read_text().split('href="')[1:]) if FOLDER in h]
    assert hrefs and all((elsewhere.parent / h).resolve().is_file() for h in hrefs)

    # the page wrote the files it links (a bounded few: one card's subsets and the composites), no others
    assert {p.name for p in (folder / FOLDER).rglob("*.wav")} == linked and len(linked) <= 4 + 2

    shutil.rmtree(folder / FOLDER)  # gone: rebuilt from results.npz the next time the page is rendered
    assert main(["report", str(folder / "results.json"), "--max-cards", "0"]) == 0
    html = (folder / "report.html").read_text()
    assert "sidecar-missing" not in html and any((folder / FOLDER).rglob("*-composite.wav"))

    shutil.rmtree(folder / FOLDER)  # with results.npz gone too, nothing can be handed out, and that is said
    (folder / "results.npz").unlink()
    assert main(["waveforms", str(folder)]) == 2
    assert "cannot rebuild its signals" in capsys.readouterr().err and not (folder / FOLDER).exists()
    shutil.copy(cold.with_suffix(".npz"), folder / "results.npz")

    doc = json.loads((folder / "results.json").read_text())  # a results.json from before the sidecar existed
    del doc["specs"]["spec"]["waveforms"]
    (folder / "results.json").write_text(json.dumps(doc))
    assert main(["report", str(folder / "results.json"), "--max-cards", "0"]) == 0
    assert "has no waveform sidecar" in (folder / "report.html").read_text()
    assert main(["spectra", str(folder)]) == 2
    assert "no waveforms index" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["../results.json", "/etc/passwd", "waveforms/../results.json",
                                  "waveforms\\..\\results.json", "elsewhere/x.wav", ""])
def test_an_edited_index_never_reads_outside_the_sidecar_folder(tmp_path, name):
    from freqrex_audit.runs.waveforms import file_problem

    (tmp_path / "waveforms" / "s").mkdir(parents=True)
    (tmp_path / "results.json").write_text("{}")
    problem = file_problem(tmp_path, {"path": name, "sha256": "0" * 64})
    assert problem and ("not a path inside" in problem or "no file" in problem), problem


def test_a_symlink_in_the_sidecar_folder_is_not_followed(tmp_path):
    from freqrex_audit.runs.waveforms import file_problem

    (tmp_path / "waveforms" / "s").mkdir(parents=True)
    (tmp_path / "secret.txt").write_text("secret")
    (tmp_path / "waveforms" / "s" / "a.wav").symlink_to(tmp_path / "secret.txt")
    assert "missing" in file_problem(tmp_path, {"path": "waveforms/s/a.wav", "sha256": "0" * 64})


def test_a_rebuild_that_differs_from_the_audited_signal_says_so_and_is_never_handed_out(runs, tmp_path, monkeypatch,
                                                                                          capsys):
    """Another CPU, torch or thread count can round the irfft differently: simulated by a synthesis one float32
    step off. The rebuilt bytes then miss the recorded sha256, and every reader says so instead of using them."""
    import importlib

    explain_module = importlib.import_module("freqrex_audit.engine.explanation")  # the module, not engine.explain()

    cold, _ = runs
    folder = tmp_path / "run"
    folder.mkdir()
    shutil.copy(cold, folder / "results.json")
    shutil.copy(cold.with_suffix(".npz"), folder / "results.npz")
    entry = next(c["signals"]["sufficient"] for c in _section(cold)["waveforms"]["clips"].values())
    exact = RunSignals(folder).load(entry)  # this machine, the writer's thread count: the audited bytes

    synthesis = explain_module.subset_signal
    monkeypatch.setattr(explain_module, "subset_signal",
                        lambda *a, **k: np.nextafter(synthesis(*a, **k), np.float32(np.inf)).astype(np.float32))
    problem = RunSignals(folder).problem(entry)
    assert problem and "rebuilt on this machine; differs from the audited signal" in problem
    with pytest.raises(SidecarError, match="differs from the audited signal"):
        rebuild_spectra(folder)
    assert main(["spectra", str(folder)]) == 2 and "differs from the audited signal" in capsys.readouterr().err
    assert main(["waveforms", str(folder)]) == 1 and not list(folder.rglob("*-sufficient.wav"))
    html = render_report(folder / "results.json", max_sample_cards=1).read_text()
    assert "rebuilt on this machine; differs from the audited signal" in html  # the link says why, no href
    assert not list(folder.rglob("*-sufficient.wav"))

    monkeypatch.setattr(explain_module, "subset_signal", synthesis)  # this machine again: the audited signal
    assert np.array_equal(RunSignals(folder).load(entry), exact) and rebuild_spectra(folder)


def test_the_ranking_is_rebuilt_from_the_responsibility_and_a_differing_rebuild_is_named(runs, monkeypatch):
    import freqrex_audit.engine.subsets as subsets
    from freqrex_audit.runs.packing import MEMBER, unpack

    cold, _ = runs
    with np.load(cold.with_suffix(".npz"), allow_pickle=False) as npz:
        stored = {k: npz[k] for k in npz.files}
    rankings = [k for k in npz_arrays(cold) if k.endswith(".explanation.ranking")]
    assert rankings and MEMBER in stored and not any(k in stored for k in rankings)  # none stored: rebuilt
    arrays = unpack(stored)
    assert not arrays.differs and set(rankings) <= arrays.rebuilt
    for name in rankings:  # the audit's own ranking, as the engine handed it to the writer
        exp = Explanation.from_dict(next(s["explanation"] for i, s in enumerate(_section(cold)["samples"])
                                         if name.startswith(f"spec.{i}.")), arrays)
        assert arrays[name].dtype == np.int64 and np.array_equal(np.sort(exp.ranking[:len(exp.sufficient or [])]),
                                                                exp.sufficient if exp.sufficient is not None else [])

    rank_bins = subsets.rank_bins
    monkeypatch.setattr(subsets, "rank_bins", lambda r, m: rank_bins(r, m)[::-1].copy())  # another machine's ties
    arrays = unpack(stored)
    assert sorted(arrays.differs) == sorted(rankings)
    assert "differs from the audited ranking" in next(iter(arrays.differs.values()))
