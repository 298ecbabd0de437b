"""JSON Schema of a model spec, generated from the key tables :mod:`freqrex_audit.specs` validates with
(so the two cannot drift): editors use it to autocomplete keys and flag unknown ones. ``specs.py``
stays the authority on values (ranges, paths, cross-key rules) and its errors name file and key."""

from __future__ import annotations

import dataclasses
from typing import Any

from . import specs
from .engine import AttackConfig, FreqReXConfig, STFTAttackConfig

_NUMBER = {"type": "number"}
_INT = {"type": "integer"}
_BOOL = {"type": "boolean"}
_STRING = {"type": "string"}


def _from_default(value: Any) -> dict:
    """A loose type from a dataclass default (bool before int: a bool is an int in Python)."""
    if isinstance(value, bool):
        return dict(_BOOL)
    if isinstance(value, int):
        return {"type": ["integer", "number"]}
    if isinstance(value, float):
        return dict(_NUMBER)
    if isinstance(value, str):
        return dict(_STRING)
    if isinstance(value, (list, tuple)):
        return {"type": "array"}
    return {}


def _object(keys, known: dict | None = None, required: tuple = ()) -> dict:
    known = known or {}
    out = {"type": "object", "additionalProperties": False,
           "properties": {k: known.get(k, {}) for k in keys}}
    if required:
        out["required"] = list(required)
    return out


def _config_object(cls, keys=None) -> dict:
    defaults = {f.name: (f.default if f.default is not dataclasses.MISSING else
                         f.default_factory() if f.default_factory is not dataclasses.MISSING else None)
                for f in dataclasses.fields(cls)}
    names = keys if keys is not None else [k for k in defaults if not k.startswith("_")]
    return _object(names, {k: _from_default(defaults.get(k)) for k in names})


def _check(check: str) -> dict:
    settings = {k: (dict(_BOOL) if k in ("required", "flat_earther") else dict(_NUMBER)) for k in specs.CHECKS[check]}
    common = {"on_unmeasured": {"enum": ["fail", "skip"]}, "min_clips": dict(_INT), "confidence": dict(_NUMBER)}
    return _object((*specs.CHECKS[check], *specs.COMMON_CHECK_KEYS), {**settings, **common})


def spec_schema() -> dict:
    """The JSON Schema (draft 2020-12) of a model spec file."""
    model = _object(specs.MODEL_KEYS, {"type": {"enum": list(specs.MODEL_TYPES)}, "path": dict(_STRING),
                                        "target": dict(_STRING), "batch_size": dict(_INT), "timeout_s": dict(_NUMBER),
                                        "labels": {"type": "array", "items": dict(_STRING)},
                                        "sample_rate": dict(_INT), "trust_remote_code": dict(_BOOL),
                                        "outputs": {"enum": list(specs.OUTPUT_CHOICES)},
                                        "window": _object(specs.WINDOW_KEYS)})
    dataset = _object(specs.DATASET_KEYS, {"path": dict(_STRING), "sample_rate": dict(_INT),
                                            "clip_seconds": dict(_NUMBER), "limit": dict(_INT),
                                            "only_correct": dict(_BOOL), "label_map": {"type": "object"}},
                      required=("path",))
    top = {"name": {"type": "string", "maxLength": specs.NAME_MAX}, "model": model, "dataset": dataset,
           "freqrex": _config_object(FreqReXConfig), "attack": _config_object(AttackConfig, specs.ATTACK_KEYS),
           "stft_attack": _config_object(STFTAttackConfig, specs.STFT_KEYS),
           "checks": _object(specs.CHECKS, {c: _check(c) for c in specs.CHECKS}),
           "peers": {"type": "array", "items": dict(_STRING)}}
    schema = _object(specs.TOP_KEYS, top, required=("model", "dataset", "checks"))
    return {"$schema": "https://json-schema.org/draft/2020-12/schema", "title": "freqrex_audit model spec", **schema}
