"""Discovery in one place: ``freqrex_specs`` in the ini file names the spec folders for pytest and the CLI,
and one rule says which YAML files are specs (inside a spec folder, or named explicitly)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from freqrex_audit.cli.main import main
from freqrex_audit.specs.loader import find_specs, in_spec_dir, spec_dirs_from_ini
from tests.audit_models import write_robust_dataset
from tests.test_plugin_e2e import ROBUST

REPO = Path(__file__).resolve().parents[1]


def test_the_rule(tmp_path: Path):
    assert in_spec_dir(tmp_path / "a" / "model_specs" / "x.yaml", ["model_specs"], tmp_path)
    assert in_spec_dir(tmp_path / "model_specs" / "deep" / "x.yml", ["model_specs"], tmp_path)
    assert not in_spec_dir(tmp_path / "model_specs" / "x.json", ["model_specs"], tmp_path)
    assert not in_spec_dir(tmp_path / ".github" / "ci.yaml", ["model_specs"], tmp_path)
    assert in_spec_dir(tmp_path / "audits" / "release" / "x.yaml", ["audits/release"], tmp_path)
    assert not in_spec_dir(tmp_path / "other" / "release" / "x.yaml", ["audits/release"], tmp_path)


@pytest.mark.parametrize("ini, text", [("pytest.ini", "[pytest]\nfreqrex_specs = audits more\n"),
                                       ("tox.ini", "[pytest]\nfreqrex_specs = audits more\n"),
                                       ("setup.cfg", "[tool:pytest]\nfreqrex_specs = audits more\n"),
                                       ("pyproject.toml", "[tool.pytest.ini_options]\nfreqrex_specs = ['audits', 'more']\n")])
def test_the_cli_reads_the_ini_pytest_reads(tmp_path: Path, ini: str, text: str):
    (tmp_path / ini).write_text(text)
    (tmp_path / "sub").mkdir()
    assert spec_dirs_from_ini(tmp_path / "sub") == (["audits", "more"], tmp_path)
    (tmp_path / ini).write_text("")
    assert spec_dirs_from_ini(tmp_path)[0] == ["model_specs"]


@pytest.fixture
def project(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> pytest.Pytester:
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(REPO))
    pytester.makeini("[pytest]\nfreqrex_specs = audits\nfreqrex_cache =\n")
    write_robust_dataset(pytester.path / "data" / "robust")
    (pytester.mkdir("audits") / "robust.yaml").write_text(ROBUST)
    (pytester.mkdir("model_specs") / "other.yaml").write_text(ROBUST.replace("name: robust", "name: other"))
    (pytester.mkdir("ci") / "workflow.yaml").write_text("on: push\n")
    return pytester


def test_pytest_and_the_cli_find_the_same_specs(project, monkeypatch):
    items = project.inline_genitems()[0]
    assert {i.nodeid.split("::")[0] for i in items} == {"audits/robust.yaml"}  # model_specs is not configured
    monkeypatch.chdir(project.path)
    expected = [(project.path / "audits" / "robust.yaml").resolve()]
    assert [p.resolve() for p in find_specs([])] == expected
    assert [p.resolve() for p in find_specs(["."])] == expected  # not ci/workflow.yaml, not model_specs/
    named = project.inline_genitems("model_specs/other.yaml")[0]  # a file named explicitly is a spec
    assert {i.nodeid.split("::")[0] for i in named} == {"model_specs/other.yaml"}


def test_a_folder_without_specs_says_the_rule(tmp_path: Path, capsys, monkeypatch):
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    (tmp_path / "ci.yaml").write_text("on: push\n")
    monkeypatch.chdir(tmp_path)
    assert main(["audit", ".", "--no-cache"]) == 2
    assert "inside a spec folder: model_specs; set freqrex_specs" in capsys.readouterr().err


def test_a_folder_named_on_purpose_is_a_folder_of_specs(tmp_path: Path):
    """``audit my_specs/``: a named folder holding no spec folder gives its YAML files that declare a model."""
    (tmp_path / "pytest.ini").write_text("[pytest]\n")
    folder = tmp_path / "my_specs"
    folder.mkdir()
    (folder / "kws.yaml").write_text("name: kws\nmodel: {target: 'x:y'}\n")
    (folder / "ci.yaml").write_text("on: push\n")
    assert find_specs([folder], ["model_specs"], tmp_path) == [folder / "kws.yaml"]
    assert find_specs([tmp_path], ["model_specs"], tmp_path) == []  # the project root: only spec folders
