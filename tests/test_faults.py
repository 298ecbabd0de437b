"""Faults at the audit level: kill -9 mid-audit then resume, damaged cache entries, CUDA out-of-memory
above some batch size, and models that return NaN or wrongly shaped scores."""

from __future__ import annotations

import os
import signal
import subprocess
import time

import pytest

import tests.fault_models as fault_models
from freqrex_audit.audit.cache import Cache
from tests.audit_models import write_fragile_dataset, write_robust_dataset
from tests.audit_runs import (FRAGILE_SPEC, REPO, assert_same_arrays, audit, cli_command, load, npz_arrays,
                              stable_text, subprocess_env)


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_fragile_dataset(tmp_path / "data", per_class=1)
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _cache_files(root):
    return sorted(p for p in root.rglob("*") if p.is_file()) if root.exists() else []


def test_kill_9_mid_audit_leaves_only_whole_entries_and_the_rerun_resumes(project, monkeypatch):
    write_fragile_dataset(project / "data", per_class=2)
    (project / "spec.yaml").write_text(FRAGILE_SPEC % "tests.fault_models:slow_fragile")
    cache_dir = project / "cache"
    # every predict call sleeps 20 ms: 4 clips take ~100 calls each, so the kill lands mid-audit
    child = subprocess.Popen(cli_command("audit", "spec.yaml", "--report", "killed", "--cache", "cache",
                                         "--device", "cpu"),
                             cwd=project, env=subprocess_env(FREQREX_TEST_DELAY="0.02"),
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 120
        while (child.poll() is None and time.monotonic() < deadline
               and len([p for p in _cache_files(cache_dir) if p.suffix == ".frx"]) < 3):
            time.sleep(0.01)
        child.send_signal(signal.SIGKILL)  # a no-op if it already ended
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    killed = child.returncode == -signal.SIGKILL
    output = child.stdout.read().decode(errors="replace")
    child.stdout.close()
    assert killed or child.returncode in (0, 1), output
    if killed:
        assert not list((project / "killed").glob("*/results.json")), "a killed run wrote results"

    # on disk: every entry is whole and valid, or absent; at most some temp files that are not entries
    files = _cache_files(cache_dir)
    entries = [p for p in files if p.suffix == ".frx"]
    assert len(entries) >= 3, output
    strays = [p for p in files if p.suffix != ".frx"]
    assert all(p.name.startswith(".") and p.name.endswith(".tmp") for p in strays), strays
    check = Cache(cache_dir)
    assert all(check.get(p.stem) is not None for p in entries)
    assert check.corrupt == 0 and check.hits == len(entries)

    # the rerun (no delay now: the model's fingerprint does not depend on it) resumes from those entries
    monkeypatch.setenv("FREQREX_TEST_DELAY", "0")
    resumed = audit(project, "spec.yaml", report="resumed", cache="cache")
    stats = load(resumed)["timings"]["per_spec"]["spec"]["cache"]
    assert stats["hits"] == len(entries) and stats["corrupt"] == 0
    if killed:
        assert stats["misses"] > 0
    # ... and ends where an uninterrupted cold run ends
    cold = audit(project, "spec.yaml", report="cold", cache=None)
    assert stable_text(resumed) == stable_text(cold)
    assert_same_arrays(npz_arrays(resumed), npz_arrays(cold))


def test_damaged_and_truncated_entries_are_recomputed_with_the_same_results(project):
    (project / "spec.yaml").write_text(FRAGILE_SPEC % "tests.audit_models:fragile")
    first = audit(project, "spec.yaml", report="r1", cache="cache")
    entries = sorted((project / "cache").rglob("*.frx"))
    entries[0].write_bytes(entries[0].read_bytes()[:100])  # a torn write
    damaged = bytearray(entries[1].read_bytes())
    damaged[-10] ^= 0xFF  # a flipped bit
    entries[1].write_bytes(bytes(damaged))
    (entries[2].parent / f".{entries[2].name}.x1y2.tmp").write_bytes(b"half an entry")  # a killed writer's temp
    again = audit(project, "spec.yaml", report="r2", cache="cache")
    stats = load(again)["timings"]["per_spec"]["spec"]["cache"]
    assert stats["corrupt"] == 2 and stats["hits"] == len(entries) - 2
    assert stable_text(again) == stable_text(first)
    assert all(Cache(project / "cache").get(p.stem) is not None for p in entries[:2])  # rewritten whole


OOM_SPEC = FRAGILE_SPEC.replace('"%s", batch_size: 64}', '"%s", batch_size: 64, options: %s}')


def test_out_of_memory_above_a_batch_size_backs_off_with_the_same_results(project, monkeypatch):
    monkeypatch.setattr(fault_models, "OOM_RAISED", [0])
    spec = project / "spec.yaml"
    spec.write_text(OOM_SPEC % ("tests.fault_models:fragile", "{}"))
    healthy = audit(project, "spec.yaml", report="healthy", cache=None)
    spec.write_text(OOM_SPEC % ("tests.fault_models:oom_fragile", "{max_batch: 5}"))
    backed_off = audit(project, "spec.yaml", report="oom", cache=None)
    assert fault_models.OOM_RAISED[0] > 0, "the model never ran out of memory: the test tests nothing"
    a, b = load(healthy), load(backed_off)
    assert a["specs"]["spec"]["model"].pop("fingerprint") != b["specs"]["spec"]["model"].pop("fingerprint")
    a.pop("timings"), b.pop("timings")
    assert a == b  # every explanation, attack, table and verdict; the run passes
    assert all(v["passed"] for v in a["specs"]["spec"]["verdicts"])
    assert_same_arrays(npz_arrays(healthy), npz_arrays(backed_off))
    queries = [load(p)["timings"]["per_spec"]["spec"]["queries"] for p in (healthy, backed_off)]
    assert queries[0] == queries[1] > 0  # a batch that ran out of memory is not counted as queries


SPECS = {
    "nan": 'model: {target: "tests.fault_models:nan_model"}',
    "shape": 'model: {target: "tests.fault_models:wrong_shape"}',
    "good": 'model: {target: "tests.audit_models:robust"}',
}
BODY = """
dataset: {path: ../data/%s}
attack: {budget: 5, pool: ranking}
checks:
  accuracy: {min: 0.9}
  sufficiency: {}
  fourier_attack: {max_success_rate: 0.5}
"""


def test_nan_and_wrongly_shaped_models_fail_their_spec_clearly_and_a_healthy_spec_still_passes(
        pytester, monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(REPO))
    pytester.makeini(f"[pytest]\nfreqrex_cache = {tmp_path / 'cache'}\n")
    write_fragile_dataset(pytester.path / "data" / "fragile", per_class=1)
    write_robust_dataset(pytester.path / "data" / "robust", per_class=1)
    specs = pytester.mkdir("model_specs")
    for name, model in SPECS.items():
        (specs / f"{name}.yaml").write_text(model + BODY % ("robust" if name == "good" else "fragile"))
    result = pytester.runpytest("model_specs", "-v", "-p", "no:cacheprovider")
    lines = result.outlines
    for name, problem in (("nan", "nan_model: predict returned NaN or infinite scores"),
                          ("shape", "wrong_shape: predict returned shape (1, 3), expected (1, 2)")):
        items = [line for line in lines if line.startswith(f"model_specs/{name}.yaml::")]
        assert len(items) == 5 and all(" FAILED" in line for line in items), items  # load, accuracy, 2 clips, attack
        # model[load], accuracy and the attack aggregate: the spec-level error names the model and the problem
        spec_level = [line for line in lines
                      if line.startswith(f"{name}: model {problem.split(':')[0]!r} failed on every clip (2 of 2)")]
        assert len(spec_level) == 3 and all(problem in line for line in spec_level), spec_level
        per_clip = [line for line in lines if line.startswith(f"{name}: ") and "analysis failed" in line]
        assert len(per_clip) == 2 and all(problem in line for line in per_clip), per_clip
    good = [line for line in lines if line.startswith("model_specs/good.yaml::")]
    assert len(good) == 5 and all(" PASSED" in line for line in good), good
    assert result.ret == pytest.ExitCode.TESTS_FAILED
