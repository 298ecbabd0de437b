"""Compute what is selected: -m / -k / node ids compute only what their items need (model queries are
counted), the report is optional, old runs are pruned, --lf / --ff / --sw rerun exactly the failed items."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from freqrex_audit.audit.stages import stages_for
from freqrex_audit.runs.folders import prune_runs
from tests.test_plugin_e2e import project, shared_cache  # noqa: F401  (fixtures)


def latest(pytester: pytest.Pytester) -> dict:
    runs = sorted((pytester.path / "reports").glob("*/results.json"))
    assert runs, "the run wrote no results.json"
    return json.loads(runs[-1].read_text())


def phases(doc: dict, spec: str) -> dict:
    return doc["timings"]["per_spec"][spec]["queries_by_phase"]


def ran_items(reprec) -> list[str]:
    return [r.nodeid for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call"]


def test_accuracy_marker_only_predicts(project):
    reprec = project.inline_run("model_specs", "-m", "freqrex_accuracy", "--freqrex-no-cache",
                                "--freqrex-no-report")
    reprec.assertoutcome(passed=2)
    doc = latest(project)
    for spec in ("fragile", "robust"):
        n_clips = doc["specs"][spec]["dataset"]["n_samples"]
        assert phases(doc, spec) == {"predict": n_clips}, phases(doc, spec)
        assert doc["timings"]["per_spec"][spec]["queries"] == n_clips
        assert all(s.get("explanation") is None for s in doc["specs"][spec]["samples"])
    run_dir = next((project.path / "reports").glob("*/results.json")).parent
    assert not (run_dir / "report.html").exists(), "--freqrex-no-report still rendered the report"


def test_a_run_without_its_report_still_gets_its_row_in_an_existing_index(project):
    """--freqrex-no-report skips the run's page, not the runs index: an index that exists is kept true."""
    project.inline_run("model_specs", "-m", "freqrex_accuracy").assertoutcome(passed=2)
    project.inline_run("model_specs", "-m", "freqrex_accuracy", "--freqrex-no-report").assertoutcome(passed=2)
    runs = sorted((project.path / "reports").glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    index = (project.path / "reports" / "index.html").read_text()
    assert len(runs) == 2 and all(run.parent.name in index for run in runs)
    assert not runs[-1].with_name("report.html").exists() and f"{runs[-1].parent.name}/report.html" not in index


def test_sufficiency_item_explains_but_does_not_attack(project):
    reprec = project.inline_run("model_specs", "-k", "robust and sufficiency", "--freqrex-no-cache",
                                "--freqrex-no-report")
    assert ran_items(reprec) and all("robust.yaml::sufficiency[" in i for i in ran_items(reprec))
    used = phases(latest(project), "robust")
    assert used.get("predict") and used.get("responsibility") and used.get("verify")
    assert "fourier_attack" not in used and "stft_attack" not in used


def test_a_full_run_after_a_selected_one_reuses_the_cached_predictions(project):
    project.inline_run("model_specs", "-m", "freqrex_accuracy", "--freqrex-no-report")
    project.inline_run("model_specs", "--freqrex-no-report")
    doc = latest(project)
    assert doc["timings"]["per_spec"]["robust"]["cache"]["hits"] >= doc["specs"]["robust"]["dataset"]["n_samples"]
    assert "predict" not in phases(doc, "robust")  # every prediction came from the cache


def test_keep_one_leaves_one_run_folder_and_the_report_is_rendered_by_default(project):
    for _ in range(2):
        project.inline_run("model_specs", "-m", "freqrex_accuracy", "--freqrex-keep", "1")
    runs = [p for p in (project.path / "reports").iterdir() if p.is_dir()]
    assert len(runs) == 1 and (runs[0] / "results.json").exists() and (runs[0] / "report.html").exists()


def test_prune_runs_never_deletes_the_current_run(tmp_path: Path):
    runs = []
    for name in ("20260101-000000-1", "20260102-000000-1", "20260103-000000-1"):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text("{}")
        runs.append(tmp_path / name)
    (tmp_path / "not-a-run").mkdir()
    deleted = prune_runs(tmp_path, 1, current=runs[0])  # the current one is the oldest by name
    assert sorted(deleted) == runs[1:] and runs[0].exists() and (tmp_path / "not-a-run").exists()
    assert prune_runs(tmp_path, 0) == [] and runs[0].exists()


def test_stages_follow_the_checks():
    assert stages_for([("accuracy", "aggregate"), ("model", "load")]) == {"predict"}
    assert "stft" not in stages_for([("fourier_attack", "aggregate")])
    assert {"fourier", "stft"} <= stages_for([("stft_attack", "aggregate")])
    assert "fourier" in stages_for([("regression", "fourier_attack.success_rate")])


def call_reports(reprec, failed: bool = False) -> list[str]:
    return [r.nodeid for r in reprec.getreports("pytest_runtest_logreport") if r.when == "call" and (r.failed or not failed)]


def test_last_failed_failed_first_and_stepwise_rerun_the_failed_items(project):
    fragile = project.path / "model_specs" / "fragile.yaml"  # every sufficient set is 1 bin of 1001: 4 failures
    fragile.write_text(fragile.read_text().replace("max_fraction: 0.5", "max_fraction: 0.0005"))
    first = project.inline_run("model_specs", "--freqrex-no-report")  # the cache plugin is on (pytester)
    failed = call_reports(first, failed=True)
    assert len(failed) >= 4 and all("fragile.yaml::" in i for i in failed)
    assert sum("::sufficiency[" in i for i in failed) == 4
    lf = project.inline_run("model_specs", "--lf", "--freqrex-no-report")
    assert ran_items(lf) == failed
    ff = project.inline_run("model_specs", "--ff", "--freqrex-no-report")
    assert ran_items(ff)[: len(failed)] == failed and sorted(ran_items(ff)) == sorted(ran_items(first))
    sw = project.inline_run("model_specs", "--sw", "--freqrex-no-report")  # stops at the first failure
    assert ran_items(sw)[-1] == failed[0] and call_reports(sw, failed=True) == [failed[0]]
    resumed = project.inline_run("model_specs", "--sw", "--freqrex-no-report")  # starts again from it
    assert ran_items(resumed)[0] == failed[0] and call_reports(resumed, failed=True) == [failed[0]]


def test_progress_line_counts_clips_and_queries_and_is_quiet_when_asked(project):
    shown = project.runpytest("model_specs/robust.yaml", "--freqrex-progress", "always", "--freqrex-no-report",
                              "--freqrex-no-cache")
    text = shown.stdout.str()
    n = json.loads(sorted((project.path / "reports").glob("*/results.json"))[-1].read_text())
    queries = n["timings"]["per_spec"]["robust"]["queries"]
    assert f"robust: 4/4 clips, {queries:,} queries" in text and "done" in text
    assert "robust: 0/4 clips" in text  # the line is live: it was shown before the first clip
    plain = project.runpytest("model_specs/robust.yaml", "--freqrex-no-report")  # auto: pytester is not a TTY
    assert not re.search(r"\r\S+: \d+/\d+ clips", plain.stdout.str())  # no live line, at most plain ones (10 s)
    quiet = project.runpytest("model_specs/robust.yaml", "--freqrex-no-report", "--freqrex-no-cache", "-q")
    assert "clips," not in quiet.stdout.str()
    workers = project.runpytest("model_specs/robust.yaml", "--freqrex-progress", "always", "-n", "2",
                                "--freqrex-no-report")  # the controller writes what the worker relays
    assert re.search(r"\[gw\d \S+\] robust: 4/4 clips, [\d,]+ queries, \d+ s, done", workers.stdout.str())


def test_format_line_eta():
    from freqrex_audit.runtime.progress import format_line

    assert format_line("m", 2, 8, 1500, 10.0) == "m: 2/8 clips, 1,500 queries, 10 s, ETA 30 s"
    assert format_line("m", 8, 8, 1500, 40.0).endswith(", done")


def test_skips_point_at_the_spec_line_and_junit_has_no_none(project):
    result = project.runpytest("model_specs", "-rs", "--junitxml=junit.xml", "--freqrex-no-report")
    spec_lines = (project.path / "model_specs" / "fragile.yaml").read_text().splitlines()
    necessity = next(i for i, line in enumerate(spec_lines) if line.strip().startswith("necessity:")) + 1
    skips = [line for line in result.outlines if line.startswith("SKIPPED")]
    assert skips and all(f"model_specs/fragile.yaml:{necessity}:" in line for line in skips), skips
    xml = (project.path / "junit.xml").read_text()
    assert 'value="None"' not in xml and 'name="fourier_attack.success_rate.threshold"' in xml
