"""HTML audit reports: one self-contained page per run, plus an index of runs."""

from .html import MAX_AUDIO_BYTES, load_results, render_index, render_report

__all__ = ["render_report", "render_index", "load_results", "MAX_AUDIO_BYTES"]
