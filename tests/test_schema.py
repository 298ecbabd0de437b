"""The spec schema, declared once (spec_model.py, pydantic): ``freqrex-audit schema`` prints its JSON Schema,
every real spec satisfies it, it flags unknown keys, it agrees with the loader on what is valid (so an
editor warns exactly where load_spec would fail, paths aside), and it cannot drift from the engine's configs."""

from __future__ import annotations

import dataclasses
import json
from pathlib import Path

import jsonschema
import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import ValidationError

from freqrex_audit.specs import loader as specs
from freqrex_audit.cli.main import main
from freqrex_audit.engine import AttackConfig, FreqReXConfig, STFTAttackConfig
from freqrex_audit.specs.json_schema import spec_schema
from freqrex_audit.specs.document import AttackSection, FreqrexSection, SpecDocument, STFTAttackSection

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "model_specs").glob("*.yaml")) + [REPO / "docs" / "examples" / "instruments-ast.yaml"]
SCHEMA = spec_schema()


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_real_spec_validates(path: Path):
    jsonschema.validate(yaml.safe_load(path.read_text()), SCHEMA)


@pytest.mark.parametrize("where", [(), ("checks", "fourier_attack"), ("attack",), ("model",)])
def test_unknown_keys_are_flagged(where):
    doc = yaml.safe_load(SPECS[0].read_text())
    node = doc
    for key in where:
        node = node[key]
    node["max_sucess_rate"] = 0.5  # a typo
    with pytest.raises(jsonschema.ValidationError, match="max_sucess_rate"):
        jsonschema.validate(doc, SCHEMA)


def test_cli_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == SCHEMA and "fourier_attack" in printed["properties"]["checks"]["properties"]
    attack = printed["properties"]["attack"]["properties"]
    # what an editor shows: a description, the engine's default, bounds and choices
    assert attack["query_budget"]["default"] == AttackConfig().query_budget and attack["query_budget"]["minimum"] == 3
    assert attack["pool"]["enum"] == ["sufficient", "ranking"] and attack["pool"]["description"]
    assert "$ref" not in json.dumps(printed)  # inline: each key's rules where the key is


def test_the_committed_schema_is_current_and_the_demo_specs_point_at_it():
    committed = REPO / "docs" / "spec.schema.json"
    assert json.loads(committed.read_text(encoding="utf-8")) == SCHEMA, \
        "regenerate it: freqrex-audit schema > docs/spec.schema.json"
    for path in sorted((REPO / "model_specs").glob("*.yaml")):
        modeline = path.read_text(encoding="utf-8").splitlines()[0]
        assert modeline.startswith("# yaml-language-server: $schema="), path.name
        assert (path.parent / modeline.split("=", 1)[1]).resolve() == committed, path.name


@pytest.mark.parametrize("config,section,not_in_spec", [
    (FreqReXConfig, FreqrexSection, set()),
    (STFTAttackConfig, STFTAttackSection, set()),
    # the ladder is given as scales / phases; the descent's and the boundary search's inner knobs are the
    # engine's, not a spec's (#29: continuous, ladder_share, sparse_bins, noise_draws and seed are keys)
    (AttackConfig, AttackSection, {"mutations", "branch", "beam", "nudge", "max_set", "ladder_sets", "search_chunk",
                                   "walk_flips", "tol_db", "gradient_pool", "gradient_probe_db", "probes", "tie_db"}),
])
def test_every_engine_knob_has_a_spec_key_with_the_engines_default(config, section, not_in_spec):
    """A field added to an engine config fails here until its one-line spec field is added to spec_model.py."""
    engine = {f.name for f in dataclasses.fields(config)} - not_in_spec
    missing = engine - set(section.model_fields)
    assert not missing, f"add to {section.__name__} in spec_model.py: {sorted(missing)}"
    defaults = config()
    for name in engine:
        declared = section.model_fields[name].default
        assert declared == getattr(defaults, name) or list(getattr(defaults, name)) == declared, name


# --- the schema and the loader agree --------------------------------------------------------------------

BASE = {"model": {"path": "m"}, "dataset": {"path": "d"}, "checks": {"accuracy": {"min": 0.5}}}
leaf = st.one_of(st.none(), st.booleans(), st.integers(-3, 2000), st.sampled_from([0, 1, 4, 6, 256, 10**6]),
                 st.floats(-2, 2000, allow_nan=False).filter(lambda x: not x.is_integer()),
                 st.sampled_from(["", "a", "a:b", ".x", "fail", "skip", "mean", "ranking", "interleaved", "onnx",
                                  "literal", "bf16", "csv", "thread"]))
value = st.one_of(leaf, leaf, st.lists(leaf, max_size=3),  # mostly scalars: the keys' types and bounds
                  st.dictionaries(st.sampled_from(["a", "min", "samples"]), leaf, max_size=2))
KEY_PATHS = sorted({(k,) for k in specs.TOP_KEYS} | {("model", k) for k in specs.MODEL_KEYS}
                   | {("model", "window", k) for k in specs.WINDOW_KEYS} | {("dataset", k) for k in specs.DATASET_KEYS}
                   | {("freqrex", k) for k in specs.FREQREX_KEYS} | {("attack", k) for k in specs.ATTACK_KEYS}
                   | {("stft_attack", k) for k in specs.STFT_KEYS} | {("checks", c) for c in specs.CHECKS}
                   | {("checks", c, k) for c, keys in specs.CHECKS.items() for k in (*keys, *specs.COMMON_CHECK_KEYS)})


@pytest.mark.parametrize("path", KEY_PATHS, ids=".".join)
@settings(max_examples=30, deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
@given(value=value)
def test_schema_and_loader_agree_on_every_key(path, value):
    """Integral floats (3.0) are left out: JSON Schema counts them as integers, the loader (rightly) does not."""
    doc = json.loads(json.dumps(BASE))
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key), dict) or key not in node else node
        if not isinstance(node, dict):
            return
    node[path[-1]] = value
    try:
        SpecDocument.model_validate(doc)
        loads = True
    except ValidationError:
        loads = False
    assert jsonschema.Draft202012Validator(SCHEMA).is_valid(doc) == loads, (doc, loads)
