"""``freqrex-audit compare A B``: a table of metric deltas between two runs or baselines.

Each side is a ``results.json`` path, a run folder holding one, or a baseline name (``<dir>/<NAME>.json``
under the baseline folder, default ``.freqrex/baselines``). Metrics are the flat ``check.metric`` figures.
Above the table it names the run facts that differ (the CPU, the device, each version): any of them can move
numbers in their last digits, so a reader can tell another machine from another model.
"""

from __future__ import annotations

import math
from pathlib import Path

from .baselines import load_baseline
from .read import read_json, validate_results


def metrics_in(doc: dict) -> dict[str, dict[str, float | None]]:
    """spec name → {check.metric: value} of a document :func:`document_of` read."""
    return {n: dict(s.get("metrics") or {}) for n, s in doc["specs"].items()}


def document_of(source: str, baseline_dir: Path) -> dict:
    """A results.json, a run folder's or a baseline's document; every file is read by the one validating loader
    (:mod:`freqrex_audit.runs.read`), so a bad one is a ResultsError."""
    path = Path(source)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        named = baseline_dir / f"{source}.json"
        if not named.is_file():
            raise FileNotFoundError(f"{source}: not a results.json, a run folder or a baseline in {baseline_dir}")
        path = named
    doc = read_json(path, "results.json or baseline")
    if isinstance(doc, dict) and "schema_version" in doc:  # a run's results.json
        validate_results(doc, path)
    else:  # a baseline file (--freqrex-save NAME)
        load_baseline(path)
    return doc


def setting_differences(run_a: dict, run_b: dict) -> list[tuple[str, str, str]]:
    """(fact, A, B) for each run fact that differs between two runs' ``run`` sections: the CPU (and a Ray
    cluster's other nodes' CPUs), the device and each version. Any of them can move numbers in their last digits
    (kernels round by instruction set and by release), so a delta beside them is not by itself a change of the
    model."""
    def facts(run: dict) -> dict[str, object]:
        versions = run.get("versions") if isinstance(run.get("versions"), dict) else {}
        nodes = run.get("node_cpus") if isinstance(run.get("node_cpus"), dict) else {}
        return {"cpu": run.get("cpu"), "device": run.get("device"), **{f"versions.{k}": v for k, v in versions.items()},
                "node_cpus": ", ".join(sorted({str(cpu) for cpu in nodes.values()})) or None}

    a, b = facts(run_a if isinstance(run_a, dict) else {}), facts(run_b if isinstance(run_b, dict) else {})
    shown = lambda v: "not recorded" if v is None else str(v)  # noqa: E731
    return [(k, shown(a.get(k)), shown(b.get(k))) for k in sorted(set(a) | set(b)) if a.get(k) != b.get(k)]


def format_differences(differences: list[tuple[str, str, str]]) -> str:
    """The lines ``compare`` prints above its table when the two runs ran on other CPUs or software."""
    if not differences:
        return ""
    lines = ["A and B ran on other machines or software; numbers may move in their last digits for that alone:"]
    return "\n".join(lines + [f"  {fact}: {a} → {b}" for fact, a, b in differences])


def delta_rows(a: dict, b: dict) -> list[tuple[str, str, float | None, float | None, float | None]]:
    """(spec, metric, A, B, B − A) for every metric either side has, sorted."""
    rows = []
    for spec in sorted(set(a) | set(b)):
        left, right = a.get(spec, {}), b.get(spec, {})
        for metric in sorted(set(left) | set(right)):
            x, y = _number(left.get(metric)), _number(right.get(metric))
            rows.append((spec, metric, x, y, None if x is None or y is None else y - x))
    return rows


def _number(value) -> float | None:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        return None
    return float(value)


def format_table(rows: list, name_a: str, name_b: str, changed_only: bool = False) -> str:
    """A plain aligned text table (what a terminal and a CI log both show)."""
    def show(v: float | None, signed: bool = False) -> str:
        return "—" if v is None else (f"{v:+.4g}" if signed else f"{v:.4g}")

    body = [(s, m, show(x), show(y), show(d, True)) for s, m, x, y, d in rows if not changed_only or d != 0]
    head = ("spec", "metric", name_a, name_b, "Δ (B − A)")
    widths = [max(len(str(r[i])) for r in [head, *body]) for i in range(5)]
    lines = ["  ".join(str(c).ljust(w) if i < 2 else str(c).rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [head, *body]]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)
