"""The audit's record types and the one verdict vocabulary every view reads.

One floor below :mod:`~freqrex_audit.audit.run`, :mod:`~freqrex_audit.audit.aggregates`, :mod:`~freqrex_audit.audit.gates`
and :mod:`~freqrex_audit.runs.write`, so data flows one way: those modules import these types, never each
other's. An item's outcome is computed once (:func:`freqrex_audit.audit.gates.evaluate`, then the pytest
session's own facts: deselected, interrupted, collection errors) and :func:`run_verdict` derives the
run's verdict from the outcomes, the same way pytest derives its exit status.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Iterable

from .datasets import Sample
from ..engine.summaries import robustness, wilson  # one Wilson interval for gates, rates and explainer summaries
from ..specs.loader import Spec

if TYPE_CHECKING:  # the results' types, for annotations only: reading a run folder needs no torch
    from ..engine import Explanation, FourierAttack, STFTAttack
    from ..engine.methods import MethodExplanation
    from ..engine.noise_floor import NoiseFloor
    from ..engine.peers import PeerAttack

__all__ = ["Outcome", "OUTCOMES", "GREEN", "RED", "NOT_RUN", "Verdict", "SampleRecord", "SpecResult",
           "run_verdict", "wilson", "EXIT_CODES", "SHOWN", "RUN_SHOWN", "partial"]


class Outcome:
    """The seven outcomes of an item (plain strings, so results.json stays plain JSON)."""

    PASSED = "passed"              # measured, and every gate held
    FAILED = "failed"              # measured, and a gate did not hold
    NOT_MEASURED = "not_measured"  # the evidence the gate needs was not there (fails unless on_unmeasured: skip)
    ERROR = "error"                # the spec did not load / collect, or the item crashed
    SKIPPED = "skipped"            # nothing to judge (clip not analysed; on_unmeasured: skip)
    DESELECTED = "deselected"      # not selected in this run (-m, -k, --lf, deselect): not run
    INTERRUPTED = "interrupted"    # the run stopped (SIGINT, kill) before this item ran
    XFAILED = "xfailed"            # measured, failed, and the spec declares it (checks.<check>.expect: fail)


OUTCOMES = (Outcome.PASSED, Outcome.FAILED, Outcome.NOT_MEASURED, Outcome.ERROR, Outcome.SKIPPED,
            Outcome.DESELECTED, Outcome.INTERRUPTED, Outcome.XFAILED)
GREEN = frozenset({Outcome.PASSED})
RED = frozenset({Outcome.FAILED, Outcome.NOT_MEASURED, Outcome.ERROR})
NOT_RUN = frozenset({Outcome.DESELECTED, Outcome.INTERRUPTED})
SHOWN = {Outcome.PASSED: "PASS", Outcome.FAILED: "FAIL", Outcome.NOT_MEASURED: "NOT MEASURED",
         Outcome.ERROR: "ERROR", Outcome.SKIPPED: "SKIP", Outcome.DESELECTED: "NOT RUN",
         Outcome.INTERRUPTED: "NOT RUN (interrupted)", Outcome.XFAILED: "XFAIL (expected)"}
"""How every view (CLI, report, index) writes an outcome."""

RUN_SHOWN = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "interrupted": "INCOMPLETE", "not_run": "NOT RUN"}
"""How every view (CLI, report, index, JUnit) writes a run's or a spec's verdict (:func:`run_verdict`)."""

EXIT_CODES = {"passed": 0, "not_run": 0, "failed": 1, "error": 2, "interrupted": 130}
"""``freqrex-audit audit`` exit status per run verdict (pytest: 0, 1, 1 with an ERROR line, 2)."""


def run_verdict(outcomes: Iterable[str], complete: bool = True, errors: int = 0) -> str:
    """The run's verdict from its items' outcomes: interrupted > error > failed > passed > not_run.

    It matches pytest's: a run with a failed or not-measured item, or a spec that did not load, is not
    green; skipped, deselected and expected-failure (xfailed) items do not make a run red (nor green on
    their own), as pytest's xfail does not.
    """
    outcomes = list(outcomes)
    if not complete:
        return "interrupted"
    if errors or Outcome.ERROR in outcomes:
        return "error"
    if any(o in (Outcome.FAILED, Outcome.NOT_MEASURED) for o in outcomes):
        return "failed"
    if Outcome.PASSED in outcomes:
        return "passed"
    return "not_run"


def partial(outcomes: Iterable[str]) -> bool:
    """Some of these items ran and some did not (deselected or interrupted): a verdict about part of them."""
    outcomes = list(outcomes)
    return any(o in NOT_RUN for o in outcomes) and any(o not in NOT_RUN for o in outcomes)


@dataclass
class Verdict:
    """The outcome of one pytest item, with the gates (metric, value, op, threshold) that decided it.

    ``measured`` says what evidence was there ("measured 3 of 4 clips"); ``message`` the whole story.
    """

    check: str
    key: str
    outcome: str
    message: str
    gates: list[dict] = field(default_factory=list)
    measured: str | None = None

    def __post_init__(self) -> None:
        if self.outcome not in OUTCOMES:
            raise ValueError(f"unknown outcome {self.outcome!r}")

    @property
    def passed(self) -> bool | None:
        """True when green, False when red, None when the item judged nothing (skipped / not run)."""
        return True if self.outcome in GREEN else False if self.outcome in RED else None


@dataclass
class SampleRecord:
    """What the audit knows about one clip. status: ok | misclassified | skipped | error."""

    sample: Sample
    status: str
    reason: str | None = None
    predicted: str | None = None
    confidence: float | None = None
    explanation: Explanation | None = None
    fourier: FourierAttack | None = None
    stft: STFTAttack | None = None
    noise: NoiseFloor | None = None  # the noise floor, asked before the attack (#29)
    peer: PeerAttack | None = None  # the field's attack at the same query count (checks.peer_attack)
    verification: dict | None = None
    methods: dict[str, MethodExplanation] | None = None  # spec explainers: method -> what it kept, how faithful
    notes: list[str] = field(default_factory=list)  # what did not stop the analysis: clipping, cut to clip_seconds…

    @property
    def analysed(self) -> bool:
        return self.explanation is not None

    @property
    def robustness(self) -> dict | None:
        """The quietest flip by any method (FreqReX, the peer, noise), with the method and any defect."""
        return robustness(self.fourier, self.peer, self.noise)


@dataclass
class SpecResult:
    spec: Spec
    model_info: dict
    samples: list[SampleRecord]
    error: str | None
    accuracy: float | None
    tables: dict
    figures: dict
    metrics: dict
    seconds: float
    queries: int
    queries_by_phase: dict
    cache_stats: dict
    transferability: Any = None
    composition: dict | None = None
    cross_skipped: dict = field(default_factory=dict)
    cross_failed: dict = field(default_factory=dict)  # check -> why composition / transferability crashed
    verdicts: list[Verdict] = field(default_factory=list)
    rates: dict = field(default_factory=dict)  # "check.metric" -> {"k", "n", "value", "low", "high"}
    peer_work: dict = field(default_factory=dict)  # peer -> {"seconds", "queries", "cache"} spent on it for this spec
    explainer_notes: list[str] = field(default_factory=list)  # where the L-MAC decoder / codec came from
    calls: int = 0  # model calls through the spec's QueryEngine (transferability's α/β engines are apart)
    batching: dict | None = None  # how the clips ran side by side (models/lockstep.py: Lockstep.facts), if they did

    @property
    def name(self) -> str:
        return self.spec.name

    def verdict(self, check: str, key: str) -> Verdict | None:
        for v in self.verdicts:
            if v.check == check and v.key == key:
                return v
        return None


def analysed(result: SpecResult) -> list[SampleRecord]:
    """The clips FreqReX explained (the ones aggregates and attacks are about)."""
    return [r for r in result.samples if r.analysed]
