"""How model calls are padded: copies of a call's first row, never counted, so that a row's scores do not depend
on how many rows share its call (what lets clips side by side share calls: models.lockstep). Torch-free: the
spec loader reads it."""

from __future__ import annotations

PAD_MODES = ("auto", "off", "pairs", "full")


def pad_mode(value: str | bool) -> str:
    """How model calls are padded, so that a row's scores do not depend on how many rows share its call:

    - ``off``: each call holds exactly the rows asked;
    - ``pairs``: a call of one row is sent as two (the row twice). A CPU's BLAS takes another path for one row
      (the zoo transformers' one-row scores differ from the same row in a bigger call by ~1e-7, while every
      size from 2 to 32 agreed), so this is what lets one-row questions of clips side by side share calls;
    - ``full``: every call holds ``batch_size`` rows: one input shape (kernels chosen by shape: a GPU's);
    - ``auto`` (a spec's default): ``pairs`` where the load-time self-check saw a lone row's scores differ from the
      same row's in bigger calls while bigger calls agreed with each other, else ``off`` (:func:`resolved`).

    ``True`` / ``False`` are ``full`` / ``off`` (the key was a bool before "pairs")."""
    if value is True or value is False:
        return "full" if value else "off"
    if value not in PAD_MODES:
        raise ValueError(f"pad_calls must be one of {', '.join(PAD_MODES)}, got {value!r}")
    return str(value)


def padded_rows(rows: int, mode: str, batch_size: int) -> int:
    """The rows a call of ``rows`` questions computes under ``mode`` (never more than ``batch_size``)."""
    if mode == "full":
        return max(rows, batch_size)
    if mode == "pairs" and rows == 1 and batch_size >= 2:
        return 2
    return rows


def resolved(mode: str, self_check: dict | None) -> str:
    """The mode a spec's calls use: ``auto`` becomes what the model's self-check found pairs are good for (``off``
    without one), so the choice is the model's, made once at load, never a clip's."""
    if mode != "auto":
        return mode
    return "pairs" if (self_check or {}).get("padding") == "pairs" else "off"
