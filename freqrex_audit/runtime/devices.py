"""Which device each parallel process uses: a list of devices (``cuda:0,cuda:1``), checked once, handed out
round-robin to pytest-xdist workers (by their id, ``gw0``, ``gw1`` …) and to executor tasks (by index).

One rule for pytest (``--freqrex-devices`` / ``freqrex_devices``) and the CLI (``audit --devices``): without
a list, every visible CUDA device when there is one, else the process's own device (``cpu``).
"""

from __future__ import annotations

import platform
import re
from pathlib import Path
from typing import Callable

__all__ = ["DeviceError", "parse_devices", "default_devices", "device_for", "worker_index", "cuda_device_count",
           "cpu_description"]

_DEVICE = re.compile(r"^(cpu|mps|cuda)(?::(\d+))?$")


class DeviceError(ValueError):
    """A device list names a device this machine does not have, or is not a device list at all."""


def cuda_device_count() -> int:
    """CUDA devices torch can see here (0 without torch's CUDA build or without a GPU)."""
    import torch

    return torch.cuda.device_count() if torch.cuda.is_available() else 0


def parse_devices(text: str, cuda_count: int | Callable[[], int] | None = None) -> list[str]:
    """``"cuda:0, cuda:1"`` → ``["cuda:0", "cuda:1"]``, each checked against this machine: ``cpu`` is always
    valid, ``cuda`` / ``cuda:N`` need N < the visible CUDA devices, ``mps`` needs torch's MPS backend.
    ``cuda_count`` (a number or a function giving it; default :func:`cuda_device_count`) is asked only when
    a CUDA device is named."""
    names = [part.strip() for part in str(text).split(",") if part.strip()]
    if not names:
        raise DeviceError(f"no device in {text!r}: give a comma-separated list such as cpu or cuda:0,cuda:1")
    count: int | None = None
    for name in names:
        match = _DEVICE.match(name)
        if match is None:
            raise DeviceError(f"{name!r} is not a device: use cpu, cuda, cuda:N or mps (in {text!r})")
        kind, index = match.group(1), match.group(2)
        if kind == "cuda":
            if count is None:
                count = _count(cuda_count)
            wanted = int(index) if index is not None else 0
            if wanted >= count:
                seen = f"{count} CUDA device{'s' if count != 1 else ''} visible" + (
                    f" (cuda:0..cuda:{count - 1})" if count else "")
                raise DeviceError(f"{name!r} does not exist on this machine: {seen}")
        elif kind == "mps":
            if index not in (None, "0"):
                raise DeviceError(f"{name!r}: there is only one MPS device (mps)")
            import torch

            if not (getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()):
                raise DeviceError(f"{name!r} is not available: torch has no MPS backend here")
    return names


def default_devices(fallback: str = "cpu", cuda_count: int | Callable[[], int] | None = None) -> list[str]:
    """Every visible CUDA device (``cuda:0`` … ``cuda:N-1``) when the fallback allows CUDA, else ``[fallback]``.

    ``fallback`` is the process's own device: ``auto`` / ``cuda`` take the GPUs, ``cpu`` (or ``cuda:1``)
    stays what it says."""
    if fallback in ("auto", "cuda"):
        count = _count(cuda_count)
        if count:
            return [f"cuda:{i}" for i in range(count)]
    return [fallback]


def _count(cuda_count: int | Callable[[], int] | None) -> int:
    if cuda_count is None:
        return cuda_device_count()
    return int(cuda_count()) if callable(cuda_count) else int(cuda_count)


def worker_index(worker_id: str | None) -> int:
    """xdist's worker id (``gw0``, ``gw12``) → 0, 12; no worker (a serial run) → 0."""
    digits = "".join(c for c in str(worker_id or "") if c.isdigit())
    return int(digits) if digits else 0


def device_for(devices: list[str], index: int) -> str:
    """The device of worker / task ``index``: round-robin over ``devices``."""
    if not devices:
        raise DeviceError("an empty device list has no device to hand out")
    return devices[index % len(devices)]


SIMD_LEVELS = ("avx512f", "avx2", "avx", "sse4_2")
"""The widest of these the CPU has is recorded with its name: float kernels are chosen by instruction set, so two
CPUs can round the same computation differently (README: the demo on an AVX-512 machine)."""


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The CPU a run computed on, as results.json records it (``run.cpu``): its model name and widest SIMD level,
    e.g. ``AMD EPYC (avx512f)``; without ``/proc/cpuinfo``, what :mod:`platform` says."""
    try:
        with open(cpuinfo, encoding="utf-8", errors="replace") as handle:
            text = handle.read(1 << 16)
    except OSError:
        text = ""
    first = text.split("\n\n", 1)[0]  # the first processor's entry: the others repeat it
    fields = {k.strip(): v.strip() for k, v in (line.split(":", 1) for line in first.splitlines() if ":" in line)}
    name = fields.get("model name") or platform.processor() or platform.machine() or "unknown CPU"
    flags = set(fields.get("flags", "").split())
    level = next((simd for simd in SIMD_LEVELS if simd in flags), None)
    return f"{name} ({level})" if level else name
