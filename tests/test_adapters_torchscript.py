"""The TorchScript adapter: a scripted module saved to disk, loaded with labels and sample rate."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from freqrex_audit.adapters import load_classifier
from freqrex_audit.adapters.torchscript import load_torchscript_classifier
from freqrex_audit.models.classifier import ClassifierError, QueryEngine

pytestmark = pytest.mark.filterwarnings("ignore:`torch.jit.*` is deprecated:DeprecationWarning")

LABELS = ["a", "b", "c"]
SR = 8000


class TinyNet(torch.nn.Module):
    """Waveform [B, T] -> logits [B, 3] through a strided conv, mean pooling and a linear head."""

    def __init__(self):
        super().__init__()
        self.conv = torch.nn.Conv1d(1, 4, kernel_size=32, stride=16)
        self.head = torch.nn.Linear(4, 3)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = torch.relu(self.conv(x.unsqueeze(1))).mean(-1)
        return self.head(h)


@pytest.fixture
def scripted(tmp_path):
    torch.manual_seed(0)
    net = TinyNet().eval()
    path = tmp_path / "tiny.pt"
    torch.jit.script(net).save(str(path))
    return net, path


def waves(n: int = 5) -> torch.Tensor:
    return torch.from_numpy(np.random.default_rng(0).standard_normal((n, SR // 2)).astype(np.float32))


def test_scripted_module_predictions_match(scripted):
    net, path = scripted
    clf = load_torchscript_classifier(str(path), labels=LABELS, sample_rate=SR, device="cpu", outputs="logits")
    assert clf.labels == LABELS and clf.sample_rate == SR and clf.name == "tiny"
    x = waves()
    with torch.no_grad():
        expected = torch.softmax(net(x), dim=-1)
    torch.testing.assert_close(clf.predict(x), expected)
    single = np.concatenate([QueryEngine(clf, batch_size=1).query(x[i:i + 1]) for i in range(len(x))])
    np.testing.assert_allclose(QueryEngine(clf, batch_size=4).query(x), single, rtol=0, atol=1e-6)
    assert len(clf.fingerprint) == 16


def test_through_load_classifier(scripted):
    _, path = scripted
    clf = load_classifier({"path": str(path), "labels": LABELS, "sample_rate": SR, "outputs": "logits"},
                          device="cpu")
    assert clf.labels == LABELS
    probs = clf.predict(waves(2)).detach()  # FunctionClassifier leaves no-grad to the QueryEngine
    np.testing.assert_allclose(probs.sum(-1).numpy(), 1.0, atol=1e-6)


def test_fingerprint_follows_the_weights(tmp_path, scripted):
    _, path = scripted
    torch.manual_seed(1)
    other = tmp_path / "other.pt"
    torch.jit.script(TinyNet().eval()).save(str(other))
    first = load_torchscript_classifier(str(path), labels=LABELS, sample_rate=SR, device="cpu")
    again = load_torchscript_classifier(str(path), labels=LABELS, sample_rate=SR, device="cpu")
    second = load_torchscript_classifier(str(other), labels=LABELS, sample_rate=SR, device="cpu")
    assert first.fingerprint == again.fingerprint != second.fingerprint


def test_errors_name_the_file(tmp_path, scripted):
    _, path = scripted
    with pytest.raises(ClassifierError, match="missing.pt.*not found"):
        load_torchscript_classifier(str(tmp_path / "missing.pt"), labels=LABELS, sample_rate=SR)
    with pytest.raises(ClassifierError, match="tiny.pt.*labels"):
        load_torchscript_classifier(str(path), sample_rate=SR)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(ClassifierError, match="junk.pt.*TorchScript"):
        load_torchscript_classifier(str(junk), labels=LABELS, sample_rate=SR)
