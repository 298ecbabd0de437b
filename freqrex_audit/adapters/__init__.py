"""Classifier adapters, one module per model family, behind :func:`~freqrex_audit.adapters.loader.load_classifier`.

``loader`` turns a model dict or string into a checked :class:`~freqrex_audit.models.classifier.Classifier`;
``registry`` maps a model type to its adapter module; ``sandbox`` runs any of them in a child process.
"""

from .loader import MODEL_DESCRIPTOR, load_classifier
from .registry import MODEL_TYPES

__all__ = ["load_classifier", "MODEL_TYPES", "MODEL_DESCRIPTOR"]
