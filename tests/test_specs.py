"""specs.py: strict validation whose errors name the spec file and the key path."""

from __future__ import annotations

from pathlib import Path

import pytest

from freqrex_audit.specs.loader import SpecError, load_spec

GOOD = """
name: demo
model: {path: model, batch_size: 32}
dataset: {path: data, clip_seconds: 1.0, limit: 4, only_correct: true}
freqrex: {seed: 0}
checks: {accuracy: {min: 0.7}, sufficiency: {}, fourier_attack: {budget: 1000, max_success_rate: 0.5}}
peers: [other]
"""


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "model").mkdir()
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "model_specs").mkdir()
    (tmp_path / "pyproject.toml").write_text("")  # marks the project: model_specs/ may reach ../model
    monkeypatch.chdir(tmp_path)
    return tmp_path


def write(folder: Path, text: str) -> Path:
    path = folder / "model_specs" / "x.yaml"
    path.write_text(text.replace("path: model", "path: ../model").replace("path: data", "path: ../data"))
    return path


def test_the_zoo_engineers_draft_shape_loads(folder):
    spec = load_spec(write(folder, GOOD))
    assert spec.name == "demo" and spec.batch_size == 32 and spec.peers == ("other",)
    assert spec.attack.budget == 1000  # checks.fourier_attack.budget is the attack budget
    assert spec.dataset.limit == 4 and spec.dataset.only_correct and spec.dataset.type == "folder"
    assert Path(spec.model["path"]) == (folder / "model").resolve() and "batch_size" not in spec.model
    assert spec.freqrex.seed == 0 and spec.checks["accuracy"] == {"min": 0.7}


@pytest.mark.parametrize("edit,key,problem", [
    (("checks: {", "checks: {colour: {}, "), "checks.colour", "unknown key"),
    (("freqrex: {seed: 0}", "freqrex: {seed: 0, parts: four}"), "freqrex.parts", "must be an integer"),
    (("accuracy: {min: 0.7}", "accuracy: {min: 1.5}"), "checks.accuracy.min", "must be in [0, 1], got 1.5"),
    (("budget: 1000,", "budget: -3,"), "checks.fourier_attack.budget", "must be ≥ 1"),
    (("fourier_attack: {budget: 1000, max_success_rate: 0.5}", "fourier_attack: {budget: 1000}"),
     "checks.fourier_attack", "sets no gate, so it would make no test item"),
    (("sufficiency: {}", "sufficiency: {}, stft_attack: {}"), "checks.stft_attack", "sets no gate"),
    (("accuracy: {min: 0.7}", "accuracy: {}"), "checks.accuracy", "give one of min"),
    (("sufficiency: {}", "sufficiency: {on_unmeasured: maybe}"), "checks.sufficiency.on_unmeasured", "must be one of"),
    (("accuracy: {min: 0.7}", "accuracy: {min: 0.7, confidence: 2}"), "checks.accuracy.confidence", "must be in"),
    (("freqrex: {seed: 0}", "freqrex: {seed: 0}\nattack: {budget: -1}"), "attack.budget", "must be ≥ 1, got -1"),
    (("path: model", "path: missing_model"), "model.path", "model not found"),
    (("path: data", "path: no_such_data"), "dataset.path", "dataset not found"),
    (("limit: 4", "limit: 4, colour: red"), "dataset.colour", "unknown key"),
    (("sufficiency: {}", "sufficiency: {max_fraction: 2}"), "checks.sufficiency.max_fraction", "must be in [0, 1]"),
    (("only_correct: true", "only_correct: yes please"), "dataset.only_correct", "must be true or false"),
    (("sufficiency: {}", "sufficiency: {budget: 3}"), "checks.sufficiency.budget", "attack.budget"),
    (("freqrex: {seed: 0}", "freqrex: {seed: 0}\nattack: {budget: 10}"), "checks.fourier_attack.budget",
     "give the budget once"),
])
def test_errors_name_file_and_key(folder, edit, key, problem):
    path = write(folder, GOOD.replace(*edit))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    message = str(info.value)
    assert message.startswith(f"model_specs/x.yaml: {key}: "), message
    assert problem in message
    assert info.value.key == key


def test_yaml_syntax_error_and_missing_sections(folder):
    with pytest.raises(SpecError, match=r"x.yaml: is not valid YAML \(line"):
        load_spec(write(folder, "model: {path: [\n"))
    with pytest.raises(SpecError, match="dataset: is required"):
        load_spec(write(folder, "model: {path: model}\n"))
    with pytest.raises(SpecError, match="model: is required"):
        load_spec(write(folder, "dataset: {path: data}\n"))


def test_attack_mutations_and_stft_settings(folder):
    spec = load_spec(write(folder, GOOD + "attack: {scales: [0.5, 2.0], phases: [90]}\n"
                                          "stft_attack: {frame_sizes: [256, 512], neighbours: 0}\n"))
    assert [str(m) for m in spec.attack.ordered] == ["×0.5", "×2", "+90°"]
    assert spec.stft_attack.frame_sizes == (256, 512) and spec.stft_attack.neighbours == 0
    with pytest.raises(SpecError, match=r"stft_attack.frame_sizes\[0\]: must be a multiple of 4"):
        load_spec(write(folder, GOOD + "stft_attack: {frame_sizes: [250]}\n"))


def test_every_problem_is_reported_each_with_its_line(folder):
    text = GOOD.replace("limit: 4", "limit: -4").replace("freqrex: {seed: 0}", "freqrex: {seed: 0}\nattack:\n  pool: everything")
    with pytest.raises(SpecError) as info:
        load_spec(write(folder, text))
    lines = str(info.value).splitlines()
    assert info.value.key == "dataset.limit" and info.value.line == 4
    assert lines == ["model_specs/x.yaml: dataset.limit: must be ≥ 1, got -4 (line 4)",
                     "model_specs/x.yaml: attack.pool: must be one of sufficient, ranking, got 'everything' (line 7)"]
    assert [(e.key, e.line) for e in info.value.also] == [("attack.pool", 7)]
