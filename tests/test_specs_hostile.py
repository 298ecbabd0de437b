"""Hostile and malformed specs: path escapes, YAML bombs, label mismatches, and fuzzing of load_spec.

The property throughout: a spec either loads or raises a :class:`SpecError` naming the file (and the
key when there is one) — never another exception, never a file read from outside the spec's project.
"""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from freqrex_audit.specs import loader as specs
from freqrex_audit.audit.run import run_spec
from freqrex_audit.engine import FreqReXConfig
from freqrex_audit.runtime.paths import ROOTS_ENV, allowed_roots
from freqrex_audit.specs.loader import SpecError, load_spec
from tests.audit_models import write_fragile_dataset, write_robust_dataset

GOOD = {
    "model": {"target": "tests.audit_models:robust", "batch_size": 16},
    "dataset": {"path": "../data", "clip_seconds": 0.25, "limit": 2},
    "freqrex": {"seed": 0},
    "checks": {"accuracy": {"min": 0.5}, "sufficiency": {}, "fourier_attack": {"max_success_rate": 1.0}},
}


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project folder (it has pyproject.toml) with model_specs/ and data/, next to an outside/ folder."""
    root = tmp_path / "project"
    (root / "model_specs").mkdir(parents=True)
    (root / "pyproject.toml").write_text("[project]\nname = 'x'\n")
    write_robust_dataset(root / "data", per_class=1)
    write_robust_dataset(tmp_path / "outside", per_class=1)
    monkeypatch.delenv(ROOTS_ENV, raising=False)
    monkeypatch.chdir(root)
    return root


def write(project: Path, doc: dict | str, name: str = "x.yaml") -> Path:
    path = project / "model_specs" / name
    path.write_text(doc if isinstance(doc, str) else yaml.safe_dump(doc))
    return path


def with_dataset(path: str, **settings: object) -> dict:
    return {**GOOD, "dataset": {**GOOD["dataset"], "path": path, **settings}}


def test_the_project_is_the_nearest_folder_with_a_marker(project):
    assert allowed_roots(write(project, GOOD))[0] == project.resolve()
    assert load_spec(write(project, GOOD)).dataset.path == (project / "data").resolve()  # ../ inside: fine


@pytest.mark.parametrize("escape", ["../../outside", "{outside}", "../data/../../outside"])
def test_paths_leaving_the_project_are_refused(project, escape):
    path = write(project, with_dataset(escape.format(outside=project.parent / "outside")))
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == "dataset.path" and "outside the allowed roots" in info.value.problem
    assert str(info.value).startswith("model_specs/x.yaml: dataset.path: ")


def test_a_symlink_out_of_the_project_is_refused(project):
    (project / "linked").symlink_to(project.parent / "outside")
    with pytest.raises(SpecError, match="dataset.path: .*resolves to .*outside, outside the allowed roots"):
        load_spec(write(project, with_dataset("../linked")))


def test_allowed_roots_can_be_widened_by_environment(project, monkeypatch):
    monkeypatch.setenv(ROOTS_ENV, str(project.parent / "outside"))
    spec = load_spec(write(project, with_dataset(str(project.parent / "outside"))))
    assert spec.dataset.path == (project.parent / "outside").resolve()


def test_manifest_entries_outside_the_project_are_skipped_unread(project):
    secret = project.parent / "outside" / "low" / "000.wav"
    (project / "data" / "manifest.csv").write_text(
        f"path,label\nlow/000.wav,low\n../../outside/low/000.wav,low\n{secret},high\n")
    result = run_spec(load_spec(write(project, with_dataset("../data/manifest.csv", limit=9))), "cpu")
    status = {r.sample.id: (r.status, r.reason) for r in result.samples}
    assert status["low/000.wav"][0] == "ok"
    for escaped in ("../../outside/low/000.wav", str(secret)):
        assert status[escaped][0] == "skipped" and "outside the allowed roots" in status[escaped][1]
    assert all(r.predicted is None for r in result.samples if r.status == "skipped")  # never classified


def billion_laughs(levels: int = 9) -> str:
    """Nine aliases per level, nine levels: ~10^9 strings once expanded, a few hundred bytes written."""
    lines = ["      l0: &l0 [" + ", ".join(["lol"] * 9) + "]"]
    lines += [f"      l{i}: &l{i} [" + ", ".join([f"*l{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return ("model:\n  target: tests.audit_models:robust\n  options:\n    bomb:\n" + "\n".join(lines)
            + "\ndataset: {path: ../data}\n")


@pytest.mark.parametrize("text,problem", [
    (billion_laughs(), "expands to more than 100000 values"),
    ("model:\n  options: &o\n    self: [*o]\ndataset: {path: ../data}\n", "expands to more than"),
    ("model: {options: " + "[" * 5000 + "]" * 5000 + "}\n", "nests too deeply"),
    ("x: " + "a" * (1 << 20) + "\n", "bytes; a spec is at most"),  # written as latin-1: one byte a character
    ("model: !!python/object/apply:os.system ['echo pwned']\n", "is not valid YAML"),
    ("\xff\xfe", "is not UTF-8 text"),
])
def test_yaml_bombs_and_tags_are_refused(project, text, problem):
    path = project / "model_specs" / "x.yaml"
    path.write_bytes(text.encode("latin-1"))
    with pytest.raises(SpecError, match=problem):
        load_spec(path)


def test_anchors_for_sharing_settings_still_work(project):
    text = ("model: {target: 'tests.audit_models:robust'}\ndataset: {path: ../data}\n"
            "checks:\n  fourier_attack: &gate {max_success_rate: 0.5}\n  stft_attack: *gate\n")
    spec = load_spec(write(project, text))
    assert spec.checks["fourier_attack"]["max_success_rate"] == spec.checks["stft_attack"]["max_success_rate"] == 0.5


def test_dataset_labels_that_are_not_model_labels_fail_the_load_check(project):
    write_fragile_dataset(project / "fragile")  # labels loud / quiet; the robust model says low / high
    result = run_spec(load_spec(write(project, with_dataset("../fragile"))), "cpu")
    verdict = result.verdict("model", "load")
    assert verdict.passed is False and "dataset label 'loud' (" in verdict.message
    assert "dataset label 'quiet' (" in verdict.message and "is not a model label" in verdict.message
    assert all(r.status == "skipped" and "label_map" in r.reason for r in result.samples)


def test_peers_with_different_label_sets_fail_transferability_with_the_reason(project):
    write_fragile_dataset(project / "fragile")
    write(project, {"model": {"target": "tests.audit_models:fragile"}, "dataset": {"path": "../fragile", "limit": 2,
                                                                                   "clip_seconds": 0.25},
                    "freqrex": {"seed": 0}, "checks": {"sufficiency": {}}}, name="peer.yaml")
    doc = {**GOOD, "checks": {"transferability": {"min_alpha": 0.1}}, "peers": ["peer"]}
    result = run_spec(load_spec(write(project, doc)), "cpu")
    verdict = result.verdict("transferability", "aggregate")
    assert verdict.passed is False and "do not share a label set" in verdict.message


# --- fuzzing -------------------------------------------------------------------------------------------

scalars = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                    st.text(max_size=12), st.sampled_from(["../data", "/etc/passwd", "zoo://instruments/ast",
                                                           "zoo://../x", "tests.audit_models:robust", "~", ""]))
values = st.recursive(scalars, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()),
                                                                        inner, max_size=4)), max_leaves=12)
KEY_PATHS = sorted({
    *[(k,) for k in (*specs.TOP_KEYS, "unknown")],
    *[("model", k) for k in specs.MODEL_KEYS], *[("dataset", k) for k in specs.DATASET_KEYS],
    *[("attack", k) for k in specs.ATTACK_KEYS], *[("stft_attack", k) for k in specs.STFT_KEYS],
    *[("freqrex", f.name) for f in dataclasses.fields(FreqReXConfig)],
    *[("checks", c) for c in specs.CHECKS], *[("checks", c, k) for c, keys in specs.CHECKS.items() for k in keys],
})
"""Every key the schema knows (and one it does not): each is fuzzed on its own."""


def _mutated(path: tuple[str, ...], value: object) -> dict:
    doc = yaml.safe_load(yaml.safe_dump(GOOD))
    node = doc
    for key in path[:-1]:
        node = node.setdefault(key, {}) if isinstance(node.get(key, {}), dict) else {}
    node[path[-1]] = value
    return doc


FUZZ = settings(max_examples=25, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.mark.parametrize("path", KEY_PATHS, ids=".".join)
@FUZZ
@given(value=values)
def test_fuzzed_values_load_or_raise_spec_error(project, path, value):
    _load_or_spec_error(write(project, yaml.safe_dump(_mutated(path, value))))


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
                      st.lists(st.sampled_from(["model:", "dataset:", "  path: ../data", " {", "}", "[", "]", "&a",
                                                "*a", ": ", "- ", "\n", "checks: {accuracy: {min: ", "!!", "0.5",
                                                "target: tests.audit_models:robust", "'", '"', "#"]),
                               max_size=30).map("".join)))
def test_fuzzed_text_loads_or_raises_spec_error(project, text):
    path = project / "model_specs" / "x.yaml"
    path.write_bytes(text.encode("utf-8", "surrogatepass"))
    _load_or_spec_error(path)


def _load_or_spec_error(path: Path) -> None:
    try:
        load_spec(path)
    except SpecError as exc:
        assert str(exc).startswith("model_specs/x.yaml: ") and exc.problem
