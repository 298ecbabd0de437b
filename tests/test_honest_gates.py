"""Gates that cannot lie (issue #28), proved on planted models whose truth is known (tests/gate_models.py).

One project, audited once by pytest (with JUnit) and once by ``freqrex-audit audit``: a model answering NaN for
one class, one answering NaN only under attack, a starved attack beside a fed one on a model with one quiet
one-bin flip, a knife-edge model whose map cannot converge, a two-model transferability pair, a known
weakness declared with ``expect: fail`` (and one that is gone), and a spec whose every named metric is
recomputed from the records. Every view must tell the same verdict: pytest's outcome (JUnit), the CLI's exit
status and lines, results.json, the report, the runs index.
"""

from __future__ import annotations

import dataclasses
import json
import re
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from freqrex_audit.engine.summaries import METRICS, metric_definition
from freqrex_audit.report.tables import TABLE3, stft_names
from tests.audit_models import write_fragile_dataset, write_robust_dataset
from tests.audit_runs import subprocess_env
from tests.gate_models import write_knife_dataset, write_marker_dataset, write_quiet_bin_dataset

SMALL = "attack: {query_budget: 400}\n"
"""For the specs whose truth does not need the default 2,000 queries: the search's coverage on these planted clips
needs at most 292 (a spec whose budget is short of that is not measured, which the tests would see)."""
SPECS = {
    "nan-for-b": "model: {target: 'tests.gate_models:nan_for_b'}\ndataset: {path: ../data/marker}\n"
                 + SMALL + "checks:\n  accuracy: {min: 0.9}\n  fourier_attack: {max_success_rate: 0.5}\n",
    "nan-under-attack": "model: {target: 'tests.gate_models:nan_when_clipped'}\ndataset: {path: ../data/marker}\n"
                        + SMALL + "checks:\n  accuracy: {min: 0.9}\n  fourier_attack: {max_success_rate: 0.5}\n",
    "starved": "model: {target: 'tests.gate_models:quiet_bin'}\ndataset: {path: ../data/quiet}\n"
               "attack: {query_budget: 12}\nchecks:\n  fourier_attack: {min_frequencies: 2, max_success_rate: 0.5}\n",
    "fed": "model: {target: 'tests.gate_models:quiet_bin'}\ndataset: {path: ../data/quiet}\n"
           "checks:\n  fourier_attack: {min_frequencies: 2, max_success_rate: 0.5}\n",
    "knife": "model: {target: 'tests.gate_models:knife_edge'}\ndataset: {path: ../data/knife}\n"
             "checks:\n  sufficiency: {min_clips: 1}\n",
    "pair-a": "model: {target: 'tests.audit_models:robust'}\ndataset: {path: ../data/robust}\npeers: [pair-b]\n"
              "checks:\n  transferability: {min_alpha: 0.0}\n",
    "pair-b": "model: {target: 'tests.audit_models:single_bin'}\ndataset: {path: ../data/robust}\npeers: [pair-a]\n"
              "checks:\n  transferability: {min_alpha: 0.0}\n",
    "known-weakness": "model: {target: 'tests.audit_models:fragile'}\ndataset: {path: ../data/fragile}\n"
                      + SMALL + "checks:\n  fourier_attack: {max_raw_success_rate: 0.25, expect: fail}\n",  # it flips, loudly
    "weakness-gone": "model: {target: 'tests.audit_models:robust'}\ndataset: {path: ../data/robust}\n"
                     + SMALL + "checks:\n  fourier_attack: {max_success_rate: 0.75, expect: fail}\n",
    "metrics": "model: {target: 'tests.audit_models:fragile'}\ndataset: {path: ../data/fragile}\n"
               "attack: {min_snr_db: 5, query_budget: 400}\nchecks:\n  accuracy: {min: 0.5}\n"
               "  fourier_attack: {max_success_rate: 1.0, max_raw_success_rate: 1.0, max_single_rate: 1.0,"
               " max_five_rate: 1.0, max_int16_survival_rate: 1.0}\n"
               "  stft_attack: {max_success_rate: 1.0, max_rate_256: 1.0, max_rate_512: 1.0,"
               " max_int16_survival_rate: 1.0}\n",
}
# One worker runs the whole module under xdist (pyproject.toml's freqrex_xdist_groups), so the module's audit (two full
# runs, ~2½ CPU-minutes) is made once rather than once per worker that happens to take one of its tests.
JUNIT_CLASS = {"passed": "passed", "failed": "failed", "not_measured": "failed", "error": "failed",
               "skipped": "skipped", "xfailed": "xfailed"}


def _run(cmd: list[str], cwd: Path) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=cwd, env=subprocess_env(), capture_output=True, text=True, timeout=1500)


@pytest.fixture(scope="module")
def audited(tmp_path_factory) -> dict:
    """The project, audited by pytest (JUnit) and by the CLI on the same cache; what each said."""
    root = tmp_path_factory.mktemp("honest")
    (root / "pyproject.toml").write_text("[tool.pytest.ini_options]\nfreqrex_cache = \"cache\"\n")
    write_marker_dataset(root / "data" / "marker")
    write_quiet_bin_dataset(root / "data" / "quiet")
    write_knife_dataset(root / "data" / "knife")
    write_robust_dataset(root / "data" / "robust")
    write_fragile_dataset(root / "data" / "fragile")
    (root / "model_specs").mkdir()
    for name, text in SPECS.items():
        (root / "model_specs" / f"{name}.yaml").write_text(f"name: {name}\n{text}")
    pytest_run = _run([sys.executable, "-m", "pytest", "model_specs", "-p", "no:randomly", "-p", "no:xdist",
                       "-p", "no:cacheprovider", "--junitxml=run.xml", "-rA"], root)
    pytest_doc = json.loads(next((root / "reports").glob("*/results.json")).read_text())
    cli = _run([sys.executable, "-m", "freqrex_audit.cli.main", "audit", "model_specs", "--report", "cli-reports",
                "--cache", "cache", "--device", "cpu", "-q", "-v"], root)
    cli_json = next((root / "cli-reports").glob("*/results.json"))
    tables = _run([sys.executable, "-m", "freqrex_audit.cli.main", "tables", str(cli_json.parent)], root)
    return {"root": root, "pytest": pytest_run, "doc": pytest_doc, "cli": cli, "cli_doc": json.loads(cli_json.read_text()),
            "cli_html": cli_json.with_name("report.html").read_text(), "tables": tables,
            "html": next((root / "reports").glob("*/report.html")).read_text(),
            "index": (root / "reports" / "index.html").read_text(), "junit": ET.parse(root / "run.xml").getroot()}


def _junit(root: ET.Element) -> dict[str, str]:
    """``classname::name`` → pytest's outcome as JUnit wrote it."""
    out = {}
    for case in root.iter("testcase"):
        name = f"{case.get('classname')}::{case.get('name')}"
        skipped = case.find("skipped")
        if case.find("failure") is not None or case.find("error") is not None:
            out[name] = "failed"
        elif skipped is not None:
            out[name] = "xfailed" if skipped.get("type") == "pytest.xfail" else "skipped"
        else:
            out[name] = "passed"
    return out


def _spec_html(html: str, spec: str) -> str:
    """The report's section of one spec."""
    return next(part for part in html.split('<section class="spec"')[1:] if f"<h2>Spec: {spec}</h2>" in part)


def _verdicts(doc: dict, spec: str) -> dict[str, dict]:
    return {f"{v['check']}[{v['key']}]": v for v in doc["specs"][spec]["verdicts"]}


def test_every_view_tells_one_verdict_item_by_item(audited):
    doc, junit = audited["doc"], _junit(audited["junit"])
    verdicts = {v["item"]: v["outcome"] for spec in doc["specs"].values() for v in spec["verdicts"]}
    for item, outcome in verdicts.items():
        case = item.replace("/", ".", 1)
        assert junit[case] == JUNIT_CLASS[outcome], (item, outcome, junit[case])
    rows: dict[str, set[str]] = {}  # the report's gate rows (an item with several gates has several rows)
    for item, outcome in re.findall(r'data-item="([^"]+)" data-outcome="([^"]+)"', audited["html"]):
        rows.setdefault(item, set()).add(outcome)
    for item, outcome in verdicts.items():
        if not item.endswith(("[aggregate]", "[load]")):
            continue  # a per-clip check's row is its worst clip's gate, named by that clip
        assert item in rows, item
        assert outcome in rows[item] if outcome != "passed" else rows[item] == {"passed"}, (item, outcome, rows[item])
        assert "failed" not in rows[item] or outcome == "failed", (item, rows[item])  # never redder than its item
    for g in doc["gates"]:  # one story per item: a failed gate only inside a failed item
        assert g["outcome"] != "failed" or verdicts[g["item"]] == "failed", g
    assert doc["run"]["verdict"] == "failed" and audited["pytest"].returncode == 1
    assert audited["cli"].returncode == 1 and audited["cli_doc"]["run"]["verdict"] == "failed"
    props = {p.get("name"): p.get("value") for p in audited["junit"].find("testsuite").find("properties")}
    assert props["freqrex.verdict"] == "failed" and props["freqrex.shown"] == "FAIL"
    assert re.search(r'<p id="run-state"[^>]*>FAIL', audited["html"])
    row = audited["index"].split(next((audited["root"] / "reports").glob("*/results.json")).parent.name, 1)[1]
    assert ">FAIL<" in row.split("</tr>", 1)[0]
    cli_outcomes = {(s, v["check"], v["key"]): v["outcome"] for s, spec in audited["cli_doc"]["specs"].items()
                    for v in spec["verdicts"]}
    assert cli_outcomes == {(s, v["check"], v["key"]): v["outcome"] for s, spec in doc["specs"].items()
                            for v in spec["verdicts"]}  # the CLI and pytest: the same verdicts


@pytest.mark.parametrize("spec", ["nan-for-b", "nan-under-attack"])
def test_a_model_that_answers_nan_on_some_clips_is_never_green(audited, spec):
    """Planted truth: every "b" clip errors (at prediction, or only under attack); those clips stay in every
    rate's attempted count, the aggregate gates are not measured, and model[load] fails with a recorded gate."""
    doc = audited["doc"]
    v = _verdicts(doc, spec)
    assert v["model[load]"]["outcome"] == "failed" and "failed to answer on 3 of 6 attempted clips" in \
        v["model[load]"]["message"]
    gate = next(g for g in doc["gates"] if g["spec"] == spec and g["metric"] == "errored_clips")
    assert (gate["value"], gate["n"], gate["outcome"]) == (3, 6, "failed")
    assert v["fourier_attack[aggregate]"]["outcome"] == "not_measured"
    assert "3 of 6 clips measured, 3 errored" in v["fourier_attack[aggregate]"]["message"]
    rate = doc["specs"][spec]["rates"]["fourier_attack.success_rate"]
    assert (rate["clips"], rate["attempted"], rate["errored"]) == (3, 6, 3)
    accuracy = doc["specs"][spec]["rates"]["accuracy.accuracy"]
    if spec == "nan-for-b":  # no prediction for the "b" clips: accuracy cannot be measured on half the data
        assert v["accuracy[aggregate]"]["outcome"] == "not_measured" and (accuracy["n"], accuracy["errored"]) == (3, 3)
    else:  # predictions were made before the attack broke: accuracy counts them
        assert v["accuracy[aggregate]"]["outcome"] == "passed" and (accuracy["n"], accuracy["errored"]) == (6, 0)
        assert all("(in the Fourier attack)" in s["reason"] for s in doc["specs"][spec]["samples"]
                   if s["status"] == "error")
    assert f"FAIL {spec}::model[load]: " in audited["cli"].stdout


def test_a_starved_attack_is_not_measured_and_the_fed_one_finds_the_planted_flip(audited):
    doc = audited["doc"]
    starved, fed = _verdicts(doc, "starved"), _verdicts(doc, "fed")
    for clip in ("on/000.wav", "on/001.wav"):
        message = starved[f"fourier_attack[{clip}]"]["message"]
        assert starved[f"fourier_attack[{clip}]"]["outcome"] == "not_measured"
        needed = next(s for s in doc["specs"]["starved"]["samples"] if s["id"] == clip)["fourier_attack"]["coverage"]
        assert f"the search needs up to {needed['queries_needed']} queries here (attack.query_budget is 12)" in message
        assert needed["queries_needed"] > 12 and needed["screened"] < needed["top_bins"]
        assert fed[f"fourier_attack[{clip}]"]["outcome"] == "failed"  # the truth: one quiet frequency flips it
        found = re.search(r"with 1 frequency \(440 Hz\) ×(0\.\d+)", fed[f"fourier_attack[{clip}]"]["message"])
        assert found and 0.75 <= float(found.group(1)) < 1  # the ladder's ×0.75, or walked nearer the boundary
    assert starved["fourier_attack[aggregate]"]["outcome"] == "not_measured"
    assert "0 of 2 clips measured" in starved["fourier_attack[aggregate]"]["message"]
    assert fed["fourier_attack[aggregate]"]["outcome"] == "failed"


def test_a_map_that_never_saw_a_passing_mutant_says_so_in_results_and_report(audited):
    sample = audited["doc"]["specs"]["knife"]["samples"][0]
    exp = sample["explanation"]
    assert (exp["converged"], exp["stopped"]) == (False, "nothing passed")
    assert any("no proper mutant kept the label" in note for note in sample["notes"])
    assert "NOT CONVERGED: no proper mutant ever kept the label" in audited["html"]


def test_a_two_model_flat_earther_rule_is_not_measured_never_passed(audited):
    for spec in ("pair-a", "pair-b"):
        verdict = _verdicts(audited["doc"], spec)["transferability[aggregate]"]
        assert verdict["outcome"] == "not_measured"
        gate = next(g for g in audited["doc"]["gates"] if g["spec"] == spec and g["metric"] == "flat_earther")
        assert gate["value"] is None and "needs ≥ 3 models, has 2" in gate["unmeasured"]


def test_a_declared_weakness_is_xfail_and_a_gone_one_fails_strictly(audited):
    doc, junit = audited["doc"], _junit(audited["junit"])
    known = _verdicts(doc, "known-weakness")["fourier_attack[aggregate]"]
    assert known["outcome"] == "xfailed" and known["message"].startswith("expected failure")
    assert junit["model_specs.known-weakness.yaml::fourier_attack[aggregate]"] == "xfailed"
    gone = _verdicts(doc, "weakness-gone")["fourier_attack[aggregate]"]
    assert gone["outcome"] == "failed" and "the weakness this spec declares is gone" in gone["message"]
    strict = next(g for g in doc["gates"] if g["spec"] == "weakness-gone" and g["metric"] == "expected_failures")
    assert (strict["value"], strict["outcome"]) == (0, "failed")  # the red item carries the gate that made it red
    counts = re.sub(r"<[^>]+>", "", audited["index"])
    assert "1 expected failure" in counts


def _recount(doc: dict, spec: str) -> dict[str, tuple[int, int]]:
    """Every attack metric, recomputed here from the run's sample records with METRICS' words, not the engine's code."""
    section = doc["specs"][spec]
    sizes = [int(w) for w in section["tables"]["attacks"]["stft"]["frame_sizes"]]

    def covered(c: dict | None) -> bool:  # README: "Measured scales with the question"
        return bool(c) and c["screened"] >= c["top_bins"] and c["descent"] in ("done", "none") and \
            c["prefixes_asked"] >= c["prefixes"]

    measured = [s for s in section["samples"] if s["status"] != "error" and s.get("fourier_attack") and (
        (s["fourier_attack"]["success"] and s["fourier_attack"]["quiet"]) or covered(s["fourier_attack"]["coverage"]))]
    atk = [s["fourier_attack"] for s in measured]
    flips = [a for a in atk if a["success"]]
    quiet = [a for a in flips if a["quiet"]]
    out = {"success_rate": (len(quiet), len(atk)), "raw_success_rate": (len(flips), len(atk)),
           "single_rate": (sum(a["n_frequencies"] == 1 for a in quiet), len(atk)),
           "five_rate": (sum(a["n_frequencies"] <= 5 for a in quiet), len(atk)),
           "int16_survival_rate": (sum(bool(a["survives_int16"]) for a in quiet), len(atk)),
           "single_share": (sum(a["n_frequencies"] == 1 for a in flips), len(flips)),
           "five_share": (sum(a["n_frequencies"] <= 5 for a in flips), len(flips)),
           "int16_survival_share": (sum(bool(a["survives_int16"]) for a in flips), len(flips))}
    out = {f"fourier_attack.{k}": v for k, v in out.items()}
    long_enough = [s for s in measured if min(sizes) <= 2 * (s["fourier_attack"]["coverage"]["bins"] - 1)]
    st = [(s["fourier_attack"], s["stft_attack"]) for s in long_enough]
    tried = [x for f, x in st if f["success"]]
    won = [x for x in tried if x["success"] and x["quiet"]]
    done = [x for x in tried if x["success"]]
    out["stft_attack.success_rate"] = (len(won), len(st))
    out["stft_attack.int16_survival_rate"] = (sum(bool(x["survives_int16"]) for x in won), len(st))
    out["stft_attack.success_share"] = (len(done), len(tried))
    for w in sizes:
        out[f"stft_attack.rate_{w}"] = (sum(x["frame_size"] == w for x in won), len(st))
        out[f"stft_attack.share_{w}"] = (sum(x["frame_size"] == w for x in done), len(tried))
    return out


def test_every_named_metric_equals_its_recomputation_in_every_view(audited):
    doc, cli_doc = audited["doc"], audited["cli_doc"]
    recount = _recount(doc, "metrics")
    section = doc["specs"]["metrics"]
    assert set(recount) == {k for k in section["rates"] if k != "accuracy.accuracy"}
    assert 0 < recount["fourier_attack.raw_success_rate"][0] and recount["stft_attack.success_share"][1] > 0
    summary = section["tables"]["attacks"]
    junit_values = {p.get("name"): float(p.get("value")) for case in audited["junit"].iter("testcase")
                    if case.get("classname") == "model_specs.metrics.yaml" for p in case.iter("property")
                    if not p.get("name").startswith(("freqrex", "model.")) and not p.get("name").endswith("threshold")}
    for name, (k, n) in recount.items():
        check, short = name.split(".", 1)
        value = k / n if n else None
        assert metric_definition(name) is not None, name  # one definition, in the engine
        for where, rates in (("results.json", section["rates"]), ("CLI run", cli_doc["specs"]["metrics"]["rates"])):
            assert (rates[name]["k"], rates[name]["n"]) == (k, n), (where, name)
        assert section["metrics"][name] == value, name  # what baselines store
        table = summary if check == "fourier_attack" else summary["stft"]
        assert table["counts"][short] == [k, n] and table[short] == value, name  # the tables
        gate = next((g for g in doc["gates"] if g["spec"] == "metrics" and g["check"] == check and
                     g["metric"] == short), None)
        if gate is not None:  # a gated metric: the gate, JUnit and the CLI's line say the same number
            assert (gate["k"], gate["n"], gate["value"]) == (k, n, value), name
            assert junit_values[name] == pytest.approx(value), name
            assert f"{short} = {value:.3g} ({k} of {n} {gate['over']}" in audited["cli"].stdout, name
        if n:  # the report's table cell
            table_html = _spec_html(audited["cli_html"], "metrics").split("Table 4")[check == "stft_attack"]
            cell = re.search(rf'<td class="{short.replace("_", "-")}">(\d+) of (\d+) ', table_html)
            assert cell and (int(cell.group(1)), int(cell.group(2))) == (k, n), name
    markdown = audited["tables"].stdout  # freqrex-audit tables RUN: the Table 3 and Table 4 rows of this spec
    table3 = next(line for line in markdown.split("### Table 3")[1].split("### Table 4")[0].splitlines()
                  if line.startswith("| metrics |"))
    table4 = next(line for line in markdown.split("### Table 4")[1].splitlines() if line.startswith("| metrics |"))
    for row, check, names, first in ((table3, "fourier_attack", TABLE3, 4),  # after spec, attempted, errored, measured
                                     (table4, "stft_attack", stft_names([256, 512, 1024]), 3)):
        cells = [c.strip() for c in row.strip("|").split("|")][first:first + len(names)]
        assert cells == [f"{recount[f'{check}.{n}'][0]} / {recount[f'{check}.{n}'][1]}" if recount[f"{check}.{n}"][1]
                         else "—" for n in names], (check, row)
    assert all(name in METRICS or metric_definition(name) for name in recount)


@pytest.mark.parametrize("checks, words", [
    ("composition: {}", "checks.composition: sets no gate"),
    ("transferability: {flat_earther: true}", "checks.transferability: sets no gate"),
])
def test_a_check_that_could_only_say_computed_is_a_spec_error(tmp_path, checks, words):
    """composition / transferability without a threshold made a PASSED item that judged nothing."""
    from freqrex_audit.specs.loader import SpecError, load_spec

    (tmp_path / "pyproject.toml").write_text("")
    write_robust_dataset(tmp_path / "data")
    (tmp_path / "s.yaml").write_text(f"model: {{target: 'tests.audit_models:robust'}}\ndataset: {{path: data}}\n"
                                     f"checks:\n  {checks}\n")
    with pytest.raises(SpecError, match=words):
        load_spec(tmp_path / "s.yaml")


def test_a_baseline_without_the_spec_decides_nothing_and_another_engine_is_not_compared(tmp_path, monkeypatch):
    """A baseline that lacks the spec (a rename) skipped its regression items and the run stayed green; one
    made by another engine compared numbers that may mean other things."""
    from freqrex_audit.audit.run import run_spec
    from freqrex_audit.runs import baselines
    from freqrex_audit.runs.write import assemble, finalize, spec_part
    from freqrex_audit.specs.loader import load_spec

    (tmp_path / "pyproject.toml").write_text("")
    write_robust_dataset(tmp_path / "data")
    (tmp_path / "s.yaml").write_text("name: s\nmodel: {target: 'tests.audit_models:robust'}\ndataset: {path: data}\n"
                                     "checks:\n  accuracy: {min: 0.5}\n")
    result = run_spec(load_spec(tmp_path / "s.yaml"), "cpu")
    doc = finalize(assemble([spec_part(result)], {"seed": None}, 0.0, 1.0))
    path = tmp_path / "b.json"
    baselines.save_baseline(path, doc, "b")
    rules = [baselines.parse_rule("accuracy.accuracy:-0.05")]
    assert [v.outcome for v in baselines.regression_verdicts(rules, result, path, "b")] == ["passed"]
    assert "another CPU" not in baselines.regression_verdicts(rules, result, path, "b")[0].message
    elsewhere = tmp_path / "elsewhere.json"  # the same numbers, saved on another machine
    baselines.save_baseline(elsewhere, {**doc, "run": {**doc["run"], "cpu": "Some CPU (sse4_2)"}}, "elsewhere")
    other_cpu = baselines.regression_verdicts(rules, result, elsewhere, "elsewhere")[0]
    assert other_cpu.outcome == "passed" and "the baseline ran on another CPU, Some CPU (sse4_2)" in other_cpu.message
    renamed = dataclasses.replace(result, spec=dataclasses.replace(result.spec, name="s-renamed"))
    missing = baselines.regression_verdicts(rules, renamed, path, "b")[0]
    assert missing.outcome == "not_measured" and "is not in baseline 'b'" in missing.message
    monkeypatch.setattr(baselines, "engine_version", lambda: "0.0.0+another-engine")
    other = baselines.regression_verdicts(rules, result, path, "b")[0]
    assert other.outcome == "not_measured" and "different config" in other.message
