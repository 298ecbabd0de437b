"""Option values checked once for both front ends: the CLI turns a ValueError into an argparse error, the
pytest plugin into a usage error, so ``--samples -3`` and ``--freqrex-samples -3`` are refused alike."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["int_at_least", "positive_int", "non_negative_int", "positive_seconds", "seed", "optional"]

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
