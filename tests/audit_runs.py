"""Helpers for the fault, determinism and write-scope tests: run ``freqrex-audit audit`` and read its run file."""

from __future__ import annotations

import json
import os
import signal
import sys
from pathlib import Path

import numpy as np

from freqrex_audit.cli.main import main

REPO = Path(__file__).resolve().parents[1]

FRAGILE_SPEC = """
model: {target: "%s", batch_size: 64}
dataset: {path: data}
freqrex: {seed: 0}
attack: {budget: 5, pool: ranking}
checks:
  accuracy: {min: 0.9}
  sufficiency: {max_fraction: 0.5}
  fourier_attack: {max_success_rate: 1.0}
  stft_attack: {max_success_rate: 1.0}
"""


def audit(project: Path, *args: str, report: str = "reports", cache: str | None = "cache", page: bool = False) -> Path:
    """Run the CLI audit in this process with ``project`` as the working directory; the run's results.json
    (and, with ``page``, its report.html: drawing it is most of a tiny audit, and most callers read the JSON only).

    The caller must have ``monkeypatch.chdir(project)``-ed (relative spec paths and ``spec_file`` depend on it).
    """
    assert Path.cwd().resolve() == project.resolve()
    before = set((project / report).glob("*/results.json"))
    cache_args = ["--cache", cache] if cache else ["--no-cache"]
    main(["audit", *args, "--report", report, *cache_args, "--device", "cpu", *(() if page else ("--no-report",))])
    new = set((project / report).glob("*/results.json")) - before
    assert len(new) == 1, f"expected one new run in {report}, found {sorted(new)}"
    return new.pop()


def load(path: Path) -> dict:
    return json.loads(path.read_text())


def stable_text(path: Path) -> str:
    """results.json without its documented volatile section (``timings``), in the writer's own format."""
    doc = load(path)
    doc.pop("timings")
    return json.dumps(doc, sort_keys=True, indent=1)


def npz_arrays(results_json: Path) -> dict[str, np.ndarray]:
    """The run's arrays as the audit handed them to the writer (results.npz unpacked: runs/packing.py)."""
    from freqrex_audit.runs.packing import unpack

    with np.load(results_json.with_suffix(".npz"), allow_pickle=False) as npz:
        return dict(unpack({k: npz[k] for k in npz.files}))


def assert_same_arrays(a: dict[str, np.ndarray], b: dict[str, np.ndarray]) -> None:
    assert sorted(a) == sorted(b)
    for key in a:
        assert a[key].dtype == b[key].dtype and np.array_equal(a[key], b[key]), key


def default_sigint() -> None:
    """``preexec_fn`` for a child a test interrupts with SIGINT (Ctrl-C), so it gets the signal as from a terminal.

    A shell starts background jobs (``cmd &`` without job control) with SIGINT ignored, children inherit that, and
    Python then installs no KeyboardInterrupt handler: a suite run in the background saw its children ignore the
    test's Ctrl-C and run to the end (three tests failed that way, though the product was right)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def subprocess_env(**extra: str) -> dict[str, str]:
    """Environment for a ``python -m freqrex_audit.cli.main`` child that imports this worktree first."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join([str(REPO), env.get("PYTHONPATH", "")]).rstrip(os.pathsep)
    env["PYTHONDONTWRITEBYTECODE"] = "1"
    env["HF_HUB_OFFLINE"] = "1"
    env.update(extra)
    return env


def cli_command(*args: str) -> list[str]:
    return [sys.executable, "-m", "freqrex_audit.cli.main", *args]


def spec_project(pytester, monkeypatch, cache: Path, specs: dict[str, str]):
    """A pytester project: this repo importable, one shared result cache, the fragile and robust
    datasets under data/, and ``specs`` (file name → YAML) under model_specs/."""
    from tests.audit_models import write_fragile_dataset, write_robust_dataset

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(REPO))
    pytester.makeini(f"[pytest]\nfreqrex_cache = {cache}\n")
    (pytester.path / "pyproject.toml").write_text("")  # the project root: specs may reach ../data
    write_fragile_dataset(pytester.path / "data" / "fragile")
    write_robust_dataset(pytester.path / "data" / "robust")
    folder = pytester.mkdir("model_specs")
    for name, text in specs.items():
        (folder / name).write_text(text)
    return pytester
