"""Progress while a spec is computed: one live line per spec (clips done / total, model queries, ETA).

One implementation for pytest and the CLI (no extra dependency): a :class:`LiveLine` rewrites its line
with ``\\r`` on a terminal and prints nothing otherwise. pytest shows it only when the terminal is a TTY and
not under ``-q`` (``--freqrex-progress always|never`` overrides), and never on an xdist worker: workers
cannot write to the terminal, so lines from two workers can never interleave.
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
