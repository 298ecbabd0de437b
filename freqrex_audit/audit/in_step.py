"""A spec's clips run side by side, their model questions merged into full calls (:mod:`..models.lockstep`).

The serial loop's alternative in :func:`~freqrex_audit.audit.run.run_spec`: ``width`` threads, each taking
the next clip in order and running it through :func:`~.pipeline.audit_clip` with a runner of its own
(:meth:`~.pipeline.ClipRunner.fork`), all asking through one :class:`~..models.lockstep.Lockstep` on the
spec's engine. Outcomes come back in clip order, as the serial loop's do; each clip's numbers are the ones it
gets alone (the lockstep merges only where that keeps every bit). Closing the generator early (the deadline,
Ctrl-C) stops the rounds and waits briefly for the threads.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator

from ..models.classifier import describe_exception
from ..models.lockstep import Lockstep
from .pipeline import ClipOutcome, ClipRunner, audit_clip
from .records import SampleRecord

__all__ = ["clips_in_step"]

_STOP_WAIT_S = 10.0
"""How long a stopped run waits for its clip threads (a model call in flight) before leaving them behind."""


def clips_in_step(runner: ClipRunner, samples: list, rate: int, width: int,
                  on_done: Callable[[int], None] | None = None) -> Iterator[ClipOutcome]:
    """Each sample's outcome, in order, computed ``width`` clips at a time in lockstep on ``runner``'s engine.

    ``on_done(n)`` is told, from the caller's thread, how many clips are done in any order (outcomes come in
    clip order, so a progress line counting them alone would stand still while later clips finish).

    When the generator is done, ``runner.queries_by_phase`` holds every clip's phases (and ``batching_probe``,
    the queries spent testing whether merging keeps every bit), and ``runner.lockstep`` the lockstep's facts.
    """
    lockstep = Lockstep(runner.engine)
    runner.lockstep = lockstep
    outcomes: dict[int, ClipOutcome] = {}
    done = [0]  # clips finished, in any order
    pending = iter(range(len(samples)))
    ready = threading.Condition()
    forks: list[ClipRunner] = []

    def work(fork: ClipRunner) -> None:
        try:
            while True:
                with ready:
                    i = next(pending, None)
                if i is None:
                    return
                fork.engine.order = i  # type: ignore[attr-defined]
                try:
                    outcome = audit_clip(fork, samples[i], rate)
                except BaseException as exc:  # noqa: BLE001 - audit_clip never raises; a bug still ends one clip
                    outcome = ClipOutcome(SampleRecord(samples[i], "error", describe_exception(exc)))
                with ready:
                    outcomes[i] = outcome
                    done[0] += 1
                    ready.notify_all()
        finally:
            lockstep.leave()
            with ready:
                ready.notify_all()

    threads = []
    for _ in range(max(1, min(width, len(samples)))):
        view = lockstep.view()
        forks.append(runner.fork(view, lambda view=view: lockstep.apart(view)))
        lockstep.join()  # everyone is in step before the first question: the first round is everyone's
    lockstep.width = len(forks)
    for fork in forks:
        threads.append(threading.Thread(target=work, args=(fork,), name="freqrex-clip", daemon=True))
        threads[-1].start()
    finished, told = False, 0
    try:
        for i, sample in enumerate(samples):
            while True:
                with ready:
                    if i in outcomes or not any(t.is_alive() for t in threads):
                        outcome = outcomes.pop(i, None)
                        break
                    ready.wait(1.0)
                    count = done[0]
                if on_done is not None and count > told:
                    told = count
                    on_done(count)
            yield outcome or ClipOutcome(SampleRecord(sample, "error", "its clip thread ended without a result"))
        finished = True
    finally:
        if not finished:
            lockstep.stop("not measured: the audit stopped before this clip's analysis ended")
        for thread in threads:
            thread.join(None if finished else _STOP_WAIT_S / len(threads))
        for fork in forks:
            for phase, count in fork.queries_by_phase.items():
                runner.queries_by_phase[phase] = runner.queries_by_phase.get(phase, 0) + count
        if lockstep.probe_queries:
            runner.queries_by_phase["batching_probe"] = (runner.queries_by_phase.get("batching_probe", 0)
                                                         + lockstep.probe_queries)
