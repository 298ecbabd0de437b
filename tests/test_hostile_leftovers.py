"""Hostile leftovers of issue #28, each fixed at its class: names are never trusted to be UTF-8, caches go to a
writable place or say why not, a model that fails to load is a recorded gate, rates given to the audio API are
checked."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import freqrex_audit as fa
from freqrex_audit.audio.io import resample
from freqrex_audit.cli.main import main
from tests.audit_models import write_robust_dataset
from tests.audit_runs import subprocess_env


def test_a_non_utf8_spec_and_clip_name_and_a_flow_style_check_never_crash_pytest(tmp_path):
    """A skipped item must point at a line of its spec (a flow-style check had none: pytest's own INTERNALERROR,
    ``assert line is not None``), and a node id must be text JUnit and the report can write."""
    (tmp_path / "pyproject.toml").write_text("")
    write_robust_dataset(tmp_path / "data")
    os.rename(tmp_path / "data" / "low" / "000.wav", os.fsencode(tmp_path / "data" / "low") + b"/\xff\xfe.wav")
    specs = tmp_path / "model_specs"
    specs.mkdir()
    spec = os.fsencode(specs) + b"/\xfespec.yaml"
    Path(os.fsdecode(spec)).write_text("name: odd\nmodel: {target: 'tests.audit_models:robust'}\n"
                                       "dataset: {path: ../data}\nchecks: {accuracy: {min: 0.5}, sufficiency: {}}\n")
    run = subprocess.run([sys.executable, "-m", "pytest", "model_specs", "-v", "-p", "no:randomly", "-p", "no:xdist",
                          "-p", "no:cacheprovider", "--junitxml=run.xml", "--freqrex-no-cache"], cwd=tmp_path,
                         env=subprocess_env(), capture_output=True, text=True, timeout=900)
    assert "INTERNALERROR" not in run.stdout + run.stderr and run.returncode == 0, run.stdout[-3000:]
    assert r"model_specs/\xfespec.yaml::sufficiency[low/\xff\xfe.wav] SKIPPED" in run.stdout
    doc = json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text(encoding="utf-8"))
    assert doc["specs"]["odd"]["spec_file"] == r"model_specs/\xfespec.yaml"
    assert r"\xfespec.yaml" in (tmp_path / "run.xml").read_text(encoding="utf-8")
    report = next((tmp_path / "reports").glob("*/report.html")).read_text(encoding="utf-8")
    assert r"model_specs/\xfespec.yaml" in report


def test_matplotlib_cache_falls_back_to_a_writable_folder_or_says_why(tmp_path):
    """A read-only project (here: a file where the cache folder would be) is not matplotlib's OSError: the font
    cache goes to a temporary folder; when no folder at all can be written, one error names both and the fix."""
    blocker = tmp_path / "cache"
    blocker.write_text("a file where the cache folder should be")
    code = ("import sys; from freqrex_audit.runtime.isolation import private_matplotlib\n"
            "if sys.argv[2] == 'no-tmp':\n"
            "    import tempfile\n"
            "    def refuse(*a, **k): raise PermissionError(13, 'Permission denied')\n"
            "    tempfile.mkdtemp = refuse\n"
            "try:\n    private_matplotlib(sys.argv[1])\nexcept ValueError as exc:\n    print('REFUSED', exc); sys.exit(0)\n"
            "import matplotlib, pathlib; print('CACHE', matplotlib.get_cachedir())\n")
    ok = subprocess.run([sys.executable, "-c", code, str(blocker), "tmp"], env=subprocess_env(), capture_output=True,
                        text=True, timeout=300)
    assert ok.returncode == 0 and ok.stdout.startswith("CACHE "), ok.stderr
    assert not ok.stdout.split()[1].startswith(str(blocker)) and "freqrex-mpl-" in ok.stdout
    refused = subprocess.run([sys.executable, "-c", code, str(blocker), "no-tmp"], env=subprocess_env(),
                             capture_output=True, text=True, timeout=300)
    assert refused.stdout.startswith("REFUSED matplotlib (the report's figures) needs a writable folder"), \
        refused.stdout + refused.stderr
    assert f"the cache folder {blocker / 'matplotlib'} is not writable" in refused.stdout
    assert "set MPLCONFIGDIR to a writable folder" in refused.stdout


@pytest.mark.parametrize("rate", [0, -8000, 16000.5, True, 10 ** 9])
def test_a_sample_rate_outside_what_audio_can_have_is_refused_by_name(rate):
    clip = Path(fa.__file__).parent / "zoo" / "instruments" / "eval" / "violin" / "violin_000.flac"
    with pytest.raises(ValueError, match=r"load_audio: sample_rate must be"):
        fa.load_audio(clip, sample_rate=rate)
    with pytest.raises(ValueError, match=r"resample: to_rate must be"):
        resample(np.zeros(64, np.float32), 16000, rate)
    x, sr = fa.load_audio(clip, sample_rate=8000)  # a rate in range still loads
    assert sr == 8000 and x.dtype == np.float32


def test_a_model_that_fails_to_load_is_a_failed_gate_in_results(tmp_path, monkeypatch, capsys):
    (tmp_path / "pyproject.toml").write_text("")
    write_robust_dataset(tmp_path / "data")
    (tmp_path / "s.yaml").write_text("name: s\nmodel: {target: 'tests.gate_models:fails_to_load'}\n"
                                     "dataset: {path: data}\nchecks:\n  accuracy: {min: 0.5}\n")
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "s.yaml", "--report", "reports", "--no-cache", "--device", "cpu"]) == 1
    doc = json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text())
    gate = next(g for g in doc["gates"] if g["check"] == "model")
    assert (gate["metric"], gate["value"], gate["outcome"]) == ("loaded", 0, "failed")
    assert gate["item"] == "s.yaml::model[load]" and not doc["errors"]  # a failed gate, not a spec error
    assert "weights file is corrupt" in doc["specs"]["s"]["error"]
