"""End-to-end: model specs through the pytest plugin (pytester), serial and with xdist, cache, baselines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.audit_runs import spec_project


FRAGILE = """
name: fragile
model: {target: "tests.audit_models:fragile", batch_size: 64}
dataset: {path: ../data/fragile, clip_seconds: 0.25}
freqrex: {seed: 0}
attack: {budget: 5, pool: ranking, min_snr_db: -60}  # tone clips only flip loudly
checks:
  accuracy: {min: 0.9}
  sufficiency: {max_fraction: 0.5}
  necessity: {}
  fourier_attack: {max_success_rate: 0.25, max_single_rate: 0.25}
  stft_attack: {max_success_rate: 1.0}
"""
ROBUST = """
name: robust
model: {target: "tests.audit_models:robust"}
dataset: {path: ../data/robust}
attack: {budget: 5, pool: ranking}
checks:
  accuracy: {min: 0.9}
  sufficiency: {}
  fourier_attack: {min_frequencies: 2, max_success_rate: 0.25}
"""
BROKEN = """
name: broken
model: {target: "tests.audit_models:robust"}
dataset: {path: ../data/robust}
checks:
  fourier_attack: {max_success_rate: 1.5}
"""


@pytest.fixture(scope="session")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One result cache for these tests: the clips are identical across tests, so each is analysed once."""
    return tmp_path_factory.mktemp("freqrex_cache")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shared_cache: Path) -> pytest.Pytester:
    return spec_project(pytester, monkeypatch, shared_cache, {"fragile.yaml": FRAGILE, "robust.yaml": ROBUST})


def results_of(pytester: pytest.Pytester) -> dict:
    runs = sorted((pytester.path / "reports").glob("*/results.json"))
    assert runs, "the run wrote no results.json"
    return json.loads(runs[-1].read_text())


def verdicts(doc: dict) -> dict[str, object]:
    return {v["item"]: v["passed"] for spec in doc["specs"].values() for v in spec["verdicts"]}


def test_fragile_fails_only_its_attack_gate_robust_passes_broken_is_one_collection_error(project):
    (project.path / "model_specs" / "broken.yaml").write_text(BROKEN)
    result = project.runpytest("model_specs", "-rA")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["errors"] == 1 and outcomes["passed"] >= 10
    failed = [line for line in result.outlines if line.startswith("FAILED")]
    assert failed == [line for line in failed if "fragile.yaml::fourier_attack[aggregate]" in line] and len(failed) == 1
    text = result.stdout.str()
    assert "model_specs/broken.yaml: checks.fourier_attack.max_success_rate: must be in [0, 1], got 1.5" in text
    # both classes flip with one frequency: "loud" by cutting its tone, "quiet" by adding one
    assert "success_rate = 1 (4 of 4 measured clips, 95% CI 0.51–1.00), spec requires <= 0.25 (FAILED)" in text
    assert "single_rate = 1 (4 of 4 measured clips, 95% CI 0.51–1.00), spec requires <= 0.25 (FAILED)" in text
    assert "report: reports/" in text and "freqrex results:" in text
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    doc = results_of(project)
    assert sorted(doc["specs"]) == ["fragile", "robust"]
    failing = {(g["spec"], g["check"], g["metric"]) for g in doc["gates"] if not g["passed"]}
    assert failing == {("fragile", "fourier_attack", "success_rate"), ("fragile", "fourier_attack", "single_rate")}
    robust = doc["specs"]["robust"]
    # robust flips only loudly (a ×1000 boost, clipped): recorded as raw success, never counted by the gates
    assert robust["accuracy"] == 1.0 and robust["tables"]["attacks"]["success_rate"] == 0.0
    assert robust["rates"]["fourier_attack.success_rate"]["k"] == 0
    assert all(s["explanation"] is not None for s in robust["samples"])
    # the second run finds everything in the cache: no model query at all
    again = project.runpytest("model_specs")
    again.assert_outcomes(failed=1, errors=1, passed=outcomes["passed"], skipped=outcomes.get("skipped", 0))
    second = results_of(project)
    assert {s: t["queries"] for s, t in second["timings"]["per_spec"].items()} == {"fragile": 0, "robust": 0}
    assert all(t["cache"]["misses"] == 0 and t["cache"]["hits"] > 0 for t in second["timings"]["per_spec"].values())
    assert verdicts(second) == verdicts(doc)


def test_markers_select_checks(project):
    result = project.runpytest("model_specs", "-m", "freqrex_attack")
    outcomes = result.parseoutcomes()
    assert outcomes["failed"] == 1 and outcomes["passed"] == 5  # robust: 4 clips + aggregate; fragile: aggregate


def test_serial_and_xdist_agree(project):
    serial = project.runpytest("model_specs")
    parallel = project.runpytest("model_specs", "--freqrex-no-cache", "-n", "2")
    assert serial.parseoutcomes() == {k: v for k, v in parallel.parseoutcomes().items() if k in serial.parseoutcomes()}
    runs = sorted((project.path / "reports").glob("*/results.json"))
    assert len(runs) == 2
    first, second = (json.loads(p.read_text()) for p in runs)
    assert verdicts(first) == verdicts(second)
    assert [(g["item"], g["metric"], g["value"]) for g in first["gates"]] == \
        [(g["item"], g["metric"], g["value"]) for g in second["gates"]]
    assert parallel.ret == serial.ret == pytest.ExitCode.TESTS_FAILED
    assert sum(t["queries"] for t in second["timings"]["per_spec"].values()) > 0  # computed afresh, not cached
    from freqrex_audit.runs.waveforms import RunSignals

    for path in runs:  # both indexed the waveform sidecar (on two workers: from the workers' parts), and every
        # file rebuilds from results.npz to the sha256 recorded (the report already wrote the ones it links)
        clips = json.loads(path.read_text())["specs"]["robust"]["waveforms"]["clips"]
        entries = [e for c in clips.values() for e in c["signals"].values()]
        assert entries and all(RunSignals(path.parent).problem(e, write=True) is None for e in entries)
        assert all((path.parent / e["path"]).is_file() for e in entries)
    first.pop("timings"), second.pop("timings")
    assert first == second  # serial vs computed afresh on two workers: the same results file (and sidecar index)


def test_regression_against_saved_baseline_fails_as_an_item(project):
    specs = project.path / "model_specs"
    (specs / "fragile.yaml").unlink()
    # a lenient attack gate: the attack runs (a run computes only what its checks need) and passes
    (specs / "robust.yaml").write_text(ROBUST.replace("{min_frequencies: 2, max_success_rate: 0.25}",
                                                      "{max_success_rate: 1.0}"))
    saved = project.runpytest("model_specs", "--freqrex-save", "v1")
    saved.assert_outcomes(passed=7)
    baseline = json.loads((project.path / ".freqrex" / "baselines" / "v1.json").read_text())
    assert baseline["specs"]["robust"]["metrics"]["fourier_attack.success_rate"] == 0.0
    # a new model version that decides on one frequency: same accuracy, far easier to attack
    spec = (specs / "robust.yaml").read_text().replace("tests.audit_models:robust", "tests.audit_models:single_bin")
    (specs / "robust.yaml").write_text(spec)
    result = project.runpytest("model_specs", "--freqrex-compare", "v1",
                               "--freqrex-compare-fail", "fourier_attack.success_rate:+0.1",
                               "--freqrex-compare-fail", "accuracy.accuracy:-5%")
    result.assert_outcomes(passed=8, failed=1)
    text = result.stdout.str()
    assert "regression[fourier_attack.success_rate]" in text and "REGRESSED" in text
    assert "the model changed since the baseline" in text
    gates = [g for g in results_of(project)["gates"] if g["check"] == "regression"]
    assert {g["metric"]: g["passed"] for g in gates} == {"fourier_attack.success_rate": False, "accuracy.accuracy": True}
    assert all(g["baseline"] is not None and g["delta"] is not None for g in gates)


def test_plugin_is_harmless_without_specs(pytester: pytest.Pytester):
    pytester.makepyfile(test_x="def test_ok():\n    assert True\n")
    result = pytester.runpytest()
    result.assert_outcomes(passed=1)
    assert not (pytester.path / "reports").exists() and "freqrex results" not in result.stdout.str()
