"""The FreqReX algorithms: pure functions of (classifier, signal, config) returning frozen results."""

from .composition import CompositionResult, common_length, compose, compose_explanations
from .explain import Explanation, FreqReXConfig, explain
from .metrics import (ClassResponsibility, Faithfulness, FrequencyHistogram, InsertionDeletion, InverseHistogram,
                      MannWhitney, WelchPSD, class_responsibility, explanation_faithfulness, faithfulness,
                      insertion_deletion, inverse_histogram, linf, mann_whitney, necessary_histogram, snr_db,
                      spectral_entropy, welch_psd)
from .transfer import (TransferMatrix, TransferResult, TransferSignal, flat_earthers, transfer_signals,
                       transferability)

__all__ = [
    "ClassResponsibility", "CompositionResult", "Explanation", "Faithfulness", "FreqReXConfig",
    "FrequencyHistogram", "InsertionDeletion", "InverseHistogram", "MannWhitney", "TransferMatrix",
    "TransferResult", "TransferSignal", "WelchPSD", "class_responsibility", "common_length", "compose",
    "compose_explanations", "explain", "explanation_faithfulness", "faithfulness", "flat_earthers",
    "insertion_deletion", "inverse_histogram", "linf", "mann_whitney", "necessary_histogram", "snr_db",
    "spectral_entropy", "transfer_signals", "transferability", "welch_psd",
]
