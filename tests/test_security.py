"""Loading a model never runs code it ships: pickled weights and remote code are refused, not executed.

Each hostile artefact would create a marker file if it ran; the tests check that it was refused with
an error naming the model and that the marker does not exist.
"""

from __future__ import annotations

import json
import pathlib
import shutil
import warnings

import pytest
import torch

from freqrex_audit.adapters import load_classifier
from freqrex_audit.models.classifier import ClassifierError

from .hf_models import build_tiny_model


class _Payload:
    """Unpickling this object writes ``marker``: what a poisoned checkpoint would do."""

    def __init__(self, marker: pathlib.Path):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.write_text, (self.marker, "pwned"))


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory) -> pathlib.Path:
    import transformers

    transformers.logging.set_verbosity_error()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return build_tiny_model("distilhubert", tmp_path_factory.mktemp("hf") / "distilhubert")


def test_pickled_transformers_weights_are_not_unpickled(tmp_path, tiny_model):
    model = shutil.copytree(tiny_model, tmp_path / "poisoned_hf")
    (model / "model.safetensors").unlink()
    marker = tmp_path / "ran"
    torch.save({"weights": _Payload(marker)}, model / "pytorch_model.bin")
    with pytest.raises(ClassifierError, match="poisoned_hf"):
        load_classifier(str(model), device="cpu")
    assert not marker.exists()


@pytest.mark.parametrize("model_type", ["hubert", "evil"])
def test_remote_code_never_runs_unless_the_spec_opts_in(tmp_path, tiny_model, model_type):
    """A config pointing at shipped code: a known model type loads HF's own class, an unknown one is refused."""
    model = shutil.copytree(tiny_model, tmp_path / "remote_hf")
    marker = tmp_path / "ran"
    (model / "evil.py").write_text(f"import pathlib\npathlib.Path({str(marker)!r}).write_text('pwned')\n"
                                   "from transformers import HubertConfig as EvilConfig\n"
                                   "from transformers import HubertForSequenceClassification as EvilModel\n")
    config = json.loads((model / "config.json").read_text())
    config["model_type"] = model_type
    config["auto_map"] = {"AutoConfig": "evil.EvilConfig", "AutoModelForAudioClassification": "evil.EvilModel"}
    (model / "config.json").write_text(json.dumps(config))
    if model_type == "hubert":
        assert load_classifier(str(model), device="cpu").labels
    else:
        with pytest.raises(ClassifierError, match="remote_hf: the model ships its own Python code, .* model.trust_remote_code: true"):
            load_classifier(str(model), device="cpu")
    assert not marker.exists()


@pytest.mark.filterwarnings("ignore:`torch.jit.load` is deprecated:DeprecationWarning")
def test_pickled_torchscript_is_refused(tmp_path):
    marker = tmp_path / "ran"
    path = tmp_path / "poisoned.pt"
    torch.save(_Payload(marker), path)  # a pickle, not a TorchScript archive
    with pytest.raises(ClassifierError, match="poisoned.pt"):
        load_classifier({"type": "torchscript", "path": str(path), "labels": ["a", "b"], "sample_rate": 16000},
                        device="cpu")
    assert not marker.exists()


def test_a_spec_that_opts_into_remote_code_is_named_in_a_report_warning(tmp_path, monkeypatch):
    from freqrex_audit.cli.main import main

    from .audit_models import write_robust_dataset

    write_robust_dataset(tmp_path / "data", per_class=1)
    for name, trust in (("trusting", "true"), ("careful", "false")):
        (tmp_path / f"{name}.yaml").write_text(
            f"model: {{target: 'tests.audit_models:robust', trust_remote_code: {trust}}}\n"
            "dataset: {path: data, clip_seconds: 0.25}\nattack: {budget: 5, pool: ranking}\nchecks: {accuracy: {min: 0.5}}\n")
    monkeypatch.chdir(tmp_path)
    main(["audit", "trusting.yaml", "careful.yaml", "--report", "reports", "--no-cache"])
    html = next((tmp_path / "reports").rglob("report.html")).read_text()
    warning = html[html.index('id="trust-remote-code-warning"'):]
    warning = warning[:warning.index("</div>")]
    assert "trusting" in warning and "careful" not in warning
