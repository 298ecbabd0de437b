"""Run folders under the report folder: a new run's id, and pruning the oldest (``--freqrex-keep``).

Light on purpose (no numpy): the pytest plugin names its run folder when pytest starts.
"""

from __future__ import annotations

import os
import shutil
import time
from pathlib import Path

__all__ = ["new_run_id", "prune_runs"]


def new_run_id(root: str | Path | None = None) -> str:
    """``YYYYmmdd-HHMMSS-PID``; with ``root``, suffixed ``-2``, ``-3``… while that folder exists (two runs
    in one process within a second must not overwrite each other)."""
    base = f"{time.strftime('%Y%m%d-%H%M%S')}-{os.getpid()}"
    run_id, n = base, 1
    while root is not None and (Path(root) / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def prune_runs(report_root: Path, keep: int, current: Path | None = None) -> list[Path]:
    """Delete the oldest run folders (those holding results.json or parts/) under ``report_root`` so that at
    most ``keep`` remain; ``current`` is never deleted. Returns what was deleted. Run ids sort by time."""
    if keep <= 0 or not report_root.is_dir():  # 0: keep every run
        return []
    runs = sorted(p for p in report_root.iterdir()
                  if p.is_dir() and ((p / "results.json").exists() or (p / "parts").is_dir()))
    current = current.resolve() if current is not None else None
    old = [p for p in runs if p.resolve() != current]
    room = keep - (1 if current is not None and current.is_dir() else 0)
    doomed = old[: max(0, len(old) - max(room, 0))]
    for path in doomed:
        shutil.rmtree(path, ignore_errors=True)
    return doomed
