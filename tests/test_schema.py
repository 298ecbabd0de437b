"""``freqrex-audit schema``: a JSON Schema generated from specs.py's key tables that every real spec
satisfies and that flags unknown keys (what an editor needs to autocomplete and warn)."""

from __future__ import annotations

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from freqrex_audit.cli import main
from freqrex_audit.schema import spec_schema

REPO = Path(__file__).resolve().parents[1]
SPECS = sorted((REPO / "model_specs").glob("*.yaml")) + [REPO / "docs" / "examples" / "instruments-ast.yaml"]


@pytest.mark.parametrize("path", SPECS, ids=lambda p: p.name)
def test_every_real_spec_validates(path: Path):
    jsonschema.validate(yaml.safe_load(path.read_text()), spec_schema())


@pytest.mark.parametrize("where", [(), ("checks", "fourier_attack"), ("attack",), ("model",)])
def test_unknown_keys_are_flagged(where):
    doc = yaml.safe_load(SPECS[0].read_text())
    node = doc
    for key in where:
        node = node[key]
    node["max_sucess_rate"] = 0.5  # a typo
    with pytest.raises(jsonschema.ValidationError, match="max_sucess_rate"):
        jsonschema.validate(doc, spec_schema())


def test_cli_prints_the_schema(capsys):
    assert main(["schema"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == spec_schema() and "fourier_attack" in printed["properties"]["checks"]["properties"]
