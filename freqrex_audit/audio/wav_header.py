"""What a WAV file's header says about its length, checked against the bytes the file really holds.

libsndfile trusts the header: it quietly reads a cut-short file's first part, and only the declared part of a
file whose header was never updated. :func:`wav_length_problem` says when either happened (audio.read_audio
refuses such a clip), so an audit never analyses part of a clip as if it were the whole of it.
"""

from __future__ import annotations

from pathlib import Path
from typing import BinaryIO

__all__ = ["wav_length_problem"]


def wav_length_problem(path: Path, size: int) -> str | None:
    """For a RIFF/WAVE file whose data chunk declares more bytes than the file holds (truncated), or fewer than
    follow it as audio (a header never updated): the problem, else None (also for any file that is not a WAV).

    Streaming placeholders (a data size of 0 or ≥ 0x7FFF0000: "length unknown") are neither.
    """
    try:
        with path.open("rb") as fh:
            head = fh.read(12)
            if len(head) < 12 or head[:4] != b"RIFF" or head[8:12] != b"WAVE":
                return None
            pos, block_align, rate = 12, 0, 0
            for _ in range(10_000):
                fh.seek(pos)
                chunk = fh.read(8)
                if len(chunk) < 8:
                    return None
                cid, csize = chunk[:4], int.from_bytes(chunk[4:], "little")
                if cid == b"fmt ":
                    fmt = fh.read(min(csize, 16))
                    if len(fmt) >= 14:
                        rate = int.from_bytes(fmt[4:8], "little")
                        block_align = int.from_bytes(fmt[12:14], "little")
                elif cid == b"data":
                    available = max(0, size - pos - 8)
                    if csize == 0 or csize >= 0x7FFF0000:
                        return None
                    if csize <= available:
                        return _wav_overrun(fh, pos + 8 + csize + (csize & 1), size, csize, block_align, rate)
                    declared, held = (csize // block_align, available // block_align) if block_align else (0, 0)
                    if rate and declared > held:
                        return (f"is truncated: its WAV header declares {declared} frames ({declared / rate:.3g} s) "
                                f"but the file holds only {held}; re-export or re-copy it")
                    return (f"is truncated: its WAV header declares {csize} bytes of audio but the file "
                            f"holds only {available}; re-export or re-copy it")
                pos += 8 + csize + (csize & 1)
    except OSError:
        return None
    return None


def _wav_overrun(fh: BinaryIO, end: int, size: int, csize: int, block_align: int, rate: int) -> str | None:
    """When what follows a WAV data chunk is neither a chunk (a 4-letter ASCII id) nor zero padding but more
    samples, the header declares less audio than the file holds (a writer that never updated it): the problem.

    libsndfile would read only the declared part; an audit must not analyse the start of a clip as if it were
    the whole of it.
    """
    if size - end < 8:
        return None
    fh.seek(end)
    tail = fh.read(min(size - end, 1 << 16))
    cid = tail[:4]
    if all(0x20 <= b <= 0x7E for b in cid) or not tail.strip(b"\0"):
        return None
    frames = f"{csize // block_align} frames" if block_align else f"{csize} bytes"
    length = f" ({csize // block_align / rate:.3g} s)" if block_align and rate else ""
    return (f"declares less audio than it holds: its WAV header says {frames}{length}, but {size - end} more bytes "
            f"of what looks like audio follow the data chunk (a header not updated after writing?); re-export it")
