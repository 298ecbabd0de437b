"""Reduced precision (#21): autocast only where the clip's label and confidence agree with fp32; CUDA copies."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit import Classifier
from freqrex_audit.models.classifier import PRECISION_TOLERANCE, QueryEngine, to_device

N = 256


def _linear_model(margin: float) -> Classifier:
    """Logits (w·x, w·x·(1 + margin)): with a tiny margin the label lives below bf16's resolution."""
    w = torch.linspace(0.5, 1.5, N)
    layer = torch.nn.Linear(N, 2, bias=False)
    with torch.no_grad():
        layer.weight.copy_(torch.stack([w, w * (1 + margin)]))
    return Classifier.from_callable(layer, ["a", "b"], 8000, outputs="logits", name=f"linear-{margin:g}")


def _clip() -> np.ndarray:
    return np.full(N, 0.4, dtype=np.float32)  # w·x ≈ 102: a 1e-3 margin is 0.1 logit, far below bf16 at 102


def test_bf16_trusted_where_it_agrees_with_fp32():
    engine = QueryEngine(_linear_model(-0.2), precision="bf16")  # logits 102 vs 82: a clear "a"
    assert engine.check_precision(_clip()) is None
    assert engine.autocast is torch.bfloat16 and engine.queries == 2
    reduced = engine.query(_clip()[None])[0]
    exact = QueryEngine(_linear_model(-0.2)).query(_clip()[None])[0]
    assert reduced.argmax() == exact.argmax() and abs(reduced[0] - exact[0]) <= PRECISION_TOLERANCE


def test_bf16_falls_back_to_fp32_when_the_label_moves():
    model = _linear_model(1e-3)
    exact = QueryEngine(model).query(_clip()[None])[0]
    assert exact.argmax() == 1  # fp32 sees the 0.1-logit margin
    engine = QueryEngine(model, precision="bf16")
    with torch.autocast("cpu", dtype=torch.bfloat16):  # the premise: bf16 really loses the margin here
        assert model.predict(torch.as_tensor(_clip())[None])[0].argmax() != 1
    warning = engine.check_precision(_clip())
    assert warning is not None and "bf16 disagrees with fp32" in warning and "runs in fp32" in warning
    assert engine.autocast is None
    assert np.array_equal(engine.query(_clip()[None])[0], exact)  # after the fallback: fp32, bit for bit


def test_fp32_needs_no_check_and_unknown_precision_is_refused():
    engine = QueryEngine(_linear_model(0.0))
    assert engine.check_precision(_clip()) is None and engine.queries == 0
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16, fp16"):
        QueryEngine(_linear_model(0.0), precision="fp8")


def test_spec_precision_is_validated(tmp_path):
    from freqrex_audit.specs.loader import SpecError, load_spec

    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "s.yaml").write_text('model: {target: "tests.audit_models:fragile", precision: fp64}\n'
                                     "dataset: {path: data}\nchecks: {accuracy: {min: 0.5}}\n")
    with pytest.raises(SpecError, match="model.precision"):
        load_spec(tmp_path / "s.yaml")


cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")


@cuda
def test_pinned_non_blocking_copy_to_cuda():
    x = torch.randn(4, 1000)
    y = to_device(x, torch.device("cuda"))
    torch.cuda.synchronize()
    assert y.device.type == "cuda" and torch.equal(y.cpu(), x)


@cuda
@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_reduced_precision_on_cuda_matches_fp32_label(precision):
    model = _linear_model(-0.2).to("cuda")
    engine = QueryEngine(model, precision=precision)
    assert engine.check_precision(_clip()) is None
    assert engine.query(_clip()[None])[0].argmax() == 0
