"""Option values checked once for both front ends: the CLI turns a ValueError into an argparse error, the
pytest plugin into a usage error, so ``--samples -3`` and ``--freqrex-samples -3`` are refused alike."""

from __future__ import annotations

import math
import re
from typing import Any

__all__ = ["int_at_least", "positive_int", "non_negative_int", "positive_seconds", "non_negative_days", "byte_size",
           "seed", "optional"]

MAX_SEED = 2 ** 32 - 1
"""What numpy's generators accept."""


def int_at_least(minimum: int, value: Any) -> int:
    """``value`` as an integer ≥ ``minimum``; ValueError saying what was wanted otherwise."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"must be an integer ≥ {minimum}, got {value!r}") from None
    if number < minimum:
        raise ValueError(f"must be an integer ≥ {minimum}, got {number}")
    return number


def positive_int(value: Any) -> int:
    return int_at_least(1, value)


def non_negative_int(value: Any) -> int:
    return int_at_least(0, value)


def positive_seconds(value: Any) -> float:
    """A finite number > 0 (seconds, a clip length)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"must be a finite number > 0, got {value!r}") from None
    if not math.isfinite(number) or number <= 0:
        raise ValueError(f"must be a finite number > 0, got {value!r}")
    return number


def non_negative_days(value: Any) -> float:
    """A finite number ≥ 0 (days, an age)."""
    try:
        number = float(str(value).strip())
    except ValueError:
        raise ValueError(f"must be a finite number of days ≥ 0 (e.g. 30 or 0.5), got {value!r}") from None
    if not math.isfinite(number) or number < 0:
        raise ValueError(f"must be a finite number of days ≥ 0 (e.g. 30 or 0.5), got {value!r}")
    return number


BYTE_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def byte_size(value: Any) -> int:
    """``500M``, ``2G``, ``1.5G``, ``800000`` (bytes; ``K``/``M``/``G``/``T`` are powers of 1,024) as a byte count."""
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*", str(value), re.IGNORECASE)
    if not match:
        raise ValueError(f"must be a size (e.g. 500M, 2G or a number of bytes), got {value!r}")
    return int(float(match.group(1)) * BYTE_UNITS[match.group(2).upper()])


def seed(value: Any) -> int:
    """A seed in [0, 2**32 − 1]."""
    try:
        number = int(str(value).strip())
    except ValueError:
        raise ValueError(f"must be an integer in [0, {MAX_SEED}], got {value!r}") from None
    if not 0 <= number <= MAX_SEED:
        raise ValueError(f"must be an integer in [0, {MAX_SEED}], got {number}")
    return number


def optional(parse: Any, value: Any) -> Any:
    """``parse(value)``, or None for an option left unset (None or an empty ini value)."""
    return None if value is None or str(value).strip() == "" else parse(value)
