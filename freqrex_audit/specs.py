"""Model specs: the YAML a team writes to gate a release, validated strictly.

Every problem is a :class:`SpecError` whose message names the spec file and the key path, e.g.
``model_specs/x.yaml: checks.fourier_attack.max_success_rate: must be in [0, 1], got 1.5``.
Unknown keys, wrong types, out-of-range values and missing files are all errors; relative paths
resolve against the spec file's folder, and ``zoo://`` names against the bundled zoo.

Paths may not leave the spec's project (see :mod:`freqrex_audit.paths`): a spec from a pull request cannot
point the audit at ``/etc`` or ``~/.ssh`` through ``..``, an absolute path or a symlink.
"""

from __future__ import annotations

import dataclasses
import math
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Mapping

import yaml

from .engine import AttackConfig, FreqReXConfig, Mutation, STFTAttackConfig
from .engine.attacks import ATTACK_POOLS
from .paths import allowed_roots, outside_roots

__all__ = ["Spec", "DatasetSpec", "SpecError", "load_spec", "find_specs", "in_spec_dir", "spec_dirs_from_ini", "CHECKS", "SPEC_SUFFIXES"]

SPEC_SUFFIXES = (".yaml", ".yml")
MODEL_TYPES = ("transformers", "torchscript", "onnx", "tflite", "callable")


class _UniqueKeyLoader(yaml.SafeLoader):
    """A SafeLoader that refuses a key given twice in one mapping (YAML would silently keep the later one)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict:
        seen: dict[Any, Any] = {}
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            try:
                duplicate = key in seen
            except TypeError:  # an unhashable key: the base class reports it
                break
            if duplicate:
                raise yaml.constructor.ConstructorError(
                    None, None, f"key {str(key)[:60]!r} is given twice (line {seen[key] + 1} and line "
                                f"{key_node.start_mark.line + 1})", key_node.start_mark)
            seen[key] = key_node.start_mark.line
        return super().construct_mapping(node, deep=deep)


_UniqueKeyLoader.add_constructor("tag:yaml.org,2002:map", _UniqueKeyLoader.construct_yaml_map)


def yaml_load(text: str) -> Any:
    """``yaml.safe_load`` that refuses duplicate keys (every spec and model descriptor is read with it)."""
    return yaml.load(text, Loader=_UniqueKeyLoader)  # noqa: S506 - a SafeLoader subclass


class SpecError(ValueError):
    """A spec that cannot be used; ``file`` and ``key`` say where, ``problem`` what."""

    def __init__(self, file: str | Path, key: str, problem: str):
        self.file = str(file)
        self.key = key
        self.problem = problem
        where = f"{self.file}: {key}: " if key else f"{self.file}: "
        super().__init__(where + problem)


@dataclass(frozen=True)
class DatasetSpec:
    """Where the labelled clips are and how to read them (see :mod:`freqrex_audit.datasets`)."""

    path: Path
    type: str  # "folder" (one sub-folder per class) or "csv" (a manifest with path,label columns)
    sample_rate: int | None = None  # None: the model's rate
    clip_seconds: float | None = None  # longer clips keep their first clip_seconds
    limit: int | None = None  # at most this many clips, balanced across classes
    only_correct: bool = False  # analyse only clips the model classifies correctly
    label_map: tuple[tuple[str, str], ...] = ()  # dataset label -> model label
    roots: tuple[Path, ...] = ()  # clips must resolve inside one of these (empty: anywhere)

    def map_label(self, label: str) -> str:
        return dict(self.label_map).get(label, label)


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


# --- small typed validators: each takes (value, key) and raises SpecError via the context -----------

class _Ctx:
    def __init__(self, file: str, roots: tuple[Path, ...] = ()):
        self.file = file
        self.roots = roots

    def fail(self, key: str, problem: str) -> SpecError:
        return SpecError(self.file, key, problem)

    def mapping(self, value: Any, key: str, allowed: tuple[str, ...] | None,
                hint: Mapping[str, str] | None = None) -> dict:
        """A mapping with string keys; ``allowed`` lists the keys it may have (None: any string key)."""
        if value is None:
            return {}
        if not isinstance(value, dict):
            if not key:  # the whole document: never echo a file's content (it may not be a spec at all)
                raise self.fail(key, f"is not a spec: the document is a {type(value).__name__}, not a mapping")
            raise self.fail(key, f"must be a mapping, got {_kind(value)}")
        for k in value:
            if not isinstance(k, str):
                raise self.fail(key, f"keys must be strings, got {k!r}")
            if allowed is not None and k not in allowed:
                extra = (hint or {}).get(k)
                choices = ", ".join(allowed) if allowed else "none"
                raise self.fail(_join(key, k), f"unknown key{f' ({extra})' if extra else ''}; allowed: {choices}")
        return dict(value)

    def integer(self, value: Any, key: str, minimum: int | None = None) -> int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.fail(key, f"must be an integer, got {_kind(value)}")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be ≥ {minimum}, got {value}")
        return int(value)

    def number(self, value: Any, key: str, low: float | None = None, high: float | None = None,
               open_low: bool = False) -> float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
            raise self.fail(key, f"must be a number, got {_kind(value)}")
        if low is not None and high is not None and not (low <= value <= high):
            raise self.fail(key, f"must be in [{low:g}, {high:g}], got {value:g}")
        if low is not None and (value <= low if open_low else value < low):
            raise self.fail(key, f"must be {'>' if open_low else '≥'} {low:g}, got {value:g}")
        return float(value)

    def rate(self, value: Any, key: str) -> float:
        return self.number(value, key, 0.0, 1.0)

    def boolean(self, value: Any, key: str) -> bool:
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {_kind(value)}")
        return value

    def string(self, value: Any, key: str, choices: tuple[str, ...] | None = None) -> str:
        if not isinstance(value, str) or not value:
            raise self.fail(key, f"must be a non-empty string, got {_kind(value)}")
        if choices and value not in choices:
            raise self.fail(key, f"must be one of {', '.join(choices)}, got {value!r}")
        return value

    def strings(self, value: Any, key: str) -> list[str]:
        if not isinstance(value, list):
            raise self.fail(key, f"must be a list of strings, got {_kind(value)}")
        return [self.string(v, f"{key}[{i}]") for i, v in enumerate(value)]

    def numbers(self, value: Any, key: str, low: float | None = None, high: float | None = None) -> list[float]:
        if not isinstance(value, list) or not value:
            raise self.fail(key, f"must be a non-empty list of numbers, got {_kind(value)}")
        return [self.number(v, f"{key}[{i}]", low, high) for i, v in enumerate(value)]

    def path(self, value: Any, key: str, base: Path, what: str) -> Path:
        text = self.string(value, key)
        if text.startswith("zoo://"):
            from .zoo import resolve_zoo_path

            try:
                return resolve_zoo_path(text)
            except (FileNotFoundError, ValueError) as exc:
                raise self.fail(key, str(exc)) from None
        path = Path(text).expanduser()
        path = path if path.is_absolute() else (base / path)
        if not path.exists():
            raise self.fail(key, f"{what} not found: {path} (relative paths resolve against the spec's folder)")
        problem = outside_roots(path, self.roots)
        if problem:
            raise self.fail(key, problem)
        return path.resolve()


def _kind(value: Any) -> str:
    """A value's type and a short excerpt: an error never echoes a whole file that was read as a string."""
    if value is None:
        return "nothing (null)"
    if isinstance(value, (dict, list)):
        return type(value).__name__
    shown = repr(value)
    return f"{type(value).__name__} {shown}" if len(shown) <= 60 else f"a {type(value).__name__} of {len(shown)} characters"


def _join(key: str, sub: str) -> str:
    return f"{key}.{sub}" if key else sub


# --- sections -----------------------------------------------------------------------------------------

MODEL_KEYS = ("type", "path", "target", "device", "batch_size", "timeout_s", "labels", "sample_rate",
              "trust_remote_code", "options", "outputs", "isolation", "window", "id", "precision", "window_seconds")
WINDOW_KEYS = ("samples", "context", "reduce")
OUTPUT_CHOICES = ("probabilities", "logits", "log_probabilities", "probs")
NAME_MAX = 100
"""A spec name becomes file and folder names: at most this many characters from NAME_CHARS."""
DATASET_KEYS = ("path", "type", "sample_rate", "clip_seconds", "limit", "only_correct", "label_map")
ATTACK_KEYS = ("budget", "max_frequencies", "query_budget", "max_scale", "pool", "scales", "phases", "min_margin",
               "min_snr_db", "require_int16", "screen_bins", "degenerate_bins", "degenerate_share", "batch_size")
STFT_KEYS = ("frame_sizes", "frame_budget", "neighbours", "min_margin", "min_snr_db", "batch_size")
TOP_KEYS = ("name", "model", "dataset", "freqrex", "attack", "stft_attack", "checks", "peers")

CHECKS: dict[str, tuple[str, ...]] = {
    "accuracy": ("min",),
    "sufficiency": ("max_fraction", "max_mean_fraction"),
    "necessity": ("required",),
    "completeness": ("required",),
    "fourier_attack": ("min_frequencies", "max_success_rate", "max_raw_success_rate", "max_single_rate", "max_five_rate",
                       "max_int16_survival_rate", "budget"),
    "stft_attack": ("max_success_rate", "max_rate_256", "max_rate_512", "max_rate_1024",
                    "max_int16_survival_rate"),
    "composition": ("min_ratio",),
    "transferability": ("min_alpha", "flat_earther"),
}
"""Every check and the settings it takes (all optional), besides the COMMON_CHECK_KEYS every check takes."""
COMMON_CHECK_KEYS = ("on_unmeasured", "min_clips", "confidence")
"""``on_unmeasured: fail | skip`` (default fail), ``min_clips`` (fewest measured clips, default 2),
``confidence`` (compare a rate's Wilson bound instead of its point, e.g. 0.95)."""
GATE_KEYS: dict[str, tuple[str, ...]] = {
    "accuracy": ("min",), "fourier_attack": ("min_frequencies",) + CHECKS["fourier_attack"][1:-1],
    "stft_attack": CHECKS["stft_attack"],
}
"""Checks that make an item only with one of these settings: without one the spec is rejected."""


def _model(ctx: _Ctx, raw: Any, base: Path) -> tuple[dict, int, bool, float]:
    model = ctx.mapping(raw, "model", MODEL_KEYS)
    if not model:
        raise ctx.fail("model", "is required: give 'path' (a model folder or file, or zoo://task/name) "
                                "or 'target' (package.module:factory)")
    out: dict[str, Any] = {}
    if "type" in model:
        out["type"] = ctx.string(model["type"], "model.type", MODEL_TYPES)
    if "path" in model:
        out["path"] = str(ctx.path(model["path"], "model.path", base, "model"))
    if "target" in model:
        target = ctx.string(model["target"], "model.target")
        if ":" not in target:
            raise ctx.fail("model.target", f"must look like 'package.module:factory', got {target!r}")
        out["target"] = target
    if "id" in model:  # a Hugging Face hub id, resolved from the local cache only
        out["id"] = ctx.string(model["id"], "model.id")
    given = [key for key in ("path", "target", "id") if key in out]
    if not given:
        raise ctx.fail("model", "give 'path' (a model folder or file, or zoo://task/name), 'target' or 'id'")
    if len(given) > 1:
        raise ctx.fail("model", f"give one of 'path', 'target' or 'id', not {' and '.join(given)}")
    if "window" in model:  # a streaming model (onnx, tflite): samples per call, carried context, reduction
        window = ctx.mapping(model["window"], "model.window", WINDOW_KEYS)
        out["window"] = {"samples": ctx.integer(window.get("samples"), "model.window.samples", 1),
                         "context": ctx.integer(window.get("context", 0), "model.window.context", 0),
                         "reduce": ctx.string(window.get("reduce", "mean"), "model.window.reduce", ("mean", "max"))}
    if "precision" in model:  # autocast, checked against fp32 on every clip (classifier.QueryEngine.check_precision)
        out["precision"] = ctx.string(model["precision"], "model.precision", ("fp32", "bf16", "fp16"))
    if "window_seconds" in model:  # the model's input window when its extractor does not say (input_window.py)
        out["window_seconds"] = ctx.number(model["window_seconds"], "model.window_seconds", 0.0, open_low=True)
    if "device" in model:
        out["device"] = ctx.string(model["device"], "model.device")
    if "labels" in model:
        out["labels"] = ctx.strings(model["labels"], "model.labels")
        repeated = sorted({label for label in out["labels"] if out["labels"].count(label) > 1})
        if repeated:
            raise ctx.fail("model.labels", f"labels must be unique; repeated: {', '.join(map(repr, repeated))}")
    if "sample_rate" in model:
        out["sample_rate"] = ctx.integer(model["sample_rate"], "model.sample_rate", 1)
    if "outputs" in model:
        out["outputs"] = ctx.string(model["outputs"], "model.outputs", OUTPUT_CHOICES)
    if "isolation" in model:
        out["isolation"] = ctx.string(model["isolation"], "model.isolation", ("thread", "subprocess"))
    if "options" in model:
        out["options"] = ctx.mapping(model["options"], "model.options", None)
    trust = ctx.boolean(model["trust_remote_code"], "model.trust_remote_code") if "trust_remote_code" in model else False
    if trust:
        out["trust_remote_code"] = True
    batch = ctx.integer(model["batch_size"], "model.batch_size", 1) if "batch_size" in model else 64
    timeout = ctx.number(model["timeout_s"], "model.timeout_s", 0.0, open_low=True) if "timeout_s" in model else 600.0
    out["timeout_s"] = timeout  # the loader's self-check and subprocess watchdog honour it too
    return out, batch, trust, timeout


def _dataset(ctx: _Ctx, raw: Any, base: Path) -> DatasetSpec:
    data = ctx.mapping(raw, "dataset", DATASET_KEYS)
    if "path" not in data:
        raise ctx.fail("dataset.path", "is required: a folder with one sub-folder per class, or a CSV manifest")
    path = ctx.path(data["path"], "dataset.path", base, "dataset")
    kind = ctx.string(data["type"], "dataset.type", ("folder", "csv")) if "type" in data else (
        "folder" if path.is_dir() else "csv")
    if kind == "folder" and not path.is_dir():
        raise ctx.fail("dataset.path", f"type 'folder' needs a directory, got the file {path}")
    if kind == "csv" and not path.is_file():
        raise ctx.fail("dataset.path", f"type 'csv' needs a manifest file, got the directory {path}")
    label_map = ctx.mapping(data.get("label_map"), "dataset.label_map", None)
    for k, v in label_map.items():
        ctx.string(v, f"dataset.label_map.{k}")
    return DatasetSpec(
        path=path, type=kind,
        sample_rate=ctx.integer(data["sample_rate"], "dataset.sample_rate", 1) if "sample_rate" in data else None,
        clip_seconds=ctx.number(data["clip_seconds"], "dataset.clip_seconds", 0.0, open_low=True)
        if "clip_seconds" in data else None,
        limit=ctx.integer(data["limit"], "dataset.limit", 1) if "limit" in data else None,
        only_correct=ctx.boolean(data["only_correct"], "dataset.only_correct") if "only_correct" in data else False,
        label_map=tuple(sorted(label_map.items())), roots=ctx.roots,
    )


def _dataclass_section(ctx: _Ctx, raw: Any, key: str, cls: type, overrides: dict[str, Callable[[Any, str], Any]]):
    """Validate a section whose keys are a config dataclass's fields, then build the dataclass."""
    fields = {f.name: f for f in dataclasses.fields(cls)}
    section = ctx.mapping(raw, key, tuple(fields))
    values: dict[str, Any] = {}
    for name, value in section.items():
        sub = f"{key}.{name}"
        if name in overrides:
            values[name] = overrides[name](value, sub)
            continue
        default = fields[name].default
        if value is None and default is None:
            values[name] = None
        elif isinstance(default, bool):
            values[name] = ctx.boolean(value, sub)
        elif isinstance(default, int) or (default is None and str(fields[name].type) == "int | None"):
            values[name] = ctx.integer(value, sub, 0 if name in ("neighbours", "decimals") else 1)
        elif isinstance(default, float):
            values[name] = ctx.number(value, sub, 0.0)
        elif isinstance(default, str):
            values[name] = ctx.string(value, sub)
        else:  # a field without a validator here would reach the engine unchecked
            raise ctx.fail(sub, "cannot be set in a spec")
    try:
        return cls(**values)
    except ValueError as exc:
        raise ctx.fail(key, str(exc)) from None


def _freqrex(ctx: _Ctx, raw: Any) -> FreqReXConfig:
    return _dataclass_section(ctx, raw, "freqrex", FreqReXConfig, {
        "partition": lambda v, k: ctx.string(v, k, ("contiguous", "interleaved")),
        "min_confidence": lambda v, k: ctx.rate(v, k),
        "seed": lambda v, k: ctx.integer(v, k, 0),
    })


def _attack(ctx: _Ctx, raw: Any, check_budget: int | None) -> AttackConfig:
    """The attack section. ``budget`` is the older name of ``max_frequencies`` (bins per candidate);
    ``query_budget`` caps model queries per clip."""
    section = ctx.mapping(raw, "attack", ATTACK_KEYS)
    mutations: list[Mutation] = []
    if "scales" in section:
        mutations += [Mutation("scale", s) for s in ctx.numbers(section["scales"], "attack.scales", 0.0, MAX_ATTACK_SCALE)]
    if "phases" in section:
        mutations += [Mutation("phase", p) for p in ctx.numbers(section["phases"], "attack.phases")]
    kwargs: dict[str, Any] = {}
    if mutations:
        kwargs["mutations"] = tuple(mutations)
    if "budget" in section and "max_frequencies" in section:
        raise ctx.fail("attack.budget", "is the older name of attack.max_frequencies: give one of them")
    for key in ("budget", "max_frequencies"):
        if key in section:
            kwargs["max_frequencies"] = ctx.integer(section[key], f"attack.{key}", 1)
    if check_budget is not None:
        if "max_frequencies" in kwargs and kwargs["max_frequencies"] != check_budget:
            raise ctx.fail("checks.fourier_attack.budget",
                           f"is {check_budget} but attack.max_frequencies is {kwargs['max_frequencies']}: give the "
                           f"budget once, under attack.max_frequencies")
        kwargs["max_frequencies"] = check_budget
    integers = {"query_budget": 3, "screen_bins": 0, "degenerate_bins": 0, "batch_size": 1}
    for key, low in integers.items():
        if key in section:
            kwargs[key] = ctx.integer(section[key], f"attack.{key}", low)
    if "max_scale" in section:
        kwargs["max_scale"] = ctx.number(section["max_scale"], "attack.max_scale", 1.0)
    if "min_margin" in section:
        kwargs["min_margin"] = ctx.number(section["min_margin"], "attack.min_margin", 0.0, 0.99)
    if "min_snr_db" in section:
        kwargs["min_snr_db"] = ctx.number(section["min_snr_db"], "attack.min_snr_db")
    if "degenerate_share" in section:
        kwargs["degenerate_share"] = ctx.rate(section["degenerate_share"], "attack.degenerate_share")
    if "require_int16" in section:
        kwargs["require_int16"] = ctx.boolean(section["require_int16"], "attack.require_int16")
    if "pool" in section:
        kwargs["pool"] = ctx.string(section["pool"], "attack.pool", ATTACK_POOLS)
    try:
        return AttackConfig(**kwargs)
    except ValueError as exc:
        raise ctx.fail("attack", str(exc)) from None


def _stft(ctx: _Ctx, raw: Any) -> STFTAttackConfig:
    def frames(value: Any, key: str) -> tuple[int, ...]:
        if not isinstance(value, list) or not value:
            raise ctx.fail(key, f"must be a non-empty list of integers, got {_kind(value)}")
        sizes = tuple(ctx.integer(v, f"{key}[{i}]", 4) for i, v in enumerate(value))
        for i, size in enumerate(sizes):
            if size % 4:
                raise ctx.fail(f"{key}[{i}]", f"must be a multiple of 4 (hop = frame/4), got {size}")
        return sizes

    return _dataclass_section(ctx, raw, "stft_attack", STFTAttackConfig, {
        "frame_sizes": frames, "min_margin": lambda v, k: ctx.number(v, k, 0.0, 0.99),
        "min_snr_db": lambda v, k: ctx.number(v, k)})


def _checks(ctx: _Ctx, raw: Any) -> dict[str, dict]:
    section = ctx.mapping(raw, "checks", tuple(CHECKS))
    checks: dict[str, dict] = {}
    for name, settings_raw in section.items():
        key = f"checks.{name}"
        hint = {"budget": "the attack budget belongs under attack.budget"} if name != "fourier_attack" else None
        settings = ctx.mapping(settings_raw, key, CHECKS[name] + COMMON_CHECK_KEYS, hint)
        if name in GATE_KEYS and not any(k in settings for k in GATE_KEYS[name]):
            raise ctx.fail(key, f"sets no gate, so it would make no test item: give one of "
                                f"{', '.join(GATE_KEYS[name])}" + (" (the attack budget belongs under attack.budget)"
                                                                   if "budget" in settings else ""))
        out: dict[str, Any] = {}
        for setting, value in settings.items():
            sub = f"{key}.{setting}"
            if setting == "on_unmeasured":
                out[setting] = ctx.string(value, sub, ("fail", "skip"))
            elif setting == "min_clips":
                out[setting] = ctx.integer(value, sub, 1)
            elif setting == "confidence":
                out[setting] = ctx.number(value, sub, 0.5, 0.999)
            elif setting in ("min", "min_ratio", "min_alpha", "max_fraction", "max_mean_fraction") or \
                    setting.startswith("max_"):
                out[setting] = ctx.rate(value, sub)
            elif setting in ("required", "flat_earther"):
                out[setting] = ctx.boolean(value, sub)
            elif setting in ("min_frequencies", "budget"):
                out[setting] = ctx.integer(value, sub, 1)
        checks[name] = out
    return checks


def load_spec(path: str | Path) -> Spec:
    """Read and validate one spec file; raise :class:`SpecError` naming the file and key on any problem."""
    path = Path(path)
    ctx = _Ctx(_shown(path))
    if not path.is_file():
        raise ctx.fail("", "spec file not found")
    ctx.roots = allowed_roots(path)
    if path.stat().st_size > MAX_SPEC_BYTES:
        raise ctx.fail("", f"is {path.stat().st_size} bytes; a spec is at most {MAX_SPEC_BYTES} bytes")
    try:
        raw = yaml_load(path.read_text(encoding="utf-8-sig"))
        _check_size(raw, ctx)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark else ""
        raise ctx.fail("", f"is not valid YAML{where}: {getattr(exc, 'problem', None) or exc}") from None
    except UnicodeDecodeError:
        raise ctx.fail("", "is not UTF-8 text") from None
    except RecursionError:
        raise ctx.fail("", "nests too deeply to be a spec") from None
    top = ctx.mapping(raw, "", TOP_KEYS)
    if not top:
        raise ctx.fail("", "is empty: a spec needs at least 'model' and 'dataset'")
    base = Path(os.path.abspath(path)).parent  # as named: a symlinked spec belongs to the link's project
    name = ctx.string(top["name"], "name") if "name" in top else path.stem
    if not re.fullmatch(r"[A-Za-z0-9._-]{1,%d}" % NAME_MAX, name) or name.startswith("."):
        raise ctx.fail("name", f"must be 1-{NAME_MAX} letters, digits, '.', '_' or '-' (not starting with '.'), "
                               f"so it is a valid file name everywhere; got {_kind(name)}")
    model, batch, trust, timeout = _model(ctx, top.get("model"), base)
    if "dataset" not in top:
        raise ctx.fail("dataset", "is required: give dataset.path")
    checks = _checks(ctx, top.get("checks"))
    return Spec(
        name=name, path=path.resolve(), base_dir=base, model=model, batch_size=batch,
        dataset=_dataset(ctx, top["dataset"], base), freqrex=_freqrex(ctx, top.get("freqrex")),
        attack=_attack(ctx, top.get("attack"), checks.get("fourier_attack", {}).get("budget")),
        stft_attack=_stft(ctx, top.get("stft_attack")), checks=checks,
        peers=tuple(ctx.strings(top["peers"], "peers")) if top.get("peers") is not None else (),
        trust_remote_code=trust, timeout_s=timeout,
    )


MAX_ATTACK_SCALE = 1000.0
"""A bin scaled by more than this (+60 dB) is no longer a perturbation; the float32 waveform would overflow."""
MAX_SPEC_BYTES = 1 << 20
MAX_SPEC_VALUES = 100_000


def _check_size(raw: Any, ctx: _Ctx) -> None:
    """Refuse documents whose YAML aliases expand to huge (``billion laughs``) or endless (self-referencing) data.

    The walk counts every value as if aliases were copied, and stops at the first value over the limit.
    """
    left = MAX_SPEC_VALUES
    stack = [raw]
    while stack:
        value = stack.pop()
        left -= 1
        if left < 0:
            raise ctx.fail("", f"expands to more than {MAX_SPEC_VALUES} values (nested YAML aliases?); "
                               "a spec is a small document")
        if isinstance(value, dict):
            stack.extend(value.keys())
            stack.extend(value.values())
        elif isinstance(value, list):
            stack.extend(value)


def _shown(path: Path) -> str:
    """The spec path as the user sees it: relative to the working directory when it is below it."""
    try:
        return path.resolve().relative_to(Path.cwd().resolve()).as_posix()
    except ValueError:
        return str(path)


SPEC_DIRS = ("model_specs",)
"""Default spec folders (the ``freqrex_specs`` ini option replaces them)."""


def spec_dirs_from_ini(start: str | Path = ".") -> tuple[list[str], Path]:
    """``freqrex_specs`` from the pytest ini file pytest would use from ``start`` (pytest.ini, pyproject.toml
    ``[tool.pytest.ini_options]``, tox.ini, setup.cfg ``[tool:pytest]``; nearest folder first), with the
    folder it is relative to. Default: ``model_specs`` relative to ``start``."""
    import configparser

    try:
        import tomllib
    except ImportError:  # Python 3.10: pyproject.toml is not read
        tomllib = None

    here = Path(start).resolve()
    for folder in (here, *here.parents):
        for name, section in (("pytest.ini", "pytest"), ("pyproject.toml", None), ("tox.ini", "pytest"),
                              ("setup.cfg", "tool:pytest")):
            path = folder / name
            if not path.is_file() or (section is None and tomllib is None):
                continue
            try:
                if section is None:
                    ini = tomllib.loads(path.read_text(encoding="utf-8")).get("tool", {}).get("pytest", {})
                    ini = ini.get("ini_options") if isinstance(ini, dict) else None
                    if ini is None:
                        continue
                    value = ini.get("freqrex_specs")
                else:
                    parser = configparser.ConfigParser(interpolation=None)
                    parser.read(path, encoding="utf-8")
                    if not parser.has_section(section):
                        if name != "pytest.ini":
                            continue
                        return list(SPEC_DIRS), folder
                    value = parser.get(section, "freqrex_specs", fallback=None)
            except (OSError, ValueError, configparser.Error):  # TOMLDecodeError is a ValueError
                continue
            dirs = value.split() if isinstance(value, str) else [str(v) for v in value] if value else list(SPEC_DIRS)
            return dirs, folder
    return list(SPEC_DIRS), here


def in_spec_dir(path: str | Path, dirs: list[str] | tuple[str, ...], root: str | Path) -> bool:
    """THE discovery rule: a spec is a ``*.yaml`` / ``*.yml`` file inside a spec folder. An entry of
    ``freqrex_specs`` that is a bare name (``model_specs``) is any folder of that name; one with a slash is
    a path relative to ``root`` (the ini file's folder). Files named explicitly are specs as well."""
    path = Path(path).resolve()
    if path.suffix not in SPEC_SUFFIXES:
        return False
    for entry in dirs:
        if "/" not in entry and entry in path.parent.parts:
            return True
        folder = (Path(root) / entry).resolve()
        if folder == path.parent or folder in path.parents:
            return True
    return False


def find_specs(paths: list[str | Path], dirs: list[str] | None = None, root: str | Path | None = None) -> list[Path]:
    """Spec files named directly, plus the specs (:func:`in_spec_dir`) under named folders — a named folder
    that is itself inside a spec folder gives all its YAML files (sorted), and so does a named folder that
    holds no spec folder at all (``audit my_specs/``). No paths: the spec folders."""
    if dirs is None:
        dirs, found_root = spec_dirs_from_ini()
        root = root if root is not None else found_root
    root = Path(root if root is not None else ".")
    if not paths:
        paths = [root / e for e in dirs if (root / e).is_dir()]
    found: list[Path] = []
    for item in paths:
        item = Path(item)
        if item.is_dir():
            inside = sorted(p for p in item.rglob("*") if p.is_file() and in_spec_dir(p, dirs, root))
            # a folder named on purpose with no spec folder in it is itself a folder of specs
            found += inside or sorted(p for p in item.iterdir() if _looks_like_spec(p))
        else:
            found.append(item)
    return found


def _looks_like_spec(path: Path) -> bool:
    """A YAML file with a top-level ``model:`` key (read no further than its first 64 KiB)."""
    if not path.is_file() or path.suffix not in SPEC_SUFFIXES:
        return False
    try:
        with path.open("rb") as handle:
            head = handle.read(65536).decode("utf-8", "replace")
    except OSError:
        return False
    return re.search(r"^model\s*:", head, re.MULTILINE) is not None


def find_peer(spec: Spec, name: str) -> Path:
    """The spec file named ``name`` (by its ``name`` key or file stem) in the same folder as ``spec``."""
    for candidate in sorted(spec.base_dir.iterdir()):
        if candidate.suffix not in SPEC_SUFFIXES or candidate.resolve() == spec.path:
            continue
        if candidate.stem == name:
            return candidate
        try:
            raw = yaml_load(candidate.read_text(encoding="utf-8-sig"))
        except Exception:
            continue
        if isinstance(raw, dict) and raw.get("name") == name:
            return candidate
    raise SpecError(_shown(spec.path), "peers", f"no spec named {name!r} in {spec.base_dir}")
