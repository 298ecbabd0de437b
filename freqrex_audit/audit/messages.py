"""The words under a gate, from the numbers the gate compares: an aggregate's story (the flips the rate counted,
named; the ones it did not, apart), the clips left out, the rate a plain function's clips were resampled to, a
label map to copy. Every count here is read from :mod:`~freqrex_audit.audit.evidence`'s rates or its functions,
never recounted another way, so a message cannot name other clips than its gate counted."""

from __future__ import annotations

from .datasets import near_labels
from .evidence import attack_evidence, attack_measured
from .records import SpecResult, analysed

__all__ = ["context", "rate_note", "failed_note", "example_map", "change_text"]


def change_text(attack) -> str:
    """A Fourier flip's change in words: its mutation (``×0.75``), or, for a flip of #29's walk or boundary
    search, which moved each bin by its own complex amount (``gain`` / ``phase_deg`` per bin), that search."""
    if attack.mutation is not None:
        return str(attack.mutation)
    return f"(per-bin changes by the {attack.source} search)" if attack.source else ""


def context(result: SpecResult, check: str) -> str:
    """The story under an aggregate's gate lines, from the numbers the gates compare: the attack's quiet flips
    are the clips ``success_rate`` counts (:func:`~freqrex_audit.audit.evidence.rate_counts`'s k of n), named;
    loud flips are named apart as not counted."""
    done = analysed(result)
    if check == "fourier_attack":
        rate = result.rates.get("fourier_attack.success_rate") or {"k": 0, "n": 0}
        measured = attack_measured(result)  # the rate's denominator: the same function rate_counts uses
        flips = [r for r in measured if r.fourier.success]
        quiet = [r for r in flips if r.fourier.quiet]
        loud = [r for r in flips if not r.fourier.quiet]
        detail = ", ".join(f"{r.sample.id}: {r.fourier.n_frequencies} freq {change_text(r.fourier)}, "
                           f"{r.fourier.snr_db:.1f} dB" for r in quiet[:5]) + (", …" if len(quiet) > 5 else "")
        snr = result.spec.attack.min_snr_db
        text = (f"{rate['k']}/{rate['n']} measured clips flipped quietly (SNR ≥ {snr:g} dB, what the rates count)"
                f"{': ' + detail if detail else ''}")
        if loud:
            text += (f"; {len(loud)} flipped only loudly (< {snr:g} dB, not counted): "
                     + ", ".join(r.sample.id for r in loud[:5]) + (", …" if len(loud) > 5 else ""))
        unmeasured = [(r.sample.id, why) for r in done
                      for ok, why in [attack_evidence(r, result.spec.attack)] if not ok]
        if unmeasured:
            text += f"; {len(unmeasured)} clip(s) not measured (first, {unmeasured[0][0]}: {unmeasured[0][1]})"
        return text + failed_note(result)
    if check == "peer_attack":
        rate = result.rates.get("peer_attack.success_rate") or {"k": 0, "n": 0}
        peers = [r for r in attack_measured(result) if r.peer is not None]
        wins = [r for r in peers if r.peer.success and r.peer.quiet]
        detail = ", ".join(f"{r.sample.id}: {r.peer.snr_db:.1f} dB" for r in wins[:5])
        method = peers[0].peer.method if peers else "the peer"
        return (f"{rate['k']}/{rate['n']} measured clips flipped quietly by {method} at FreqReX's query count"
                f"{': ' + detail if detail else ''}{failed_note(result)}")
    if check == "stft_attack":
        rate = result.rates.get("stft_attack.success_rate") or {"k": 0, "n": 0}
        return (f"{rate['k']}/{rate['n']} measured clips flipped quietly by the STFT attack (what the rates count)"
                f"{failed_note(result)}")
    return f"over {len(done)} analysed clips{failed_note(result)}"


def rate_note(result: SpecResult) -> str:
    """When the spec alone says the model's rate (a plain function has no rate of its own to check it against),
    the accuracy message says which rate the clips were resampled to: a wrong one shows only as low accuracy."""
    declared = result.spec.model.get("sample_rate")
    rate = result.rates.get("accuracy.accuracy") or {}
    if declared is None or not rate.get("n") or rate["k"] >= _accuracy_min(result) * rate["n"]:
        return ""
    return (f"; every clip was resampled to {declared} Hz, the rate model.sample_rate gives: if the model was "
            f"trained at another rate, that alone gives an accuracy like this")


def _accuracy_min(result: SpecResult) -> float:
    return float(result.spec.checks.get("accuracy", {}).get("min", 0.0))


def failed_note(result: SpecResult, unanswered: bool = False) -> str:
    """Clips whose prediction or analysis errored stay in the count as not measured: say so, with the first
    (``unanswered``: only those that errored before the model gave a prediction, for accuracy)."""
    failed = [r for r in result.samples if r.status == "error" and not (unanswered and r.predicted is not None)]
    if not failed:
        return ""
    return (f"; {len(failed)} clip(s) errored and count as not measured (first, {failed[0].sample.id}: "
            f"{failed[0].reason})")


def example_map(result: SpecResult, labels: list[str]) -> str:
    """``Music: music`` for the first unknown label with a near match (else ``<dataset label>: <model label>``)."""
    for label in sorted({r.sample.label for r in result.samples} - set(labels)):
        near = near_labels(label, labels)
        if near:
            return f"{label}: {near[0]}"
    return "<dataset label>: <model label>"
