"""freqrex_audit: FreqReX causal analysis of audio classifiers, as a release gate.

The public surface is small: load a classifier and a clip, explain it, attack it.

    import freqrex_audit as fa
    clf = fa.load_classifier("zoo://instruments/ast")
    x, sr = fa.load_audio("clip.flac", sample_rate=clf.sample_rate)
    exp = fa.explain(clf, x, config=fa.FreqReXConfig(seed=0))

Every name is imported on first use (PEP 562), so ``import freqrex_audit`` (and the pytest plugin,
which lives inside the package) costs no torch, transformers, scipy or matplotlib until a name is used.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._lazy import lazy_exports
from ._version import __version__

_PUBLIC = {  # name -> the module that defines it
    "load_classifier": "adapters.loader",
    "AudioError": "audio.io", "load_audio": "audio.io", "save_audio": "audio.io",
    "Classifier": "models.classifier", "ClassifierError": "models.classifier",
    "ClassifierTimeout": "models.classifier", "QueryEngine": "models.classifier",
    "explain_with": "audit.explainers", "MethodExplanation": "engine.methods", "LMACConfig": "engine.configs",
    "LatentConfig": "engine.configs",
    **{name: "engine" for name in (
        "AttackConfig", "CompositionResult", "Explanation", "FourierAttack", "FreqReXConfig", "Mutation",
        "STFTAttack", "STFTAttackConfig", "TransferResult", "compose", "compose_explanations", "explain",
        "fourier_attack", "stft_attack", "summarize_attacks", "transfer_signals", "transferability")},
}

__all__ = [*sorted(_PUBLIC), "__version__"]


__getattr__, __dir__ = lazy_exports(__name__, _PUBLIC, globals())


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from .adapters.loader import load_classifier
    from .audio.io import AudioError, load_audio, save_audio
    from .engine import (AttackConfig, CompositionResult, Explanation, FourierAttack, FreqReXConfig, Mutation,
                         STFTAttack, STFTAttackConfig, TransferResult, compose, compose_explanations, explain,
                         fourier_attack, stft_attack, summarize_attacks, transfer_signals, transferability)
    from .models.classifier import Classifier, ClassifierError, ClassifierTimeout, QueryEngine
    from .audit.explainers import explain_with
    from .engine.configs import LatentConfig, LMACConfig
    from .engine.methods import MethodExplanation
