"""The FreqReX algorithms: pure functions of (classifier, signal, config) returning frozen results."""

from .attacks import (AttackConfig, ExhaustiveSingle, FourierAttack, Mutation, STFTAttack, STFTAttackConfig,
                      exhaustive_single, fourier_attack, stft_attack, summarize_attacks)
from .composition import CompositionResult, common_length, compose, compose_explanations
from .explain import Explanation, FreqReXConfig, explain, subset_signal
from .metrics import (ClassResponsibility, Faithfulness, FrequencyHistogram, InsertionDeletion, InverseHistogram,
                      MannWhitney, WelchPSD, class_responsibility, explanation_faithfulness, faithfulness,
                      insertion_deletion, inverse_histogram, linf, mann_whitney, necessary_histogram, snr_db,
                      spectral_entropy, welch_psd)
from .subsets import is_complete
from .transfer import TransferMatrix, TransferResult, TransferSignal, flat_earthers, transfer_signals, transferability

__all__ = [
    "AttackConfig", "ExhaustiveSingle", "exhaustive_single", "ClassResponsibility", "CompositionResult", "Explanation", "Faithfulness", "FourierAttack",
    "FreqReXConfig", "FrequencyHistogram", "InsertionDeletion", "InverseHistogram", "MannWhitney", "Mutation",
    "STFTAttack", "STFTAttackConfig", "TransferMatrix", "TransferResult", "TransferSignal", "WelchPSD",
    "class_responsibility", "common_length", "compose", "compose_explanations", "explain",
    "explanation_faithfulness", "faithfulness", "flat_earthers", "fourier_attack", "insertion_deletion", "is_complete", "subset_signal",
    "inverse_histogram", "linf", "mann_whitney", "necessary_histogram", "snr_db", "spectral_entropy",
    "stft_attack", "summarize_attacks", "transfer_signals", "transferability", "welch_psd",
]
