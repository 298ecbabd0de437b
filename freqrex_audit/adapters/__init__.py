"""Classifier adapters, one module per model family, behind :func:`~freqrex_audit.adapters.loader.load_classifier`.

``loader`` turns a model dict or string into a checked :class:`~freqrex_audit.models.classifier.Classifier`;
``registry`` maps a model type to its adapter module; ``sandbox`` runs any of them in a child process.

The names below are imported on first use (PEP 562), so importing one family's module (``adapters.transformers``
for ``bench.sizes`` on a bench machine) does not load the loader and its YAML.
"""

from __future__ import annotations

from .._lazy import lazy_exports

__all__ = ["load_classifier", "MODEL_TYPES", "MODEL_DESCRIPTOR"]

__getattr__, __dir__ = lazy_exports(
    __name__, {"load_classifier": "loader", "MODEL_DESCRIPTOR": "loader", "MODEL_TYPES": "registry"}, globals())
