"""What is selected: the stages of :func:`freqrex_audit.audit.run.run_spec` that a set of items needs.

One table says what each check reads: accuracy and the model check need predictions only, the per-clip
subset checks need explanations and their verification, attacks need explanations (the STFT attack also
the Fourier one it localises), composition and transferability need explanations and the cross step, the
other explainers (``explainers[<method>]``, ``faithfulness[<method>]``) explanations and the explainers step.
"""

from __future__ import annotations

from collections.abc import Iterable

STAGES = frozenset({"predict", "explain", "verify", "fourier", "peer", "stft", "cross", "explainers"})
"""Everything :func:`~freqrex_audit.audit.run.run_spec` may compute."""
_EXPLAINED = frozenset({"predict", "explain"})
NEEDS: dict[str, frozenset[str]] = {
    "model": frozenset({"predict"}),  # "failed on every clip" is judged from the predictions
    "accuracy": frozenset({"predict"}),
    "sufficiency": _EXPLAINED | {"verify"},
    "necessity": _EXPLAINED | {"verify"},
    "completeness": _EXPLAINED | {"verify"},
    "fourier_attack": _EXPLAINED | {"fourier"},
    "peer_attack": _EXPLAINED | {"fourier", "peer"},  # the peer gets the query count FreqReX used
    "stft_attack": _EXPLAINED | {"fourier", "stft"},
    "composition": _EXPLAINED | {"cross"},
    "transferability": _EXPLAINED | {"cross"},
    "explainers": _EXPLAINED | {"explainers"},  # L-MAC, latent, FreqReX as a method (audit/explainers.py)
    "faithfulness": _EXPLAINED | {"explainers"},
}


def stages_for(items: Iterable[tuple[str, str]]) -> frozenset[str]:
    """The stages the (check, key) items need; a regression item ``("regression", "check.metric")`` needs
    what its check needs (all stages when the check is unknown)."""
    stages: set[str] = set()
    for check, key in items:
        if check == "regression":
            check = key.split(".", 1)[0]
        stages |= NEEDS.get(check, STAGES)
    return frozenset(stages)
