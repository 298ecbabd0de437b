"""Read a run's ``results.json`` (and ``results.npz``) or a baseline file, trusting nothing in it.

One loader for everything that reads a run back — ``freqrex-audit report``, the runs index,
``freqrex-audit compare`` and baselines — so a hand-edited, truncated or hostile file is refused the
same way everywhere: a :class:`ResultsError` naming the file and the key path ("reports/r/results.json:
specs.x.gates[0].value: expected a number or null, got 'abc'"), never a traceback and never a page
rendered from wrong data. The shape is declared once, as JSON Schema (:mod:`freqrex_audit.runs.schema`:
``RESULTS_SCHEMA``, ``BASELINE_SCHEMA``), checked with ``jsonschema``; what a schema cannot say (``.npz`` references
exist, an explanation's arrays agree with each other) is checked after it.

Limits before anything is parsed: :data:`MAX_BYTES` per file, :data:`MAX_DEPTH` levels of nesting,
:data:`MAX_STRING` characters per string; strict UTF-8.
"""

from __future__ import annotations

import json
import re
import zipfile
from pathlib import Path
from typing import Any, Iterable

import numpy as np

from .packing import unpack
from .schema import BASELINE_SCHEMA, RESULTS_SCHEMA, SCHEMA_VERSION

__all__ = ["ResultsError", "read_json", "load_run", "validate_results", "validate_baseline", "RESULTS_SCHEMA",
           "BASELINE_SCHEMA", "MAX_BYTES", "MAX_DEPTH", "MAX_STRING", "key_path"]

MAX_BYTES = 256 * 2 ** 20
"""Largest results / baseline file read (the demo's results.json is well under 10 MB: arrays live in the .npz)."""
MAX_SIDECAR_BYTES = 4 * 2 ** 30
"""Largest ``results.npz`` read, stored or unpacked (waveforms of a few hundred clips are far below)."""
MAX_DEPTH = 64
"""Deepest nesting accepted (real files nest about 10 levels)."""
MAX_STRING = 2 ** 20
"""Longest string accepted (a message or a path, never a megabyte)."""
SUPPORTED_SCHEMA = (3, SCHEMA_VERSION)
"""3 and 4 mean the same; 4 packs results.npz and writes the sidecar's files on demand (both read here)."""
ARRAY_DTYPES = ("float16", "float32", "float64", "int8", "int16", "int32", "int64", "uint8", "uint16", "uint32",
                "uint64", "bool")
"""What an inline array may be stored as (never object or byte strings: no giant allocations)."""


class ResultsError(ValueError):
    """A results or baseline file that is not what freqrex-audit writes; the message names file and key."""

    def __init__(self, path: str | Path, key: str, problem: str):
        self.path, self.key, self.problem = str(path), key, problem
        super().__init__(f"{path}: {key}: {problem}" if key else f"{path}: {problem}")


# ------------------------------------------------------------------------------------------ reading

_PLAIN = re.compile(r"[A-Za-z0-9_.\-\[\]]{1,80}")


def key_path(parts: Iterable[Any]) -> str:
    """``specs.x.gates[0].value`` from a path of keys and indices (odd keys quoted, long ones cut)."""
    out = ""
    for part in parts:
        if isinstance(part, int):
            out += f"[{part}]"
        elif _PLAIN.fullmatch(str(part)):
            out += f".{part}" if out else str(part)
        else:
            out += f"[{_shown(str(part))}]"
    return out


def _shown(value: Any, limit: int = 40) -> str:
    """A short, one-line picture of a value for an error message (never the whole thing)."""
    if isinstance(value, dict):
        return f"an object with {len(value)} key(s)"
    if isinstance(value, list):
        return f"a list of {len(value)} item(s)"
    text = repr(value)
    return text if len(text) <= limit else f"{text[:limit]}… ({len(text)} characters)"


def _depth_and_strings(doc: Any, path: Path) -> None:
    """Refuse nesting deeper than MAX_DEPTH and strings longer than MAX_STRING (iteratively: no recursion)."""
    stack: list[tuple[Any, tuple, int]] = [(doc, (), 1)]
    while stack:
        value, where, depth = stack.pop()
        if isinstance(value, (dict, list)):
            if depth > MAX_DEPTH:
                raise ResultsError(path, key_path(where), f"nested deeper than {MAX_DEPTH} levels")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, child in items:
                if isinstance(key, str) and len(key) > MAX_STRING:
                    raise ResultsError(path, key_path(where), f"a key of {len(key):,} characters "
                                                              f"(at most {MAX_STRING:,})")
                stack.append((child, (*where, key), depth + 1))
        elif isinstance(value, str) and len(value) > MAX_STRING:
            raise ResultsError(path, key_path(where), f"a string of {len(value):,} characters (at most {MAX_STRING:,})")


def read_json(path: str | Path, what: str = "results file", hint: str = "") -> Any:
    """Parse a JSON file within the limits above, or raise ResultsError naming the file and the problem."""
    path = Path(path)
    hint = f"; {hint}" if hint else ""
    try:
        size = path.stat().st_size
        if not path.is_file():
            raise ResultsError(path, "", f"not a file{hint}")
        if size > MAX_BYTES:
            raise ResultsError(path, "", f"{size:,} bytes: larger than any {what} freqrex-audit writes "
                                         f"(at most {MAX_BYTES:,}){hint}")
        raw = path.read_bytes()
    except OSError as exc:
        raise ResultsError(path, "", f"cannot be read ({exc.strerror or exc}){hint}") from None
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ResultsError(path, "", f"not UTF-8 (byte {exc.start:,}){hint}") from None
    try:
        doc = json.loads(text)
    except json.JSONDecodeError as exc:
        raise ResultsError(path, "", f"not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}; "
                                     f"truncated or hand-edited?){hint}") from None
    except (RecursionError, ValueError) as exc:  # nesting past the parser's stack, an integer of 5,000 digits
        problem = "nested too deeply" if isinstance(exc, RecursionError) else str(exc).split(";")[0]
        raise ResultsError(path, "", f"not a {what} ({problem}){hint}") from None
    _depth_and_strings(doc, path)
    return doc


def _schema_error(doc: Any, schema: dict, path: Path, hint: str) -> None:
    import jsonschema

    validator = jsonschema.Draft202012Validator(schema)
    error = jsonschema.exceptions.best_match(validator.iter_errors(doc))
    if error is None:
        return
    while error.context:  # anyOf: name the alternative that got furthest
        error = jsonschema.exceptions.best_match(error.context)
    where = key_path(error.absolute_path)
    value = error.instance
    if error.validator == "type":
        kinds = error.validator_value if isinstance(error.validator_value, list) else [error.validator_value]
        names = {"number": "a number", "integer": "an integer", "string": "a string", "object": "an object",
                 "array": "a list", "boolean": "true or false", "null": "null"}
        problem = f"expected {' or '.join(names.get(k, k) for k in kinds)}, got {_shown(value)}"
    elif error.validator == "required":
        missing = next((k for k in error.validator_value if isinstance(value, dict) and k not in value), "?")
        problem = f"missing key {missing!r}"
    elif error.validator == "enum":
        problem = f"expected one of {', '.join(map(str, error.validator_value))}, got {_shown(value)}"
    elif error.validator in ("minimum", "maximum"):
        problem = f"expected {'at least' if error.validator == 'minimum' else 'at most'} " \
                  f"{error.validator_value:,}, got {_shown(value)}"
    else:
        problem = f"{error.validator} {_shown(error.validator_value)} not met by {_shown(value)}"
    raise ResultsError(path, where, problem + (f"; {hint}" if hint else ""))


def validate_baseline(doc: Any, path: str | Path, hint: str = "") -> dict:
    """``doc`` if it has the baseline shape, else ResultsError naming the key."""
    _schema_error(doc, BASELINE_SCHEMA, Path(path), hint)
    return doc


def validate_results(doc: Any, path: str | Path, arrays: dict[str, np.ndarray] | None = None) -> dict:
    """``doc`` if it has the results shape (and, with ``arrays``, its explanations are consistent)."""
    path = Path(path)
    _schema_error(doc, RESULTS_SCHEMA, path, "")
    version = doc["schema_version"]
    if version not in SUPPORTED_SCHEMA:
        older = (f"; version {version} gave some metric names other meanings (README, 'What changed in results "
                 f"schema 3'): audit again to compare" if isinstance(version, int) and version < SCHEMA_VERSION else "")
        raise ResultsError(path, "schema_version", f"version {version} is not one this freqrex-audit reads "
                                                   f"({', '.join(map(str, SUPPORTED_SCHEMA))}){older}")
    for i, gate in enumerate(doc["gates"]):  # a gate speaks for a spec of this run, or it is not this run's
        if "spec" in gate and gate["spec"] not in doc["specs"]:
            raise ResultsError(path, key_path(("gates", i, "spec")), f"{_shown(gate['spec'])} is not a spec of this "
                                                                     f"run (specs has {len(doc['specs'])})")
    if arrays is not None:
        _check_samples(doc, path, arrays)
    return doc


def _array(value: Any, arrays: dict[str, np.ndarray], where: tuple, path: Path) -> np.ndarray | None:
    if value is None:
        return None
    try:
        if isinstance(value, dict) and "__npz__" in value:
            if value["__npz__"] not in arrays:
                raise ResultsError(path, key_path(where), f"array {_shown(value['__npz__'])} is not in "
                                                          f"{path.with_suffix('.npz').name}")
            out = np.asarray(arrays[value["__npz__"]])
        elif isinstance(value, dict):
            if value["dtype"] not in ARRAY_DTYPES:
                raise ResultsError(path, key_path((*where, "dtype")), f"expected one of {', '.join(ARRAY_DTYPES)}, "
                                                                      f"got {_shown(value['dtype'])}")
            with np.errstate(all="ignore"):
                out = np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
        else:
            out = np.asarray(value, dtype=float)
    except ResultsError:
        raise
    except (TypeError, ValueError, OverflowError) as exc:
        raise ResultsError(path, key_path(where), f"not an array of numbers ({str(exc)[:80]})") from None
    if out.dtype.kind not in "biuf":
        raise ResultsError(path, key_path(where), f"expected numbers, got an array of {out.dtype}")
    return out


def _check_samples(doc: dict, path: Path, arrays: dict[str, np.ndarray]) -> None:
    """What the schema cannot say about a clip the report draws: its arrays exist and agree with each other."""
    for name, spec in doc["specs"].items():
        ids = set()
        for i, sample in enumerate(spec.get("samples") or []):
            where = ("specs", name, "samples", i)
            if sample["id"] in ids:
                raise ResultsError(path, key_path((*where, "id")), f"{_shown(sample['id'])} appears twice")
            ids.add(sample["id"])
            exp = sample.get("explanation")
            if exp is None:
                continue
            at = (*where, "explanation")
            wave = _array(exp["waveform"], arrays, (*at, "waveform"), path)
            if wave.ndim != 1 or wave.size < 2 or not np.all(np.isfinite(wave)):
                raise ResultsError(path, key_path((*at, "waveform")), "expected a 1-D list of finite samples")
            n_bins = wave.size // 2 + 1
            resp = _array(exp["responsibility"], arrays, (*at, "responsibility"), path)
            if resp.shape != (n_bins,) or not np.all(np.isfinite(resp)):
                raise ResultsError(path, key_path((*at, "responsibility")),
                                   f"expected {n_bins} finite values (one per rfft bin), got shape {resp.shape}")
            for kind in ("ranking", "sufficient", "necessary", "complete", "minimal"):
                bins = _array(exp.get(kind), arrays, (*at, kind), path)
                if bins is not None and not _bin_indices(bins, n_bins):
                    raise ResultsError(path, key_path((*at, kind)), f"expected bin indices in [0, {n_bins})")
            n_labels = len(exp["labels"])
            for key in ("target", "inverse_label"):
                if exp.get(key) is not None and exp[key] >= n_labels:
                    raise ResultsError(path, key_path((*at, key)), f"label index {exp[key]} but only "
                                                                   f"{n_labels} labels")
            _decodes(exp, "Explanation", arrays, at, path)
            for kind in ("fourier_attack", "stft_attack"):
                atk = sample.get(kind)
                if not atk:
                    continue
                _decodes(atk, "FourierAttack" if kind == "fourier_attack" else "STFTAttack", arrays, (*where, kind),
                         path)
                adv = _array(atk.get("adversarial"), arrays, (*where, kind, "adversarial"), path)
                if adv is not None and adv.shape != wave.shape:
                    raise ResultsError(path, key_path((*where, kind, "adversarial")),
                                       f"expected {wave.size} samples like the clip, got shape {adv.shape}")
                if atk.get("new_label") is not None and atk["new_label"] >= n_labels:
                    raise ResultsError(path, key_path((*where, kind, "new_label")),
                                       f"label index {atk['new_label']} but only {n_labels} labels")


def _bin_indices(bins: np.ndarray, n_bins: int) -> bool:
    """A 1-D array of whole numbers in [0, n_bins) (not booleans: a mask is not a list of bins)."""
    if bins.ndim != 1 or bins.dtype.kind == "b":
        return False
    return not bins.size or bool(bins.min() >= 0 and bins.max() < n_bins and np.all(bins == np.round(bins)))


def _decodes(value: dict, kind: str, arrays: dict[str, np.ndarray], where: tuple, path: Path) -> None:
    """The report rebuilds explanations and attacks from their dicts: they must decode (every field there)."""
    from ..engine import Explanation, FourierAttack, STFTAttack

    cls = {"Explanation": Explanation, "FourierAttack": FourierAttack, "STFTAttack": STFTAttack}[kind]
    try:
        with np.errstate(all="ignore"):
            cls.from_dict(value, arrays)
    except (TypeError, ValueError, KeyError, AttributeError, OverflowError) as exc:
        missing = str(exc).split("missing", 1)[-1].strip() if "missing" in str(exc) else ""
        problem = f"missing {missing[:120]}" if missing else f"{type(exc).__name__}: {str(exc)[:120]}"
        raise ResultsError(path, key_path(where), f"not a {kind} ({problem})") from None


def _sidecar(path: Path) -> dict[str, np.ndarray]:
    sidecar = path.with_suffix(".npz")
    if not sidecar.exists():
        return {}
    try:
        with zipfile.ZipFile(sidecar) as archive:  # sizes as stored and as unpacked: no zip bomb is inflated
            stored = sidecar.stat().st_size
            unpacked = sum(info.file_size for info in archive.infolist())
        if max(stored, unpacked) > MAX_SIDECAR_BYTES:
            raise ResultsError(sidecar, "", f"{max(stored, unpacked):,} bytes: larger than any sidecar "
                                            f"freqrex-audit writes (at most {MAX_SIDECAR_BYTES:,})")
        with np.load(sidecar, allow_pickle=False) as npz:
            stored = {k: npz[k] for k in npz.files}
        return unpack(stored)  # schema 4 packs its arrays; rebuilt ones that differ are named in .differs
    except ResultsError:
        raise
    except (OSError, ValueError, zipfile.BadZipFile, EOFError) as exc:
        raise ResultsError(sidecar, "", f"not a readable .npz sidecar ({type(exc).__name__}: {str(exc)[:80]})") \
            from None


def load_run(path: str | Path, arrays: bool = True) -> tuple[dict, dict[str, np.ndarray]]:
    """A validated results document and its sidecar's arrays (``arrays=False``: the JSON alone, unchecked
    explanations; what the index and compare need)."""
    path = Path(path)
    doc = read_json(path, "results.json")
    if not isinstance(doc, dict):
        raise ResultsError(path, "", f"expected an object (a results.json), got {_shown(doc)}")
    validate_results(doc, path)
    if not arrays:
        return doc, {}
    loaded = _sidecar(path)
    _check_samples(doc, path, loaded)
    return doc, loaded
