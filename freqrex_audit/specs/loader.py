"""Model specs: the YAML a team writes to gate a release, validated strictly.

Every problem is a :class:`SpecError` whose message names the spec file and the key path, e.g.
``model_specs/x.yaml: checks.fourier_attack.max_success_rate: must be in [0, 1], got 1.5 (line 9)``.
The schema is declared once, in :mod:`freqrex_audit.specs.document` (pydantic); this module reads the YAML
safely (:mod:`freqrex_audit.specs.safe_yaml`), turns pydantic's errors into those messages (all of them, one a
line), and then checks what a schema cannot: relative paths resolve against the spec file's folder and
``zoo://`` names against the bundled zoo, and paths may not leave the spec's project (see
:mod:`freqrex_audit.runtime.paths`): a spec from a pull request cannot point the audit at ``/etc`` or ``~/.ssh``
through ``..``, an absolute path or a symlink.
"""

from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

from ..engine.attack_config import AttackConfig
from ..engine.configs import FreqReXConfig, LatentConfig, LMACConfig, STFTAttackConfig
from ..engine.mutations import Mutation
from ..models.padding import pad_mode
from ..runtime.paths import allowed_roots, outside_roots, shown_spec, user_path
from .discovery import SPEC_DIRS, SPEC_SUFFIXES, find_peer, find_specs, in_spec_dir, spec_dirs_from_ini
from .document import (CHECK_MODELS, MAX_ATTACK_SCALE, MODEL_TYPES, OUTPUT_CHOICES, AttackSection, Check,
                       DatasetSection, ExplainersSection, FreqrexSection, ModelSection, SpecDocument,
                       STFTAttackSection, Window)
from .fields import NAME_MAX, NAME_RULE, kind, name_ok
from .safe_yaml import MAX_SPEC_BYTES, MAX_SPEC_VALUES, SpecError, key_line, read_spec_document, yaml_load

__all__ = ["Spec", "DatasetSpec", "ExplainerSettings", "SpecError", "load_spec", "find_specs", "find_peer", "in_spec_dir",
           "spec_dirs_from_ini", "yaml_load", "CHECKS", "SPEC_SUFFIXES", "SPEC_DIRS",
           # the key tables and limits, as before the split (tests fuzz every key)
           "TOP_KEYS", "MODEL_KEYS", "WINDOW_KEYS", "DATASET_KEYS", "ATTACK_KEYS", "STFT_KEYS", "FREQREX_KEYS",
           "COMMON_CHECK_KEYS", "GATE_KEYS", "MODEL_TYPES", "OUTPUT_CHOICES", "NAME_MAX", "MAX_ATTACK_SCALE",
           "MAX_SPEC_BYTES", "MAX_SPEC_VALUES"]

# The key tables, read off the declared schema (tests fuzz every key; nothing here is typed twice).
TOP_KEYS = tuple(SpecDocument.model_fields)
MODEL_KEYS = tuple(ModelSection.model_fields)
WINDOW_KEYS = tuple(Window.model_fields)
DATASET_KEYS = tuple(DatasetSection.model_fields)
ATTACK_KEYS = tuple(AttackSection.model_fields)
STFT_KEYS = tuple(STFTAttackSection.model_fields)
FREQREX_KEYS = tuple(FreqrexSection.model_fields)
COMMON_CHECK_KEYS = tuple(Check.model_fields)
"""``on_unmeasured: fail | skip`` (default fail), ``min_clips`` (fewest measured clips, default 2),
``confidence`` (compare a rate's Wilson bound instead of its point, e.g. 0.95)."""
CHECKS: dict[str, tuple[str, ...]] = {name: tuple(k for k in model.model_fields if k not in COMMON_CHECK_KEYS)
                                      for name, model in CHECK_MODELS.items()}
"""Every check and the settings it takes (all optional), besides the COMMON_CHECK_KEYS every check takes."""
GATE_KEYS: dict[str, tuple[str, ...]] = {name: model.gates for name, model in CHECK_MODELS.items() if model.gates}
"""Checks that make an item only with one of these settings: without one the spec is rejected."""


@dataclass(frozen=True)
class DatasetSpec:
    """Where the labelled clips are and how to read them (see :mod:`freqrex_audit.audit.datasets`)."""

    path: Path
    type: str  # "folder" (one sub-folder per class) or "csv" (a manifest with path,label columns)
    sample_rate: int | None = None  # None: the model's rate
    clip_seconds: float | None = None  # longer clips keep their first clip_seconds
    windows: str = "first"  # "all": every input window of a longer clip is a sample (input_window.py)
    limit: int | None = None  # at most this many clips, balanced across classes
    only_correct: bool = False  # analyse only clips the model classifies correctly
    label_map: tuple[tuple[str, str], ...] = ()  # dataset label -> model label
    roots: tuple[Path, ...] = ()  # clips must resolve inside one of these (empty: anywhere)
    missing_files: str = "fail"  # a manifest row naming a missing file: "fail" model[load] or "skip" the clip

    def map_label(self, label: str) -> str:
        return dict(self.label_map).get(label, label)


@dataclass(frozen=True)
class ExplainerSettings:
    """The other explainers a spec runs (``explainers:``, plus any method ``checks.faithfulness`` gates)."""

    methods: tuple[str, ...]
    train: Path | None = None  # clips L-MAC's decoder trains on (None: a decoder the zoo ships, if any)
    clips: int | None = None  # at most this many audited clips get the methods
    lmac: LMACConfig = LMACConfig()
    layer: str | None = None  # torch module models: the layer L-MAC's decoder reads
    latent: LatentConfig = LatentConfig()  # latent.codec: a resolved folder, or hf://org/name


@dataclass(frozen=True)
class Spec:
    """A validated model spec. ``model`` is a dict for :func:`freqrex_audit.load_classifier`."""

    name: str
    path: Path
    base_dir: Path
    model: dict
    batch_size: int
    dataset: DatasetSpec
    freqrex: FreqReXConfig
    attack: AttackConfig
    stft_attack: STFTAttackConfig
    checks: dict
    peers: tuple[str, ...] = ()
    trust_remote_code: bool = False
    timeout_s: float = 600.0  # seconds one model call (one batch of queries) may take; then the model is hung
    clips_at_once: int = 8  # clips audited side by side in lockstep (audit/in_step.py); 1: one at a time
    pad_calls: str = "auto"  # how model calls are padded: auto, off, pairs, full (models.padding.pad_mode)
    explainers: ExplainerSettings | None = None  # L-MAC / latent / FreqReX-as-a-method, judged by faithfulness

    @property
    def needs_stft(self) -> bool:
        return "stft_attack" in self.checks

    def with_seed(self, seed: int | None) -> "Spec":
        if seed is None or seed == self.freqrex.seed:
            return self
        return dataclasses.replace(self, freqrex=dataclasses.replace(self.freqrex, seed=int(seed)))

    def with_limit(self, limit: int | None) -> "Spec":
        if limit is None:
            return self
        return dataclasses.replace(self, dataset=dataclasses.replace(self.dataset, limit=int(limit)))


def load_spec(path: str | Path) -> Spec:
    """Read and validate one spec file; raise :class:`SpecError` naming the file and key on any problem."""
    path = Path(path)
    raw, text = read_spec_document(path)
    loader = _Loader(shown_spec(path), text, allowed_roots(path))
    if not isinstance(raw, dict):
        if raw is None:
            raise loader.fail("", "is empty: a spec needs at least 'model' and 'dataset'")
        # never echo a file's content (it may not be a spec at all)
        raise loader.fail("", f"is not a spec: the document is a {type(raw).__name__}, not a mapping")
    if not raw:
        raise loader.fail("", "is empty: a spec needs at least 'model' and 'dataset'")
    try:
        doc = SpecDocument.model_validate(raw)
    except ValidationError as exc:
        raise loader.errors(exc) from None
    return loader.build(doc, raw, path)


_REQUIRED = {
    "model": "is required: give 'path' (a model folder or file, or zoo://task/name) or 'target' (package.module:factory)",
    "dataset": "is required: give dataset.path",
    "dataset.path": "is required: a folder with one sub-folder per class, or a CSV manifest",
}
_MESSAGES = {
    "int_type": "must be an integer", "float_type": "must be a number", "finite_number": "must be a number",
    "bool_type": "must be true or false", "string_type": "must be a non-empty string",
    "string_too_short": "must be a non-empty string", "list_type": "must be a list",
    "dict_type": "must be a mapping", "model_type": "must be a mapping", "model_attributes_type": "must be a mapping",
}


class _Loader:
    """One spec file's validation: pydantic's errors in the user's words, then paths and cross-key rules."""

    def __init__(self, file: str, text: str, roots: tuple[Path, ...]):
        self.file, self.text, self.roots = file, text, roots

    def fail(self, key: str | tuple, problem: str, also: list[SpecError] | None = None) -> SpecError:
        parts = tuple(key) if isinstance(key, tuple) else tuple(p for p in key.split(".") if p)
        line = key_line(self.text, parts) if parts else None
        return SpecError(self.file, _dotted(parts) if isinstance(key, tuple) else key, problem, line, also)

    def errors(self, exc: ValidationError) -> SpecError:
        """Every error pydantic found, as one SpecError (the first) with the rest in ``also``."""
        found = [self._one(error) for error in exc.errors(include_url=False)]
        first, *rest = found
        return self.fail(first[0], first[1], [self.fail(loc, text) for loc, text in rest])

    @staticmethod
    def _one(error: dict) -> tuple[tuple, str]:
        loc, kind_, value = tuple(error["loc"]), error["type"], error.get("input")
        if kind_ == "spec":
            return loc, error["ctx"]["problem"]
        if kind_ == "missing":
            return loc, _REQUIRED.get(_dotted(loc), "is required")
        if kind_ == "invalid_key":  # the key itself is the bad value: report it at its mapping
            return loc[:-1], f"keys must be strings, got {loc[-1]!r}"
        if loc[-1:] == ("[key]",):  # a mapping's key of the wrong type (pydantic's location for it)
            return loc[:-2], f"keys must be strings, got {loc[-2]!r}"
        if kind_ == "extra_forbidden":
            section = _section_at(loc[:-1])
            allowed = ", ".join(section.model_fields) if section else "none"
            hint = " (the attack budget belongs under attack.budget)" if loc[0] == "checks" and loc[-1] == "budget" else ""
            return loc, f"unknown key{hint}; allowed: {allowed}"
        if kind_ == "literal_error":
            choices = ", ".join(re.findall(r"'([^']*)'", error["ctx"]["expected"]))
            return loc, f"must be one of {choices}, got {value!r}" if isinstance(value, str) \
                else f"must be one of {choices}, got {kind(value)}"
        if kind_ == "too_short":
            return loc, "must not be empty"
        if kind_ in _MESSAGES:
            return loc, f"{_MESSAGES[kind_]}, got {kind(value)}"
        return loc, f"is not valid: {error['msg']}"

    # --- what a schema cannot say ------------------------------------------------------------------------

    def build(self, doc: SpecDocument, raw: dict, path: Path) -> Spec:
        base = Path(os.path.abspath(path)).parent  # as named: a symlinked spec belongs to the link's project
        name = doc.name if doc.name is not None else path.stem
        if not name_ok(name):  # the file name stands in for a missing name: the same rule
            raise self.fail("name", f"{NAME_RULE}; got {kind(name)}")
        for i, peer in enumerate(doc.peers or ()):
            if peer in (name, path.stem):
                raise self.fail(("peers", i), f"{peer!r} is this spec itself; a peer is another model's spec")
        checks = {name: _as_given(getattr(doc.checks, name), raw["checks"][name]) for name in raw.get("checks") or {}}
        return Spec(
            name=name, path=path.resolve(), base_dir=base, model=self._model(doc.model, base),
            batch_size=doc.model.batch_size, dataset=self._dataset(doc.dataset, base),
            freqrex=self._config("freqrex", FreqReXConfig, doc.freqrex.model_dump(exclude_unset=True)),
            attack=self._attack(doc.attack, checks.get("fourier_attack", {}).get("budget")),
            stft_attack=self._config("stft_attack", STFTAttackConfig, _tuples(doc.stft_attack.model_dump(exclude_unset=True))),
            checks=checks, peers=tuple(doc.peers or ()), trust_remote_code=doc.model.trust_remote_code,
            timeout_s=doc.model.timeout_s, clips_at_once=doc.model.clips_at_once,
            pad_calls=pad_mode(doc.model.pad_calls), explainers=self._explainers(doc.explainers, checks.get("faithfulness"), base),
        )

    def _explainers(self, section: ExplainersSection | None, gate: dict | None, base: Path) -> ExplainerSettings | None:
        """The methods listed and the ones ``checks.faithfulness`` gates (a gate needs its method run)."""
        gated = [] if not gate else [gate["method"]] if isinstance(gate["method"], str) else list(gate["method"])
        if section is None and not gated:
            return None
        section = section or ExplainersSection(methods=gated)
        methods = tuple(dict.fromkeys([*section.methods, *gated]))
        train = self.path(section.train, "explainers.train", base, "training clips") if section.train else None
        codec = section.latent.codec
        if "latent" in methods and not codec.startswith("hf://"):
            codec = str(self.path(codec, "explainers.latent.codec", base, "codec folder"))
        lmac = section.lmac.model_dump(exclude={"layer"})
        latent = {**section.latent.model_dump(), "codec": codec}
        return ExplainerSettings(methods=methods, train=train, clips=section.clips, lmac=LMACConfig(**lmac),
                                 layer=section.lmac.layer, latent=LatentConfig(**latent))

    def _model(self, model: ModelSection, base: Path) -> dict:
        """The loader's dict: the keys given (``path`` resolved), ``window`` complete, ``timeout_s`` always."""
        given = model.model_dump(exclude_unset=True, exclude={"batch_size", "clips_at_once", "pad_calls", "trust_remote_code",
                                                                         "timeout_s"})
        if "target" in given:  # found by the import rule's finders alone: none of the user's code runs here
            from ..runtime.imports import missing_target

            problem = missing_target(given["target"])
            if problem:
                raise self.fail("model.target", problem)
        if "path" in given:
            given["path"] = str(self.path(model.path, "model.path", base, "model"))
        if model.window is not None:
            given["window"] = model.window.model_dump()
        if model.trust_remote_code:
            given["trust_remote_code"] = True
        given["timeout_s"] = model.timeout_s  # the loader's self-check and subprocess watchdog honour it too
        return given

    def _dataset(self, data: DatasetSection, base: Path) -> DatasetSpec:
        path = self.path(data.path, "dataset.path", base, "dataset")
        kind_ = data.type or ("folder" if path.is_dir() else "csv")
        if kind_ == "folder" and not path.is_dir():
            raise self.fail("dataset.path", f"type 'folder' needs a directory, got the file {path}")
        if kind_ == "csv" and not path.is_file():
            raise self.fail("dataset.path", f"type 'csv' needs a manifest file, got the directory {path}")
        return DatasetSpec(path=path, type=kind_, sample_rate=data.sample_rate, clip_seconds=data.clip_seconds,
                           windows=data.windows, limit=data.limit, only_correct=data.only_correct,
                           label_map=tuple(sorted((data.label_map or {}).items())), roots=self.roots,
                           missing_files=data.missing_files)

    def _attack(self, attack: AttackSection, check_budget: int | None) -> AttackConfig:
        """``budget`` is the older name of ``max_frequencies``; ``checks.fourier_attack.budget`` an older place."""
        given = attack.model_dump(exclude_unset=True)
        mutations = [Mutation("scale", s) for s in given.pop("scales", [])]
        mutations += [Mutation("phase", p) for p in given.pop("phases", [])]
        if mutations:
            given["mutations"] = tuple(mutations)
        if "budget" in given and "max_frequencies" in given:
            raise self.fail("attack.budget", "is the older name of attack.max_frequencies: give one of them")
        if "budget" in given:
            given["max_frequencies"] = given.pop("budget")
        if check_budget is not None:
            if "max_frequencies" in given and given["max_frequencies"] != check_budget:
                raise self.fail("checks.fourier_attack.budget",
                                f"is {check_budget} but attack.max_frequencies is {given['max_frequencies']}: give "
                                f"the budget once, under attack.max_frequencies")
            given["max_frequencies"] = check_budget
        return self._config("attack", AttackConfig, given)

    def _config(self, key: str, cls: type, values: dict) -> Any:
        try:
            return cls(**values)
        except ValueError as exc:  # a rule of the engine's that the schema does not state
            raise self.fail(key, str(exc)) from None

    def path(self, text: str, key: str, base: Path, what: str) -> Path:
        """A path the spec names: ``zoo://`` from the bundled zoo, else relative to ``base``; it must exist
        and stay inside the allowed roots."""
        if text.startswith("zoo://"):
            from ..runtime.paths import resolve_zoo_path

            try:
                return resolve_zoo_path(text)
            except (FileNotFoundError, ValueError) as exc:
                raise self.fail(key, str(exc)) from None
        path = user_path(text)
        path = path if path.is_absolute() else (base / path)
        if not path.exists():
            raise self.fail(key, f"{what} not found: {path} (relative paths resolve against the spec's folder)")
        problem = outside_roots(path, self.roots)
        if problem:
            raise self.fail(key, problem)
        return path.resolve()


def _dotted(loc: tuple) -> str:
    """``('checks', 'accuracy', 'min')`` -> ``checks.accuracy.min``; list indexes as ``peers[1]``."""
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _section_at(loc: tuple) -> type[BaseModel] | None:
    """The schema section (a model class) at a key path, to list the keys it allows."""
    section: type[BaseModel] = SpecDocument
    for part in loc:
        field = section.model_fields.get(part) if isinstance(part, str) else None
        if field is None:
            return None
        members = getattr(field.annotation, "__args__", None) or (field.annotation,)
        section = next((m for m in members if isinstance(m, type) and issubclass(m, BaseModel)), None)
        if section is None:
            return None
    return section


def _as_given(section: BaseModel, raw: Any) -> dict:
    """The settings given, in the order given (as the spec wrote them)."""
    given = section.model_dump(exclude_unset=True)
    return {key: given[key] for key in raw or {}}


def _tuples(values: dict) -> dict:
    """Lists as tuples: the engine's configs are frozen and hashable."""
    return {k: tuple(v) if isinstance(v, list) else v for k, v in values.items()}

