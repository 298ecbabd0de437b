"""Issue #30, a new user's first runs: progress a person sees, the CLI computing only what the checks need,
inputs that are missing or wrong failing loudly, messages from the gate's own numbers, ``--freqrex-report DIR``."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from freqrex_audit.cli.main import main
from freqrex_audit.runtime.progress import PLAIN_EVERY_S, Board, LiveLine
from tests.audit_models import write_fragile_dataset, write_robust_dataset
from tests.audit_runs import REPO, audit, load, subprocess_env
from tests.test_plugin_e2e import ROBUST, project, shared_cache  # noqa: F401  (fixtures)


# --- progress ---------------------------------------------------------------------------------------------

def test_plain_pytest_on_a_terminal_shows_the_live_line(tmp_path):
    """Under plain ``pytest`` (output captured) on a TTY the line went into the capture, so nothing showed."""
    write_robust_dataset(tmp_path / "data" / "robust")
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "model_specs").mkdir()
    (tmp_path / "model_specs" / "robust.yaml").write_text(ROBUST)
    main_fd, child_fd = os.openpty()
    env = subprocess_env(PYTHONPATH=os.pathsep.join([str(REPO), str(tmp_path)]), COLUMNS="120")
    child = subprocess.Popen([sys.executable, "-m", "pytest", "model_specs", "-p", "no:cacheprovider",
                              "--freqrex-no-cache", "--freqrex-no-report", "-p", "no:xdist"],
                             cwd=tmp_path, stdin=child_fd, stdout=child_fd, stderr=child_fd, env=env)
    os.close(child_fd)
    chunks = []
    while True:
        try:
            chunk = os.read(main_fd, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        chunks.append(chunk)
    assert child.wait(timeout=600) == 0
    text = b"".join(chunks).decode(errors="replace")
    assert "robust: 0/4 clips" in text and re.search(r"robust: 4/4 clips, [\d,]+ queries, \d+ s, done", text), text


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_without_a_terminal_a_line_comes_at_least_every_ten_seconds_of_work():
    clock, out = Clock(), []
    line = LiveLine("vad", out.append, clock, plain=True)
    line(0, 4, 0)
    clock.now = 3.0
    line.tick(500)
    assert out == []  # a spec done in seconds says nothing
    clock.now = PLAIN_EVERY_S + 0.5
    line.tick(2_000)  # one long clip: the engine's calls keep the line alive between clips
    clock.now = PLAIN_EVERY_S + 1.0
    line(1, 4, 2_100)
    clock.now = 2 * PLAIN_EVERY_S + 1.0
    line(2, 4, 4_000)
    line(4, 4, 5_000)
    assert out == ["vad: 0/4 clips, 2,000 queries, 10 s\n", "vad: 2/4 clips, 4,000 queries, 21 s, ETA 21 s\n",
                   "vad: 4/4 clips, 5,000 queries, 21 s, done\n"]
    quick, said = LiveLine("quick", [].append, Clock(), plain=True), []
    quick.write = said.append
    quick(0, 2, 0)
    quick(2, 2, 10)
    assert said == []


def test_the_xdist_controller_prints_plain_lines_without_a_terminal():
    out = []
    board = Board(out.append, lambda: 0, lambda: 80, plain=True)
    board.update("a", 1, 4, 100, 2.0, "gw0 cpu")
    board.update("a", 2, 4, 900, PLAIN_EVERY_S + 1, "gw0 cpu")
    board.update("b", 4, 4, 50, 3.0, "gw1 cpu")  # a short spec: nothing
    board.update("a", 4, 4, 1_500, 12.0, "gw0 cpu")
    assert out == ["[gw0 cpu] a: 2/4 clips, 900 queries, 11 s, ETA 11 s\n", "[gw0 cpu] a: 4/4 clips, 1,500 queries, "
                                                                             "12 s, done\n"]


PEERED = """
name: {name}
model: {{target: "tests.audit_models:{model}"}}
dataset: {{path: data}}
peers: [{peer}]
checks:
  transferability: {{}}
"""


def test_a_peers_work_is_charged_to_the_peer_on_the_specs_line(tmp_path, monkeypatch, capsys):
    write_robust_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "a.yaml").write_text(PEERED.format(name="a", model="robust", peer="b"))
    (tmp_path / "b.yaml").write_text(PEERED.format(name="b", model="single_bin", peer="a"))
    monkeypatch.chdir(tmp_path)
    doc = load(audit(tmp_path, "a.yaml", cache=None))
    out = capsys.readouterr().out
    peer = doc["timings"]["per_spec"]["a"]["peers"]["b"]
    assert peer["queries"] > 0
    assert re.search(rf"^a: .*; [\d,]+ queries, [\d.]+ s \(\+ peer b: {peer['queries']:,} queries, [\d.]+ s\)$", out,
                     re.M), out


# --- the CLI computes what the checks need ----------------------------------------------------------------

def test_the_cli_computes_only_predictions_for_an_accuracy_only_spec(tmp_path, monkeypatch):
    write_robust_dataset(tmp_path / "data")
    (tmp_path / "spec.yaml").write_text("model: {target: 'tests.audit_models:robust'}\ndataset: {path: data}\n"
                                        "attack: {budget: 5, pool: ranking}\nchecks: {accuracy: {min: 0.5}}\n")
    monkeypatch.chdir(tmp_path)
    doc = load(audit(tmp_path, "spec.yaml", cache=None))
    spec, timing = doc["specs"]["spec"], doc["timings"]["per_spec"]["spec"]
    assert timing["queries"] == len(spec["samples"]) == 4  # one prediction per clip (was 5,695 queries on a VAD)
    assert set(timing["queries_by_phase"]) == {"predict"}
    assert not any(s["explanation"] or s["fourier_attack"] for s in spec["samples"])


# --- inputs that are missing or wrong -----------------------------------------------------------------------

def manifest_project(root: Path, rows: list[str], extra: str = "") -> Path:
    write_fragile_dataset(root / "clips")
    (root / "clips.csv").write_text("path,label\n" + "\n".join(rows) + "\n")
    (root / "spec.yaml").write_text(f"model: {{target: 'tests.audit_models:fragile'}}\n"
                                    f"dataset: {{path: clips.csv{extra}}}\nchecks: {{accuracy: {{min: 0.5}}}}\n")
    return root


def test_a_manifest_row_naming_a_missing_file_fails_the_spec_naming_the_row(tmp_path, monkeypatch, capsys):
    rows = ["clips/loud/000.wav,loud", "clips/quiet/000.wav,quiet", "clips/loud/999.wav,loud",
            "clips/quiet/001.wav,quiet"]
    monkeypatch.chdir(manifest_project(tmp_path, rows))
    assert main(["audit", "spec.yaml", "--report", "reports", "--no-cache", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert re.search(r"FAIL spec::model\[load\]: 1 of 4 clips the manifest names do not exist: clips.csv line 4 "
                     r"\('clips/loud/999.wav'\); .*dataset.missing_files: skip", out), out
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace(
        "clips.csv", "clips.csv, missing_files: skip"))
    assert main(["audit", "spec.yaml", "--report", "reports", "--no-cache", "--device", "cpu", "-v"]) == 0
    assert "1 missing clip(s) skipped (dataset.missing_files: skip)" in capsys.readouterr().out


def test_a_label_mismatch_names_the_rows_and_the_near_spelling(tmp_path, monkeypatch, capsys):
    rows = ["clips/loud/000.wav,Loud", "clips/quiet/000.wav,quiet", "clips/loud/001.wav,Loud"]
    monkeypatch.chdir(manifest_project(tmp_path, rows))
    assert main(["audit", "spec.yaml", "--report", "reports", "--no-cache", "--device", "cpu"]) == 1
    out = capsys.readouterr().out
    assert "dataset label 'Loud' (2 clips: clips.csv lines 2, 4) is not a model label — did you mean 'loud'?" in out
    assert "label_map: {Loud: loud}" in out


# --- messages from the gate's own numbers ------------------------------------------------------------------

ATTACKED = """
model: {target: "tests.audit_models:fragile"}
dataset: {path: data, clip_seconds: 0.25}
# #16's ladder (continuous: false): class 'loud' flips at 3.3 dB (counted), 'quiet' at 1.2 dB (not counted); #29's
# boundary walk would find quiet flips for both, and this test is about the words, not the attack's strength
attack: {budget: 5, pool: ranking, min_snr_db: 2, continuous: false}
checks:
  fourier_attack: {max_success_rate: 0.0}
  stft_attack: {max_success_rate: 1.0}
"""


def test_the_aggregate_message_names_the_flips_the_gate_counted(tmp_path, monkeypatch, capsys):
    write_fragile_dataset(tmp_path / "data")
    (tmp_path / "spec.yaml").write_text(ATTACKED)
    monkeypatch.chdir(tmp_path)
    doc = load(audit(tmp_path, "spec.yaml", cache=None, page=True))
    spec = doc["specs"]["spec"]
    rate = spec["rates"]["fourier_attack.success_rate"]
    flips = {s["id"]: s["fourier_attack"] for s in spec["samples"] if (s["fourier_attack"] or {}).get("success")}
    quiet = sorted(i for i, a in flips.items() if a["quiet"])
    loud = sorted(i for i, a in flips.items() if not a["quiet"])
    assert quiet and loud and rate["k"] == len(quiet)  # both kinds exist here, and the gate counts the quiet
    message = next(v["message"] for v in spec["verdicts"] if v["check"] == "fourier_attack")
    head = message.splitlines()[0]
    assert f"{rate['k']}/{rate['n']} measured clips flipped quietly" in head
    named, _, rest = head.partition("flipped only loudly")
    assert all(i in named for i in quiet) and not any(i in named for i in loud), head
    assert all(i in rest for i in loud), head
    report = (tmp_path / "reports").glob("*/report.html").__next__().read_text()
    table4 = report[report.index('class="table4"'):]
    table4 = table4[:table4.index("</table>")]
    stft = spec["rates"]["stft_attack.success_rate"]
    assert f'<td class="measured">{stft["n"]} · ' in table4  # the gate's n, not another count
    assert f'{stft["k"]} of {stft["n"]} STFT-measured clips' in table4  # the gate's own rate, under its named denominator


def test_a_check_that_did_not_run_says_not_run(project):
    result = project.runpytest("model_specs/fragile.yaml", "-m", "not freqrex_stft")
    doc = load(sorted((project.path / "reports").glob("*/results.json"))[-1])
    spec = doc["specs"]["fragile"]
    assert not [k for k in spec["rates"] if k.startswith("stft_attack.")], spec["rates"]  # never "0 of 4"
    report = sorted((project.path / "reports").glob("*/report.html"))[-1].read_text()
    assert '<span class="keyfig">quiet STFT flips: not run</span>' in report
    assert "Not run in this run: none of this check" in report
    assert result.ret == pytest.ExitCode.TESTS_FAILED  # fourier_attack still fails: the run is what it is


# --- --freqrex-report DIR -----------------------------------------------------------------------------------

def test_freqrex_report_with_a_space_works_or_says_how_to_write_it(project, tmp_path_factory):
    elsewhere = tmp_path_factory.mktemp("runs-elsewhere")
    ok = project.runpytest("model_specs/robust.yaml", "--freqrex-report", str(elsewhere), "-p", "no:xdist")
    assert ok.ret == pytest.ExitCode.OK and list(elsewhere.glob("*/results.json"))  # the ini fixes the rootdir
    for marker in ("tox.ini", "pyproject.toml"):  # without an ini, pytest reads the folder as a rootdir candidate
        (project.path / marker).unlink()
    moved = project.runpytest("model_specs/robust.yaml", "--freqrex-report", str(elsewhere), "-p", "no:xdist")
    assert moved.ret == pytest.ExitCode.USAGE_ERROR
    assert f"write --freqrex-report={elsewhere}" in moved.stderr.str()
