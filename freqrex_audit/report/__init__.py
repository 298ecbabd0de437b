"""HTML audit reports: one page per run that leads with the decision, plus an index of runs.

The names below are imported from ``report.html`` on first use (PEP 562), so ``report.tables`` (``freqrex-audit
tables``) loads without matplotlib and the engine."""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING

__all__ = ["render_report", "render_index", "render_run", "load_results", "MAX_AUDIO_BYTES", "MAX_SAMPLE_CARDS"]


def __getattr__(name: str):
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    value = getattr(importlib.import_module(".html", __name__), name)
    globals()[name] = value
    return value


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported here at run time
    from .html import MAX_AUDIO_BYTES, MAX_SAMPLE_CARDS, load_results, render_index, render_report, render_run
