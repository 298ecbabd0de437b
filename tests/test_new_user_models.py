"""Issue #30, a new user's own model: fingerprints that are stable or honest, one import rule for targets,
a spec rate that must agree with the model's, errors that point at the user's file and line."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from freqrex_audit.adapters.loader import load_classifier
from freqrex_audit.cli.main import main
from freqrex_audit.models.classifier import ClassifierError, QueryEngine, model_info
from freqrex_audit.runtime import imports
from tests.audit_models import write_robust_dataset
from tests.audit_runs import REPO, audit, load, subprocess_env

FINGERPRINT = """
import sys
sys.path.insert(0, {repo!r})
from tests import new_user_models as m
clf = m.{factory}()
print(clf.fingerprint + "|" + str(clf.fingerprint_problem))
"""


def fingerprint_in_a_new_process(factory: str) -> tuple[str, str]:
    out = subprocess.run([sys.executable, "-c", FINGERPRINT.format(repo=str(REPO), factory=factory)],
                         capture_output=True, text=True, env=subprocess_env(), check=True).stdout
    fingerprint, problem = out.strip().splitlines()[-1].split("|", 1)
    return fingerprint, problem


def test_a_model_holding_a_native_library_and_a_lock_has_one_fingerprint_in_every_process():
    """A CDLL's _handle and a lock's repr are addresses: hashed, every process got its own fingerprint and the
    cache never hit. The library is hashed by its file's bytes, the lock by its type."""
    first, second = fingerprint_in_a_new_process("library_model"), fingerprint_in_a_new_process("library_model")
    assert first[0] and first == second, (first, second)


def test_a_model_holding_a_handle_is_not_cacheable_and_says_which_attribute_and_what_to_do():
    fingerprint, problem = fingerprint_in_a_new_process("handle_model")
    assert fingerprint == "" and "model.buffer" in problem and "native memory" in problem
    from tests.new_user_models import handle_model

    info = model_info(handle_model())
    assert info["cacheable"] is False
    assert any("not cacheable" in w and "model.buffer" in w and "declare model.fingerprint" in w
               for w in info["warnings"]), info["warnings"]


def handle_project(root: Path, extra: str = "") -> Path:
    write_robust_dataset(root / "data")
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "spec.yaml").write_text(
        f"model: {{target: 'tests.new_user_models:handle_function', labels: [low, high], sample_rate: 8000{extra}}}\n"
        "dataset: {path: data}\nchecks: {accuracy: {min: 0.5}}\n")
    return root


def test_an_uncacheable_model_says_so_once_and_a_declared_fingerprint_makes_it_cacheable(tmp_path, monkeypatch,
                                                                                        capsys):
    monkeypatch.chdir(handle_project(tmp_path))
    doc = load(audit(tmp_path, "spec.yaml"))
    out = capsys.readouterr().out
    assert out.count("not cacheable") == 1 and "model.fingerprint" in out, out
    assert doc["specs"]["spec"]["model"]["cacheable"] is False
    assert not any((tmp_path / "cache").rglob("*.frx"))  # no result entry was written
    (tmp_path / "spec.yaml").write_text((tmp_path / "spec.yaml").read_text().replace(
        "sample_rate: 8000", "sample_rate: 8000, fingerprint: my-vad-1.0"))
    first = load(audit(tmp_path, "spec.yaml"))
    second = load(audit(tmp_path, "spec.yaml"))
    assert first["specs"]["spec"]["model"]["cacheable"] is True and "not cacheable" not in capsys.readouterr().out
    assert second["specs"]["spec"]["model"]["fingerprint"] == first["specs"]["spec"]["model"]["fingerprint"]
    assert second["timings"]["per_spec"]["spec"]["queries"] == 0  # every prediction from the cache


# --- one import rule ---------------------------------------------------------------------------------------

MYMODEL = """
from tests.audit_models import robust

def build(device="cpu"):
    return robust(device)
"""
SPEC = "model: {target: '%s'%s}\ndataset: {path: data}\nchecks: {accuracy: {min: 0.5}}\n"


def user_project(root: Path, target: str = "mymodel:build", where: str = "", ini: str = "[pytest]\n",
                 extra: str = "", module: str = MYMODEL) -> Path:
    write_robust_dataset(root / "data")
    (root / "pytest.ini").write_text(ini)
    folder = root / where if where else root
    folder.mkdir(parents=True, exist_ok=True)
    (folder / (target.split(":")[0].replace(".", "/") + ".py")).write_text(module)
    (root / "spec.yaml").write_text(SPEC % (target, extra))
    return root


def test_the_cli_imports_the_users_module_from_the_project_root_as_pytest_does(tmp_path, monkeypatch):
    """The CLI could not import ``mymodel`` (28 repeated lines, exit 1); pytest could."""
    monkeypatch.chdir(user_project(tmp_path))
    monkeypatch.setattr(sys, "path", [p for p in sys.path if p not in ("", ".", str(tmp_path))])
    doc = load(audit(tmp_path, "spec.yaml"))
    assert doc["run"]["verdict"] == "passed", doc["specs"]["spec"]["verdicts"]
    assert sys.path.index(str(tmp_path)) > sys.path.index(next(p for p in sys.path if "site-packages" in p))


def test_the_ini_pythonpath_is_searched_too_and_reaches_a_subprocess_model(tmp_path, monkeypatch):
    user_project(tmp_path, "pkgmodel:build", where="src", ini="[pytest]\npythonpath = src\n",
                 extra=", isolation: subprocess")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PYTHONPATH", str(REPO))  # the user's module imports this repo's tests package, as from an install
    doc = load(audit(tmp_path, "spec.yaml"))
    assert doc["run"]["verdict"] == "passed", doc["specs"]["spec"]["verdicts"]


def test_a_target_that_cannot_be_found_is_one_spec_error_naming_it_and_the_folders(tmp_path, monkeypatch, capsys):
    user_project(tmp_path)
    (tmp_path / "spec.yaml").write_text(SPEC % ("nosuchmodel:build", ""))
    monkeypatch.chdir(tmp_path)
    assert main(["audit", "spec.yaml", "--report", "reports", "--no-cache", "--device", "cpu"]) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if "nosuchmodel" in line]
    assert len(lines) == 1 and "spec.yaml: model.target" in lines[0] and str(tmp_path.resolve()) in lines[0], err


def test_finding_a_target_runs_none_of_the_users_code(tmp_path, monkeypatch):
    """isolation: subprocess keeps the model's code out of the controller: checking the target exists (at
    collection) imports nothing, not even the package's __init__."""
    package = tmp_path / "noisy"
    package.mkdir()
    marker = tmp_path / "imported"
    (package / "__init__.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    (package / "model.py").write_text(f"open({str(marker)!r}, 'w').close()\n")
    monkeypatch.setattr(sys, "path", [*sys.path])
    imports.use_folders([tmp_path])
    assert sys.path[-1] == str(tmp_path)  # appended: an installed package of the same name wins
    assert imports.missing_target("noisy.model:build") is None and not marker.exists()
    assert "cannot import 'noisy.other'" in imports.missing_target("noisy.other:build")
    assert not marker.exists() and "noisy" not in sys.modules


# --- rates and where errors point ------------------------------------------------------------------------

def test_a_spec_rate_that_disagrees_with_the_models_is_an_error_naming_both():
    with pytest.raises(ClassifierError, match=r"model.sample_rate is 16000 Hz but the model 'band-energy' .*says "
                                              r"8000 Hz"):
        load_classifier({"target": "tests.callable_targets:make_classifier", "sample_rate": 16000}, "cpu")
    with pytest.raises(ClassifierError, match=r"model.sample_rate is 8000 Hz .* says sample_rate = 16000 Hz"):
        load_classifier({"target": "tests.new_user_models:rated_function", "labels": ["low", "high"],
                         "sample_rate": 8000}, "cpu")
    assert load_classifier({"target": "tests.callable_targets:make_classifier", "sample_rate": 8000},
                           "cpu").sample_rate == 8000


def line_of(path: Path, text: str) -> int:
    return next(i for i, line in enumerate(path.read_text().splitlines(), 1) if text in line)


@pytest.mark.parametrize("factory, problem, line", [
    ("logits_without_saying", "did not return probabilities", "def fn"),
    ("fails_in_torch", "predict raised RuntimeError", "torch.stft(x, n_fft=4096"),
])
def test_a_models_error_points_at_the_users_file_and_line(factory, problem, line):
    """Not at freqrex_audit's boundary check, nor at torch's line: at the user's function."""
    import torch

    clf = load_classifier({"target": f"tests.new_user_models:{factory}"}, "cpu", self_check=False)
    with pytest.raises(ClassifierError) as error:
        QueryEngine(clf).query(torch.zeros(2, 800))
    source = REPO / "tests" / "new_user_models.py"
    assert problem in str(error.value) and f"new_user_models.py:{line_of(source, line)}" in str(error.value), \
        str(error.value)


def test_a_factory_that_raises_points_at_the_users_line(tmp_path, monkeypatch):
    module = "def build(device='cpu'):\n    table = {}\n    return table['weights']\n"
    user_project(tmp_path, "brokenmodel:build", module=module)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", [*sys.path])
    imports.use_folders([tmp_path])
    with pytest.raises(ClassifierError, match=r"the factory raised KeyError: 'weights' \(brokenmodel.py:3\)"):
        load_classifier({"target": "brokenmodel:build"}, "cpu")

