"""White-box access to a classifier: differentiable log-probabilities and its hidden representations.

FreqReX only queries a model, so it explains any model. L-MAC (a decoder trained on the classifier's hidden
states, through the classifier's gradients) and Integrated Gradients in a codec's latent space need to
differentiate the model's output with respect to its input, and L-MAC reads what the model computes inside.
:func:`white_box` gives that access where the model allows it:

- a Hugging Face classifier (``adapters.transformers``) offers its own ``white_box()``: the batched torch
  features, the model's logits and every layer's hidden states (``output_hidden_states``);
- a :class:`~freqrex_audit.models.classifier.FunctionClassifier` around a plain ``torch.nn.Module`` (a
  ``package.module:factory`` model) is read through a forward hook on one of its layers (``layer``: a dotted
  module name; by default the output of the module's second-to-last child);
- everything else is a black box here and raises :class:`NotWhiteBox` with the reason: TorchScript (scripted
  modules are compiled graphs the audit does not differentiate), ONNX and TFLite runtimes, models in a
  subprocess, plain Python functions. Explainers that need gradients then say "not available".

The white box never changes the model: parameters keep their ``requires_grad`` outside :meth:`WhiteBox.frozen`,
and nothing here goes through the :class:`~freqrex_audit.models.classifier.QueryEngine` (gradient calls are
counted by the explainers, queries by the engine).
"""

from __future__ import annotations

import contextlib
from typing import Callable, Iterator

import torch

from .boundary import output_kind

__all__ = ["WhiteBox", "NotWhiteBox", "white_box", "tokens_of"]


class NotWhiteBox(RuntimeError):
    """The model offers no gradients or hidden states to the audit; the message says why, in the user's words."""


def tokens_of(hidden: torch.Tensor) -> torch.Tensor:
    """A hidden representation as tokens ``[B, N, D]``: ``[B, D]`` is one token, ``[B, C, H, W]`` becomes
    ``[B, H·W, C]``; ``[B, N, D]`` is kept (a conv layer's ``[B, C, T]`` is read as C tokens of T values, which
    the L-MAC decoder's learned token map handles either way)."""
    if hidden.ndim == 2:
        return hidden[:, None, :]
    if hidden.ndim == 3:
        return hidden
    if hidden.ndim == 4:
        return hidden.flatten(2).transpose(1, 2)
    raise NotWhiteBox(f"a hidden representation of shape {tuple(hidden.shape)} cannot be read as tokens")


class WhiteBox:
    """Differentiable access to one classifier.

    ``forward(waveforms, hidden=False)`` returns ``(log_probabilities [B, C], tokens [B, N, D] or None)``; the
    waveforms are ``[B, T]`` at the classifier's rate on its device. ``frozen()`` is a context in which the
    model's parameters do not require gradients (explainers train their own parameters or differentiate with
    respect to the input only) and are restored afterwards.
    """

    def __init__(self, name: str, labels: list[str], sample_rate: int, device: torch.device,
                 forward: Callable[[torch.Tensor, bool], tuple[torch.Tensor, torch.Tensor | None]],
                 module: torch.nn.Module, describe: str):
        self.name, self.labels, self.sample_rate, self.device = name, list(labels), int(sample_rate), device
        self._forward, self.module, self.describe = forward, module, describe

    def forward(self, waveforms: torch.Tensor, hidden: bool = False) -> tuple[torch.Tensor, torch.Tensor | None]:
        """Log-probabilities and (with ``hidden``) the hidden tokens for a batch of waveforms."""
        if waveforms.ndim == 1:
            waveforms = waveforms[None]
        return self._forward(waveforms.to(self.device, torch.float32), hidden)

    @contextlib.contextmanager
    def frozen(self) -> Iterator["WhiteBox"]:
        """Parameters do not require gradients inside (the model in eval mode); restored on exit. Whether
        autograd records is the caller's choice (``torch.enable_grad()`` to train or differentiate)."""
        params = list(self.module.parameters())
        before = [p.requires_grad for p in params]
        training = self.module.training
        for p in params:
            p.requires_grad_(False)
        self.module.eval()
        try:
            yield self
        finally:
            for p, flag in zip(params, before):
                p.requires_grad_(flag)
            self.module.train(training)


def log_probabilities(out: torch.Tensor, kind: str) -> torch.Tensor:
    """Log-probabilities from a model's raw output of the declared kind (probabilities are floored at 1e-12)."""
    kind = output_kind(kind)
    if kind == "logits":
        return torch.log_softmax(out.float(), dim=-1)
    if kind == "log_probabilities":
        return out.float()
    return torch.log(out.float().clamp_min(1e-12))


def _named_module(module: torch.nn.Module, layer: str | None) -> tuple[str, torch.nn.Module]:
    """The module a forward hook reads: ``layer`` by dotted name, else the second-to-last child."""
    if layer:
        found = dict(module.named_modules()).get(layer)
        if found is None:
            names = [n for n, _ in module.named_modules() if n][:12]
            raise NotWhiteBox(f"the model has no layer {layer!r} to read (layers: {', '.join(names)}, …)")
        return layer, found
    children = list(module.named_children())
    if len(children) < 2:
        raise NotWhiteBox(f"{type(module).__name__} has {len(children)} child module(s); name the layer L-MAC "
                          f"reads (explainers.lmac.layer)")
    return children[-2]


def module_white_box(clf, layer: str | None = None) -> WhiteBox:
    """A white box over a FunctionClassifier whose function is a plain torch module, via a forward hook."""
    module = clf.fn
    name, target = _named_module(module, layer)
    kind = clf.raw_outputs

    def forward(waveforms: torch.Tensor, hidden: bool) -> tuple[torch.Tensor, torch.Tensor | None]:
        seen: list[torch.Tensor] = []
        handle = target.register_forward_hook(lambda _m, _i, out: seen.append(out[0] if isinstance(out, tuple)
                                                                               else out)) if hidden else None
        try:
            out = module(waveforms)
        finally:
            if handle is not None:
                handle.remove()
        if hidden and not seen:
            raise NotWhiteBox(f"layer {name!r} did not run in the model's forward pass")
        return log_probabilities(out, kind), (tokens_of(seen[-1]) if hidden else None)

    return WhiteBox(clf.name, clf.labels, clf.sample_rate, clf.device, forward, module,
                    f"torch module, hidden states from a forward hook on {name!r}")


def white_box(clf, layer: str | None = None) -> WhiteBox:
    """White-box access to ``clf`` or :class:`NotWhiteBox` saying why there is none (see the module docstring)."""
    own = getattr(clf, "white_box", None)
    if callable(own):
        return own()
    fn = getattr(clf, "fn", None)
    kind = type(clf).__name__
    if isinstance(fn, torch.jit.ScriptModule) or isinstance(getattr(clf, "model", None), torch.jit.ScriptModule):
        raise NotWhiteBox(f"{clf.name} is a TorchScript model: gradient explainers need a Python torch model "
                          f"(a transformers folder or package.module:factory)")
    if isinstance(fn, torch.nn.Module) and hasattr(clf, "raw_outputs"):
        return module_white_box(clf, layer)
    source = str(getattr(fn, "source", ""))  # adapters.exported.ExportedModel: an ONNX or TFLite file
    if source.endswith(".onnx"):
        what = "an ONNX"
    elif source.endswith(".tflite"):
        what = "a TFLite"
    elif kind == "SubprocessClassifier":
        what = "a subprocess (model.isolation: subprocess)"
    else:
        what = "a plain-function" if callable(fn) else f"a {kind}"
    raise NotWhiteBox(f"{clf.name} is {what} model: it offers no gradients or hidden states, so gradient "
                      f"explainers are not available for it (FreqReX, which only queries, is)")
