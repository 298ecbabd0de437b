"""Issue #20, classes 3-5: one path policy, isolated failures, nothing dropped silently."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import soundfile as sf
import numpy as np
from hypothesis import HealthCheck, example, given, settings, strategies as st

from freqrex_audit.adapters import load_classifier
from freqrex_audit.models.classifier import ClassifierError
from freqrex_audit.cli.main import main
from freqrex_audit.audit.datasets import DatasetError, list_samples
from freqrex_audit.runtime.paths import allowed_roots, unwritable
from freqrex_audit.specs.loader import SpecError, load_spec

SPEC = "model: {target: 'tests.audit_models:robust'}\ndataset: {path: data}\n"


def project(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "pyproject.toml").write_text("")
    return root


def clip(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, (0.3 * np.sin(np.arange(800) / 3)).astype(np.float32), 8000)
    return path


# --- class 3: paths -----------------------------------------------------------------------------------

def test_a_symlinked_spec_takes_its_roots_from_the_project_holding_the_link(tmp_path):
    mine, theirs = project(tmp_path / "mine"), project(tmp_path / "theirs")
    (theirs / "spec.yaml").write_text(SPEC)
    (mine / "specs").mkdir()
    (mine / "specs" / "linked.yaml").symlink_to(theirs / "spec.yaml")
    assert allowed_roots(mine / "specs" / "linked.yaml")[0] == mine.resolve()


def test_errors_never_echo_the_content_of_a_file_read_as_a_spec(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOKEN=" + "s3cr3t" * 50)
    link = project(tmp_path / "p") / "evil.yaml"
    link.symlink_to(secret)
    with pytest.raises(SpecError) as info:
        load_spec(link)
    assert "s3cr3t" * 3 not in str(info.value) and len(str(info.value)) < 400


def test_a_model_descriptor_cannot_enable_remote_code_or_leave_the_roots(tmp_path):
    root = project(tmp_path / "p")
    model = root / "model"
    model.mkdir()
    (model / "freqrex_model.yaml").write_text("target: 'tests.audit_models:robust'\ntrust_remote_code: true\n")
    with pytest.raises(ClassifierError, match="cannot enable remote code; only the spec can"):
        load_classifier({"path": "model"}, device="cpu", base_dir=root)
    outside = tmp_path / "outside.pt"
    outside.write_bytes(b"")
    (model / "freqrex_model.yaml").write_text(f"path: {outside}\ntype: torchscript\n")
    with pytest.raises(ClassifierError, match="outside the allowed roots"):
        load_classifier({"path": "model"}, device="cpu", base_dir=root)
    (model / "freqrex_model.yaml").write_text("labels: [a]\nlabels: [b]\n")
    with pytest.raises(ClassifierError, match="given twice"):
        load_classifier({"path": "model"}, device="cpu", base_dir=root)


# --- class 4: isolation -------------------------------------------------------------------------------

@pytest.mark.parametrize("name, problem", [("bad\x00name", "letters, digits"), ("x" * 300, "1-100"),
                                           ("a/b", "letters")])
def test_spec_names_are_restricted_to_portable_file_names(tmp_path, name, problem):
    path = project(tmp_path) / "s.yaml"
    (tmp_path / "data").mkdir()
    path.write_text(f"name: {name!r}\n" + SPEC)
    with pytest.raises(SpecError, match=problem):
        load_spec(path)


def test_duplicate_yaml_keys_and_absurd_attack_scales_are_errors(tmp_path):
    path = project(tmp_path) / "s.yaml"
    (tmp_path / "data").mkdir()
    path.write_text(SPEC + "dataset: {path: other}\n")
    with pytest.raises(SpecError, match="key 'dataset' is given twice"):
        load_spec(path)
    path.write_text(SPEC + "attack: {scales: [1.0e+30]}\n")
    with pytest.raises(SpecError, match=r"attack.scales\[0\]: must be in \[0, 1000\]"):
        load_spec(path)


@pytest.mark.parametrize("argv, problem", [(["--seed", "-1"], "--seed: must be an integer in"),
                                           (["--samples", "-3"], "--samples: must be an integer ≥ 1")])
def test_cli_options_are_validated_at_parse_time(tmp_path, capsys, argv, problem):
    with pytest.raises(SystemExit) as exit_info:
        main(["audit", str(tmp_path), *argv])
    assert exit_info.value.code == 2 and problem in capsys.readouterr().err


def test_an_audit_with_no_specs_or_an_unwritable_report_folder_exits_2(tmp_path, capsys):
    assert main(["audit", str(tmp_path), "--no-cache"]) == 2
    assert "nothing to audit" in capsys.readouterr().err
    spec = project(tmp_path / "p") / "s.yaml"
    spec.write_text(SPEC)
    (tmp_path / "reports").write_text("a file")
    assert main(["audit", str(spec), "--report", str(tmp_path / "reports"), "--no-cache"]) == 2
    assert "report folder" in capsys.readouterr().err and unwritable(tmp_path / "reports", "report")


# --- class 5: nothing disappears ----------------------------------------------------------------------

def dataset_spec(tmp_path: Path, data: str = "data") -> object:
    path = project(tmp_path) / "s.yaml"
    path.write_text(SPEC.replace("path: data", f"path: {data}"))
    return load_spec(path).dataset


def test_dangling_looping_and_undecodable_files_are_listed_with_their_reason(tmp_path):
    clip(tmp_path / "data" / "low" / "ok.wav")
    (tmp_path / "data" / "low" / "gone.wav").symlink_to(tmp_path / "missing.wav")
    (tmp_path / "data" / "low" / "loop.wav").symlink_to(tmp_path / "data" / "low" / "loop.wav")
    wav = clip(tmp_path / "data" / "high" / "plain.wav").read_bytes()
    with open(os.fsencode(str(tmp_path / "data" / "high")) + b"/caf\xe9.wav", "wb") as handle:  # Latin-1 name
        handle.write(wav)
    problems = {s.id: s.problem for s in list_samples(dataset_spec(tmp_path))}
    assert problems["low/ok.wav"] is None
    assert "dangling symlink" in problems["low/gone.wav"] and "symlink loop" in problems["low/loop.wav"]
    assert "not valid UTF-8" in problems["high/caf\\xe9.wav"]


def test_manifests_accept_a_bom_and_refuse_duplicate_rows_and_huge_fields(tmp_path):
    clip(tmp_path / "a.wav")
    manifest = tmp_path / "m.csv"
    manifest.write_text("\ufeffpath,label\na.wav,low\n", encoding="utf-8")
    (sample,) = list_samples(dataset_spec(tmp_path, "m.csv"))
    assert sample.label == "low"
    manifest.write_text("path,label\na.wav,low\na.wav,high\n")
    with pytest.raises(DatasetError, match="line 3: 'a.wav' is listed twice"):
        list_samples(dataset_spec(tmp_path, "m.csv"))
    manifest.write_text("path,label\na.wav," + "x" * (1 << 20) + "\n")
    with pytest.raises(DatasetError, match="m.csv: line 2: "):
        list_samples(dataset_spec(tmp_path, "m.csv"))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.text(max_size=30), st.text(max_size=10)), max_size=6))
@example(rows=[("~0", "")])  # found by this test: an unknown user's home crashed pathlib's expanduser
def test_fuzzed_manifest_rows_give_samples_or_one_dataset_error(tmp_path, rows):
    clip(tmp_path / "a.wav")
    lines = ["path,label"] + [f'"{p.replace(chr(34), "")}",{lab.replace(",", "")}' for p, lab in rows]
    (tmp_path / "m.csv").write_text("\n".join(lines) + "\n", encoding="utf-8", errors="surrogatepass")
    try:
        samples = list_samples(dataset_spec(tmp_path, "m.csv"))
    except (DatasetError, UnicodeEncodeError):
        return
    assert len(samples) == len({s.id for s in samples})


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(
                        st.sampled_from(["name", "model", "dataset", "attack", "checks", "path", "target",
                                         "outputs", "labels", "scales", "x"]), inner, max_size=4), max_leaves=12))
def test_fuzzed_spec_documents_load_or_raise_a_spec_error(tmp_path, document):
    import yaml

    path = project(tmp_path) / "fuzz.yaml"
    path.write_text(yaml.safe_dump(document))
    try:
        load_spec(path)
    except SpecError as exc:
        assert str(exc).startswith("fuzz.yaml") or "fuzz.yaml" in str(exc)


@pytest.mark.parametrize("text, key", [("{not json", "not valid JSON"), ('{"specs": []}', "specs:"),
                                       ('{"specs": {"s": {"metrics": {"a.b": "high"}}}}', "specs.s.metrics.a.b")])
def test_a_hand_edited_baseline_is_an_error_naming_the_file_and_key(tmp_path, text, key):
    from freqrex_audit.runs.baselines import BaselineError, load_baseline

    (tmp_path / "b.json").write_text(text)
    with pytest.raises(BaselineError, match=f"b.json: {key}"):
        load_baseline(tmp_path / "b.json")


def test_under_pytest_a_manifest_with_a_1_mib_field_fails_only_its_own_spec(pytester, monkeypatch, tmp_path):
    from tests.audit_models import write_robust_dataset
    from tests.audit_runs import REPO

    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(REPO), os.environ.get("PYTHONPATH", "")]))
    monkeypatch.syspath_prepend(str(REPO))
    pytester.makeini(f"[pytest]\nfreqrex_cache = {tmp_path / 'cache'}\n")
    write_robust_dataset(pytester.path / "data", per_class=1)
    (pytester.path / "huge.csv").write_text("path,label\nx.wav," + "x" * (1 << 20) + "\n")
    specs = pytester.mkdir("model_specs")
    body = "model: {target: 'tests.audit_models:robust'}\ndataset: {path: ../%s, clip_seconds: 0.25}\n" \
           "checks: {accuracy: {min: 0.5}}\n"
    (specs / "good.yaml").write_text(body % "data")
    (specs / "huge.yaml").write_text(body % "huge.csv")
    result = pytester.runpytest("model_specs", "-p", "no:cacheprovider", "-rA")
    text = "\n".join(result.outlines)
    assert "huge.csv: line 2: not a readable CSV row (field larger than field limit" in text
    assert "x" * 200 not in text
    assert any(line.startswith("PASSED model_specs/good.yaml::") for line in result.outlines), text[-3000:]


def test_a_path_under_an_unknown_user_s_home_is_a_missing_file_not_a_crash(tmp_path):
    """``~name`` is expanded as the shell expands it: for a user this machine does not have it stays as written, so a
    manifest row, a model path or a spec's dataset naming one is a missing file with its line and path, never
    pathlib's bare "Could not determine home directory" (hypothesis found it in a manifest row)."""
    clip(tmp_path / "a.wav")
    (tmp_path / "m.csv").write_text("path,label\n~0,low\n~nosuchuser0/a.wav,low\na.wav,low\n")
    samples = {s.id: s for s in list_samples(dataset_spec(tmp_path, "m.csv"))}
    assert samples["a.wav"].problem is None
    for name, line in (("~0", 2), ("~nosuchuser0/a.wav", 3)):
        assert samples[name].missing and f"m.csv: line {line}: names '{name}', which does not exist" in samples[name].problem
    for kind, what in (("transformers", "transformers model directory not found"),
                       ("torchscript", "TorchScript file not found")):
        with pytest.raises(ClassifierError, match=f"~nosuchuser0/model: {what}"):
            load_classifier({"type": kind, "path": "~nosuchuser0/model"})
    spec = project(tmp_path) / "home.yaml"
    spec.write_text("model: {target: 'tests.callable_targets:make_classifier'}\ndataset: {path: '~nosuchuser0/data'}\n")
    with pytest.raises(SpecError, match="home.yaml"):
        load_spec(spec)
