"""The report's view of the waveform sidecar and of the transferability paper's §5.1–5.2.

:class:`SidecarLinks` says, for every signal the report plays, where its exact float32 WAV is (relative to
the page) or why it cannot be linked: the page's players are 24-bit FLAC copies made for listening, the
sidecar files are what the model was asked about. The audit writes those files on demand (results schema 4):
a link the page shows writes its file into the run folder from results.npz first, and only when the rebuilt
bytes match the sha256 results.json recorded; otherwise the link says why ("rebuilt on this machine; differs
from the audited signal"). So a run folder holds the files of the few clips its report shows, not of every
clip. :func:`composites_view` is the composite table (spectral entropy, clips kept), the Welch PSD figure and
the Mann–Whitney tests between classes, read from results.json (``specs.<spec>.composition`` and
``tables.composite_entropy_tests``).
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

from ..runs.waveforms import RunSignals
from . import figures

__all__ = ["SidecarLinks", "composites_view"]


class SidecarLinks:
    """Links from one spec's players to its sidecar files (written on demand), checked against results.json's
    sha256. ``name`` / ``arrays``: the spec's name and the run's unpacked arrays, to rebuild what is not on disk."""

    def __init__(self, spec: dict, run_dir: Path | None, page_dir: Path | None, name: str | None = None,
                 arrays: dict | None = None):
        self.index = spec.get("waveforms") if run_dir is not None else None
        self.run_dir, self.page_dir = run_dir, page_dir or run_dir
        self.note: str | None = None
        self.signals = RunSignals(run_dir, {name or "": spec}, arrays or {}) if run_dir is not None else None
        if run_dir is None:
            return
        if self.index is None:
            if any(s.get("explanation") for s in spec.get("samples") or []):
                self.note = ("This run has no waveform sidecar (its results.json has no waveforms index: written "
                             "by an older freqrex_audit); the players below are the only copies of the signals.")
            return
        notes = []
        differs = sorted(k for k in getattr(arrays, "differs", {}) if name and k.startswith(f"{name}."))
        if differs:
            notes.append(f"{len(differs)} array(s) of this spec were rebuilt on this machine and differ from the "
                         f"audited ones (their sha256 does not match results.npz's record; another CPU, torch or "
                         f"thread count?): {', '.join(differs[:3])}{' …' if len(differs) > 3 else ''}.")
        self.note = " ".join(notes) or None

    def _link(self, entry: dict | None) -> dict | None:
        if entry is None or self.run_dir is None or self.signals is None:
            return None
        problem = self.signals.problem(entry, write=True)
        href = None
        if problem is None:
            href = Path(os.path.relpath(self.run_dir / entry["path"], self.page_dir)).as_posix()
        return {"href": href, "problem": problem, "path": entry.get("path"), "sha256": (entry.get("sha256") or "")[:12]}

    def clip(self, clip_id: str, kind: str) -> dict | None:
        """The link to a clip's ``kind`` signal (None: the run has no sidecar, or the set was not found)."""
        clip = ((self.index or {}).get("clips") or {}).get(clip_id) or {}
        return self._link((clip.get("signals") or {}).get(kind))

    def composite(self, label: str) -> dict | None:
        return self._link(((self.index or {}).get("classes") or {}).get(label))


def _mean(values: list[Any]) -> float | None:
    finite = [float(v) for v in values if v is not None]
    return float(np.mean(finite)) if finite else None


def composites_view(spec: dict, links: SidecarLinks, classes: list[str]) -> dict | None:
    """Rows per class, the PSD figure and the class tests; None when composition did not run."""
    composition = spec.get("composition")
    if not composition:
        return None
    order = [c for c in classes if c in composition] + [c for c in composition if c not in classes]
    rows = []
    for label in order:
        block = composition[label]
        entropies = block.get("signal_entropies") or []
        rows.append({"cls": label, "kept": block.get("kept"), "available": block.get("available"),
                     "composite_entropy": block.get("composite_entropy"), "signal_entropy": _mean(entropies),
                     "n_signals": len(entropies), "label": block.get("composite_label"),
                     "confidence": block.get("composite_confidence"), "file": links.composite(label)})
    tests = [{"pair": pair, **test} for pair, test in sorted(((spec.get("tables") or {})
                                                              .get("composite_entropy_tests") or {}).items())]
    has_psd = any((composition[c] or {}).get("psd_power") for c in order)
    return {"rows": rows, "tests": tests,
            "figure": figures.composite_psd({c: composition[c] for c in order}, order) if has_psd else None}
