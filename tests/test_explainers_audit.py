"""The other explainers inside an audit: spec keys, items and gates, the decoder cache, results.json and the report.

A planted white-box model (its causal band known) is audited with ``explainers: [freqrex, lmac]`` and a
``checks.faithfulness`` gate; the same model traced to TorchScript cannot give gradients, so its gate is
"not measured" (never a number), and skipped with ``on_unmeasured: skip``.
"""

from __future__ import annotations

import numpy as np
import pytest

from freqrex_audit.audit.cache import Cache
from freqrex_audit.audit.run import run_spec
from freqrex_audit.specs.loader import SpecError, load_spec

from .explainer_models import DISTRACTORS, band_clip, tones, training_clips, write_clips

SPEC = """
model: {{target: "tests.explainer_models:{factory}"}}
dataset: {{path: clips}}
freqrex: {{iterations: 4}}
explainers:
  methods: [freqrex, lmac]
  train: train
  lmac: {{steps: 60, batch: 8, frame_size: 256}}
checks:
  faithfulness: {{method: lmac, min_ff: 0.5, min_fid_in: 0.5{extra}}}
"""


@pytest.fixture(scope="module")
def project(tmp_path_factory):
    root = tmp_path_factory.mktemp("explainers")
    write_clips(root / "clips", {"band": [band_clip(seed=s, sr=8000) for s in range(3)],
                                 "other": [tones(DISTRACTORS, seed=s, sr=8000) for s in range(2)]})
    train = training_clips(24, seed=7, sr=8000)
    write_clips(root / "train", {"band": list(train[::2]), "other": list(train[1::2])})
    (root / "pyproject.toml").write_text("")
    return root


def _spec(project, name: str, factory: str = "band_model_8k", extra: str = ""):
    path = project / f"{name}.yaml"
    path.write_text(SPEC.format(factory=factory, extra=extra))
    return load_spec(path)


STAGES = frozenset({"predict", "explain", "verify", "explainers"})  # what these items need (no attacks)


@pytest.fixture(scope="module")
def runs(project):
    """The planted spec audited with an empty cache (the decoder is trained), then again from the cache."""
    spec = _spec(project, "planted")
    first = run_spec(spec, device="cpu", cache=Cache(project / ".cache"), stages=STAGES)
    again = run_spec(spec, device="cpu", cache=Cache(project / ".cache"), stages=STAGES)
    return spec, first, again


def test_an_audit_runs_the_explainers_gates_faithfulness_and_caches_the_decoder(runs):
    spec, result, again = runs
    assert spec.explainers.methods == ("freqrex", "lmac") and spec.explainers.lmac.steps == 60
    verdicts = {(v.check, v.key): v for v in result.verdicts}
    assert verdicts[("explainers", "freqrex")].outcome == "passed"
    assert verdicts[("explainers", "lmac")].outcome == "passed"
    gate = verdicts[("faithfulness", "lmac")]
    assert gate.outcome == "passed", gate.message
    assert {g["metric"] for g in gate.gates} == {"ff", "fid_in"}
    summary = result.tables["explainers"]["lmac"]
    assert summary["n"] == 5 and summary["ff"]["value"] > 0.5  # the band clips lose it, the others keep "other"
    assert result.metrics["faithfulness.lmac.ff"] == summary["ff"]["value"]
    assert result.rates["faithfulness.lmac.fid_in"]["n"] == 5
    assert any("trained on 24 clips" in note for note in result.explainer_notes)
    assert any("from the result cache" in note for note in again.explainer_notes)  # not retrained
    assert [v.outcome for v in again.verdicts] == [v.outcome for v in result.verdicts]
    assert again.tables["explainers"] == result.tables["explainers"]



def test_a_clip_that_errored_counts_against_the_faithfulness_gate(runs):
    """Every attempted clip counts (#28) for explainers too: a clip the methods were to explain that errored is
    not measured, so the faithfulness gate needs min_measured of them like any aggregate gate."""
    import copy

    from freqrex_audit.audit.aggregates import tables
    from freqrex_audit.audit.evidence import rate_counts
    from freqrex_audit.audit.explainer_verdicts import faithfulness_verdict
    from freqrex_audit.audit.records import SampleRecord

    spec, result, _ = runs
    broken = copy.copy(result)
    first = result.samples[0]
    broken.samples = [SampleRecord(first.sample, "error", "boom", predicted=first.predicted), *result.samples[1:]]
    broken.tables = tables(broken)
    broken.rates = rate_counts(broken)
    summary = broken.tables["explainers"]["lmac"]
    assert (summary["n"], summary["not_measured"], summary["errored"]) == (4, 1, 1)
    settings = spec.checks["faithfulness"]
    strict = faithfulness_verdict(broken, "lmac", settings)
    assert strict.outcome == "not_measured" and "1 errored" in strict.message, strict.message
    relaxed = faithfulness_verdict(broken, "lmac", {**settings, "min_measured": 0.75, "min_ff": 0.4})
    assert relaxed.outcome == "passed" and all(g["value"] is not None for g in relaxed.gates), relaxed.message

def test_results_json_and_report_carry_the_explainers(runs, tmp_path):
    import json

    from freqrex_audit.report.html import render_report
    from freqrex_audit.runs.read import load_run
    from freqrex_audit.runs.write import write_results

    _, cold, result = runs
    path = write_results([result], tmp_path / "run")
    cold_path = write_results([cold], tmp_path / "cold")
    strip = lambda p: {k: v for k, v in json.loads(p.read_text()).items() if k not in ("timings", "run")}  # noqa: E731
    assert strip(path) == strip(cold_path)  # trained or cached, the same file (the decoder's origin is a timing)
    doc, arrays = load_run(path)  # validated against the results schema
    sample = next(s for s in doc["specs"]["planted"]["samples"] if s["id"].startswith("band/"))
    assert set(sample["methods"]) == {"freqrex", "lmac"} and sample["methods"]["lmac"]["available"]
    signals = doc["specs"]["planted"]["waveforms"]["clips"][sample["id"]]["signals"]
    assert {"lmac-kept", "freqrex-kept"} <= set(signals)
    html = render_report(path, max_sample_cards=1).read_text()
    assert "Explainers · what each method keeps" in html and html.count('data-kind="lmac"') >= 1


def test_a_torchscript_model_is_not_measured_never_a_number(project):
    result = run_spec(_spec(project, "scripted", "band_model_scripted"), device="cpu", cache=Cache(None), stages=STAGES)
    verdicts = {(v.check, v.key): v for v in result.verdicts}
    assert verdicts[("explainers", "freqrex")].outcome == "passed"  # FreqReX only queries
    assert verdicts[("explainers", "lmac")].outcome == "skipped"
    gate = verdicts[("faithfulness", "lmac")]
    assert gate.outcome == "not_measured" and "TorchScript" in gate.message
    skipped = run_spec(_spec(project, "scripted2", "band_model_scripted", ", on_unmeasured: skip"), device="cpu",
                       cache=Cache(None), stages=frozenset({"predict"}))
    assert {(v.check, v.key): v for v in skipped.verdicts}[("faithfulness", "lmac")].outcome == "skipped"


@pytest.mark.parametrize("text, problem", [
    ("explainers: [lmac, shap]", "must be one of freqrex, lmac, latent"),
    ("explainers: [lmac, lmac]", "unique"),
    ("explainers: {methods: [lmac], lmac: {steps: 0}}", "must be ≥ 1"),
    ("checks: {faithfulness: {method: lmac}}", "sets no gate"),
    ("checks: {faithfulness: {method: lime, min_ff: 0.1}}", "must be one of"),
])
def test_bad_explainer_keys_are_spec_errors(project, text, problem):
    path = project / "bad.yaml"
    path.write_text(f'model: {{target: "tests.explainer_models:band_model_8k"}}\ndataset: {{path: clips}}\n{text}\n')
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert problem in str(info.value)


def test_a_gated_method_runs_even_when_not_listed(project):
    path = project / "gated.yaml"
    path.write_text('model: {target: "tests.explainer_models:band_model_8k"}\ndataset: {path: clips}\n'
                    'checks: {faithfulness: {method: [freqrex], min_fid_in: 0.5}}\n')
    spec = load_spec(path)
    assert spec.explainers.methods == ("freqrex",)
    assert np.isclose(spec.explainers.latent.keep, 0.2)
