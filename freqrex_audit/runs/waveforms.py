"""The run folder's waveform sidecar: the exact signals the audit measured, as files a user can replay.

Beside ``results.json`` the run writes ``waveforms/<spec>/``: for every analysed clip its sufficient,
minimal, necessary and complete signals (``NNN-<clip>-<kind>.wav``), the kept signal of every other explainer
the spec ran (``NNN-<clip>-<method>-kept.wav``: L-MAC, latent) and, when composition ran, each
class's composite (``class-<label>-composite.wav``). The files are WAV with IEEE float32 samples, mono:
the very float32 arrays the model was asked about (``Explanation.signal``; the composite of
``engine.composition.compose``), with no quantisation — a 16-bit file would change the numbers (the
engine's fragility check shows some subsets lose their label in that round trip). results.json indexes
them under ``specs.<spec>.waveforms`` with the relative path, sha256, sample rate, set size and the
recorded confidence, so a user can re-query the model and check. Only analysed clips get files, so the
size is bounded by the dataset's limit: 4 bytes × samples × signals (1 s at 16 kHz: 64 KB a signal).

Everything here is a pure function of results.json + results.npz, so a cached run writes the same bytes
as a cold one and the index stays byte-deterministic.
"""

from __future__ import annotations

import hashlib
import io
import re
from pathlib import Path, PurePosixPath
from typing import Any, Iterator

import numpy as np
import scipy.io.wavfile

from ..engine.codec import atomic_write_bytes, from_jsonable

__all__ = ["FOLDER", "FORMAT", "KINDS", "SidecarError", "wav_bytes", "read_wav", "write_sidecar", "load_signal",
           "file_problem", "sha256_of"]

FOLDER = "waveforms"
MAX_FILE_BYTES = 1 << 30
"""No sidecar signal is larger (60 s at 48 kHz is 11.5 MB); a bigger file named by results.json is not read."""
FORMAT = "WAV (RIFF, IEEE float32, mono): the exact samples the model was asked about, not quantised"
KINDS = ("sufficient", "minimal", "necessary", "complete")
"""The per-clip signals written (each only when the engine found that set)."""


class SidecarError(ValueError):
    """A sidecar file is missing, damaged or not the one results.json names (the message says which)."""


def _safe(text: str, fallback: str) -> str:
    """A file-name component: letters, digits, ``.``, ``_``, ``-`` only; never empty, ``.`` or ``..``."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", str(text)).strip("._")[:80]
    return name or fallback


def wav_bytes(samples: np.ndarray, sample_rate: int) -> bytes:
    """A float32 mono WAV of ``samples`` (scipy's writer: no time stamp or peak chunk, so equal samples
    always give equal bytes and equal sha256)."""
    buffer = io.BytesIO()
    scipy.io.wavfile.write(buffer, int(sample_rate), np.ascontiguousarray(samples, dtype=np.float32).reshape(-1))
    return buffer.getvalue()


def read_wav(path: str | Path) -> tuple[np.ndarray, int]:
    """A sidecar WAV's float32 samples and sample rate (any other layout is a :class:`SidecarError`)."""
    try:
        rate, samples = scipy.io.wavfile.read(str(path))
    except (OSError, ValueError) as exc:
        raise SidecarError(f"{path}: not a readable WAV file ({exc})") from None
    if samples.dtype != np.float32 or samples.ndim != 1:
        raise SidecarError(f"{path}: expected mono float32 samples, found {samples.dtype} with shape {samples.shape}")
    return samples, int(rate)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _clip_files(spec: dict, arrays: dict, folder: str) -> Iterator[tuple[str, str, dict, dict, bytes]]:
    """(clip id, kind, the clip's facts, the file's index entry, its bytes) for every analysed clip's found
    subsets. ``confidence`` is the recorded score of the clip's target class on exactly that signal."""
    from ..engine.explain import Explanation

    for index, sample in enumerate(spec.get("samples") or []):
        if not sample.get("explanation"):
            continue
        exp = Explanation.from_dict(sample["explanation"], arrays)
        for kind in KINDS:
            bins = exp.bins(kind)
            if bins is None:
                continue
            data = wav_bytes(exp.signal(kind), exp.sample_rate)
            stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", str(sample["id"]))  # loud/000.wav -> 000-loud_000-<kind>.wav
            path = f"{folder}/{index:03d}-{_safe(stem, 'clip')}-{kind}.wav"
            entry = {"path": path, "sha256": sha256_of(data), "sample_rate": exp.sample_rate, "bins": int(len(bins)),
                     "confidence": getattr(exp, f"{kind}_confidence", None),
                     "fragile": list((getattr(exp, "fragile", None) or {}).get(kind, ()))}
            yield sample["id"], kind, {"index": index, "label": exp.target_label, "sample_rate": exp.sample_rate,
                                       "n_samples": int(len(exp.waveform)), "total_bins": int(exp.n_bins)}, entry, data
        for method, result in sorted((sample.get("methods") or {}).items()):  # the other explainers' kept parts
            kept = from_jsonable(result.get("kept"), arrays) if result.get("available") else None
            if kept is None:
                continue
            data = wav_bytes(kept, exp.sample_rate)
            stem = re.sub(r"\.[A-Za-z0-9]{1,5}$", "", str(sample["id"]))
            probs = from_jsonable(result.get("probs"), arrays)
            entry = {"path": f"{folder}/{index:03d}-{_safe(stem, 'clip')}-{_safe(method, 'method')}-kept.wav",
                     "sha256": sha256_of(data), "sample_rate": exp.sample_rate, "bins": None,
                     "confidence": None if probs is None else float(np.asarray(probs)[1][result["target"]]),
                     "fragile": []}
            yield sample["id"], f"{method}-kept", {"index": index, "label": exp.target_label,
                                                   "sample_rate": exp.sample_rate,
                                                   "n_samples": int(len(exp.waveform)),
                                                   "total_bins": int(exp.n_bins)}, entry, data


def _class_files(spec: dict, arrays: dict, folder: str) -> Iterator[tuple[str, dict, bytes | None]]:
    """(class, index entry, file bytes or None) for every class that composition ran on."""
    for label, block in sorted((spec.get("composition") or {}).items()):
        composite = from_jsonable(block.get("composite"), arrays)
        entry: dict[str, Any] = {"kind": "sufficient", "kept_ids": list(block.get("kept_ids") or []),
                                 "sample_rate": block.get("sample_rate"), "label": block.get("composite_label"),
                                 "confidence": block.get("composite_confidence"), "path": None, "sha256": None}
        data = None
        if composite is not None and block.get("sample_rate"):
            data = wav_bytes(composite, block["sample_rate"])
            entry.update(path=f"{folder}/class-{_safe(label, 'class')}-composite.wav", sha256=sha256_of(data),
                         n_samples=int(np.size(composite)))
        yield str(label), entry, data


def write_sidecar(doc: dict, arrays: dict[str, np.ndarray], out_dir: str | Path) -> dict[str, dict]:
    """Write every spec's waveform files under ``out_dir/waveforms/`` and index them in ``doc`` (each
    spec's ``waveforms`` key); files there that the index no longer names are removed. Returns the index."""
    out = Path(out_dir)
    # results computed on ray workers arrive read-only; torch warns on those, so the synthesis gets copies
    arrays = {k: v if getattr(v, "flags", None) is None or v.flags.writeable else v.copy() for k, v in arrays.items()}
    written: set[Path] = set()
    index: dict[str, dict] = {}
    used: set[str] = set()
    for name, spec in sorted((doc.get("specs") or {}).items()):
        folder = _safe(name, "spec")
        while folder in used:  # two spec names that differ only in unsafe characters
            folder += "_"
        used.add(folder)
        folder = f"{FOLDER}/{folder}"
        clips: dict[str, dict] = {}
        for clip_id, kind, facts, entry, data in _clip_files(spec, arrays, folder):
            clips.setdefault(clip_id, {**facts, "signals": {}})["signals"][kind] = entry
            written.add(atomic_write_bytes(out / entry["path"], data))
        classes: dict[str, dict] = {}
        for label, entry, data in _class_files(spec, arrays, folder):
            classes[label] = entry
            if data is not None:
                written.add(atomic_write_bytes(out / entry["path"], data))
        spec["waveforms"] = index[name] = {"format": FORMAT, "folder": folder, "clips": clips, "classes": classes}
    root = out / FOLDER
    if root.is_dir():
        for stale in root.glob("*/*.wav"):
            if stale not in written:
                stale.unlink()
    return index


def file_problem(run_dir: str | Path, entry: dict) -> str | None:
    """Why the file an index entry names cannot be used as the recorded signal, or None when it can."""
    if not isinstance(entry, dict) or not entry.get("path"):
        return "no file (nothing was kept)"
    name = str(entry["path"])
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or "\\" in name or ".." in parts or not parts or parts[0] != FOLDER:
        return f"{name!r} is not a path inside the run folder's {FOLDER}/ (results.json was edited?)"
    path = Path(run_dir) / name
    root = (Path(run_dir) / FOLDER).resolve()
    if not path.is_file() or path.is_symlink() or not path.resolve().is_relative_to(root):
        return f"{name} is missing from the run folder"
    if path.stat().st_size > MAX_FILE_BYTES:
        return f"{name} is {path.stat().st_size:,} bytes, more than a sidecar signal can be ({MAX_FILE_BYTES:,})"
    if sha256_of(path.read_bytes()) != entry.get("sha256"):
        return f"{entry['path']} changed since the run (its sha256 differs from results.json)"
    return None


def load_signal(run_dir: str | Path, entry: dict) -> np.ndarray:
    """The float32 samples of an index entry, checked against its sha256 and sample rate."""
    problem = file_problem(run_dir, entry)
    if problem:
        raise SidecarError(f"run folder {run_dir}: {problem}")
    samples, rate = read_wav(Path(run_dir) / entry["path"])
    if entry.get("sample_rate") is not None and rate != entry["sample_rate"]:
        raise SidecarError(f"{entry['path']}: {rate} Hz, results.json says {entry['sample_rate']} Hz")
    return samples
