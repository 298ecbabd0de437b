"""Determinism: the same audit gives the same results.json (apart from ``timings``) and the same results.npz,
whether computed twice from scratch or once from scratch and once from the cache."""

from __future__ import annotations

import json

import numpy as np
import pytest

from tests.audit_models import write_fragile_dataset
from tests.audit_runs import FRAGILE_SPEC, assert_same_arrays, audit, load, npz_arrays, stable_text


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_fragile_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "spec.yaml").write_text(FRAGILE_SPEC % "tests.audit_models:fragile")
    monkeypatch.chdir(tmp_path)
    return tmp_path


def _keys(value, path=""):
    if isinstance(value, dict):
        for k, v in value.items():
            yield f"{path}.{k}"
            yield from _keys(v, f"{path}.{k}")
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _keys(v, f"{path}.{i}")


def test_two_cold_runs_and_a_cached_run_give_the_same_results(project):
    first = audit(project, "spec.yaml", cache="cache1", report="r1")
    second = audit(project, "spec.yaml", cache="cache2", report="r2")  # a fresh cache: computed again
    cached = audit(project, "spec.yaml", cache="cache1", report="r3")  # everything from the first run's cache
    docs = [load(p) for p in (first, second, cached)]
    per_spec = [d["timings"]["per_spec"]["spec"] for d in docs]
    assert per_spec[0]["queries"] > 0 and per_spec[1]["queries"] == per_spec[0]["queries"]
    assert per_spec[2]["queries"] == 0 and per_spec[2]["cache"]["misses"] == 0 and per_spec[2]["cache"]["hits"] > 0
    assert docs[0]["specs"]["spec"]["samples"][0]["explanation"] is not None  # the runs analysed clips
    from freqrex_audit.audit.cache import NUMERIC_RUNTIMES, engine_version, runtime_versions

    assert docs[0]["run"]["versions"]["engine"] == engine_version()  # which engine computed the run, as the cache keys it
    runtimes = {name: docs[0]["run"]["versions"][name] for name in NUMERIC_RUNTIMES}  # and with which runtimes,
    assert runtimes == dict(runtime_versions()) and runtimes["numpy"] == np.__version__  # as the cache keys them
    from freqrex_audit.runtime.devices import cpu_description

    assert docs[0]["run"]["cpu"] == cpu_description()  # and on which CPU: kernels round by instruction set

    text = stable_text(first)
    assert stable_text(second) == text
    assert stable_text(cached) == text
    arrays = npz_arrays(first)
    assert arrays, "the run wrote no array sidecar"
    assert_same_arrays(npz_arrays(second), arrays)
    assert_same_arrays(npz_arrays(cached), arrays)
    assert first.with_suffix(".npz").read_bytes() == second.with_suffix(".npz").read_bytes()

    # wall-clock facts live only in `timings`: none is left in the deterministic part
    volatile = {".seconds", ".seconds_by_phase", ".started"}
    leaks = [k for k in _keys({**docs[0], "timings": None}) if any(k.endswith(v) for v in volatile)]
    assert leaks == []
    assert per_spec[0]["samples"]["loud/000.wav"]["explanation"]["responsibility"] >= 0


def test_seed_decides_the_randomised_parts(project):
    base = audit(project, "spec.yaml", "--seed", "0", cache=None, report="r1")
    same = audit(project, "spec.yaml", "--seed", "0", cache=None, report="r2")
    other = audit(project, "spec.yaml", "--seed", "1", cache=None, report="r3")
    assert stable_text(same) == stable_text(base)
    assert_same_arrays(npz_arrays(same), npz_arrays(base))
    # the partitions are random: a different seed gives a different responsibility map somewhere
    a, b = npz_arrays(base), npz_arrays(other)
    maps = [k for k in a if k.endswith("explanation.responsibility")]
    assert maps and any(not np.array_equal(a[k], b[k]) for k in maps)
    seeds = {s["explanation"]["config"]["seed"] for s in load(other)["specs"]["spec"]["samples"]}
    assert seeds == {1} and json.loads(stable_text(other))["run"]["seed"] == 1


def test_the_cpu_is_named_with_its_widest_simd_level(tmp_path):
    """results.json's ``run.cpu``: two machines' last digits differ by instruction set (README, the demo), so a
    reader comparing runs can tell a CPU from a regression; an unreadable or foreign cpuinfo never fails a run."""
    from freqrex_audit.runtime.devices import cpu_description

    info = tmp_path / "cpuinfo"
    info.write_text("processor\t: 0\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu sse4_2 avx avx2 fma\n\n"
                    "processor\t: 1\nmodel name\t: Some CPU @ 2.0GHz\nflags\t\t: fpu avx512f\n")
    assert cpu_description(info) == "Some CPU @ 2.0GHz (avx2)"  # the first processor's entry
    info.write_text("model name: Plain\nflags: fpu\n")
    assert cpu_description(info) == "Plain"
    info.write_bytes(b"\xff\xfe garbage without fields")
    assert cpu_description(info) and cpu_description(tmp_path / "missing")  # platform's answer, never an error
