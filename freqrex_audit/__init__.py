"""freqrex_audit: FreqReX causal analysis of audio classifiers, as a release gate.

The public surface is small: load a classifier and a clip, explain it, attack it.

    import freqrex_audit as fa
    clf = fa.load_classifier("zoo://instruments/ast")
    x, sr = fa.load_audio("clip.flac", sample_rate=clf.sample_rate)
    exp = fa.explain(clf, x, config=fa.FreqReXConfig(seed=0))
"""

from .adapters import load_classifier
from .audio import AudioError, load_audio, save_audio
from .classifier import Classifier, ClassifierError, ClassifierTimeout, QueryEngine
from .engine import (AttackConfig, CompositionResult, Explanation, FourierAttack, FreqReXConfig, Mutation, STFTAttack,
                     STFTAttackConfig, TransferResult, compose, compose_explanations, explain, fourier_attack,
                     stft_attack, summarize_attacks, transfer_signals, transferability)

__version__ = "0.1.0"

__all__ = [
    "CompositionResult",
    "TransferResult",
    "compose",
    "compose_explanations",
    "transfer_signals",
    "transferability",
    "AttackConfig",
    "FourierAttack",
    "Mutation",
    "STFTAttack",
    "STFTAttackConfig",
    "fourier_attack",
    "stft_attack",
    "summarize_attacks",
    "AudioError",
    "Classifier",
    "ClassifierError",
    "ClassifierTimeout",
    "Explanation",
    "FreqReXConfig",
    "QueryEngine",
    "explain",
    "load_audio",
    "load_classifier",
    "save_audio",
    "__version__",
]
