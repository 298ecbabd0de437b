"""Classifier adapters, one module per model family, behind :func:`~freqrex_audit.adapters.loader.load_classifier`.

``loader`` turns a model dict or string into a checked :class:`~freqrex_audit.models.classifier.Classifier`;
``registry`` maps a model type to its adapter module; ``sandbox`` runs any of them in a child process.

The names below are imported on first use (PEP 562), so importing one family's module (``adapters.transformers``
for ``bench.sizes`` on a bench machine) does not load the loader and its YAML.
"""

from __future__ import annotations

import importlib

__all__ = ["load_classifier", "MODEL_TYPES", "MODEL_DESCRIPTOR"]

_HOMES = {"load_classifier": "loader", "MODEL_DESCRIPTOR": "loader", "MODEL_TYPES": "registry"}


def __getattr__(name: str):
    if name in _HOMES:
        return getattr(importlib.import_module(f".{_HOMES[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
