"""HTML audit reports: one page per run that leads with the decision, plus an index of runs.

The names below are imported from ``report.html`` on first use (PEP 562), so ``report.tables`` (``freqrex-audit
tables``) loads without matplotlib and the engine."""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

__all__ = ["render_report", "render_index", "render_run", "load_results", "MAX_AUDIO_BYTES", "MAX_SAMPLE_CARDS"]

__getattr__, __dir__ = lazy_exports(__name__, {name: "html" for name in __all__}, globals())


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported here at run time
    from .html import MAX_AUDIO_BYTES, MAX_SAMPLE_CARDS, load_results, render_index, render_report, render_run
