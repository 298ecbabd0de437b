"""A session-wide deadline: once it passes, no new model work starts and what was not done is *interrupted*.

``freqrex-audit audit --deadline S``, ``pytest --freqrex-deadline S`` (or ini ``freqrex_deadline``) set it,
counted from the start of the run (under xdist, from the controller's start, so every worker shares it;
the process and Ray executors hand their workers the same absolute instant: :func:`current`, :func:`resume`).
It is checked before every model load, right after it, before every clip and before every model call
(:class:`~freqrex_audit.models.classifier.QueryEngine`), and each call (and a subprocess model's load) is given at
most the time left: a subprocess model (``model.isolation: subprocess``) is then killed at the deadline by
its watchdog, an in-process model's call is abandoned in its worker thread. An
in-process call stuck in C code holding the GIL cannot be abandoned (no Python runs): that needs
``model.isolation: subprocess``.

What the deadline leaves undone follows the Ctrl-C path: the clips not measured are *skipped* with the
deadline as their reason, every item of the spec that was cut short whose evidence is partial becomes
``interrupted`` (never passed), the specs not started are not run, and the run is incomplete
(``run.deadline`` in results.json says when it passed and what was measured).
"""

from __future__ import annotations

import time
from dataclasses import dataclass

__all__ = ["DeadlineReached", "start", "clear", "remaining", "passed", "check", "message", "facts", "REASON",
           "cut_short", "reached", "current", "resume", "mark_hit"]

REASON = "not measured: the session deadline"
"""How a clip's ``reason`` starts when the deadline stopped it (the mark :func:`cut_short` reads)."""


class DeadlineReached(Exception):
    """The session deadline passed: start no more model work."""


@dataclass
class _Deadline:
    seconds: float
    at: float  # wall clock (time.time()), shared with xdist workers through the run's start time
    hit_at: float | None = None


_current: _Deadline | None = None


def start(seconds: float | None, started: float | None = None) -> None:
    """Arm the deadline ``seconds`` after ``started`` (a time.time(); default now); None disarms it."""
    global _current
    _current = None if seconds is None else _Deadline(float(seconds), (started or time.time()) + float(seconds))


def clear() -> None:
    start(None)


def current() -> tuple[float, float] | None:
    """This process's deadline as ``(seconds, at)`` (``at`` a time.time()): what an executor carries to its
    workers, which start with none; None without a deadline."""
    return None if _current is None else (_current.seconds, _current.at)


def resume(state: tuple[float, float] | None) -> None:
    """Arm in this (worker) process the deadline :func:`current` gave in the parent, at the same wall-clock
    instant (None disarms it: a reused worker must not keep an earlier run's deadline)."""
    global _current
    if state is None:
        _current = None
    elif _current is None or (_current.seconds, _current.at) != tuple(state):
        _current = _Deadline(float(state[0]), float(state[1]))


def remaining() -> float | None:
    """Seconds left (≤ 0 once passed); None without a deadline."""
    return None if _current is None else _current.at - time.time()


def passed() -> bool:
    """True once the deadline has passed (and remembers when that was first seen)."""
    if _current is None or time.time() < _current.at:
        return False
    if _current.hit_at is None:
        _current.hit_at = time.time()
    return True


def message() -> str:
    return f"the session deadline of {_current.seconds:g} s passed" if _current else "no deadline"


def reached(when: str = "") -> DeadlineReached:
    """The error saying the deadline passed ``when`` (e.g. "before this clip"): its message is a clip's or a
    spec's reason, which :func:`cut_short` recognises."""
    seconds = f" of {_current.seconds:g} s" if _current else ""
    return DeadlineReached(f"{REASON}{seconds} passed" + (f" {when}" if when else ""))


def check(what: str = "") -> None:
    """Raise :class:`DeadlineReached` when the deadline has passed (before starting ``what``)."""
    if passed():
        raise reached(f"before {what}" if what else "")


def mark_hit() -> None:
    """Record that the deadline cut work short here, though this process did not see it pass itself (a
    worker of an executor cut a clip): :func:`facts` then says it was hit."""
    if _current is not None and _current.hit_at is None:
        _current.hit_at = time.time()


def facts(doc: dict | None = None) -> dict | None:
    """``run.deadline`` in results.json: the seconds set, whether it was hit, and the message every view shows.

    *Hit* means it cut work short: this process saw it pass before some work (a finished run whose report
    is written after the deadline did not hit it), or ``doc`` (a results document assembled from xdist
    workers' parts) has a clip or spec the deadline stopped."""
    if _current is None:
        return None
    hit = _current.hit_at is not None or (doc is not None and cut_in(doc))
    return {"seconds": _current.seconds, "hit": hit,
            "message": (f"{message()}: no new model work was started; items not measured are interrupted"
                        if hit else None)}


def cut_short(reason: str | None) -> bool:
    """Whether a clip's reason says the deadline stopped it."""
    return bool(reason) and reason.startswith(REASON)


def cut_in(doc: dict) -> bool:
    """Whether a results document has a clip, or a spec, that the deadline stopped."""
    for spec in (doc.get("specs") or {}).values():
        if cut_short(spec.get("error")) or any(cut_short(s.get("reason")) for s in spec.get("samples") or []):
            return True
    return False
