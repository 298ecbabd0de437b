"""Cross-clip batching: several clips' questions to one model asked in shared calls, where that changes no bit.

FreqReX's questions mostly depend on the last answer, so one clip fills calls of ~10 rows (or one). Clips
run side by side (one thread each) in *lockstep*: a round fires when every clip in step has one question
pending, and the round's rows go to the model in full calls. A clip's numbers must stay the ones it gets
alone (the per-clip cache, serial = Ray equality and error isolation rest on it), so merging is *earned*
per input shape and question kind (several rows; one row, where BLAS may take another path: the zoo
transformers' one-row scores differ from the same row in a batch by ~1e-7, while every size from 2 to 32,
at any position, agreed): the first round with two such questions asks each alone (the answers handed out)
and once more merged (counted in :attr:`Lockstep.probe_queries`), and only if every score is bit-identical
does that kind merge from then on. Rounds hold their questions in clip order, so every call's composition
is a function of the clips alone, never of thread timing.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import numpy as np
import torch

from ..runtime import deadline
from .classifier import ClassifierTimeout, QueryEngine
from .origins import AlreadyHung

__all__ = ["Lockstep", "LockstepEngine"]


@dataclass(eq=False)  # each question is itself: never compared by its tensors
class _Ask:
    """One clip's pending question: its rows, and once its round ran, the scores or the error."""

    order: int
    batch: torch.Tensor
    result: np.ndarray | None = None
    error: BaseException | None = None
    done: bool = False

    @property
    def shape(self) -> tuple:
        return (tuple(self.batch.shape[1:]), self.batch.dtype, self.batch.device)


@dataclass
class _Shapes:
    """What the probe found per kind of question (:func:`_kind`): True (merging keeps every bit), False (asked
    alone), and why not, once per reason."""

    merges: dict = field(default_factory=dict)
    why_not: list[str] = field(default_factory=list)

    def refuse(self, kind: tuple, why: str) -> None:
        self.merges[kind] = False
        what = "one-row questions" if kind[1] else "questions of several rows"
        if f"{what}: {why}" not in self.why_not:
            self.why_not.append(f"{what}: {why}")


class Lockstep:
    """Clips in step behind one :class:`QueryEngine` (``engine``: the spec's, which counts every real call).

    Each clip's thread asks through its own :meth:`view`; :meth:`join` / :meth:`leave` say which threads are in
    step. A thread that must run something alone (a stage with process-wide state) does it inside
    :meth:`apart`, holding the model for that long.
    """

    def __init__(self, engine: QueryEngine):
        self.engine = engine
        self.model = threading.RLock()  # one model call at a time; held through a clip's stage apart
        self.probe_queries = 0  # queries asked only to test whether merging keeps every bit
        self.merged_calls = 0  # model calls that held more than one clip's rows
        self.shapes = _Shapes()
        self.width = 0  # threads that joined at the start: clips side by side
        self._cond = threading.Condition()
        self._members = 0
        self._asks: list[_Ask] = []
        self._stopped: str | None = None

    def facts(self) -> dict:
        """What ``timings.per_spec.<spec>.batching`` records: clips side by side, merged calls, probe queries, the
        probe's finding, and how the spec's calls were padded (models.padding)."""
        why_not = "; ".join(self.shapes.why_not) or None
        if not self.shapes.merges:
            why_not = "no round held two questions of one kind (the cache answered, or clips asked one at a time)"
        return {"clips_at_once": self.width, "merged_calls": self.merged_calls, "probe_queries": self.probe_queries,
                "merges": any(self.shapes.merges.values()), "why_not": why_not, "padding": self.engine.pad_calls}

    def view(self, order: int = 0) -> LockstepEngine:
        """A QueryEngine for one clip's thread: counts that clip's queries and calls as if it ran alone."""
        return LockstepEngine(self, order)

    def join(self) -> None:
        with self._cond:
            self._members += 1

    def leave(self) -> None:
        """This thread is out of step (its clip is done, or it steps apart); a round it was holding up fires."""
        with self._cond:
            self._members -= 1
            round_ = self._take_round()
        if round_:
            self._run_round(round_)

    def stop(self, why: str) -> None:
        """No more rounds: every question pending or to come raises ``DeadlineReached(why)`` (the audit stopped)."""
        with self._cond:
            self._stopped = why
            self._cond.notify_all()

    @contextmanager
    def apart(self, view: LockstepEngine) -> Iterator[None]:
        """Run the block alone: out of step, holding the model, its questions asked one by one as if serial."""
        self.leave()
        try:
            with self.model:
                view.apart = True
                try:
                    yield
                finally:
                    view.apart = False
        finally:
            self.join()  # back in step even when the block raised: the clip's thread asks (or leaves) again

    def ask(self, view: LockstepEngine, batch: torch.Tensor) -> np.ndarray:
        """The scores for ``batch``, asked in the next round (or at once, when the asker is apart)."""
        if view.apart:
            with self.model:
                return self._alone(batch)
        ask = _Ask(view.order, batch)
        with self._cond:
            if self._stopped:
                raise deadline.DeadlineReached(self._stopped)
            self._asks.append(ask)
            round_ = self._take_round()
        if round_:
            self._run_round(round_)
        with self._cond:
            while not ask.done:
                if self._stopped and ask in self._asks:  # no round will take it
                    self._asks.remove(ask)
                    raise deadline.DeadlineReached(self._stopped)
                self._cond.wait()
        if ask.error is not None:
            raise ask.error
        assert ask.result is not None
        return ask.result

    def _take_round(self) -> list[_Ask]:
        """Under the lock: the pending questions when every thread in step has one (then cleared), else []."""
        if self._stopped or not self._asks or len(self._asks) < self._members:
            return []
        round_, self._asks = sorted(self._asks, key=lambda a: a.order), []
        return round_

    def _run_round(self, round_: list[_Ask]) -> None:
        try:
            with self.model, torch.inference_mode():
                self._answer(round_)
        except BaseException as exc:  # noqa: BLE001 - every asker still unanswered hears it; none waits forever
            for ask in round_:
                if ask.result is None and ask.error is None:
                    ask.error = exc
        finally:
            with self._cond:
                for ask in round_:
                    ask.done = True
                self._cond.notify_all()

    def _answer(self, round_: list[_Ask]) -> None:
        """Per input shape: the questions whose kind (one row, several) is known to merge go in shared calls, the
        rest alone; a kind not yet tested with two questions or more is probed."""
        shapes: dict[tuple, list[_Ask]] = {}
        for ask in round_:
            shapes.setdefault(ask.shape, []).append(ask)
        for shape, asks in shapes.items():
            several = self.shapes.merges.get((shape, False))  # one-row questions merge only beside these too
            merging = [a for a in asks if several and self.shapes.merges.get(_kind(shape, a))]
            if len(merging) < 2:
                merging = []
            for ask in asks:
                if ask not in merging:
                    self._answer_alone(ask)
            if merging:
                self._answer_merged(merging)
            for single in (True, False):
                kind = (shape, single)
                untested = [a for a in asks if _kind(shape, a) == kind and a.error is None]
                if kind not in self.shapes.merges and len(untested) >= 2:
                    self._probe(kind, untested)

    def _answer_alone(self, ask: _Ask) -> None:
        try:
            ask.result = self._alone(ask.batch)
        except Exception as exc:  # noqa: BLE001 - this clip's error, raised in its own thread
            ask.error = exc

    def _alone(self, batch: torch.Tensor) -> np.ndarray:
        return self.engine._run(batch.shape[0], lambda rows: batch[rows])

    def _merged(self, group: list[_Ask]) -> list[np.ndarray]:
        """Every question of ``group`` in calls of at most ``batch_size`` rows, as even as they come (so no call
        is a lone row); the scores split back per question."""
        rows = torch.cat([a.batch for a in group])
        count = rows.shape[0]
        calls = -(-count // self.engine.batch_size)
        edges = [round(i * count / calls) for i in range(calls + 1)]
        scores = np.concatenate([self.engine._ask(rows[a:b]) for a, b in zip(edges, edges[1:])])
        cuts = np.cumsum([a.batch.shape[0] for a in group])[:-1]
        return np.split(scores, cuts)

    def _answer_merged(self, group: list[_Ask]) -> None:
        calls = self.engine.calls
        try:
            for ask, scores in zip(group, self._merged(group)):
                ask.result = scores
            self.merged_calls += self.engine.calls - calls
        except ClassifierTimeout as exc:  # the first clip's call hung, as alone; the others were not analysed
            for i, ask in enumerate(group):
                ask.error = exc if i == 0 else AlreadyHung(str(exc))
        except deadline.DeadlineReached as exc:  # time is up: for all
            for ask in group:
                ask.error = exc
        except Exception:  # noqa: BLE001 - a bad row, out of memory: each question alone, each its own error
            for ask in group:
                self._answer_alone(ask)

    def _probe(self, kind: tuple, group: list[_Ask]) -> None:
        """The answers are already handed out (asked alone); ask them merged once more and keep merging this
        shape only if every score agrees bit for bit."""
        before = self.engine.queries
        try:
            together = self._merged(group)
        except ClassifierTimeout as exc:  # the model hung on the probe: the first clip's error, as on a merged call
            group[0].result, group[0].error = None, exc
        except deadline.DeadlineReached:  # time is up: the answers stand, the next questions are refused
            pass
        except Exception as exc:  # noqa: BLE001 - the model refuses bigger calls: ask alone, say why
            self.shapes.refuse(kind, f"a merged call raised {type(exc).__name__}")
        else:
            if all(np.array_equal(a.result, t) for a, t in zip(group, together)):
                self.shapes.merges[kind] = True
            else:
                self.shapes.refuse(kind, "a row's scores change with the other rows in its call")
        finally:
            self.probe_queries += self.engine.queries - before


def _kind(shape: tuple, ask: _Ask) -> tuple:
    """What the probe vouches for: an input shape, and whether the question is one row (BLAS may take another
    path for one row: the zoo transformers' single-row scores differ from the same row in a batch by ~1e-7)."""
    return (shape, ask.batch.shape[0] == 1)


class LockstepEngine(QueryEngine):
    """One clip's QueryEngine inside a :class:`Lockstep`: its calls (split by ``batch_size`` exactly as alone)
    are questions in the lockstep's rounds; it counts them as its own queries and calls."""

    def __init__(self, lockstep: Lockstep, order: int):
        real = lockstep.engine
        super().__init__(real.classifier, batch_size=real.batch_size, timeout_s=real.timeout_s,
                         precision=real.precision)  # never padded itself: the spec's engine pads the real calls
        self.lockstep = lockstep
        self.order = order  # this clip's place in every round (the clip's index in the spec)
        self.apart = False

    @property  # type: ignore[override]
    def hung(self) -> str | None:
        return self.lockstep.engine.hung

    @hung.setter
    def hung(self, value: str | None) -> None:  # the spec's engine holds it
        pass

    def _predict(self, batch: torch.Tensor) -> np.ndarray:
        return self.lockstep.ask(self, batch)
