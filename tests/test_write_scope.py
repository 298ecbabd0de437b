"""Write scope: an audit, from the CLI or from pytest, writes only into its report and cache folders.

Run in a child process with the working directory a fresh project folder and HOME, XDG_CACHE_HOME,
XDG_CONFIG_HOME and TMPDIR pointed at empty folders (and MPLCONFIGDIR unset); afterwards every new or
changed file must be under the report or the cache folder. matplotlib, which draws the report, keeps its
font cache in ``<cache>/matplotlib`` (see ``freqrex_audit/isolation.py``).
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.audit_models import write_fragile_dataset
from tests.audit_runs import FRAGILE_SPEC, cli_command, subprocess_env


def snapshot(root: Path) -> dict[str, tuple]:
    """Every path under ``root``: files with their size and mtime, folders by presence."""
    out = {}
    for path in root.rglob("*"):
        stat = path.lstat()
        out[path.relative_to(root).as_posix()] = ("dir",) if path.is_dir() else (stat.st_size, stat.st_mtime_ns)
    return out


def changes(before: dict, after: dict) -> set[str]:
    return {p for p in after if before.get(p) != after[p]} | {p for p in before if p not in after}


@pytest.fixture
def sandbox(tmp_path):
    """(project folder, environment for the child, folders that must stay untouched)."""
    project = tmp_path / "project"
    write_fragile_dataset(project / "data", per_class=1)
    elsewhere = {name: tmp_path / name for name in ("home", "xdg_cache", "xdg_config", "tmp")}
    for folder in elsewhere.values():
        folder.mkdir()
    env = subprocess_env(HOME=str(elsewhere["home"]), XDG_CACHE_HOME=str(elsewhere["xdg_cache"]),
                         XDG_CONFIG_HOME=str(elsewhere["xdg_config"]), TMPDIR=str(elsewhere["tmp"]))
    for name in ("MPLCONFIGDIR", "PYTEST_ADDOPTS", "PYTEST_XDIST_WORKER"):
        env.pop(name, None)
    return project, env, elsewhere


def _run_and_check(project: Path, env: dict, elsewhere: dict, command: list[str], allowed: tuple[str, ...]) -> None:
    before = {name: snapshot(folder) for name, folder in {"project": project, **elsewhere}.items()}
    done = subprocess.run(command, cwd=project, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1), done.stdout + done.stderr
    changed = changes(before["project"], snapshot(project))
    outside = sorted(p for p in changed if not any(p == a or p.startswith(a + "/") for a in allowed))
    assert outside == [], f"written outside {allowed}: {outside}\n{done.stdout}{done.stderr}"
    assert any(p.endswith("report.html") for p in changed), done.stdout + done.stderr
    for name, folder in elsewhere.items():
        assert snapshot(folder) == before[name], f"{name}: {sorted(changes(before[name], snapshot(folder)))}"


def test_cli_audit_writes_only_into_report_and_cache(sandbox):
    project, env, elsewhere = sandbox
    (project / "spec.yaml").write_text(FRAGILE_SPEC % "tests.audit_models:fragile")
    command = cli_command("audit", "spec.yaml", "--report", "out/reports", "--cache", "out/cache", "--device", "cpu")
    _run_and_check(project, env, elsewhere, command, ("out", "out/reports", "out/cache"))
    assert list((project / "out" / "cache" / "matplotlib").glob("fontlist*.json"))  # matplotlib's cache is ours


def test_pytest_run_writes_only_into_report_and_cache(sandbox):
    project, env, elsewhere = sandbox
    (project / "model_specs").mkdir()
    (project / "model_specs" / "fragile.yaml").write_text(FRAGILE_SPEC.replace("path: data", "path: ../data")
                                                          % "tests.audit_models:fragile")
    (project / "pytest.ini").write_text("[pytest]\n")
    # .pytest_cache is pytest's own, not the plugin's: switched off here
    command = [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", "model_specs"]
    _run_and_check(project, env, elsewhere, command, ("reports", ".freqrex_cache"))
