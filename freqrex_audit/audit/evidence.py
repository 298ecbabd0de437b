"""The evidence a gate needs before it may say anything: did the attack really search, how many clips
were measured, and every rate as k of n with its Wilson interval.

Below :mod:`~freqrex_audit.audit.aggregates` and :mod:`~freqrex_audit.audit.gates` (both read it), above
:mod:`~freqrex_audit.audit.records`. A clip whose attack did not really search is left out of the attack rates
(it would count as "not flipped" and make a fragile model look robust) and its item is "not measured".
"""

from __future__ import annotations

from ..engine import AttackConfig
from .records import SampleRecord, SpecResult, analysed, wilson

__all__ = ["ATTACK_MIN_POOL", "ATTACK_MIN_CANDIDATES", "DEFAULT_MIN_CLIPS", "attack_evidence", "attack_measured",
           "rate_counts", "rate_entry"]

ATTACK_MIN_POOL = 3
"""An unsuccessful Fourier attack counts as measured only if it could mutate at least this many bins…"""
ATTACK_MIN_CANDIDATES = 8
"""…and asked at least this many candidate perturbations."""
DEFAULT_MIN_CLIPS = 2
"""Fewest measured clips behind a rate or a per-clip check (``checks.<check>.min_clips`` changes it)."""


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def attack_evidence(record: SampleRecord, config: AttackConfig) -> tuple[bool, str]:
    """Whether this clip's Fourier attack really searched, and the evidence in words.

    The ONE place that decides it, from what the attack reports: ``candidates`` (perturbations asked),
    ``pool_size`` (distinct bins it mutated) and ``queries``. A successful attack is always measured: a
    flip is a finding, however small the search.
    """
    atk, exp = record.fourier, record.explanation
    if exp is None:
        return False, f"not analysed ({record.status}{': ' + record.reason if record.reason else ''})"
    if atk is None:
        return False, "the attack did not run"
    if atk.success:
        return True, f"attack flipped the label after {_plural(atk.queries, 'query')}"
    reason = (f"searched {_plural(atk.candidates, 'candidate')} over {_plural(atk.pool_size, 'bin')} "
              f"with {_plural(atk.queries, 'query')}")
    if atk.pool_size < ATTACK_MIN_POOL or atk.candidates < ATTACK_MIN_CANDIDATES:
        return False, (f"{reason}: below the floor of {ATTACK_MIN_POOL} bins and {ATTACK_MIN_CANDIDATES} "
                       f"candidates (attack.query_budget / attack.max_frequencies widen the search)")
    return True, reason


def attack_measured(result: SpecResult) -> list[SampleRecord]:
    """Analysed clips whose Fourier attack really searched: the denominator of every attack rate."""
    return [r for r in analysed(result) if r.status != "error" and attack_evidence(r, result.spec.attack)[0]]


def rate_entry(k: int, n: int) -> dict:
    """``{"k", "n", "value", "low", "high"}``: a rate with its count and 95% Wilson interval."""
    interval = wilson(k, n)
    return {"k": k, "n": n, "value": k / n if n else None,
            "low": interval[0] if interval else None, "high": interval[1] if interval else None}


def rate_counts(result: SpecResult) -> dict[str, dict]:
    """Every rate a gate may test, as k of n (see :func:`rate_entry`).

    Attack rates are shares of the clips whose Fourier attack was measured (:func:`attack_measured`), and
    count flips that are quiet (SNR ≥ ``attack.min_snr_db``); ``raw_success_rate`` counts every verified flip;
    the STFT attack only localises a successful Fourier mutation, so a clip Fourier could not flip
    counts as one STFT could not flip either, and a clip too short for any STFT frame is left out.
    """
    judged = [r for r in result.samples if r.predicted is not None]
    rates = {"accuracy.accuracy": rate_entry(sum(r.predicted == r.sample.label for r in judged), len(judged))}
    measured = attack_measured(result)
    n = len(measured)
    flips = [r.fourier for r in measured if r.fourier.success]
    wins = [a for a in flips if a.quiet]  # a flip louder than attack.min_snr_db is recorded, not counted
    rates["fourier_attack.success_rate"] = rate_entry(len(wins), n)
    rates["fourier_attack.raw_success_rate"] = rate_entry(len(flips), n)
    rates["fourier_attack.single_rate"] = rate_entry(sum(a.n_frequencies == 1 for a in wins), n)
    rates["fourier_attack.five_rate"] = rate_entry(sum((a.n_frequencies or 0) <= 5 for a in wins), n)
    rates["fourier_attack.int16_survival_rate"] = rate_entry(sum(bool(a.survives_int16) for a in wins), n)
    for method, summary in (result.tables.get("explainers") or {}).items():  # faithfulness rates, per method
        for name in ("ai", "fid_in"):
            entry = summary.get(name) or {"k": 0, "n": 0}
            rates[f"faithfulness.{method}.{name}"] = rate_entry(entry["k"], entry["n"])
    if result.spec.needs_stft:
        stft_base = [r for r in measured if not r.fourier.success or (r.stft is not None and r.stft.attempted)]
        done = [r.stft for r in stft_base if r.fourier.success and r.stft.success and r.stft.quiet]
        rates["stft_attack.success_rate"] = rate_entry(len(done), len(stft_base))
        rates["stft_attack.int16_survival_rate"] = rate_entry(sum(bool(s.survives_int16) for s in done), len(stft_base))
        for size in result.spec.stft_attack.frame_sizes:
            rates[f"stft_attack.rate_{size}"] = rate_entry(sum(s.frame_size == size for s in done), len(stft_base))
    return rates
