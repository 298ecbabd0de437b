"""Verdicts you can trust: pytest, results.json, the report and the index say the same thing item by item;
selection is "not run", a broken spec is ERROR, an interrupt is incomplete, a hollow attack is not measured."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from freqrex_audit.audit.run import run_spec
from freqrex_audit.runs.baselines import BaselineRefused, regression_verdicts, parse_rule, save_baseline
from freqrex_audit.cli.main import main
from freqrex_audit.specs.loader import load_spec
from tests.audit_models import write_robust_dataset
from tests.audit_runs import default_sigint, spec_project, subprocess_env


FRAGILE = """
name: fragile
model: {target: "tests.audit_models:fragile"}
dataset: {path: ../data/fragile}
attack: {budget: 5, pool: ranking, min_snr_db: -60}  # tone clips only flip loudly
checks:
  accuracy: {min: 0.9}
  sufficiency: {}
  fourier_attack: {max_success_rate: 0.25}
"""
ROBUST = """
name: robust
model: {target: "tests.audit_models:robust"}
dataset: {path: ../data/robust}
attack: {budget: 5, pool: ranking}
checks:
  accuracy: {min: 0.9}
  fourier_attack: {min_frequencies: 2, max_success_rate: 0.25}
"""
PYTEST_CLASS = {"passed": "passed", "failed": "failed", "not_measured": "failed", "error": "failed",
                "skipped": "skipped"}


@pytest.fixture(scope="module")
def shared_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("verdict_cache")


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, shared_cache: Path) -> pytest.Pytester:
    return spec_project(pytester, monkeypatch, shared_cache, {"fragile.yaml": FRAGILE, "robust.yaml": ROBUST})


def latest_run(root: Path) -> Path:
    runs = sorted((root / "reports").glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    assert runs, "the run wrote no results.json"
    return runs[-1]


def pytest_outcomes(reprec) -> dict[str, str]:
    """pytest's own outcome per spec item, from its reports."""
    out: dict[str, str] = {}
    for rep in reprec.getreports("pytest_runtest_logreport"):
        if rep.when == "call" or (rep.when == "setup" and not rep.passed):
            out[rep.nodeid] = rep.outcome
    return out


def report_rows(html: str) -> dict[str, str]:
    """item → outcome of every verdict-table row that names one item."""
    return {item: outcome for item, outcome in re.findall(r'data-item="([^"]+)" data-outcome="([^"]+)"', html)}


def assert_views_agree(pytester: pytest.Pytester, reprec) -> dict:
    """results.json, the report and the index agree with pytest, item by item."""
    ran = pytest_outcomes(reprec)
    path = latest_run(pytester.path)
    doc = json.loads(path.read_text())
    verdicts = {v["item"]: v["outcome"] for s in doc["specs"].values() for v in s["verdicts"]}
    for item, outcome in verdicts.items():
        if item in ran:
            assert PYTEST_CLASS[outcome] == ran[item], (item, outcome, ran[item])
        else:
            assert outcome == "deselected", (item, outcome)
    assert set(ran) <= set(verdicts)  # every item pytest ran is in results.json
    for g in doc["gates"]:
        assert g["outcome"] == "deselected" if g["item"] not in ran else g["outcome"] != "deselected"
        assert g["outcome"] != "failed" or verdicts[g["item"]] == "failed"  # failed > not measured: one story
        assert g["passed"] is None or g["item"] in ran  # never PASS / FAIL for an item that did not run
    html = path.with_name("report.html").read_text()
    for item, outcome in report_rows(html).items():
        assert outcome == verdicts[item] or (outcome in ("passed", "failed", "not_measured")
                                             and verdicts[item] in ("passed", "failed", "not_measured")), item
        if item not in ran:
            assert outcome == "deselected"
    expected = {0: {"passed", "not_run"}, 1: {"failed", "error"}}[int(reprec.ret)]
    assert doc["run"]["verdict"] in expected
    label = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "not_run": "NOT RUN"}[doc["run"]["verdict"]]
    first = re.search(r'<p id="run-state"[^>]*>([^<]+)</p>', html).group(1)
    assert first.startswith(label)
    index = (pytester.path / "reports" / "index.html").read_text()
    row = index.split(path.parent.name, 1)[1].split("</tr>", 1)[0]
    assert f">{label}<" in row
    gates = [g["outcome"] for g in doc["gates"]]
    not_run = sum(o in ("deselected", "interrupted") for o in gates)
    counts = re.sub(r"<[^>]+>", "", re.search(r'class="text gate-counts">(.*?)</td>', row, re.S).group(1))
    assert counts.startswith(f"{gates.count('passed')} passed") and (f"{not_run} not run" in counts) == bool(not_run)
    assert ("Every gate passed" in html) == (bool(gates) and set(gates) == {"passed"})  # never over unrun gates
    assert '<td class="value text">None' not in html  # a gate without a value says why, not "None"
    for name, spec in doc["specs"].items():  # a spec of which only some items ran is never plain PASS
        outcomes = {v["outcome"] for v in spec["verdicts"]}
        shown = re.search(rf'<a href="#spec-\d+">{name}</a></td>\s*<td class="\w+">([^<]*)</td>', html).group(1)
        assert shown.endswith(" · PARTIAL") == ("deselected" in outcomes and outcomes != {"deselected"}), (name, shown)
    return doc


def junit_properties(path: Path) -> dict[str, str]:
    """The testsuite properties of a JUnit file (where the plugin writes the run's verdict)."""
    import xml.etree.ElementTree as ET

    suite = ET.parse(path).getroot().find("testsuite")
    return {p.get("name"): p.get("value") for p in suite.find("properties") or []}


def test_selection_is_not_run_and_every_view_agrees_with_pytest(project):
    full = project.inline_run("model_specs")
    doc = assert_views_agree(project, full)
    assert doc["run"]["verdict"] == "failed" and doc["run"]["complete"] and not doc["run"]["filtered"]
    marked = project.inline_run("model_specs", "-m", "freqrex_accuracy")
    doc = assert_views_agree(project, marked)
    assert doc["run"]["verdict"] == "passed" and doc["run"]["filtered"]
    fragile = {v["item"].split("::")[1]: v["outcome"] for v in doc["specs"]["fragile"]["verdicts"]}
    assert fragile["accuracy[aggregate]"] == "passed" and fragile["fourier_attack[aggregate]"] == "deselected"
    html = latest_run(project.path).with_name("report.html").read_text()
    assert 'data-outcome="failed"' not in html and "NOT RUN" in html
    assert ">PASS · PARTIAL<" in html and "Every gate passed" not in html  # only accuracy ran
    keyword = project.inline_run("model_specs", "-k", "robust and fourier_attack")
    assert_views_agree(project, keyword)
    last_failed = project.inline_run("model_specs", "--lf")  # cache plugin on: reruns fragile's failure only
    doc = assert_views_agree(project, last_failed)
    ran = pytest_outcomes(last_failed)
    assert list(ran) == ["model_specs/fragile.yaml::fourier_attack[aggregate]"]
    assert doc["run"]["verdict"] == "failed" and doc["run"]["filtered"]
    # --lf where the named spec has no known failure runs all of it: not a filtered run; JUnit says so too
    junit = project.path / "robust.xml"
    nothing_to_rerun = project.inline_run("model_specs/robust.yaml", "--lf", f"--junitxml={junit}")
    doc = assert_views_agree(project, nothing_to_rerun)
    assert doc["run"]["verdict"] == "passed" and doc["run"]["items"]["ran"] == 7 and not doc["run"]["filtered"]
    assert "filtered run" not in latest_run(project.path).with_name("report.html").read_text()
    props = junit_properties(junit)
    assert props["freqrex.verdict"] == "passed" and props["freqrex.summary"] == doc["run"]["summary"]
    assert props["freqrex.filtered"] == "False" and props["freqrex.complete"] == "True"


BROKEN = "name: broken\nmodel: {target: 'tests.audit_models:robust'}\ndataset: {path: ../data/robust}\n" \
         "checks:\n  stft_attack: {}\n"


def test_a_broken_spec_is_error_in_every_view_and_the_run_is_not_green(project, monkeypatch):
    specs = project.path / "model_specs"
    (specs / "fragile.yaml").unlink()
    (specs / "broken.yaml").write_text(BROKEN)
    reprec = project.inline_run("model_specs")
    assert reprec.ret == pytest.ExitCode.TESTS_FAILED
    failures = [r for r in reprec.getreports("pytest_collectreport") if r.failed]
    assert [r.nodeid for r in failures] == ["model_specs/broken.yaml"]
    doc = assert_views_agree(project, reprec)
    assert doc["run"]["verdict"] == "error"
    assert doc["errors"][0]["spec_file"] == "model_specs/broken.yaml"
    assert "checks.stft_attack: sets no gate" in doc["errors"][0]["message"]
    html = latest_run(project.path).with_name("report.html").read_text()
    assert re.search(r'<p id="run-state"[^>]*>ERROR[^<]*model_specs/broken.yaml', html)
    index = (project.path / "reports" / "index.html").read_text()
    assert "broken.yaml (ERROR)" in index
    # the CLI: the same spec folder exits 2 (a spec error) and its run says ERROR
    monkeypatch.chdir(specs)
    status = main(["audit", ".", "--report", "../cli-reports", "--no-cache", "--device", "cpu"])
    assert status == 2
    cli_doc = json.loads(next((project.path / "cli-reports").glob("*/results.json")).read_text())
    assert cli_doc["run"]["verdict"] == "error" and cli_doc["errors"][0]["spec_file"].endswith("broken.yaml")


def test_duplicate_spec_names_are_a_collection_error_naming_both_files(project, monkeypatch):
    specs = project.path / "model_specs"
    (specs / "robust_copy.yaml").write_text(ROBUST)
    reprec = project.inline_run("model_specs")
    errors = [str(r.longrepr) for r in reprec.getreports("pytest_collectreport") if r.failed]
    assert len(errors) == 1 and "'robust' is also the name of model_specs/robust.yaml" in errors[0]
    assert "robust_copy.yaml" in errors[0]
    monkeypatch.chdir(specs)
    assert main(["audit", "robust.yaml", "robust_copy.yaml", "--report", "../r", "--device", "cpu",
                 "--cache", str(project.path / "c")]) == 2


def _interrupt(cmd: list[str], cwd: Path, after: str) -> tuple[int, str]:
    """Run ``cmd``, send SIGINT once a line containing ``after`` appears; its exit status and output."""
    proc = subprocess.Popen(cmd, cwd=cwd, env=subprocess_env(PYTHONUNBUFFERED="1"), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, preexec_fn=default_sigint)
    lines = []
    for line in proc.stdout:
        lines.append(line)
        if after in line:
            proc.send_signal(signal.SIGINT)
            break
    rest, _ = proc.communicate(timeout=300)
    return proc.returncode, "".join(lines) + rest


SLOW = ROBUST.replace("name: robust", "name: slow").replace("audit_models:robust", "audit_models:slow")


@pytest.mark.parametrize("runner", ["pytest", "cli"])
def test_an_interrupted_run_is_incomplete_everywhere(project, runner):
    specs = project.path / "model_specs"
    (specs / "fragile.yaml").unlink()
    (specs / "z_slow.yaml").write_text(SLOW)  # collected after robust.yaml: interrupted while it runs
    if runner == "pytest":
        cmd = [sys.executable, "-m", "pytest", "model_specs", "-v", "-p", "no:randomly", "-p", "no:xdist",
               "--junitxml=run.xml"]
        # the spec is computed by its first item (model[load]), whose PASSED a progress line may split from
        # its node id without a terminal; the second item passing means robust is done
        status, out = _interrupt(cmd, project.path, "robust.yaml::accuracy[aggregate] PASSED")
        if status == 1 and "repr_traceback_entry" in out and "'NoneType' and 'int'" in out:
            # pytest's own crash while formatting the interrupt, when SIGINT lands on a frame with no line
            # number (Python 3.11 `tb_lineno` None in _pytest/_code/code.py): not ours, so interrupt again
            status, out = _interrupt(cmd, project.path, "robust.yaml::accuracy[aggregate] PASSED")
        assert status == pytest.ExitCode.INTERRUPTED, out
    else:
        cmd = [sys.executable, "-m", "freqrex_audit.cli.main", "audit", "model_specs", "--device", "cpu", "--no-cache"]
        status, out = _interrupt(cmd, project.path, "passed; ")  # robust's summary ("robust: 11 passed; …"), not
        # a progress line ("robust: 2/4 clips, …", every 10 s without a terminal)
        assert status == 130, out
        assert "run: INCOMPLETE: " in out  # the report's word for the run, not the CLI's own
    doc = json.loads(latest_run(project.path).read_text())
    run = doc["run"]
    assert run["complete"] is False and run["verdict"] == "interrupted"
    assert run["items"]["ran"] < run["items"]["total"]
    assert re.fullmatch(r"\d+ of \d+ items ran \(incomplete\)", run["summary"])
    assert "slow" not in doc["specs"] or all(v["outcome"] == "interrupted"
                                             for v in doc["specs"]["slow"]["verdicts"])
    # a spec cut before its results were written is named, not silently missing
    assert ("slow" in doc["specs"]) != (run["unfinished"] == ["model_specs/z_slow.yaml"]), run
    html = latest_run(project.path).with_name("report.html").read_text()
    first = re.search(r'<p id="run-state"[^>]*>([^<]+)</p>', html).group(1)
    assert first.startswith("INCOMPLETE: ") and run["summary"] in first
    index = (project.path / "reports" / "index.html").read_text()
    assert ">INCOMPLETE<" in index
    if run["unfinished"]:
        assert "unfinished (no results): model_specs/z_slow.yaml" in first and "z_slow.yaml (UNFINISHED)" in index
    if runner == "pytest":  # JUnit alone shows no sign of the interrupt but the plugin's properties
        props = junit_properties(project.path / "run.xml")
        assert props["freqrex.verdict"] == "interrupted" and props["freqrex.complete"] == "False"


TINY_POOL = """
name: tiny
model: {target: "tests.audit_models:robust"}
dataset: {path: data}
attack: {budget: 1000}
checks:
  fourier_attack: {min_frequencies: 2, max_success_rate: 0.5%s}
"""


@pytest.fixture
def tiny(tmp_path: Path) -> Path:
    write_robust_dataset(tmp_path / "data")
    (tmp_path / "pyproject.toml").write_text("")
    return tmp_path


STARVED = TINY_POOL.replace("attack: {budget: 1000}", "attack: {query_budget: 3}")


def test_an_attack_that_searched_almost_nothing_is_not_measured_with_the_reason(tiny):
    (tiny / "tiny.yaml").write_text(STARVED % "")
    result = run_spec(load_spec(tiny / "tiny.yaml"), "cpu")
    per_clip = [v for v in result.verdicts if v.check == "fourier_attack" and v.key != "aggregate"]
    aggregate = result.verdict("fourier_attack", "aggregate")
    assert len(per_clip) == 4 and all(v.outcome == "not_measured" for v in per_clip)
    assert all("the search needs up to " in v.message and "attack.query_budget is 3" in v.message for v in per_clip)
    assert aggregate.outcome == "not_measured" and aggregate.passed is False
    assert "0 of 4 clips measured" in aggregate.message and "measured 0 of 4 clips" == aggregate.measured
    assert result.rates["fourier_attack.success_rate"]["n"] == 0
    # the spec may choose to skip what it cannot measure: skipped, never passed
    (tiny / "tiny.yaml").write_text(STARVED % ", on_unmeasured: skip")
    skipped = run_spec(load_spec(tiny / "tiny.yaml"), "cpu")
    assert {v.outcome for v in skipped.verdicts if v.check == "fourier_attack"} == {"skipped"}


def test_a_rate_gate_may_compare_the_wilson_bound(tiny):
    spec = TINY_POOL.replace("attack: {budget: 1000}", "attack: {budget: 5, pool: ranking}")
    (tiny / "tiny.yaml").write_text(spec % ", confidence: 0.95")
    result = run_spec(load_spec(tiny / "tiny.yaml"), "cpu")
    gate = result.verdict("fourier_attack", "aggregate").gates[0]
    assert (gate["k"], gate["n"]) == (0, 4)
    assert gate["value"] == pytest.approx(gate["high"]) and 0.45 < gate["high"] < 0.5  # 0/4: upper bound 0.49
    assert result.verdict("fourier_attack", "aggregate").outcome == "passed"
    (tiny / "tiny.yaml").write_text(spec.replace("max_success_rate: 0.5", "max_success_rate: 0.25") % ", confidence: 0.95")
    strict = run_spec(load_spec(tiny / "tiny.yaml"), "cpu")
    assert strict.verdict("fourier_attack", "aggregate").outcome == "failed"  # 0/4 does not prove ≤ 25%


def _doc(verdict: str, complete: bool = True, filtered: bool = False) -> dict:
    return {"run": {"verdict": verdict, "complete": complete, "filtered": filtered, "summary": "4 of 4 items ran",
                    "seed": 0}, "errors": [],
            "specs": {"s": {"model": {"fingerprint": "f"}, "config_hash": "h", "seed": 0,
                            "dataset": {"n_samples": 4, "n_analysed": 4}, "metrics": {"accuracy.accuracy": 1.0}}}}


def test_a_baseline_is_saved_only_from_a_complete_passing_unfiltered_run_or_with_a_reason(tmp_path):
    path = tmp_path / "v1.json"
    with pytest.raises(BaselineRefused, match="verdict is failed, not passed"):
        save_baseline(path, _doc("failed"), "v1")
    with pytest.raises(BaselineRefused, match="the run was filtered"):
        save_baseline(path, _doc("passed", filtered=True), "v1")
    with pytest.raises(BaselineRefused, match="incomplete"):
        save_baseline(path, _doc("interrupted", complete=False), "v1")
    assert not path.exists()
    save_baseline(path, _doc("failed"), "v1", force="known failure, tracked in #99")
    saved = json.loads(path.read_text())
    assert saved["forced"]["reason"] == "known failure, tracked in #99"
    assert "the run's verdict is failed, not passed" in saved["forced"]["problems"]
    assert (saved["specs"]["s"]["n_samples"], saved["specs"]["s"]["seed"], saved["specs"]["s"]["config_hash"]) == \
        (4, 0, "h")
    with pytest.raises(BaselineRefused, match="exists"):
        save_baseline(path, _doc("passed"), "v1")  # never overwritten silently
    save_baseline(path, _doc("passed"), "v1", force="new release")
    assert json.loads(path.with_name("v1.json.prev").read_text())["forced"]["reason"] == "known failure, tracked in #99"


def test_a_baseline_from_another_config_is_not_compared(tiny, tmp_path):
    spec = TINY_POOL.replace("attack: {budget: 1000}", "attack: {budget: 5, pool: ranking}") % ""
    (tiny / "tiny.yaml").write_text(spec)
    result = run_spec(load_spec(tiny / "tiny.yaml"), "cpu")
    from freqrex_audit.runs.write import assemble, finalize, spec_part

    doc = finalize(assemble([spec_part(result)], {"seed": None}, 0.0, 1.0))
    assert doc["run"]["verdict"] == "passed", doc["run"]
    path = tmp_path / "b.json"
    save_baseline(path, doc, "b")
    rules = [parse_rule("fourier_attack.success_rate:+0.1")]
    assert [v.outcome for v in regression_verdicts(rules, result, path, "b")] == ["passed"]
    (tiny / "tiny.yaml").write_text(spec.replace("budget: 5", "budget: 6"))
    other = run_spec(load_spec(tiny / "tiny.yaml"), "cpu")
    verdict = regression_verdicts(rules, other, path, "b")[0]
    assert verdict.outcome == "not_measured" and "different config" in verdict.message


def test_a_gate_whose_value_could_not_be_computed_fails_as_not_measured_instead_of_vanishing(tiny):
    import dataclasses
    from types import SimpleNamespace

    import numpy as np

    from freqrex_audit.audit.gates import evaluate
    from freqrex_audit.audit.records import SpecResult

    (tiny / "tiny.yaml").write_text(TINY_POOL % "")
    spec = dataclasses.replace(load_spec(tiny / "tiny.yaml"), peers=("peer",),
                               checks={"transferability": {"min_alpha": 0.9}})
    nan = float("nan")
    transfer = SimpleNamespace(models=["tiny", "peer"], flat_earthers=(),
                               alpha=lambda kind: np.array([[nan, nan], [nan, nan]]))
    result = SpecResult(spec, {"labels": ["low", "high"], "name": "robust"}, [], None, None, {}, {}, {}, 0.0, 0, {}, {},
                        transferability=transfer)
    verdict = next(v for v in evaluate(result) if v.check == "transferability")
    assert verdict.outcome == "not_measured" and verdict.passed is False
    assert "α toward peer has no finite value" in verdict.message
    assert [g["metric"] for g in verdict.gates] == ["alpha[peer]", "flat_earther"]


def test_an_unmeasured_gate_stays_not_measured_after_the_session_settles_its_item():
    """finalize re-reads each gate after pytest's outcome: a gate without a value (its item NOT MEASURED)
    must not come out FAILED in results.json, the report and the index while its item says NOT MEASURED."""
    from freqrex_audit.runs.write import finalize

    item = "model_specs/x.yaml::accuracy[aggregate]"
    doc = {"run": {}, "specs": {"x": {"verdicts": [{"item": item, "outcome": "not_measured", "message": "m"}]}},
           "gates": [{"item": item, "value": None, "passed": False, "outcome": "not_measured",
                      "unmeasured": "accuracy: 0/0 measured clips, needs ≥ 2"},
                     {"item": item.replace("accuracy", "other"), "value": 0.1, "passed": False, "outcome": "failed"}]}
    doc["specs"]["x"]["verdicts"].append({"item": item.replace("accuracy", "other"), "outcome": "failed", "message": "m"})
    finalize(doc, {item: "failed", item.replace("accuracy", "other"): "failed"})
    assert [(g["outcome"], g["passed"]) for g in doc["gates"]] == [("not_measured", False), ("failed", False)]
    finalize(doc, {})  # nothing ran: every gate says so, whatever it measured
    assert [g["outcome"] for g in doc["gates"]] == ["deselected", "deselected"]


def test_a_selected_item_the_run_stopped_before_is_interrupted_not_deselected():
    """-x / --maxfail / Ctrl-C: a selected item that never ran was stopped, never "not selected"; an item
    that was not selected stays deselected even in an interrupted run, and the run says it was filtered."""
    from freqrex_audit.runs.write import finalize

    items = [f"model_specs/x.yaml::{c}[aggregate]" for c in ("accuracy", "fourier_attack", "sufficiency")]
    doc = {"run": {}, "gates": [], "specs": {"x": {"spec_file": "model_specs/x.yaml", "verdicts": [
        {"item": i, "outcome": "passed", "message": "m"} for i in items]}}}
    finalize(doc, {items[0]: "passed"}, total=2, selected=set(items[:2]),
             planned=["model_specs/x.yaml", "model_specs/y.yaml"])
    assert [v["outcome"] for v in doc["specs"]["x"]["verdicts"]] == ["passed", "interrupted", "deselected"]
    assert "the run stopped before it" in doc["specs"]["x"]["verdicts"][1]["message"]
    run = doc["run"]
    assert run["complete"] is False and run["filtered"] and run["unfinished"] == ["model_specs/y.yaml"]
    assert run["summary"] == "1 of 2 items ran (incomplete)"
