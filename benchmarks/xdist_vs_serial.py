"""Time a serial pytest run of the specs against ``-n N`` (default 2) and check both wrote the same
results.json (timings aside). Not a test: timings depend on the machine. Both runs use a fresh cache.

    python benchmarks/xdist_vs_serial.py [SPEC_DIR_OR_FILE ...] [--workers 2] [--samples N]
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def run(targets: list[str], report: Path, extra: list[str]) -> tuple[float, dict]:
    cmd = [sys.executable, "-m", "pytest", *targets, "-q", "-p", "no:cacheprovider", "--freqrex-no-cache",
           "--freqrex-no-report", "--freqrex-report", str(report), *extra]
    began = time.perf_counter()
    subprocess.run(cmd, check=False, stdout=subprocess.DEVNULL)
    seconds = time.perf_counter() - began
    doc = json.loads(next(report.glob("*/results.json")).read_text())
    for key in ("timings",):
        doc.pop(key, None)
    doc["run"] = {k: v for k, v in doc["run"].items() if k not in ("started", "seconds")}
    return seconds, doc


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("targets", nargs="*", default=["model_specs"])
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--samples", type=int, default=None)
    args = parser.parse_args()
    extra = [f"--freqrex-samples={args.samples}"] if args.samples else []
    with tempfile.TemporaryDirectory() as tmp:
        serial_s, serial = run(args.targets, Path(tmp) / "serial", extra)
        par_s, parallel = run(args.targets, Path(tmp) / "parallel", extra + ["-n", str(args.workers)])
    same = serial == parallel
    print(f"serial: {serial_s:.1f} s   -n {args.workers}: {par_s:.1f} s   speed-up {serial_s / par_s:.2f}x   "
          f"results.json identical: {same}")
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
