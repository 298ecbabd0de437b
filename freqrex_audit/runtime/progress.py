"""Progress while a spec is computed: one live line per spec (clips done / total, model queries, ETA).

One implementation for pytest and the CLI (no extra dependency): a :class:`LiveLine` rewrites its line
with ``\\r`` on a terminal and prints nothing otherwise. pytest shows it only when the terminal is a TTY and
not under ``-q`` (``--freqrex-progress always|never`` overrides). Under pytest-xdist the workers cannot
write to the terminal: each worker sends its spec's counts to the controller (see
:mod:`freqrex_audit.plugin.xdist`), whose :class:`Board` is the only writer, so lines never interleave.
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


class LiveLine:
    """Rewrites one line of ``stream`` per update; ``close()`` ends it with a newline."""

    def __init__(self, name: str, write: Callable[[str], None], clock: Callable[[], float] = time.monotonic):
        self.name, self.write, self.clock = name, write, clock
        self.started = clock()
        self.width = 0
        self.shown = False

    def __call__(self, done: int, total: int, queries: int) -> None:
        line = format_line(self.name, done, total, queries, self.clock() - self.started)
        self.write("\r" + line.ljust(self.width))
        self.width, self.shown = max(self.width, len(line)), True

    def close(self) -> None:
        if self.shown:
            self.write("\n")


def stream_line(name: str, stream: TextIO | None = None) -> LiveLine | None:
    """A live line on ``stream`` (default stdout) when it is a terminal, else None (nothing is printed)."""
    stream = stream or sys.stdout
    if not (hasattr(stream, "isatty") and stream.isatty()):
        return None

    def write(text: str) -> None:
        stream.write(text)
        stream.flush()

    return LiveLine(name, write)


class Board:
    """The xdist controller's progress: one live line showing every running spec (rewritten with ``\\r``),
    and one permanent line per spec when it is done. ``line_width()`` says how much the terminal has on its
    current line (another writer's output: the live line starts on a fresh line) and ``columns()`` its width
    (the live line never wraps, or ``\\r`` could not rewrite it). :meth:`commit` before anyone else writes."""

    def __init__(self, write: Callable[[str], None], line_width: Callable[[], int], columns: Callable[[], int]):
        self.write, self.line_width, self.columns = write, line_width, columns
        self.running: dict[str, str] = {}  # spec name -> its latest line
        self.width = 0
        self.shown = False

    def update(self, name: str, done: int, total: int, queries: int, elapsed: float, where: str = "") -> None:
        """A worker's counts for spec ``name`` (``where``: e.g. ``gw0 cpu``, shown in brackets)."""
        line = (f"[{where}] " if where else "") + format_line(name, done, total, queries, elapsed)
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
