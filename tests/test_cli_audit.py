"""freqrex-audit audit / explain / attack from the shell (in process)."""

from __future__ import annotations

import json

from freqrex_audit.cli.main import main
from tests.audit_models import write_fragile_dataset

SPEC = """
model: {target: "tests.audit_models:fragile"}
dataset: {path: data}
attack: {budget: 5, pool: ranking, min_snr_db: -60}  # pure-tone clips only flip loudly: count every flip
checks:
  accuracy: {min: 0.9}
  fourier_attack: {max_success_rate: %s}
"""


def test_audit_exit_status_follows_the_gates(tmp_path, capsys):
    write_fragile_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "strict.yaml").write_text(SPEC % "0.25")
    (tmp_path / "lenient.yaml").write_text(SPEC % "1.0")
    args = ["--report", str(tmp_path / "reports"), "--cache", str(tmp_path / "cache"), "--device", "cpu"]
    assert main(["audit", str(tmp_path / "strict.yaml"), *args]) == 1
    out = capsys.readouterr().out
    # Both clips flip: "loud" by cutting its 440 Hz bin, "quiet" (an absence class) by boosting it.
    assert "FAIL strict::fourier_attack[aggregate]" in out
    assert "success_rate = 1 (2 of 2 measured clips, 95% CI 0.34–1.00), spec requires <= 0.25" in out
    assert main(["audit", str(tmp_path / "lenient.yaml"), *args]) == 0
    runs = sorted((tmp_path / "reports").glob("*/results.json"))
    doc = json.loads(runs[-1].read_text())
    assert doc["timings"]["per_spec"]["lenient"]["queries"] == 0  # same model, clips and configs: all cached
    assert doc["specs"]["lenient"]["tables"]["attacks"]["success_rate"] == 1.0
    index = (tmp_path / "reports" / "index.html").read_text()
    assert all(f"{run.parent.name}/report.html" in index for run in runs)  # both runs listed


def test_a_report_that_fails_to_render_changes_no_exit_status_and_keeps_the_index_row(tmp_path, capsys,
                                                                                      monkeypatch):
    """The report is one view among several: its bug is printed, the run's exit status stays the verdict's
    (it was 1, "a gate failed", from the traceback) and the index still lists the run."""
    import freqrex_audit.report.html as html

    def broken(*args, **kwargs):
        raise RuntimeError("template bug")

    monkeypatch.setattr(html, "render_report", broken)
    write_fragile_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "lenient.yaml").write_text(SPEC % "1.0")
    args = ["--report", str(tmp_path / "reports"), "--no-cache", "--device", "cpu"]
    assert main(["audit", str(tmp_path / "lenient.yaml"), *args]) == 0
    assert "report not rendered: RuntimeError: template bug" in capsys.readouterr().err
    run = next((tmp_path / "reports").glob("*/results.json")).parent.name
    index = (tmp_path / "reports" / "index.html").read_text()
    assert run in index and ">PASS<" in index


def test_no_report_writes_results_only_and_keeps_an_existing_index_current(tmp_path, capsys):
    """``--no-report``: results.json and the exit status as ever, no page drawn; the first run starts no index, but
    once a run made one, a run without a report is listed in it (linking its results.json), as under pytest."""
    write_fragile_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "strict.yaml").write_text(SPEC % "0.25")
    reports = tmp_path / "reports"
    args = [str(tmp_path / "strict.yaml"), "--report", str(reports), "--cache", str(tmp_path / "cache"),
            "--device", "cpu"]
    assert main(["audit", *args, "--no-report"]) == 1  # the verdict's exit status, drawn or not
    out = capsys.readouterr().out
    first = next(reports.glob("*/results.json"))
    assert "FAIL strict::fourier_attack[aggregate]" in out and f"results: {first}" in out and "report:" not in out
    assert not list(reports.rglob("*.html"))
    assert main(["audit", *args]) == 1
    assert main(["audit", *args, "--no-report"]) == 1
    runs = sorted(reports.glob("*/results.json"), key=lambda p: p.stat().st_mtime)
    assert [r.with_name("report.html").exists() for r in runs] == [False, True, False]
    index = (reports / "index.html").read_text()
    assert f'{runs[2].parent.name}/results.json' in index and f'{runs[2].parent.name}/report.html' not in index


def test_explain_and_attack_write_their_files(tmp_path, capsys):
    write_fragile_dataset(tmp_path / "data", per_class=1)
    clip = str(tmp_path / "data" / "loud" / "000.wav")
    assert main(["explain", "tests.audit_models:fragile", clip, "--out", str(tmp_path / "ex"), "--device", "cpu"]) == 0
    assert {"explanation.json", "sufficient.wav", "explanation.png"} <= {p.name for p in (tmp_path / "ex").iterdir()}
    assert main(["attack", "tests.audit_models:fragile", clip, "--out", str(tmp_path / "at"), "--no-stft"]) == 0
    summary = json.loads((tmp_path / "at" / "attack.json").read_text())
    assert summary["success"] and summary["n_frequencies"] == 1 and summary["new_label"] == "quiet"
    assert (tmp_path / "at" / "adversarial_int16.wav").exists() and (tmp_path / "at" / "attack.png").exists()
    assert "queries:" in capsys.readouterr().out
