"""Executors (#21): clips fanned out to a process pool or Ray give the serial run's results.json."""

from __future__ import annotations

import importlib.util

import pytest

from freqrex_audit.runtime import devices
from freqrex_audit.runtime.devices import DeviceError, device_for
from freqrex_audit.audit.executors import ProcessExecutor, configure, current_executor, make_executor
from tests.audit_models import write_fragile_dataset
from tests.audit_runs import FRAGILE_SPEC, assert_same_arrays, audit, npz_arrays, stable_text


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_fragile_dataset(tmp_path / "data", per_class=1)  # 2 clips: enough to fan out
    (tmp_path / "spec.yaml").write_text(FRAGILE_SPEC % "tests.audit_models:fragile")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("FREQREX_EXECUTOR", raising=False)
    yield tmp_path
    configure("environment")


def _same_as_serial(project, *executor_args: str) -> None:
    serial = audit(project, "spec.yaml", cache=None)
    fanned = audit(project, "spec.yaml", *executor_args, cache=None)
    assert stable_text(fanned) == stable_text(serial)  # records, query counts, verdicts: all identical
    assert_same_arrays(npz_arrays(fanned), npz_arrays(serial))


def test_process_pool_gives_the_serial_results(project):
    _same_as_serial(project, "--executor", "process", "--workers", "2")


def test_workers_compute_the_stages_the_serial_run_computes(project):
    """The CLI computes only what a spec's checks need (here no attack): the workers are told, so results.json
    (queries per phase, records) is the serial run's, not one with attacks nobody asked for."""
    (project / "spec.yaml").write_text(FRAGILE_SPEC.split("  fourier_attack:")[0] % "tests.audit_models:fragile")
    _same_as_serial(project, "--executor", "process", "--workers", "2")


@pytest.mark.skipif(importlib.util.find_spec("ray") is None, reason="Ray is not installed (pip install '.[ray]')")
def test_local_ray_with_two_cpus_gives_the_serial_results(project, monkeypatch, capsys):
    """No --address is ``none``: a private local instance with --workers CPUs, even when RAY_ADDRESS names a
    cluster (here a port nothing listens on: joining it would fail)."""
    import os
    from pathlib import Path

    import ray

    # Ray's workers are fresh interpreters: they find the test models (tests.audit_models) on PYTHONPATH
    repo = str(Path(__file__).resolve().parents[1])
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p))
    monkeypatch.setenv("RAY_ADDRESS", "127.0.0.1:1")
    try:
        _same_as_serial(project, "--executor", "ray", "--workers", "2")
    finally:
        ray.shutdown()
    assert "freqrex-audit: ray: started a local Ray instance with 2 CPUs" in capsys.readouterr().err


def test_executor_from_environment_and_names(monkeypatch):
    monkeypatch.setenv("FREQREX_EXECUTOR", "process")
    monkeypatch.setenv("FREQREX_DEVICES", "cuda:0,cuda:1")
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 2)  # checked against the machine: pretend two GPUs
    configure("environment")
    try:
        executor = current_executor()
        assert isinstance(executor, ProcessExecutor) and executor.workers == 2
        assert executor.devices == ["cuda:0", "cuda:1"]
    finally:
        configure("environment")
    assert make_executor("serial") is None
    with pytest.raises(ValueError, match="executor must be one of serial, process, ray"):
        make_executor("dask")


def test_one_device_per_task_round_robin():
    assert [device_for(["cuda:0", "cuda:1"], i) for i in range(4)] == ["cuda:0", "cuda:1"] * 2


def test_a_device_the_machine_lacks_is_refused_by_name(monkeypatch, capsys):
    monkeypatch.setattr(devices, "cuda_device_count", lambda: 1)
    monkeypatch.setenv("FREQREX_EXECUTOR", "process")
    monkeypatch.setenv("FREQREX_DEVICES", "cuda:0,cuda:3")
    configure("environment")
    try:
        with pytest.raises(DeviceError, match=r"FREQREX_DEVICES: 'cuda:3' does not exist on this machine: 1 CUDA device visible"):
            current_executor()
    finally:
        configure("environment")
    from freqrex_audit.cli.main import main

    with pytest.raises(SystemExit) as exit_:
        main(["audit", "--executor", "process", "--devices", "cpu,cuda:7"])
    assert exit_.value.code == 2
    assert "argument --devices: 'cuda:7' does not exist on this machine" in capsys.readouterr().err
