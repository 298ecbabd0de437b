"""Time a serial pytest run of the specs against ``-n N`` (default 2) and check both wrote the same
results.json (``timings`` aside). Not a test: timings depend on the machine, so the machine's load average
is printed beside them. Each run starts from its own empty result cache (what a new user has; the cache
is on, as by default, so workers can share specs' results), or with ``--no-cache`` computes everything
in every spec (peers included) without one.

    python benchmarks/xdist_vs_serial.py [SPEC_DIR_OR_FILE ...] [--workers 2] [--samples N] [--no-cache]
        [--threads N]    # the same torch thread count on both sides: results.json identical bit for bit
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def stable(doc: dict) -> dict:
    """results.json without what differs between two runs of the same audit: timings, start time, run id."""
    doc = dict(doc)
    doc.pop("timings", None)
    doc["run"] = {k: v for k, v in doc["run"].items() if k not in ("started", "seconds", "id", "run_id")}
    return doc


def run(targets: list[str], root: Path, extra: list[str], no_cache: bool) -> tuple[float, dict, int]:
    cache = ["--freqrex-no-cache"] if no_cache else ["--freqrex-cache", str(root / "cache")]
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", "-p", "no:randomly",
           "--freqrex-no-report", "--freqrex-report", str(root / "reports"), *cache, *extra]
    began = time.perf_counter()
    code = subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL).returncode
    seconds = time.perf_counter() - began
    doc = json.loads(next((root / "reports").glob("*/results.json")).read_text())
    return seconds, stable(doc), code


def differences(a: dict, b: dict, where: str = "") -> list[str]:
    """Paths at which two JSON documents differ (the first few), to say why they are not identical."""
    if isinstance(a, dict) and isinstance(b, dict):
        out = [f"{where}.{k}" for k in sorted(set(a) ^ set(b))]
        for key in sorted(set(a) & set(b)):
            out += differences(a[key], b[key], f"{where}.{key}")
        return out
    if isinstance(a, list) and isinstance(b, list) and len(a) == len(b):
        return [d for i, (x, y) in enumerate(zip(a, b)) for d in differences(x, y, f"{where}[{i}]")]
    return [] if same_value(a, b) else [where or "."]


def same_value(a: object, b: object) -> bool:
    """Equal, NaN counting as equal to NaN (results.json writes a missing rate as NaN)."""
    return a == b or (isinstance(a, float) and isinstance(b, float) and math.isnan(a) and math.isnan(b))


def largest_gap(a: object, b: object) -> float:
    """The largest absolute difference between numbers at the same place in two JSON documents (inf when
    the structure or a non-number differs)."""
    if isinstance(a, dict) and isinstance(b, dict):
        return max((largest_gap(a[k], b[k]) for k in a), default=0.0) if set(a) == set(b) else float("inf")
    if isinstance(a, list) and isinstance(b, list):
        return max((largest_gap(x, y) for x, y in zip(a, b)), default=0.0) if len(a) == len(b) else float("inf")
    if isinstance(a, (int, float)) and isinstance(b, (int, float)) and not isinstance(a, bool):
        return 0.0 if same_value(float(a), float(b)) else abs(float(a) - float(b))
    return 0.0 if same_value(a, b) else float("inf")


def outcomes(doc: dict) -> list:
    """Every gate's item, metric and outcome, and the run's verdict: what a release decision reads."""
    gates = [(g.get("item"), g.get("metric"), g.get("outcome"), g.get("passed")) for g in doc.get("gates", [])]
    return [doc["run"].get("verdict"), gates]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=["model_specs"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=None)
    parser.add_argument("--no-cache", action="store_true", help="no result cache at all (workers share nothing)")
    parser.add_argument("--threads", type=int, default=None,
                        help="--freqrex-threads for both runs (default: torch's own serially, cores // workers)")
    args = parser.parse_args()
    extra = [f"--freqrex-samples={args.samples}"] if args.samples else []
    extra += [f"--freqrex-threads={args.threads}"] if args.threads else []
    load0 = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp:
        serial_s, serial, serial_rc = run(args.targets, Path(tmp) / "serial", extra, args.no_cache)
        load1 = os.getloadavg()
        par_s, parallel, par_rc = run(args.targets, Path(tmp) / "parallel", extra + ["-n", str(args.workers)],
                                      args.no_cache)
    load2 = os.getloadavg()
    diff = differences(serial, parallel)
    print(f"serial: {serial_s:.1f} s (exit {serial_rc})   -n {args.workers}: {par_s:.1f} s (exit {par_rc})   "
          f"speed-up {serial_s / par_s:.2f}x   results.json identical (timings aside): {not diff}")
    print(f"load average (1 min) on {os.cpu_count()} cores: {load0[0]:.2f} before, {load1[0]:.2f} after serial, "
          f"{load2[0]:.2f} after -n {args.workers}")
    if diff:
        print(f"differs at {len(diff)} places, e.g. " + ", ".join(diff[:5]) + (" …" if len(diff) > 5 else ""))
        print(f"largest numeric difference: {largest_gap(serial, parallel):.3g}; gate outcomes and run verdict "
              f"identical: {outcomes(serial) == outcomes(parallel)}  (torch's CPU kernels round differently with "
              f"a different thread count: --threads 1 gives the serial run the workers' one thread each)")
    return 0 if not diff else 1


if __name__ == "__main__":
    raise SystemExit(main())
