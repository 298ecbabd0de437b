"""Models for the lockstep tests (importable as tests.lockstep_models:NAME): the fragile model, made batch-dependent
in its last bits, or refusing one clip's rows."""

from __future__ import annotations

import torch

from freqrex_audit import Classifier
from tests.audit_models import SR, _tone_bin_amplitude


def _fragile_logits(x: torch.Tensor) -> torch.Tensor:
    score = (_tone_bin_amplitude(x, 440.0) - 0.2) * 40
    return torch.stack([-score, score], dim=-1)


def batch_dependent(device: str = "cpu") -> Classifier:
    """The fragile model with its rows nudged by 1e-6 per row in the call: under the self-check's notice (1e-3),
    but every row's bits depend on how many rows share its call, so clips must never share one."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        logits = _fragile_logits(x)
        logits[:, 1] += 1e-6 * x.shape[0]
        return torch.softmax(logits, dim=-1)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="batch_dependent")


def refuses_offset(device: str = "cpu") -> Classifier:
    """The fragile model, except that a call holding a row with a DC offset (mean > 0.05) raises: one clip's
    rows break any call they are in."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        if bool((x.mean(dim=-1) > 0.05).any()):
            raise ValueError("a row with a DC offset")
        return torch.softmax(_fragile_logits(x), dim=-1)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="refuses_offset")


def one_row_differs(device: str = "cpu") -> Classifier:
    """The fragile model whose one-row calls take another path (as a CPU's BLAS does for one row): a lone row's
    scores are nudged by 1e-6, a row in any bigger call is not. One-row questions merge only when padded."""
    def fn(x: torch.Tensor) -> torch.Tensor:
        logits = _fragile_logits(x)
        if x.shape[0] == 1:
            logits[:, 1] += 1e-6
        return torch.softmax(logits, dim=-1)

    return Classifier.from_callable(fn, ["quiet", "loud"], SR, device=device, name="one_row_differs")
