"""pytest-xdist: the controller shows each worker's progress (clean lines, nobody's outcome), every worker
takes its device from --freqrex-devices round-robin (bad devices are a usage error), and workers share a
spec's peers instead of computing them twice."""

from __future__ import annotations

import os
import re
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace

import pytest

from freqrex_audit.runtime.devices import DeviceError, default_devices, device_for, parse_devices, worker_index
from freqrex_audit.plugin.xdist import SpecClaims, compute_peers_first
from freqrex_audit.runtime.progress import Board, format_line
from tests.test_plugin_e2e import project, shared_cache  # noqa: F401  (fixtures)

THREADS_CONFTEST = """
import os

def pytest_sessionfinish(session):
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if worker:
        import torch
        with open(session.config.rootpath / "threads", "a") as out:
            out.write(f"{worker}={torch.get_num_threads()}\\n")
"""
LINE = re.compile(r"^\[(gw\d) (\S+)\] (\w+): (\d+)/(\d+) clips, [\d,]+ queries, \d+ s(, ETA \d+ s|, done)?$")


def segments(text: str) -> list[str]:
    """What a terminal keeps of each write: the text between carriage returns and newlines, stripped."""
    return [part.strip() for line in text.split("\n") for part in line.split("\r") if part.strip()]


def test_xdist_controller_shows_each_workers_progress_on_clean_lines_with_its_device(project, monkeypatch):
    monkeypatch.setenv("COLUMNS", "250")  # room for both running specs on the live line (else it is cut: …)
    project.makeconftest(THREADS_CONFTEST)  # each worker writes the torch thread count it ran with
    monkeypatch.delenv("PYTEST_XDIST_WORKER", raising=False)  # this suite's own worker id, when run under -n
    result = project.runpytest("model_specs", "-n", "2", "--freqrex-progress", "always", "--freqrex-no-report",
                               "--freqrex-devices", "cpu,cpu", "--junitxml=junit.xml")
    text = result.stdout.str()
    shown = [s for s in segments(text) if "clips," in s and s.startswith("[gw")]  # not a gate line's "k of n clips,"
    assert shown, text
    live = [part for s in shown for part in s.split("  |  ")]  # the live line joins the running specs
    for part in live:
        assert LINE.match(part), f"not a clean progress line: {part!r}"
    done = [m for m in map(LINE.match, live) if m.group(6) == ", done"]
    assert sorted(m.group(3) for m in done) == ["fragile", "robust"], shown  # each spec computed once, one line
    for match in done:
        assert match.group(4) == match.group(5) != "0" and match.group(2) == "cpu"
    assert {m.group(1) for m in done} == {"gw0", "gw1"}  # two specs, two workers (one group per spec)
    assert any(m.group(4) == "0" for m in map(LINE.match, live))  # it was live: shown before the first clip
    # progress reports are nobody's outcome: same counts as a serial run, one JUnit case per item
    serial = project.runpytest("model_specs", "--freqrex-no-report", "-p", "no:xdist")
    assert result.parseoutcomes() == serial.parseoutcomes()
    cases = ET.parse(project.path / "junit.xml").getroot().iter("testcase")
    assert len(list(cases)) == sum(serial.parseoutcomes().values())
    share = max(1, (os.cpu_count() or 1) // 2)  # each worker's torch got its share of the cores
    assert sorted((project.path / "threads").read_text().split()) == [f"gw0={share}", f"gw1={share}"]


def test_xdist_progress_draws_no_live_line_when_the_controller_is_not_a_tty(project):
    result = project.runpytest("model_specs/robust.yaml", "-n", "2", "--freqrex-no-report")  # auto, no TTY
    assert "\r" not in result.stdout.str()  # plain lines only (every 10 s of a spec's work), never rewritten ones
    quiet = project.runpytest("model_specs/robust.yaml", "-n", "2", "--freqrex-no-report", "-q")
    assert "clips," not in quiet.stdout.str()


def test_a_device_this_machine_lacks_is_a_usage_error_naming_it(project):
    result = project.runpytest("model_specs", "--freqrex-devices", "cpu,cuda:99", "-p", "no:xdist")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    assert "--freqrex-devices: 'cuda:99' does not exist on this machine" in result.stderr.str()
    typo = project.runpytest("model_specs", "--freqrex-devices", "gpu0", "-p", "no:xdist")
    assert typo.ret == pytest.ExitCode.USAGE_ERROR and "'gpu0' is not a device" in typo.stderr.str()


@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs a CUDA GPU")
def test_workers_take_their_own_cuda_device(project):
    import torch

    devices = ",".join(f"cuda:{i}" for i in range(torch.cuda.device_count()))
    result = project.runpytest("model_specs", "-n", "2", "--freqrex-progress", "always", "--freqrex-no-report",
                               "--freqrex-devices", devices)
    seen = {(m.group(1), m.group(2)) for m in map(LINE.match, segments(result.stdout.str())) if m}
    expected = parse_devices(devices)
    assert seen and all(dev == device_for(expected, worker_index(gw)) for gw, dev in seen)


# --- devices -----------------------------------------------------------------------------------------

def test_parse_devices_checks_each_against_the_machine():
    assert parse_devices("cpu") == ["cpu"]
    assert parse_devices(" cuda:0, cuda:1 ,cpu", cuda_count=2) == ["cuda:0", "cuda:1", "cpu"]
    assert parse_devices("cpu,cpu", cuda_count=lambda: pytest.fail("CUDA asked for a CPU list")) == ["cpu", "cpu"]
    with pytest.raises(DeviceError, match=r"'cuda:7' does not exist on this machine: 2 CUDA devices visible "
                                          r"\(cuda:0..cuda:1\)"):
        parse_devices("cuda:0,cuda:7", cuda_count=2)
    with pytest.raises(DeviceError, match="'cuda' does not exist on this machine: 0 CUDA devices visible"):
        parse_devices("cuda", cuda_count=0)
    for bad in ("gpu", "cuda:", "cuda:-1", "cpu:x", ""):
        with pytest.raises(DeviceError):
            parse_devices(bad, cuda_count=8)


def test_workers_take_devices_round_robin_by_their_id():
    devices = ["cuda:0", "cuda:1", "cuda:2"]
    assert [device_for(devices, worker_index(f"gw{i}")) for i in range(5)] == \
        ["cuda:0", "cuda:1", "cuda:2", "cuda:0", "cuda:1"]
    assert worker_index("gw12") == 12 and worker_index(None) == 0 and worker_index("") == 0
    with pytest.raises(DeviceError):
        device_for([], 0)


def test_default_devices_are_every_visible_gpu_else_the_process_device():
    assert default_devices("auto", cuda_count=2) == ["cuda:0", "cuda:1"]
    assert default_devices("cuda", cuda_count=1) == ["cuda:0"]
    assert default_devices("auto", cuda_count=0) == ["auto"]
    assert default_devices("cpu", cuda_count=4) == ["cpu"]  # an explicit device stays what it says
    assert default_devices("cuda:1", cuda_count=4) == ["cuda:1"]


# --- the controller's board --------------------------------------------------------------------------

def test_board_keeps_one_live_line_and_one_final_line_per_spec():
    out: list[str] = []
    current = {"width": 3}  # pytest left "..." on the line
    board = Board(out.append, lambda: current["width"], lambda: 200)
    board.update("a", 0, 2, 0, 0.0, "gw0 cpu")
    assert out[0] == "\n"  # the live line starts on a fresh line, never after pytest's dots
    board.update("b", 1, 4, 10, 2.0, "gw1 cpu")
    board.commit()  # pytest writes next
    board.update("a", 2, 2, 50, 4.0, "gw0 cpu")
    text = "".join(out)
    assert segments(text)[-2:] == [format_line("a", 2, 2, 50, 4.0).join(["[gw0 cpu] ", ""]),
                                   "[gw1 cpu] " + format_line("b", 1, 4, 10, 2.0)]
    assert "[gw0 cpu] a: 0/2 clips, 0 queries, 0 s  |  [gw1 cpu] b: 1/4 clips" in text
    board.commit()
    assert text.count("\n") + 1 == "".join(out).count("\n")


def test_board_never_wraps_the_live_line():
    out: list[str] = []
    board = Board(out.append, lambda: 0, lambda: 40)
    board.update("a-very-long-spec-name-indeed", 1, 8, 123456, 10.0, "gw0 cuda:0")
    assert all(len(s) <= 39 for s in segments("".join(out)))


# --- shared peers ------------------------------------------------------------------------------------

def test_claims_exclude_each_other(tmp_path: Path):
    claims = SpecClaims(tmp_path)
    with claims.hold("a") as first:
        with claims.hold("a", wait=False) as second, claims.hold("b", wait=False) as other:
            assert first and not second and other


def test_peers_are_computed_free_ones_first_and_a_busy_one_after_its_worker(tmp_path: Path, monkeypatch):
    """Another worker holds peer B: this worker computes A and C meanwhile, then B once it is released."""
    import freqrex_audit.specs.loader as specs

    order: list[str] = []
    monkeypatch.setattr(specs, "find_peer", lambda spec, name: name)
    monkeypatch.setattr(specs, "load_spec", lambda name: SimpleNamespace(name=name))
    claims = SpecClaims(tmp_path)
    session = SimpleNamespace(run=lambda peer, **kw: order.append(peer.name))
    held = threading.Event()

    def other_worker() -> None:
        with claims.hold("B"):
            held.set()
            time.sleep(0.5)
            order.append("B by the other worker")

    thread = threading.Thread(target=other_worker)
    thread.start()
    held.wait(5)
    compute_peers_first(SimpleNamespace(peers=["A", "B", "C"]), session, claims)
    thread.join()
    assert order == ["A", "C", "B by the other worker", "B"]


def test_the_scheduler_keeps_a_spec_and_each_listed_test_file_on_one_worker(pytester):
    """xdist_group marks no longer group under pytest 9.2: a spec file's items, and the tests of a file listed in
    ``freqrex_xdist_groups``, are one work unit each; any other test is its own."""
    from freqrex_audit.plugin.xdist import spec_scheduler

    pytester.makeini("[pytest]\nfreqrex_xdist_groups =\n    tests/test_shared_*.py\n")
    config = pytester.parseconfig("-n", "2")
    config.option.tx = ["popen"] * 2  # what xdist's pytest_cmdline_main makes of -n 2
    scope = spec_scheduler(config, None)._split_scope
    assert scope("tests/test_shared_audit.py::test_a") == scope("tests/test_shared_audit.py::test_b[x-1]")
    assert scope("tests/test_shared_audit.py::test_a") != scope("tests/test_shared_other.py::test_a")
    assert scope("tests/test_alone.py::test_a") != scope("tests/test_alone.py::test_b")
    assert scope("model_specs/m.yaml::accuracy[aggregate]") == scope("model_specs/m.yaml::model[load]")
