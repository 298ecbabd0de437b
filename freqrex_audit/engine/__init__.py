"""The FreqReX algorithms: pure functions of (classifier, signal, config) returning frozen results.

Every name is imported on first use (PEP 562), so ``from freqrex_audit.engine.configs import FreqReXConfig``
(the spec loader, the schema, the readers of a run folder) costs no torch. No module here is named after a
function this package exports (``explain`` lives in ``explanation``, ``stft_attack`` in ``stft``): importing
the module would otherwise shadow the function on the package.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from .._lazy import lazy_exports

_NAMES = {  # name -> the module that defines it
    **{name: "attack_config" for name in ("AttackConfig",)},
    **{name: "attacks" for name in ("ExhaustiveSingle", "FourierAttack", "exhaustive_single", "fourier_attack",
                                    "summarize_attacks")},
    **{name: "composition" for name in ("CompositionResult", "common_length", "compose", "compose_explanations")},
    **{name: "configs" for name in ("FreqReXConfig", "STFTAttackConfig")},
    **{name: "explanation" for name in ("Explanation", "explain", "subset_signal")},
    **{name: "metrics" for name in (
        "ClassResponsibility", "Faithfulness", "FrequencyHistogram", "InsertionDeletion", "InverseHistogram",
        "MannWhitney", "WelchPSD", "class_responsibility", "explanation_faithfulness", "faithfulness",
        "insertion_deletion", "inverse_histogram", "linf", "mann_whitney", "necessary_histogram", "snr_db",
        "spectral_entropy", "welch_psd")},
    **{name: "mutations" for name in ("Mutation",)},
    **{name: "stft" for name in ("STFTAttack", "stft_attack")},
    **{name: "subsets" for name in ("is_complete",)},
    **{name: "transfer" for name in ("TransferMatrix", "TransferResult", "TransferSignal", "flat_earthers",
                                     "transfer_signals", "transferability")},
}

__all__ = sorted(_NAMES)


__getattr__, __dir__ = lazy_exports(__name__, _NAMES, globals())


if TYPE_CHECKING:  # what type checkers and IDEs see; nothing is imported at run time
    from .attack_config import AttackConfig
    from .attacks import ExhaustiveSingle, FourierAttack, exhaustive_single, fourier_attack, summarize_attacks
    from .composition import CompositionResult, common_length, compose, compose_explanations
    from .configs import FreqReXConfig, STFTAttackConfig
    from .explanation import Explanation, explain, subset_signal
    from .metrics import (ClassResponsibility, Faithfulness, FrequencyHistogram, InsertionDeletion, InverseHistogram,
                          MannWhitney, WelchPSD, class_responsibility, explanation_faithfulness, faithfulness,
                          insertion_deletion, inverse_histogram, linf, mann_whitney, necessary_histogram, snr_db,
                          spectral_entropy, welch_psd)
    from .mutations import Mutation
    from .stft import STFTAttack, stft_attack
    from .subsets import is_complete
    from .transfer import (TransferMatrix, TransferResult, TransferSignal, flat_earthers, transfer_signals,
                           transferability)
