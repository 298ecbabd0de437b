"""Numbers as a person reads them: counts with thousands separators, shares with their counts,
rates with k/n and their interval, SNRs that say "identical" instead of "1.47e-09 dB"."""

from __future__ import annotations

import math
from typing import Any

__all__ = ["fmt_number", "fmt_percent", "fmt_count", "fmt_share", "fmt_bins", "fmt_snr", "fmt_rate",
           "allowed_count", "is_missing", "fmt_op", "fmt_threshold_pct"]

SNR_IDENTICAL_DB = 99.0
"""Above this SNR the two signals differ by less than float32 rounding can show: written "> 99 dB"."""


def is_missing(value: Any) -> bool:
    """None or NaN: a value the results file does not have."""
    return value is None or (isinstance(value, float) and math.isnan(value))


def fmt_number(value: Any, digits: int = 3) -> str:
    """``n/a`` for None/NaN, ∞ for infinities, ints with separators, floats with ``digits`` significant digits
    (never scientific notation for values a person reads: tiny values read "< 0.001")."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return f"{value:,}"
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if v == 0:
        return "0"
    if abs(v) < 1e-3:
        return "< 0.001" if v > 0 else "> −0.001"
    if abs(v) >= 10 ** digits:
        return f"{v:,.0f}"
    return f"{v:.{digits}g}"


def fmt_percent(value: Any, decimals: int = 1) -> str:
    """A share in [0, 1] as a percentage; shares too small for ``decimals`` read "< 0.1 %"."""
    if is_missing(value):
        return "n/a"
    pct = 100 * float(value)
    if 0 < pct < 10 ** -decimals:
        return f"< {10 ** -decimals:g} %"
    return f"{pct:.{decimals}f} %"


def fmt_op(op: Any) -> str:
    """``<=`` / ``>=`` as ≤ / ≥."""
    return {"<=": "≤", ">=": "≥"}.get(str(op or ""), str(op or ""))


def fmt_threshold_pct(value: Any) -> str:
    """A rate threshold as a percentage: "25 %", "12.5 %"."""
    if is_missing(value):
        return "n/a"
    pct = 100 * float(value)
    return f"{pct:.1f}".rstrip("0").rstrip(".") + " %"


def fmt_count(value: Any) -> str:
    return "n/a" if is_missing(value) else f"{int(value):,}"


def fmt_share(k: int, n: int, unit: str = "") -> str:
    """``k of n <unit> (p %)`` with a precision that never rounds a non-zero share to 0."""
    if not n:
        return f"{k:,} of 0{' ' + unit if unit else ''}"
    share = k / n
    decimals = 1 if share == 0 or share >= 0.001 else 2 if share >= 0.0001 else 3
    return f"{k:,} of {n:,}{' ' + unit if unit else ''} ({fmt_percent(share, decimals)})"


def fmt_bins(k: int | None, n: int | None) -> str:
    """``1 of 8,001 bins (0.01 %)``."""
    if k is None or not n:
        return "not found"
    return fmt_share(int(k), int(n), "bin" if n == 1 else "bins")


def fmt_snr(db: Any) -> str:
    """An SNR in dB: "identical" for an unchanged signal, "> 99 dB" where float rounding is all that differs."""
    if is_missing(db):
        return "n/a"
    v = float(db)
    if math.isinf(v) and v > 0:
        return "identical"
    if v > SNR_IDENTICAL_DB:
        return f"> {SNR_IDENTICAL_DB:.0f} dB"
    return f"{v:.1f}".rstrip("0").rstrip(".") + " dB"


def fmt_rate(gate: dict | None) -> str:
    """A rate's evidence, with what it divides by (``engine.summaries.METRICS``) and the errored clips:
    ``3 of 8 measured clips, 1 errored (38 %, 95 % CI 14–69 %)``; empty when it has no counts."""
    n = (gate or {}).get("n")
    if not n:
        return ""
    k = int(gate.get("k") or 0)
    errored = f", {int(gate['errored']):,} errored" if gate.get("errored") else ""
    text = f"{k:,} of {int(n):,} {gate.get('over') or 'clips'}{errored} ({fmt_percent(k / n, 0)}"
    if not is_missing(gate.get("low")) and not is_missing(gate.get("high")):
        text += f", 95 % CI {100 * gate['low']:.0f}–{100 * gate['high']:.0f} %"
    return text + ")"


def allowed_count(threshold: float, n: int, op: str) -> int:
    """How many of ``n`` clips a rate threshold allows (``<=``) or requires (``>=``)."""
    raw = threshold * n
    return int(math.floor(raw + 1e-9)) if op == "<=" else int(math.ceil(raw - 1e-9))
