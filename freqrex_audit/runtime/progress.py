"""Progress while a spec is computed: one live line per spec (clips done / total, model queries, ETA).

One implementation for pytest and the CLI (no extra dependency): a :class:`LiveLine` rewrites its line
with ``\\r`` on a terminal, and without one writes a plain line at least every 10 s of work (nothing for a
spec done sooner). pytest writes it through its own terminal writer with output capture suspended, so it
shows under plain ``pytest``; ``-q`` hides it (``--freqrex-progress always|never`` overrides). Under
pytest-xdist the workers cannot write to the terminal: each worker sends its spec's counts to the controller
(see :mod:`freqrex_audit.plugin.xdist`), whose :class:`Board` is the only writer, so lines never interleave.
A peer a spec computes for transferability has a line of its own (``peer (peer of spec)``), so its work is
shown where it happens and never counted in the spec's own line.
"""

from __future__ import annotations

import sys
import time
from typing import Callable, TextIO


def format_line(name: str, done: int, total: int, queries: int, elapsed: float) -> str:
    """``name: 3/8 clips, 1,204 queries, 12 s, ETA 20 s`` (the ETA from the mean time per clip so far)."""
    text = f"{name}: {done}/{total} clips, {queries:,} queries, {elapsed:.0f} s"
    if 0 < done < total:
        text += f", ETA {elapsed / done * (total - done):.0f} s"
    elif done == total:
        text += ", done"
    return text


PLAIN_EVERY_S = 10.0
"""Without a terminal, a spec's progress is a plain line at least this often while it computes."""
TICK_EVERY_S = 1.0
"""On a terminal, the live line is redrawn between clips (model calls) at most this often."""


class LiveLine:
    """One spec's progress. On a terminal (``plain`` false) it rewrites one line with ``\\r`` after every clip
    (and, between clips, every :data:`TICK_EVERY_S` of model calls through :meth:`tick`); ``close()`` ends it
    with a newline. Without a terminal (``plain``) it writes a whole line once :data:`PLAIN_EVERY_S` have passed
    since the last one, and a final line when the spec is done if it wrote any: a spec done in a few seconds
    prints nothing, a long one tells a CI log it is alive."""

    def __init__(self, name: str, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic,
                 plain: bool = False, every: float | None = None):
        self.name, self.write, self.clock, self.plain = name, write, clock, plain
        self.every = (PLAIN_EVERY_S if plain else TICK_EVERY_S) if every is None else every
        self.started = clock()
        self.last = self.started  # when a line was last drawn
        self.counts = (0, 0, 0)
        self.width = 0
        self.shown = False

    def __call__(self, done: int, total: int, queries: int) -> None:
        self.counts = (done, total, queries)
        if not self.plain or (done >= total and self.shown) or self.clock() - self.last >= self.every:
            self._draw()

    def tick(self, queries: int) -> None:
        """Queries so far, between clips (a long clip, a peer's work): redrawn when :attr:`every` has passed."""
        done, total, _ = self.counts
        self.counts = (done, total, queries)
        if total and self.clock() - self.last >= self.every:
            self._draw()

    def _draw(self) -> None:
        done, total, queries = self.counts
        now = self.clock()
        line = format_line(self.name, done, total, queries, now - self.started)
        self.last = now
        if self.plain:
            self.write(line + "\n")
        else:
            self.write("\r" + line.ljust(self.width))
            self.width = max(self.width, len(line))
        self.shown = True

    def close(self) -> None:
        if self.shown and not self.plain:
            self.write("\n")
            self.shown = False


def stream_line(name: str, stream: TextIO | None = None, quiet: bool = False) -> LiveLine | None:
    """A spec's progress on ``stream`` (default stdout): live on a terminal, plain lines every
    :data:`PLAIN_EVERY_S` otherwise; None when ``quiet``."""
    stream = stream or sys.stdout
    if quiet:
        return None

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return LiveLine(name, write, plain=not (hasattr(stream, "isatty") and stream.isatty()))


class Board:
    """The xdist controller's progress: one live line showing every running spec (rewritten with ``\\r``),
    and one permanent line per spec when it is done. ``line_width()`` says how much the terminal has on its
    current line (another writer's output: the live line starts on a fresh line) and ``columns()`` its width
    (the live line never wraps, or ``\\r`` could not rewrite it). :meth:`commit` before anyone else writes."""

    def __init__(self, write: Callable[[str], None], line_width: Callable[[], int], columns: Callable[[], int],
                 plain: bool = False):
        self.write, self.line_width, self.columns, self.plain = write, line_width, columns, plain
        self.running: dict[str, str] = {}  # spec name -> its latest line
        self.printed: dict[str, float] = {}  # plain: spec name -> its elapsed seconds when last printed
        self.width = 0
        self.shown = False

    def update(self, name: str, done: int, total: int, queries: int, elapsed: float, where: str = "") -> None:
        """A worker's counts for spec ``name`` (``where``: e.g. ``gw0 cpu``, shown in brackets). Without a
        terminal (``plain``): a whole line once :data:`PLAIN_EVERY_S` of the spec's work passed since its last one,
        and its final line if it printed any."""
        line = (f"[{where}] " if where else "") + format_line(name, done, total, queries, elapsed)
        if self.plain:
            last = self.printed.get(name)
            if (done >= total and last is not None) or elapsed - (last or 0.0) >= PLAIN_EVERY_S:
                self.commit()
                self.write(line + "\n")
                self.printed[name] = elapsed
            return
        if done >= total:
            self.running.pop(name, None)
            self._draw(line, final=True)
            if self.running:
                self._draw(self._live())
        else:
            self.running[name] = line
            self._draw(self._live())

    def commit(self) -> None:
        """End the live line (it stays as printed) so that the next writer starts on a fresh line."""
        if self.shown:
            self.write("\n")
            self.shown, self.width = False, 0

    def _live(self) -> str:
        return "  |  ".join(self.running.values())

    def _draw(self, line: str, final: bool = False) -> None:
        if not self.shown and self.line_width() > 0:
            self.write("\n")
        room = max(20, self.columns() - 1)
        line = line if len(line) <= room else line[: room - 1] + "…"
        self.write("\r" + line.ljust(min(self.width, room)) + ("\n" if final else ""))
        self.shown, self.width = not final, 0 if final else max(self.width, len(line))
