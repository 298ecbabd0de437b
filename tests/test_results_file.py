"""Issue #20 round two: a hand-edited or hostile results.json / baseline is one clear error naming the file
and the key path (exit 2 from the CLI), never a traceback and never a report rendered from wrong data.
One loader (freqrex_audit.runs.read) serves report, index, compare and baselines; hypothesis fuzzes it."""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings, strategies as st

from freqrex_audit.cli.main import main
from freqrex_audit.runs.read import MAX_BYTES, ResultsError, load_run, read_json
from freqrex_audit.runs.schema import SCHEMA_VERSION

N = 64  # samples of the hand-made clip: 33 rfft bins


def valid_doc() -> dict:
    """The smallest results document freqrex-audit writes: one spec, one clip with an explanation, one gate."""
    wave = {"__ndarray__": list(np.sin(np.arange(N) / 3).round(4)), "dtype": "float32", "shape": [N]}
    explanation = {"target": 0, "confidence": 0.9, "labels": ["a", "b"], "sample_rate": 8000, "waveform": wave,
                   "responsibility": {"__npz__": "s.0.explanation.responsibility"},
                   "ranking": list(range(N // 2 + 1)), "sufficient": [0, 1], "necessary": [0, 1, 2],
                   "complete": None, "config": {"seed": 0}, "inverse_label": 1, "iterations": 3,
                   "queries_by_phase": {}, "emd_trace": [], "sufficient_confidence": 0.8,
                   "necessary_confidence": 0.8, "complete_confidence": None, "inverse_confidence": 0.7}
    gate = {"spec": "s", "check": "accuracy", "metric": "accuracy", "value": 1.0, "op": ">=", "threshold": 0.5,
            "passed": True, "outcome": "passed", "item": "s.yaml::accuracy[aggregate]"}
    return {
        "schema_version": SCHEMA_VERSION, "errors": [], "transferability": None,
        "run": {"seed": None, "device": "cpu", "verdict": "passed", "complete": True, "interrupted": False,
                "filtered": False, "summary": "1 of 1 items ran", "items": {"total": 1, "ran": 1,
                                                                            "outcomes": {"passed": 1}}},
        "timings": {"started": "2026-12-01T00:00:00", "seconds": 1.0, "per_spec": {}},
        "gates": [gate],
        "specs": {"s": {"spec_file": "s.yaml", "model": {"name": "m", "labels": ["a", "b"], "sample_rate": 8000},
                        "dataset": {"path": "data", "n_samples": 1, "n_analysed": 1, "n_skipped": 0},
                        "samples": [{"id": "a/1.wav", "path": "/x/a/1.wav", "label": "a", "status": "ok",
                                     "reason": None, "notes": [], "predicted": "a", "confidence": 0.9,
                                     "explanation": explanation, "fourier_attack": None, "stft_attack": None}],
                        "tables": {}, "figures": {}, "metrics": {"accuracy.accuracy": 1.0}, "checks": {},
                        "verdicts": [{"check": "accuracy", "key": "aggregate", "outcome": "passed", "passed": True,
                                      "message": "accuracy 1", "item": "s.yaml::accuracy[aggregate]"}],
                        "rates": {}}},
    }


def write_run(folder: Path, doc, npz: bool = True) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "results.json"
    path.write_text(doc if isinstance(doc, str) else json.dumps(doc))
    if npz:
        np.savez(folder / "results.npz", **{"s.0.explanation.responsibility": np.linspace(0, 1, N // 2 + 1)})
    return path


def edited(**changes) -> dict:
    """valid_doc() with ``path.to.key=value`` edits (``__`` separates keys; digits index lists)."""
    doc = valid_doc()
    for where, value in changes.items():
        parts = [int(p) if p.isdigit() else p for p in where.split("__")]
        target = doc
        for part in parts[:-1]:
            target = target[part]
        if value is KeyError:
            del target[parts[-1]]
        else:
            target[parts[-1]] = value
    return doc


def test_the_valid_document_loads_and_renders(tmp_path, capsys):
    path = write_run(tmp_path / "runs" / "r1", valid_doc())
    doc, arrays = load_run(path)
    assert doc["specs"]["s"]["samples"][0]["id"] == "a/1.wav" and "s.0.explanation.responsibility" in arrays
    assert main(["report", str(path)]) == 0
    assert (tmp_path / "runs" / "r1" / "report.html").is_file()


CASES = [
    (edited(gates__0__value="abc"), "gates[0].value: expected a number or null, got 'abc'"),
    (edited(gates__0__value="NaN"), "gates[0].value: expected a number or null, got 'NaN'"),
    (edited(gates__0__outcome="green"), "gates[0].outcome: expected one of passed, failed"),
    (edited(gates__0__metric=KeyError), "gates[0]: missing key 'metric'"),
    (edited(specs__s__verdicts__0__message=7), "specs.s.verdicts[0].message: expected a string, got 7"),
    (edited(specs__s__samples__0__id=None), "specs.s.samples[0].id: expected a string, got None"),
    (edited(specs__s__dataset__n_samples=10 ** 30), "specs.s.dataset.n_samples: expected at most"),
    (edited(specs__s__dataset__n_samples=-1), "specs.s.dataset.n_samples: expected at least 0"),
    (edited(specs__s__samples__0__explanation__sample_rate="8k"),
     "specs.s.samples[0].explanation.sample_rate: expected an integer, got '8k'"),
    (edited(specs__s__samples__0__explanation__target=5), "specs.s.samples[0].explanation.target: label index 5"),
    (edited(specs__s__samples__0__explanation__sufficient=[0, 999]),
     "specs.s.samples[0].explanation.sufficient: expected bin indices in [0, 33)"),
    (edited(specs__s__samples__0__explanation__sufficient=[True, False]),
     "specs.s.samples[0].explanation.sufficient[0]: expected a number, got True"),
    (edited(specs__s__samples__0__fourier_attack={"success": True}),
     "specs.s.samples[0].fourier_attack: not a FourierAttack (missing"),
    (edited(specs__s__samples__0__explanation__responsibility={"__npz__": "missing"}),
     "specs.s.samples[0].explanation.responsibility: array 'missing' is not in results.npz"),
    (edited(specs__s__samples__0__explanation__waveform={"__ndarray__": [1, "x"], "dtype": "float32",
                                                           "shape": [2]}),
     "specs.s.samples[0].explanation.waveform.__ndarray__[1]: expected a number, got 'x'"),
    (edited(specs__s__metrics={"accuracy.accuracy": "high"}), "specs.s.metrics.accuracy.accuracy: expected a number"),
    (edited(specs={"s": []}), "specs.s: expected an object, got a list of 0 item(s)"),
    (edited(schema_version=99), "schema_version: version 99 is not one this freqrex-audit reads"),
    (edited(specs=KeyError), ": missing key 'specs'"),
    (edited(specs={}), "gates[0].spec: 's' is not a spec of this run (specs has 0)"),
    ([valid_doc()], "expected an object (a results.json), got a list of 1 item(s)"),
    ('{"schema_version": 2, "run": {', "not valid JSON (Expecting property name enclosed in double quotes at line 1"),
    ("[" * 100_000 + "]" * 100_000, "nested"),
    ('{"a": ' * 70 + "1" + "}" * 70, "nested deeper than 64 levels"),
    ('{"schema_version": ' + "9" * 5000 + "}", "not a results.json (Exceeds the limit"),
    (edited(specs__s__error="x" * (2 ** 20 + 1)), "specs.s.error: a string of 1,048,577 characters"),
]


@pytest.mark.parametrize("doc, message", CASES, ids=range(len(CASES)))
def test_a_bad_results_file_is_one_error_naming_file_and_key(tmp_path, capsys, doc, message):
    path = write_run(tmp_path / "runs" / "r1", doc)
    with pytest.raises(ResultsError) as caught:
        load_run(path)
    assert str(caught.value).startswith(f"{path}: ") and message in str(caught.value), str(caught.value)[:300]
    assert main(["report", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}: " in err and message in err and "Traceback" not in err
    assert len(err) < 2_000  # the error never echoes the file
    assert not (path.parent / "report.html").exists()


def test_not_utf8_a_huge_file_and_a_broken_sidecar(tmp_path):
    bad = write_run(tmp_path / "a", "{}")
    bad.write_bytes(b'{"schema_version": 2, "x": "\xff\xfe"}')
    with pytest.raises(ResultsError, match=r"a/results.json: not UTF-8 \(byte 28\)"):
        load_run(bad)
    huge = write_run(tmp_path / "b", "{}")
    with open(huge, "r+b") as handle:  # a sparse 1 GB file: refused from its size, never read
        handle.truncate(2 ** 30)
    with pytest.raises(ResultsError, match=f"b/results.json: 1,073,741,824 bytes: larger than .* {MAX_BYTES:,}"):
        load_run(huge)
    sidecar = write_run(tmp_path / "c", valid_doc())
    sidecar.with_suffix(".npz").write_bytes(b"PK\x03\x04 not a zip")
    with pytest.raises(ResultsError, match=r"c/results.npz: not a readable .npz sidecar"):
        load_run(sidecar)


def test_html_in_strings_is_shown_as_text(tmp_path):
    xss = "<script>alert(1)</script>"
    path = write_run(tmp_path / "r", edited(specs__s__verdicts__0__message=xss,
                                            specs__s__samples__0__notes=[xss], errors=[{"spec_file": xss,
                                                                                       "message": xss}]))
    html = Path(main(["report", str(path)]) == 0 and path.with_name("report.html")).read_text(encoding="utf-8")
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in html and "<script" not in html.lower()


def test_the_index_lists_a_bad_run_with_its_reason_and_renders_the_others(tmp_path):
    from freqrex_audit.report import render_index

    write_run(tmp_path / "runs" / "good", valid_doc())
    write_run(tmp_path / "runs" / "bad", edited(gates__0__value="abc"))
    html = render_index(tmp_path / "runs").read_text(encoding="utf-8")
    assert "unreadable results.json: gates[0].value: expected a number or null, got &#39;abc&#39;" in html
    assert "good/results.json" in html


def test_compare_and_baselines_use_the_same_loader(tmp_path, capsys):
    good = write_run(tmp_path / "good", valid_doc())
    bad = write_run(tmp_path / "bad", edited(specs__s__metrics={"accuracy.accuracy": "abc"}))
    assert main(["compare", str(good), str(good)]) == 0
    capsys.readouterr()
    assert main(["compare", str(good), str(bad.parent)]) == 2
    err = capsys.readouterr().err
    assert f"{bad}: specs.s.metrics.accuracy.accuracy: expected a number or null, got 'abc'" in err
    baselines = tmp_path / "baselines"
    baselines.mkdir()
    (baselines / "v1.json").write_text('{"specs": {"s": {"metrics": {"accuracy.accuracy": [1]}}}}')
    assert main(["compare", "v1", str(good), "--baseline-dir", str(baselines)]) == 2
    err = capsys.readouterr().err
    assert "v1.json: specs.s.metrics.accuracy.accuracy: expected a number or null, got a list of 1 item(s)" in err
    assert "save it again with --freqrex-save" in err


# ------------------------------------------------------------------------------------------ fuzz

JSON = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner,
                                                                                max_size=4), max_leaves=20)


def _paths(value, where=()):
    """Every key path inside a document (to graft fuzzed values onto)."""
    yield where
    if isinstance(value, dict):
        for k, v in value.items():
            yield from _paths(v, (*where, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            yield from _paths(v, (*where, i))


PATHS = [p for p in _paths(valid_doc()) if p]


def _assert_only_results_errors(path: Path) -> None:
    try:
        load_run(path)
    except ResultsError as exc:
        assert str(exc).startswith(f"{path}: "), str(exc)[:200]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(PATHS), value=JSON)
def test_fuzz_a_valid_document_with_any_value_at_any_key(tmp_path, where, value):
    doc = copy.deepcopy(valid_doc())
    target = doc
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    _assert_only_results_errors(write_run(tmp_path / "fuzz", doc))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(where=st.sampled_from(PATHS), value=JSON)
def test_fuzz_what_validates_also_renders(tmp_path, capsys, where, value):
    """The loader is the renderer's contract: a file it accepts renders (exit 0), one it refuses exits 2 naming
    the file; never the CLI's 'this is a freqrex-audit bug' net."""
    doc = copy.deepcopy(valid_doc())
    target = doc
    for part in where[:-1]:
        target = target[part]
    target[where[-1]] = value
    path = write_run(tmp_path / "fuzz", doc)
    code = main(["report", str(path), "--max-cards", "1"])
    err = capsys.readouterr().err
    assert code in (0, 2) and "freqrex-audit bug" not in err, err[:300]
    assert code == 0 or f"{path}: " in err


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=JSON)
def test_fuzz_any_json_document(tmp_path, doc):
    _assert_only_results_errors(write_run(tmp_path / "fuzz", doc, npz=False))


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=200), cut=st.integers(min_value=0, max_value=4000))
def test_fuzz_bytes_and_truncations(tmp_path, data, cut):
    path = write_run(tmp_path / "fuzz", valid_doc())
    text = path.read_bytes()
    for content in (data, text[:cut] + data):
        path.write_bytes(content)
        _assert_only_results_errors(path)


def test_read_json_names_an_unreadable_file(tmp_path):
    with pytest.raises(ResultsError, match="nothing.json: cannot be read"):
        read_json(tmp_path / "nothing.json")
    if os.geteuid() != 0:
        locked = tmp_path / "locked.json"
        locked.write_text("{}")
        locked.chmod(0)
        with pytest.raises(ResultsError, match="locked.json: cannot be read"):
            read_json(locked)


def test_the_schema_command_prints_the_results_schema_the_loader_uses(capsys):
    import jsonschema

    from freqrex_audit.runs.read import RESULTS_SCHEMA

    assert main(["schema", "--results"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed == json.loads(json.dumps(RESULTS_SCHEMA))
    jsonschema.validate(valid_doc(), printed)
