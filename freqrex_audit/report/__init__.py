"""HTML audit reports: one page per run that leads with the decision, plus an index of runs."""

from .html import MAX_AUDIO_BYTES, MAX_SAMPLE_CARDS, load_results, render_index, render_report, render_run

__all__ = ["render_report", "render_index", "render_run", "load_results", "MAX_AUDIO_BYTES", "MAX_SAMPLE_CARDS"]
