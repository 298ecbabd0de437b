"""The FreqReX algorithms: pure functions of (classifier, signal, config) returning frozen results."""

from .attacks import (AttackConfig, FourierAttack, Mutation, STFTAttack, STFTAttackConfig, fourier_attack,
                      stft_attack, summarize_attacks)
from .explain import Explanation, FreqReXConfig, explain

__all__ = [
    "AttackConfig", "Explanation", "FourierAttack", "FreqReXConfig", "Mutation", "STFTAttack",
    "STFTAttackConfig", "explain", "fourier_attack", "stft_attack", "summarize_attacks",
]
