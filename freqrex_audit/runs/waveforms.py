"""The run folder's waveform sidecar: the exact signals the audit measured, as files a user can replay.

results.json indexes, under ``specs.<spec>.waveforms``, for every analysed clip its sufficient, minimal,
necessary and complete signals (``waveforms/<spec>/NNN-<clip>-<kind>.wav``), the kept signal of every other
explainer the spec ran (``NNN-<clip>-<method>-kept.wav``: L-MAC, latent) and, when composition ran, each
class's composite (``class-<label>-composite.wav``), with the relative path, the sha256 of the file's bytes,
the sample rate, the set size and the recorded confidence. The files are WAV with IEEE float32 samples, mono:
the very float32 arrays the model was asked about (``Explanation.signal``; the composite of
``engine.composition.compose``), with no quantisation — a 16-bit file would change the numbers (the
engine's fragility check shows some subsets lose their label in that round trip).

Since results schema 4 the files are **written on demand**, not by the audit (issue #33: they made a run
folder 5.6× the audio it audited). What cannot be recomputed stays in results.npz — each clip once, the
subsets' bins, the attacks' mutations and adversarial clips, the composites and other explainers' kept
signals — and :class:`RunSignals` gives a file's bytes from the file when it is there (checked against its
sha256: a changed file is refused by name), else rebuilt from results.npz: a subset is ``irfft`` of the clip's
spectrum masked by its bins, synthesised as the audit's writer did. A rebuild whose sha256
differs from the recorded one (another CPU, torch or thread count) is never passed off as the audited signal:
it is refused, and the message says "rebuilt on this machine; differs from the audited signal". The report
writes the files its players link (a few clips and the composites); ``freqrex-audit waveforms RUN`` writes
them all.

Everything here is a pure function of results.json + results.npz, so a cached run records the same sha256
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

__all__ = ["FOLDER", "FORMAT", "KINDS", "ON_DEMAND", "SidecarError", "RunSignals", "wav_bytes", "read_wav",
           "write_sidecar", "load_signal", "file_problem", "sha256_of"]

FOLDER = "waveforms"
MAX_FILE_BYTES = 1 << 30
"""No sidecar signal is larger (60 s at 48 kHz is 11.5 MB); a bigger file named by results.json is not read."""
FORMAT = "WAV (RIFF, IEEE float32, mono): the exact samples the model was asked about, not quantised"
ON_DEMAND = "on demand: rebuilt from results.npz and checked against sha256 (runs/waveforms.py)"
"""``waveforms.files`` of a schema-4 run: the audit wrote no file; absent files are rebuilt when asked for."""
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


def read_wav(path: str | Path | io.BytesIO) -> tuple[np.ndarray, int]:
    """A sidecar WAV's float32 samples and sample rate (any other layout is a :class:`SidecarError`)."""
    try:
        rate, samples = scipy.io.wavfile.read(path if isinstance(path, io.BytesIO) else str(path))
    except (OSError, ValueError) as exc:
        raise SidecarError(f"{path}: not a readable WAV file ({exc})") from None
    if samples.dtype != np.float32 or samples.ndim != 1:
        raise SidecarError(f"{path}: expected mono float32 samples, found {samples.dtype} with shape {samples.shape}")
    return (samples if samples.flags.writeable else samples.copy()), int(rate)


def sha256_of(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _sample_files(index: int, sample: dict, arrays: dict, folder: str) -> Iterator[tuple[str, dict, dict, bytes]]:
    """(kind, the clip's facts, the file's index entry, its bytes) for one analysed clip's found subsets and
    other explainers' kept signals. ``confidence`` is the recorded score of the clip's target class on exactly
    that signal. The one synthesis of these files: the audit's index and every later rebuild come from here."""
    from ..engine.explanation import Explanation

    exp = Explanation.from_dict(sample["explanation"], arrays)
    stem = _safe(re.sub(r"\.[A-Za-z0-9]{1,5}$", "", str(sample["id"])), "clip")  # loud/000.wav -> loud_000
    facts = {"index": index, "label": exp.target_label, "sample_rate": exp.sample_rate,
             "n_samples": int(len(exp.waveform)), "total_bins": int(exp.n_bins)}
    for kind in KINDS:
        bins = exp.bins(kind)
        if bins is None:
            continue
        data = wav_bytes(exp.signal(kind), exp.sample_rate)
        entry = {"path": f"{folder}/{index:03d}-{stem}-{kind}.wav", "sha256": sha256_of(data),
                 "sample_rate": exp.sample_rate, "bins": int(len(bins)),
                 "confidence": getattr(exp, f"{kind}_confidence", None),
                 "fragile": list((getattr(exp, "fragile", None) or {}).get(kind, ()))}
        yield kind, facts, entry, data
    for method, result in sorted((sample.get("methods") or {}).items()):  # the other explainers' kept parts
        kept = from_jsonable(result.get("kept"), arrays) if result.get("available") else None
        if kept is None:
            continue
        data = wav_bytes(kept, exp.sample_rate)
        probs = from_jsonable(result.get("probs"), arrays)
        entry = {"path": f"{folder}/{index:03d}-{stem}-{_safe(method, 'method')}-kept.wav",
                 "sha256": sha256_of(data), "sample_rate": exp.sample_rate, "bins": None,
                 "confidence": None if probs is None else float(np.asarray(probs)[1][result["target"]]),
                 "fragile": []}
        yield f"{method}-kept", facts, entry, data


def _clip_files(spec: dict, arrays: dict, folder: str) -> Iterator[tuple[str, str, dict, dict, bytes]]:
    """(clip id, kind, the clip's facts, the file's index entry, its bytes) for every analysed clip."""
    for index, sample in enumerate(spec.get("samples") or []):
        if sample.get("explanation"):
            for kind, facts, entry, data in _sample_files(index, sample, arrays, folder):
                yield sample["id"], kind, facts, entry, data


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
    """Index every spec's waveform files in ``doc`` (each spec's ``waveforms`` key: path, sha256, facts) without
    writing them (:class:`RunSignals` writes them on demand); files under ``out_dir/waveforms/`` that the index
    does not name, or that differ from it, are removed. Returns the index."""
    out = Path(out_dir)
    # results computed on ray workers arrive read-only; torch warns on those, so the synthesis gets copies
    arrays = {k: v if getattr(v, "flags", None) is None or v.flags.writeable else v.copy() for k, v in arrays.items()}
    named: dict[Path, str] = {}
    index: dict[str, dict] = {}
    used: set[str] = set()
    for name, spec in sorted((doc.get("specs") or {}).items()):
        folder = _safe(name, "spec")
        while folder in used:  # two spec names that differ only in unsafe characters
            folder += "_"
        used.add(folder)
        folder = f"{FOLDER}/{folder}"
        clips: dict[str, dict] = {}
        for clip_id, kind, facts, entry, _ in _clip_files(spec, arrays, folder):
            clips.setdefault(clip_id, {**facts, "signals": {}})["signals"][kind] = entry
            named[out / entry["path"]] = entry["sha256"]
        classes: dict[str, dict] = {}
        for label, entry, _ in _class_files(spec, arrays, folder):
            classes[label] = entry
            if entry.get("path"):
                named[out / entry["path"]] = entry["sha256"]
        spec["waveforms"] = index[name] = {"format": FORMAT, "folder": folder, "files": ON_DEMAND, "clips": clips,
                                           "classes": classes}
    root = out / FOLDER
    if root.is_dir():
        for stale in root.glob("*/*.wav"):
            if stale.is_symlink() or stale not in named or sha256_of(stale.read_bytes()) != named[stale]:
                stale.unlink()
    return index


def _path_problem(run_dir: Path, entry: dict) -> str | None:
    """Why an index entry names no file inside the sidecar folder (an edited index), or None."""
    if not isinstance(entry, dict) or not entry.get("path"):
        return "no file (nothing was kept)"
    name = str(entry["path"])
    parts = PurePosixPath(name).parts
    if PurePosixPath(name).is_absolute() or "\\" in name or ".." in parts or not parts or parts[0] != FOLDER:
        return f"{name!r} is not a path inside the run folder's {FOLDER}/ (results.json was edited?)"
    return None


def _on_disk(run_dir: Path, name: str) -> bool:
    path = run_dir / name
    return path.is_file() and not path.is_symlink() and path.resolve().is_relative_to((run_dir / FOLDER).resolve())


def file_problem(run_dir: str | Path, entry: dict) -> str | None:
    """Why the file an index entry names cannot be used as the recorded signal, or None when it can."""
    run_dir = Path(run_dir)
    problem = _path_problem(run_dir, entry)
    if problem:
        return problem
    name = str(entry["path"])
    path = run_dir / name
    if not _on_disk(run_dir, name):
        return f"{name} is missing from the run folder"
    if path.stat().st_size > MAX_FILE_BYTES:
        return f"{name} is {path.stat().st_size:,} bytes, more than a sidecar signal can be ({MAX_FILE_BYTES:,})"
    if sha256_of(path.read_bytes()) != entry.get("sha256"):
        return f"{entry['path']} changed since the run (its sha256 differs from results.json)"
    return None


def _decode(data: bytes, entry: dict, where: str) -> np.ndarray:
    samples, rate = read_wav(io.BytesIO(data))
    if entry.get("sample_rate") is not None and rate != entry["sample_rate"]:
        raise SidecarError(f"{where}: {rate} Hz, results.json says {entry['sample_rate']} Hz")
    return samples


class RunSignals:
    """The sidecar signals of one run folder, from their files or rebuilt from results.npz, always checked
    against the sha256 results.json recorded. ``specs`` / ``arrays``: the run's ``specs`` and unpacked arrays
    when the caller has them (else read from ``run_dir`` when first needed)."""

    DIFFERS = "rebuilt on this machine; differs from the audited signal"

    def __init__(self, run_dir: str | Path, specs: dict | None = None, arrays: dict | None = None):
        self.run_dir = Path(run_dir)
        self._specs, self._arrays = specs, arrays
        self._sources: dict[str, tuple] | None = None
        self._rebuilt: dict[tuple, dict[str, bytes]] = {}

    def _run(self) -> tuple[dict, dict]:
        if self._specs is None or self._arrays is None:
            from .read import ResultsError, load_run

            try:
                doc, arrays = load_run(self.run_dir / "results.json")
            except ResultsError as exc:
                raise SidecarError(f"run folder {self.run_dir}: cannot rebuild its signals ({exc})") from None
            self._specs = (doc.get("specs") or {}) if self._specs is None else self._specs
            self._arrays = arrays if self._arrays is None else self._arrays
        return self._specs, self._arrays

    def _source(self, entry: dict) -> tuple | None:
        """(spec, "clip", sample index, kind) or (spec, "class", label) for the file an entry names."""
        if self._sources is None:
            specs, _ = self._run()
            self._sources = {}
            for name, spec in specs.items():
                index = spec.get("waveforms") or {}
                for clip in (index.get("clips") or {}).values():
                    for kind, e in (clip.get("signals") or {}).items():
                        self._sources[str(e.get("path"))] = (name, "clip", clip.get("index"), kind)
                for label, e in (index.get("classes") or {}).items():
                    if e.get("path"):
                        self._sources[str(e["path"])] = (name, "class", label)
        return self._sources.get(str(entry.get("path")))

    def _rebuild(self, entry: dict) -> bytes:
        source = self._source(entry)
        if source is None:
            raise SidecarError(f"{entry.get('path')} is not in the run folder, and results.json indexes no such signal")
        specs, arrays = self._run()
        spec = specs[source[0]]
        index = spec.get("waveforms") or {}
        try:
            if source[1] == "class":
                files = {label: data for label, _, data in _class_files(spec, arrays, index.get("folder", ""))}
                data = files.get(source[2])
            else:
                key = (source[0], source[2])
                if key not in self._rebuilt:
                    sample = (spec.get("samples") or [])[source[2]]
                    self._rebuilt[key] = {kind: data for kind, _, _, data in
                                          _sample_files(source[2], sample, arrays, index.get("folder", ""))}
                data = self._rebuilt[key].get(source[3])
        except (ValueError, KeyError, TypeError, IndexError) as exc:
            raise SidecarError(f"{entry['path']} is not in the run folder and cannot be rebuilt from results.npz "
                               f"({type(exc).__name__}: {str(exc)[:160]})") from None
        if data is None:
            raise SidecarError(f"{entry['path']} is not in the run folder and results.npz has no such signal")
        if sha256_of(data) != entry.get("sha256"):
            raise SidecarError(f"{entry['path']}: {self.DIFFERS} (its sha256 does not match results.json: another "
                               f"CPU, torch or thread count?); not used as the measured signal")
        return data

    def data(self, entry: dict) -> bytes:
        """The file's bytes: read (a changed file is refused) or rebuilt (a differing rebuild is refused)."""
        problem = _path_problem(self.run_dir, entry)
        if problem:
            raise SidecarError(f"run folder {self.run_dir}: {problem}")
        if _on_disk(self.run_dir, str(entry["path"])):
            problem = file_problem(self.run_dir, entry)
            if problem:
                raise SidecarError(f"run folder {self.run_dir}: {problem}")
            return (self.run_dir / entry["path"]).read_bytes()
        return self._rebuild(entry)

    def load(self, entry: dict) -> np.ndarray:
        """The float32 samples of an index entry, checked against its sha256 and sample rate."""
        return _decode(self.data(entry), entry, str(entry.get("path")))

    def write(self, entry: dict) -> Path:
        """The entry's file in the run folder, written from its checked bytes when it is not there yet."""
        data = self.data(entry)
        path = self.run_dir / entry["path"]
        if not _on_disk(self.run_dir, str(entry["path"])):
            atomic_write_bytes(path, data)
        return path

    def problem(self, entry: dict, write: bool = False) -> str | None:
        """Why the entry's signal cannot be handed out as the audited one (None: it can; ``write``: and its
        file is in the run folder now)."""
        try:
            self.write(entry) if write else self.data(entry)
        except SidecarError as exc:
            return str(exc).removeprefix(f"run folder {self.run_dir}: ")
        except OSError as exc:
            return f"{entry.get('path')} could not be written ({exc.strerror or exc})"
        return None

    def entries(self) -> Iterator[dict]:
        """Every file the run's index names."""
        specs, _ = self._run()
        for spec in specs.values():
            index = spec.get("waveforms") or {}
            for clip in (index.get("clips") or {}).values():
                yield from (clip.get("signals") or {}).values()
            yield from (e for e in (index.get("classes") or {}).values() if e.get("path"))


def load_signal(run_dir: str | Path, entry: dict) -> np.ndarray:
    """The float32 samples of an index entry, from its file or rebuilt, checked against its sha256 and rate."""
    return RunSignals(run_dir).load(entry)
