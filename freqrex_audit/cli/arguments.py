"""argparse types for ``freqrex-audit``'s options: the shared checks of :mod:`freqrex_audit.runtime.values`,
refused at parse time (an argparse error, exit 2), never blamed on the data."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from ..runtime import values

__all__ = ["positive_int", "non_negative_int", "positive_float", "non_negative_days", "byte_size", "seed_value",
           "device_list"]


def _argparse_type(check: Callable[[str], Any], name: str) -> Callable[[str], Any]:
    """``check`` with its ValueError turned into argparse's error (argparse names the option)."""
    def parse(text: str) -> Any:
        try:
            return check(text)
        except ValueError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    parse.__name__ = name  # argparse shows it in "invalid <name> value"
    return parse


positive_int = _argparse_type(values.positive_int, "positive_int")
non_negative_int = _argparse_type(values.non_negative_int, "non_negative_int")
positive_float = _argparse_type(values.positive_seconds, "positive_float")
seed_value = _argparse_type(values.seed, "seed_value")
non_negative_days = _argparse_type(values.non_negative_days, "non_negative_days")
byte_size = _argparse_type(values.byte_size, "byte_size")


def _devices(text: str) -> list[str]:
    from ..runtime.devices import DeviceError, parse_devices

    try:
        return parse_devices(text)
    except DeviceError as exc:
        raise ValueError(str(exc)) from None


device_list = _argparse_type(_devices, "device_list")
"""A comma-separated device list, each checked against this machine
(:func:`freqrex_audit.runtime.devices.parse_devices`)."""
