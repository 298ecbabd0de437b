"""Baselines like pytest-benchmark's: the gates carry baseline + delta when compared, and
``freqrex-audit compare A B`` prints the metric deltas of two runs, run folders or baseline names."""

from __future__ import annotations

import json

import pytest

from freqrex_audit.cli.main import main
from freqrex_audit.runs.compare import delta_rows, format_differences, format_table, setting_differences
from tests.test_plugin_e2e import ROBUST, project, shared_cache  # noqa: F401  (fixtures)


def runs(pytester: pytest.Pytester) -> list:
    return sorted((pytester.path / "reports").glob("*/results.json"))


def test_compared_gates_carry_baseline_and_delta_and_compare_prints_them(project, capsys, monkeypatch):
    specs = project.path / "model_specs"
    (specs / "fragile.yaml").unlink()
    (specs / "robust.yaml").write_text(ROBUST.replace("  fourier_attack: {min_frequencies: 2, max_success_rate: 0.25}\n",
                                                      "  fourier_attack: {max_success_rate: 0.75}\n"))
    project.inline_run("model_specs", "--freqrex-save", "v1", "--freqrex-no-report").assertoutcome(passed=7)
    spec = (specs / "robust.yaml").read_text().replace("tests.audit_models:robust", "tests.audit_models:single_bin")
    (specs / "robust.yaml").write_text(spec)
    project.inline_run("model_specs", "--freqrex-compare", "v1", "--freqrex-no-report",
                       "--freqrex-compare-fail", "accuracy.accuracy:-5%")
    first, second = (json.loads(p.read_text()) for p in runs(project))
    then = first["specs"]["robust"]["metrics"]["fourier_attack.success_rate"]
    now = second["specs"]["robust"]["metrics"]["fourier_attack.success_rate"]
    assert now > then  # the single-bin model is easier to attack: a real, non-zero delta
    gate = next(g for g in second["gates"] if g["check"] == "fourier_attack" and g["metric"] == "success_rate")
    assert gate["baseline"] == then and gate["delta"] == pytest.approx(now - then)
    # the CLI: run folder vs baseline name vs results.json path
    monkeypatch.chdir(project.path)
    assert main(["compare", "v1", str(runs(project)[1].parent)]) == 0
    table = capsys.readouterr().out
    line = next(l for l in table.splitlines() if "fourier_attack.success_rate" in l)
    assert line.split()[0] == "robust" and line.split()[-1] == f"{now - then:+.4g}"
    assert main(["compare", str(runs(project)[0]), "nope"]) == 2
    assert "nope: not a results.json" in capsys.readouterr().err


def test_delta_table_handles_missing_and_unmeasured_metrics():
    rows = delta_rows({"m": {"a.x": 0.5, "a.y": None}}, {"m": {"a.x": 0.25, "a.z": 1.0}, "n": {"a.x": 1}})
    assert rows == [("m", "a.x", 0.5, 0.25, -0.25), ("m", "a.y", None, None, None), ("m", "a.z", None, 1.0, None),
                    ("n", "a.x", None, 1.0, None)]
    text = format_table(rows, "A", "B", changed_only=True)
    assert "-0.25" in text and "a.y" in text and len(text.splitlines()) == 2 + 4


def test_compare_names_another_cpu_or_version_above_the_deltas():
    """Kernels round by instruction set and by release (README: the demo on another CPU): compare says when A and B
    ran on other CPUs or software, and says nothing when they did not."""
    a = {"cpu": "AMD EPYC (avx512f)", "device": "cpu", "versions": {"torch": "2.13.0", "engine": "0.1.0+x"}}
    assert setting_differences(a, dict(a)) == [] and format_differences([]) == ""
    b = {**a, "cpu": "Intel Xeon (avx2)", "versions": {"torch": "2.14.0", "engine": "0.1.0+x", "onnxruntime": "1.32"}}
    differences = setting_differences(a, b)
    assert differences == [("cpu", "AMD EPYC (avx512f)", "Intel Xeon (avx2)"),
                           ("versions.onnxruntime", "not recorded", "1.32"), ("versions.torch", "2.13.0", "2.14.0")]
    text = format_differences(differences)
    assert "other machines or software" in text and "  cpu: AMD EPYC (avx512f) → Intel Xeon (avx2)" in text
    assert setting_differences({}, {"versions": "garbage"}) == []  # a run written before run.cpu, or hand-edited
    mixed = {**a, "node_cpus": {"node n1 (10.0.0.1, aa)": "AMD EPYC (avx512f)", "node n2 (10.0.0.2, bb)": "Intel Xeon (avx2)"}}
    assert setting_differences(a, mixed) == [("node_cpus", "not recorded", "AMD EPYC (avx512f), Intel Xeon (avx2)")]
