"""Rebuild the transferability paper's §5.1–5.2 from a run folder alone (results.json + its waveform sidecar).

No model: the clips' sufficient signals and the class composites are the sidecar's float32 WAVs, read from
their files or rebuilt from results.npz (:class:`~freqrex_audit.runs.waveforms.RunSignals`; each checked
against the sha256 results.json recorded, so a rebuild that differs is refused, never analysed), and the same functions
the audit used (:func:`~freqrex_audit.engine.composition.class_spectra`,
:func:`~freqrex_audit.engine.composition.entropy_tests`) give each class's composite spectral entropy and
Welch PSD, every clip's spectral entropy and the Mann–Whitney U tests between classes.
``freqrex-audit spectra RUN_FOLDER`` prints them and says whether they equal the recorded ones.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

from ..engine.composition import class_spectra, entropy_tests
from .waveforms import RunSignals, SidecarError

__all__ = ["rebuild_spectra", "recorded_spectra", "compare_spectra", "run_folder"]

FIELDS = ("composite_entropy", "psd_hz", "psd_power", "signal_entropies")


def run_folder(path: str | Path) -> Path:
    """The run folder of ``path`` (the folder itself, or its results.json); a clear error when it is neither."""
    path = Path(path)
    folder = path.parent if path.name == "results.json" else path
    if not (folder / "results.json").is_file():
        raise FileNotFoundError(f"{path}: no results.json there (give a run folder, e.g. reports/<run>)")
    return folder


def _spec_sections(folder: Path) -> dict[str, dict]:
    return json.loads((folder / "results.json").read_text()).get("specs") or {}


def rebuild_spectra(path: str | Path, kind: str = "sufficient", nperseg: int = 256) -> dict[str, dict]:
    """Per spec: ``{"classes": {class: class_spectra(...)}, "tests": entropy_tests(...)}`` from the sidecar.

    Classes are the ones composition ran on (else every analysed clip's class); a clip counts for the
    class FreqReX explained it as, in dataset order, exactly as the audit grouped them.
    A changed file, or one that cannot be rebuilt exactly, is a :class:`~freqrex_audit.runs.waveforms.SidecarError`
    naming it.
    """
    folder = run_folder(path)
    sidecar = RunSignals(folder)
    out: dict[str, dict] = {}
    for name, section in sorted(_spec_sections(folder).items()):
        index = section.get("waveforms")
        if index is None:
            raise SidecarError(f"{folder / 'results.json'}: spec {name!r} has no waveforms index "
                               f"(written by an older freqrex_audit); re-run the audit to get the sidecar")
        clips = sorted((index.get("clips") or {}).values(), key=lambda c: c["index"])
        signals: dict[str, list] = {}
        for clip in clips:
            entry = (clip.get("signals") or {}).get(kind)
            if entry is not None:
                signals.setdefault(clip["label"], []).append(sidecar.load(entry))
        composites = index.get("classes") or {}
        names = sorted(composites) if composites else sorted({c["label"] for c in clips})
        classes = {}
        for label in names:
            entry = composites.get(label)
            composite = sidecar.load(entry) if entry and entry.get("path") else None
            rate = (entry or {}).get("sample_rate") or next((c["sample_rate"] for c in clips), 1)
            classes[label] = class_spectra(composite, rate, signals.get(label, []), nperseg)
        out[name] = {"classes": classes, "tests": entropy_tests(classes)}
    return out


def recorded_spectra(path: str | Path) -> dict[str, dict]:
    """What the audit recorded, in :func:`rebuild_spectra`'s shape (specs without composition left out)."""
    out = {}
    for name, section in sorted(_spec_sections(run_folder(path)).items()):
        composition = section.get("composition")
        if composition:
            out[name] = {"classes": {c: {k: v.get(k) for k in FIELDS} for c, v in sorted(composition.items())},
                         "tests": (section.get("tables") or {}).get("composite_entropy_tests") or {}}
    return out


def _differences(a: Any, b: Any, where: str, tolerance: float) -> list[str]:
    if isinstance(a, dict) and isinstance(b, dict):
        keys = sorted(set(a) | set(b))
        return [d for k in keys for d in _differences(a.get(k), b.get(k), f"{where}.{k}", tolerance)]
    if isinstance(a, list) and isinstance(b, list):
        if len(a) != len(b):
            return [f"{where}: {len(a)} values rebuilt, {len(b)} recorded"]
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in _differences(x, y, f"{where}[{i}]", tolerance)]
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        if math.isclose(a, b, rel_tol=tolerance, abs_tol=tolerance):
            return []
    elif a == b:
        return []
    return [f"{where}: rebuilt {a!r}, recorded {b!r}"]


def compare_spectra(path: str | Path, tolerance: float = 1e-12) -> list[str]:
    """Where the rebuild from the sidecar differs from the recorded analysis (empty: identical within
    ``tolerance``); specs without a recorded composition are compared on nothing."""
    recorded = recorded_spectra(path)
    rebuilt = rebuild_spectra(path)
    return [d for name in recorded for d in _differences(rebuilt.get(name), recorded[name], name, tolerance)]
