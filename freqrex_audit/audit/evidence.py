"""The evidence a gate needs before it may say anything: which clips were attempted, which were measured,
whether an attack really searched, and every rate as k of n with its Wilson interval.

Below :mod:`~freqrex_audit.audit.aggregates` and :mod:`~freqrex_audit.audit.gates` (both read it), above
:mod:`~freqrex_audit.audit.records`. Two rules, stated in README ("Checks and gates"):

* **Every attempted clip counts.** A clip the audit tried (it reached the model) stays in the count of
  ``attempted`` clips whether it was measured or errored; an aggregate gate is measured only when at least
  ``min_measured`` (default 1: all) of the attempted clips were measured, and ``min_clips`` of them.
* **"Measured" scales with the question.** A Fourier attack that found no quiet flip is evidence only when its
  search covered the rule on that clip (:class:`~freqrex_audit.engine.coverage.SearchCoverage`: every top-ranked
  bin × every direction, the runner-up descent to its end, Algorithm 2's first prefixes), never merely because
  it spent its budget.

What each rate counts and divides by is defined once in :data:`freqrex_audit.engine.summaries.METRICS`.
"""

from __future__ import annotations

import math

from ..engine import AttackConfig
from ..engine.summaries import attack_counts, metric_definition
from .records import SampleRecord, SpecResult, wilson

__all__ = ["DEFAULT_MIN_CLIPS", "DEFAULT_MIN_MEASURED", "attack_evidence", "attack_measured", "attempted",
           "rate_counts", "rate_entry", "required_clips", "shortfall"]

DEFAULT_MIN_CLIPS = 2
"""Fewest measured clips behind a rate or a per-clip check (``checks.<check>.min_clips`` changes it)."""
DEFAULT_MIN_MEASURED = 1.0
"""Share of the attempted clips an aggregate gate needs measured (``checks.<check>.min_measured``): all."""


def _plural(n: int, word: str) -> str:
    if n == 1:
        return f"{n} {word}"
    return f"{n} {word[:-1]}ies" if word.endswith("y") else f"{n} {word}s"


def attempted(result: SpecResult, stage: str = "analyse") -> list[SampleRecord]:
    """The clips the audit tried at ``stage``: ``predict`` (every clip that reached the model) or ``analyse``
    (those it went on to explain and attack: all but clips misclassified under ``dataset.only_correct``).
    A clip that errored is attempted at both; clips skipped for their own problem (unreadable, silent, an
    unknown label) or cut by the deadline are not (they are skipped or interrupted items of their own)."""
    tried = [r for r in result.samples if r.status in ("ok", "misclassified", "error")]
    if stage == "predict":
        return tried
    only_correct = result.spec.dataset.only_correct
    return [r for r in tried if not (r.status == "misclassified" and only_correct)]


def attack_evidence(record: SampleRecord, config: AttackConfig) -> tuple[bool, str]:
    """Whether this clip's Fourier attack is evidence, and why, in words.

    The ONE place that decides it. A quiet flip is always evidence (a finding, however small the search);
    no flip, or only a loud one, is evidence only when the attack's :class:`SearchCoverage` settles it.
    """
    atk, exp = record.fourier, record.explanation
    if record.status == "error":
        return False, f"errored: {record.reason}"
    if exp is None:
        return False, f"not analysed ({record.status}{': ' + record.reason if record.reason else ''})"
    if atk is None:
        return False, "the attack did not run"
    if atk.success and atk.quiet:
        return True, f"attack flipped the label quietly after {_plural(atk.queries, 'query')}"
    cov = atk.coverage
    if cov is None:
        return False, "the attack recorded no search coverage (saved by an older freqrex-audit): run it again"
    found = "only a loud flip" if atk.success else "no flip"
    if not cov.settles(atk.success, atk.quiet):
        return False, (f"{found}, but the search did not cover its rule on this clip ({cov.rule}): {cov.shortfall}; "
                       f"the search needs up to {cov.queries_needed} queries here (attack.query_budget is "
                       f"{atk.query_budget})")
    return True, f"{found}; searched {cov.rule} ({_plural(atk.candidates, 'candidate')}, " \
                 f"{_plural(atk.queries, 'query')})"


def attack_measured(result: SpecResult) -> list[SampleRecord]:
    """Attempted clips whose Fourier attack is evidence: the denominator of every attack rate."""
    return [r for r in attempted(result) if attack_evidence(r, result.spec.attack)[0]]


def rate_entry(k: int, n: int, attempted: int | None = None, errored: int = 0, clips: int | None = None) -> dict:
    """``{"k", "n", "value", "low", "high", "clips", "attempted", "errored"}``: a rate with its count, its 95%
    Wilson interval, the measured clips behind it (``clips``; n itself for a share of clips), and the clips
    the audit attempted and saw error."""
    interval = wilson(k, n)
    clips = n if clips is None else clips
    return {"k": k, "n": n, "value": k / n if n else None,
            "low": interval[0] if interval else None, "high": interval[1] if interval else None,
            "clips": clips, "attempted": clips if attempted is None else attempted, "errored": errored}


def required_clips(attempted_clips: int, share: float) -> int:
    """Measured clips an aggregate gate needs: ``share`` of the attempted ones, rounded up."""
    return math.ceil(share * attempted_clips - 1e-9)


def shortfall(rate: dict, settings: dict) -> str | None:
    """Why a rate cannot decide its gate (None when it can): too few measured clips for ``min_clips``, or
    fewer than ``min_measured`` of the attempted clips."""
    floor = settings.get("min_clips", DEFAULT_MIN_CLIPS)
    share = settings.get("min_measured", DEFAULT_MIN_MEASURED)
    clips, tried, errored = rate.get("clips", rate["n"]), rate.get("attempted", rate["n"]), rate.get("errored", 0)
    story = f"{clips} of {_plural(tried, 'clip')} measured" + (f", {errored} errored" if errored else "")
    if clips < required_clips(tried, share):
        rule = "all" if share >= 1 else f"≥ {share:g} of them"
        return f"{story}; an aggregate gate needs {rule} (min_measured: {share:g})"
    if rate["n"] < floor:
        return f"{story}; {rate['k']}/{rate['n']} behind this figure, needs ≥ {floor} (min_clips)"
    return None


def rate_counts(result: SpecResult) -> dict[str, dict]:
    """Every rate a gate may test, as k of n (see :func:`rate_entry`), from the engine's one definition of
    each (:func:`~freqrex_audit.engine.summaries.attack_counts`) over the measured clips."""
    tried = attempted(result, "predict")
    judged = [r for r in tried if r.predicted is not None]
    rates = {"accuracy.accuracy": rate_entry(sum(r.predicted == r.sample.label for r in judged), len(judged),
                                             len(tried), len(tried) - len(judged))}
    rates["accuracy.accuracy"]["over"] = over("accuracy.accuracy")
    pool = attempted(result)
    errored = sum(r.status == "error" for r in pool)
    measured = attack_measured(result)
    spec = result.spec
    counts = attack_counts([r.fourier for r in measured],
                           [r.stft for r in measured] if spec.needs_stft else None,
                           spec.stft_attack.frame_sizes, [len(r.explanation.waveform) for r in measured])
    for name, (k, n) in counts.items():
        rates[name] = {**rate_entry(k, n, len(pool), errored, clips=len(measured)), "over": over(name)}
    peers = [r.peer for r in measured if r.peer is not None]
    if "peer_attack" in spec.checks:
        name = "peer_attack.success_rate"
        rates[name] = {**rate_entry(sum(p.success and p.quiet for p in peers), len(peers), len(pool), errored),
                       "over": over(name)}
    for method, summary in (result.tables.get("explainers") or {}).items():  # faithfulness rates, per method
        for name in ("ai", "fid_in"):  # over the clips the method explained, of those it was asked to explain
            entry = summary.get(name) or {"k": 0, "n": 0}
            tried = summary.get("n", 0) + summary.get("not_measured", 0)
            rates[f"faithfulness.{method}.{name}"] = {**rate_entry(entry["k"], entry["n"], tried),
                                                      "over": "clips the method explained"}
    return rates


def over(metric: str) -> str:
    """What a metric divides by, in words (``clips`` when the metric is not a named one)."""
    definition = metric_definition(metric)
    return definition[1] if definition else "clips"
