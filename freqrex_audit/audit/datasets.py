"""Labelled clips for an audit: a folder of class sub-folders, or a CSV manifest.

* **folder**: ``DATA/<label>/<clip>`` — every audio file (by suffix, see ``AUDIO_SUFFIXES``) in each
  class folder; other files and files at the top level are not clips and are ignored.
* **csv**: a manifest with a header containing ``path`` and ``label`` (other columns ignored);
  paths resolve against the manifest's folder.

Order is deterministic (classes sorted, clips sorted by path within a class). ``limit`` takes clips
round-robin across classes (1st of each class, then 2nd of each, …) so a small limit stays
balanced. A clip longer than ``clip_seconds`` keeps its *first* ``clip_seconds`` (without
``clip_seconds``: its first ``MAX_CLIP_SECONDS``, so an hour-long file cannot exhaust memory). A clip that cannot
be used is never dropped silently: :func:`load_clip` raises :class:`AudioError` and the audit
records the clip as ``skipped`` with that reason. So is a clip whose path (a manifest entry, a
symlink) leads outside the spec's allowed roots: it is listed with its ``problem`` and never read.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..audio.io import AudioClip, link_problem, read_audio
from ..runtime.paths import outside_roots, shown_name, user_path
from ..specs.loader import DatasetSpec

__all__ = ["Sample", "list_samples", "select", "load_clip", "read_clip", "AUDIO_SUFFIXES", "MAX_CLIP_SECONDS",
           "DatasetError", "near_labels", "where_listed"]

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg", ".mp3", ".aiff", ".aif", ".au", ".opus")
MAX_CLIP_SECONDS = 60.0
"""Longest stretch of a clip analysed when the spec sets no ``clip_seconds`` (a batch of 64 such
clips at 16 kHz is ~250 MB of waveforms; FreqReX on hour-long files would not fit in memory)."""


class DatasetError(ValueError):
    """The dataset as a whole cannot be read (e.g. a manifest without a ``path`` column)."""


@dataclass(frozen=True)
class Sample:
    """One labelled clip: ``id`` is its path relative to the dataset (posix), stable across machines."""

    id: str
    path: Path
    label: str
    problem: str | None = None  # why the clip may not be read (set by list_samples), else None
    window: int | None = None  # dataset.windows: all — which input window of the recording this sample is
    line: int | None = None  # the manifest line that lists it (None: a folder dataset)
    missing: bool = False  # a manifest row naming a file that does not exist (dataset.missing_files decides)


def _folder(root: Path) -> list[Sample]:
    """Every audio file under each class folder; a dangling or looping link, or a name that is not UTF-8,
    is listed with its ``problem`` (and later skipped with that reason) instead of vanishing."""
    samples = []
    for class_dir in sorted(p for p in root.iterdir() if p.is_dir() and not p.name.startswith(".")):
        for clip in sorted(class_dir.rglob("*")):
            if clip.suffix.lower() not in AUDIO_SUFFIXES or clip.is_dir():
                continue
            problem = _file_problem(clip)
            if problem is None and not clip.is_file():
                continue  # a FIFO or device named like audio: not a clip
            samples.append(Sample(shown_name(clip.relative_to(root).as_posix()), clip, shown_name(class_dir.name),
                                  problem))
    return samples


def _file_problem(clip: Path) -> str | None:
    """Why a listed file cannot be read at all (a broken link, a link loop, an undecodable name), else None."""
    problem = link_problem(clip)
    if problem:
        return problem
    text = str(clip)
    if any("\udc80" <= c <= "\udcff" for c in text):
        return "its file name is not valid UTF-8 (shown with \\x escapes); rename the file"
    return None


MAX_FIELD_CHARS = 4096
"""A manifest cell longer than this is not a path or a label; the manifest is refused at that line."""


def _manifest(path: Path) -> list[Sample]:
    """Rows of a CSV manifest (a UTF-8 BOM is accepted); a bad manifest is one DatasetError naming file and line."""
    shown = shown_name(path)
    try:
        with path.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            columns = [c.strip() for c in (reader.fieldnames or [])]
            repeated = sorted({c for c in columns if columns.count(c) > 1 and c in ("path", "label")})
            if repeated:
                raise DatasetError(f"{shown}: the header names the column(s) {', '.join(map(repr, repeated))} more "
                                   f"than once; which one holds the clip would be a guess")
            if "path" not in columns or "label" not in columns:
                raise DatasetError(f"{shown}: a manifest needs a header with 'path' and 'label' columns, "
                                   f"got {[c[:40] for c in columns[:10]]}")
            rows = []
            for row in reader:
                cells = {(k or "").strip(): (v or "").strip() if isinstance(v, str) else "" for k, v in row.items()}
                if any(len(v) > MAX_FIELD_CHARS for v in cells.values()):
                    raise DatasetError(f"{shown}: line {reader.line_num}: a field is longer than "
                                       f"{MAX_FIELD_CHARS} characters (not a path or a label)")
                rows.append((reader.line_num, cells))
    except csv.Error as exc:
        raise DatasetError(f"{shown}: line {reader.line_num + 1}: not a readable CSV row ({exc})") from None
    except UnicodeDecodeError as exc:
        raise DatasetError(f"{shown}: is not UTF-8 text (byte {exc.start})") from None
    samples, seen = [], {}
    for line, row in rows:
        if not row.get("path"):
            raise DatasetError(f"{shown}: line {line}: empty path")
        clip = user_path(row["path"])
        clip = clip if clip.is_absolute() else path.parent / clip
        same = os.path.normpath(clip)  # 'a.wav', './a.wav' and 'x/../a.wav' are one clip
        first, first_line = seen.get(same, (None, None))
        if first == row["path"]:
            raise DatasetError(f"{shown}: line {line}: {row['path'][:200]!r} is listed twice (first on line "
                               f"{first_line}); each clip gets one verdict, so list it once")
        seen.setdefault(same, (row["path"], line))
        problem = None if row.get("label") else f"{shown}: line {line}: has no label"
        if first is not None:  # one file under two spellings: the first row is the clip, this one is skipped
            problem = (f"{shown}: line {line}: is the same file as {first[:200]!r} (line {first_line}); each clip "
                       f"gets one verdict, so list it once")
        missing = problem is None and not os.path.lexists(clip)
        if missing:
            problem = f"{shown}: line {line}: names {row['path'][:200]!r}, which does not exist ({shown_name(clip)})"
        samples.append(Sample(row["path"], clip, row.get("label", ""), problem, line=line, missing=missing))
    return sorted(samples, key=lambda s: (s.label, s.id))


def list_samples(dataset: DatasetSpec, limit: int | None = None) -> list[Sample]:
    """Every clip of the dataset in deterministic order, reduced to ``limit`` (default: the spec's)."""
    samples = _folder(dataset.path) if dataset.type == "folder" else _manifest(dataset.path)
    samples = [dataclasses.replace(s, label=dataset.map_label(s.label),
                                   problem=outside_roots(s.path, dataset.roots) or s.problem)
               for s in samples]  # outside the roots first: such a clip is never read, whatever else is wrong
    return select(samples, limit if limit is not None else dataset.limit)


def where_listed(samples: list[Sample], dataset_path: Path) -> str:
    """Where a person finds these samples: the manifest's lines (``data.csv lines 3, 7``), else the class
    folders (``data/Music/``); at most 8 named."""
    lines = sorted({s.line for s in samples if s.line is not None})
    if lines:
        shown = ", ".join(map(str, lines[:8])) + (f" and {len(lines) - 8} more" if len(lines) > 8 else "")
        return f"{_relative(dataset_path)} line{'s' if len(lines) > 1 else ''} {shown}"
    folders = sorted({_relative(s.path.parent) for s in samples})
    return ", ".join(f"{f}/" for f in folders[:8]) + (f" and {len(folders) - 8} more" if len(folders) > 8 else "")


def _relative(path: Path) -> str:
    """A path as the user typed it: relative to the working directory when below it."""
    try:
        return shown_name(Path(os.path.abspath(path)).relative_to(Path.cwd()).as_posix())
    except ValueError:
        return shown_name(path)


def near_labels(label: str, labels: list[str]) -> list[str]:
    """The model labels a dataset label was probably meant to be: the same but for case, spaces, ``-`` or ``_``;
    else close spellings."""
    import difflib

    def plain(text: str) -> str:
        return "".join(c for c in text.casefold() if c.isalnum())

    same = [x for x in labels if plain(x) == plain(label)]
    return same or difflib.get_close_matches(label, labels, n=3, cutoff=0.75) or \
        [x for x in labels if x.casefold() in difflib.get_close_matches(label.casefold(),
                                                                        [y.casefold() for y in labels], 3, 0.75)]


def select(samples: list[Sample], limit: int | None) -> list[Sample]:
    """Round-robin over classes (sorted) until ``limit`` clips are chosen; order: class, then path."""
    if limit is None or limit >= len(samples):
        return list(samples)
    by_class: dict[str, list[Sample]] = {}
    for s in samples:
        by_class.setdefault(s.label, []).append(s)
    chosen: list[Sample] = []
    depth = 0
    while len(chosen) < limit:
        for label in sorted(by_class):
            if depth < len(by_class[label]) and len(chosen) < limit:
                chosen.append(by_class[label][depth])
        depth += 1
    keep = set(id(s) for s in chosen)
    return [s for s in samples if id(s) in keep]


def read_clip(sample: Sample, sample_rate: int, clip_seconds: float | None = None) -> AudioClip:
    """The clip at ``sample_rate`` cut to its first ``clip_seconds``, with notes (AudioError if unusable).

    Only the first ``clip_seconds`` are read and checked: a long file whose later part is broken or
    silent still gives its first seconds; a clip shorter than ``clip_seconds`` is used as it is (no
    padding); with no ``clip_seconds`` the cut is at ``MAX_CLIP_SECONDS``. See
    :func:`freqrex_audit.audio.io.read_audio` for what makes a clip unusable.
    """
    if clip_seconds is not None:
        return read_audio(sample.path, sample_rate=sample_rate, max_seconds=clip_seconds)
    clip = read_audio(sample.path, sample_rate=sample_rate, max_seconds=MAX_CLIP_SECONDS)
    notes = tuple(f"{n} (the cap when the spec sets no dataset.clip_seconds)" if n.startswith("longer than") else n
                  for n in clip.notes)
    return dataclasses.replace(clip, notes=notes)


def load_clip(sample: Sample, sample_rate: int, clip_seconds: float | None = None) -> np.ndarray:
    """The clip as float32 mono at ``sample_rate``, cut to its first ``clip_seconds`` (AudioError if unusable)."""
    return read_clip(sample, sample_rate, clip_seconds).samples
