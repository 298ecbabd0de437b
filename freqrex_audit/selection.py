"""Compute what is selected: the stages of :func:`freqrex_audit.audit.run_spec` that a set of items needs,
and the pruning of old run folders (``--freqrex-keep``).

One table says what each check reads: accuracy and the model check need predictions only, the per-clip
subset checks need explanations and their verification, attacks need explanations (the STFT attack also
the Fourier one it localises), composition and transferability need explanations and the cross step.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterable
from pathlib import Path

_EXPLAINED = frozenset({"predict", "explain"})
NEEDS: dict[str, frozenset[str]] = {
    "model": frozenset({"predict"}),  # "failed on every clip" is judged from the predictions
    "accuracy": frozenset({"predict"}),
    "sufficiency": _EXPLAINED | {"verify"},
    "necessity": _EXPLAINED | {"verify"},
    "completeness": _EXPLAINED | {"verify"},
    "fourier_attack": _EXPLAINED | {"fourier"},
    "stft_attack": _EXPLAINED | {"fourier", "stft"},
    "composition": _EXPLAINED | {"cross"},
    "transferability": _EXPLAINED | {"cross"},
}


def stages_for(items: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The stages the (check, key) items need; a regression item ``("regression", "check.metric")`` needs
    what its check needs (all stages when the check is unknown)."""
    from .audit import STAGES

    stages: set[str] = set()
    for check, key in items:
        if check == "regression":
            check = key.split(".", 1)[0]
        stages |= NEEDS.get(check, STAGES)
    return frozenset(stages)


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
