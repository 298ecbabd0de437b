"""The paper's tables, the attack table and the α matrix, as views over a results document.

Two outputs from the same cells: the HTML report's Table 3 / 4 columns (:func:`metric_columns`) and the
README-ready markdown that ``freqrex-audit tables RUN`` prints (:func:`markdown_tables`). Every rate cell is a
named metric read from the spec's ``rates`` (computed once by ``engine.summaries.attack_counts``), shown as
"k / n", so a table can never say another number than the gate that tests the same name. Like every report
view, it reads the saved run alone (never live objects).
"""

from __future__ import annotations

from typing import Any, Iterable

import numpy as np

from ..engine.summaries import METRICS, metric_definition

__all__ = ["TABLE3", "metric_columns", "markdown_tables", "work_table", "as_array"]

TABLE3 = ("success_rate", "raw_success_rate", "single_rate", "five_rate", "int16_survival_rate", "single_share",
          "five_share", "int16_survival_share")
"""Table 3's columns, each a named metric (engine/summaries.METRICS) read from the spec's rates."""
TITLES = {"success_rate": "flipped (quiet)", "raw_success_rate": "flipped (any loudness)",
          "single_rate": "quiet, 1 frequency", "five_rate": "quiet, ≤ 5 frequencies",
          "int16_survival_rate": "quiet flip survives int16", "single_share": "flips of 1 frequency",
          "five_share": "flips of ≤ 5 frequencies", "int16_survival_share": "flips surviving int16",
          "success_share": "STFT flips (any loudness)"}


def as_array(value: Any, arrays: dict[str, np.ndarray] | None = None) -> np.ndarray | None:
    """Nested lists, ``{"__ndarray__": ...}`` or ``{"__npz__": key}`` as a float array."""
    if value is None:
        return None
    if isinstance(value, dict):
        if "__npz__" in value:
            return np.asarray((arrays or {})[value["__npz__"]], dtype=float)
        if "__ndarray__" in value:
            return np.asarray(value["__ndarray__"], dtype=float).reshape(value["shape"])
    return np.asarray(value, dtype=float)


def _title(name: str) -> str:
    if name in TITLES:
        return TITLES[name]
    frame = name.rsplit("_", 1)[1]
    return f"quiet, {frame}-sample frames" if name.startswith("rate_") else f"flips, {frame}-sample frames"


def stft_names(frame_sizes: Iterable[int]) -> list[str]:
    """Table 4's columns for these frame sizes: the rates over STFT-measured clips, then the paper's shares."""
    sizes = [int(w) for w in frame_sizes]
    return ["success_rate", *[f"rate_{w}" for w in sizes], "int16_survival_rate", "success_share",
            *[f"share_{w}" for w in sizes]]


def metric_columns(rates: dict, check: str, names: Iterable[str]) -> list[dict]:
    """One table column per named metric: its rate entry (k of n, over) and its definition for the tooltip,
    so a table cell is the very number its gate tests (``<check>.<name>`` in the spec's rates)."""
    out = []
    for name in names:
        counts, over = metric_definition(f"{check}.{name}") or (name, "clips")
        out.append({"name": name, "title": _title(name), "rate": rates.get(f"{check}.{name}"), "counts": counts,
                    "over": over, "css": name.replace("_", "-")})
    return out


# --------------------------------------------------------------------------- markdown

def _kn(rate: dict | None) -> str:
    """A rate cell: ``3 / 8`` (k of n), or ``—`` when nothing was measured."""
    if not rate or not rate.get("n"):
        return "—"
    return f"{int(rate['k'])} / {int(rate['n'])}"


def _num(value: Any, digits: int = 1) -> str:
    if value is None or (isinstance(value, float) and not np.isfinite(value)):
        return "—"
    return f"{value:,.{digits}f}".replace("-", "−") if isinstance(value, float) else f"{value:,}"


def _table(header: list[str], rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def _specs(doc: dict) -> list[tuple[str, dict]]:
    return sorted((doc.get("specs") or {}).items())


def table1(doc: dict) -> str:
    """Table 1: mean size of the sufficient, necessary and complete sets per class, % of the K bins."""
    rows = []
    for name, spec in _specs(doc):
        for label, row in (spec.get("tables") or {}).get("sufficiency_by_class", {}).items():
            rows.append([name, str(label), str(row.get("n", "")),
                         *[_num(row.get(kind), 2) for kind in ("sufficient", "necessary", "complete")]])
    return _table(["spec", "class", "clips", "sufficient %", "necessary %", "complete %"], rows)


def table2(doc: dict) -> str:
    """Table 2: composition ratio per class (specs with the composition check)."""
    rows = [[name, str(label), _num(ratio, 2)] for name, spec in _specs(doc)
            for label, ratio in (spec.get("tables") or {}).get("composition_by_class", {}).items()]
    return _table(["spec", "class", "composition ratio"], rows)


def table3(doc: dict) -> str:
    """Table 3 (the attack table): every Fourier-attack metric as k / n, then medians and the query spend."""
    header = ["spec", "attempted", "errored", "measured", *[_title(n) for n in TABLE3], "median SNR dB (flips)",
              "flips won by source", "attack queries (measured clips)"]
    rows = []
    for name, spec in _specs(doc):
        attacks, rates = (spec.get("tables") or {}).get("attacks") or {}, spec.get("rates") or {}
        if not attacks.get("attempted") and not attacks.get("attacked"):
            continue
        won = ", ".join(f"{k} {v}" for k, v in sorted((attacks.get("won_by_source") or {}).items())) or "—"
        rows.append([name, _num(attacks.get("attempted")), _num(attacks.get("errored", 0)),
                     _num(attacks.get("attacked")), *[_kn(rates.get(f"fourier_attack.{n}")) for n in TABLE3],
                     _num(attacks.get("median_snr_db")), won, _num(attacks.get("queries"))])
    return _table(header, rows)


def table4(doc: dict) -> str:
    """Table 4: the STFT attack's rates (over STFT-measured clips) and the paper's shares (over attempted)."""
    sizes = sorted({int(w) for _, spec in _specs(doc)
                    for w in (((spec.get("tables") or {}).get("attacks") or {}).get("stft") or {}).get("frame_sizes")
                    or []})
    names = stft_names(sizes)
    rows = []
    for name, spec in _specs(doc):
        stft = (((spec.get("tables") or {}).get("attacks") or {}).get("stft")) or {}
        if not stft:
            continue
        rates = spec.get("rates") or {}
        rows.append([name, _num(stft.get("measured")), _num(stft.get("attempted")),
                     *[_kn(rates.get(f"stft_attack.{n}")) for n in names], _num(stft.get("median_frames"))])
    return _table(["spec", "STFT-measured", "attempted", *[_title(n) for n in names], "median frames"], rows)


def alpha_matrix(doc: dict, arrays: dict | None = None) -> str:
    """The sufficient-signal α matrix (rows: source, columns: target), outgoing α and the flat-earther flags."""
    block = doc.get("transferability") or {}
    models = [str(m) for m in block.get("models") or []]
    alpha = as_array((block.get("sufficient") or {}).get("alpha"), arrays)
    out = as_array((block.get("sufficient") or {}).get("alpha_out"), arrays)
    if not models or alpha is None:
        return "_no transferability in this run_"
    flat = set(block.get("flat_earthers") or [])
    rows = []
    for i, model in enumerate(models):
        others = [out[j] for j in range(len(models)) if j != i and out is not None and np.isfinite(out[j])]
        ratio = out[i] / np.mean(others) if others and out is not None and np.mean(others) > 0 else float("nan")
        rows.append([model + (" ⚑" if model in flat else ""), *[_num(float(v), 2) for v in alpha[i]],
                     _num(float(out[i]) if out is not None else float("nan"), 2), _num(float(ratio), 2)])
    return _table(["α (source → target)", *models, "outgoing α", "÷ others' mean"], rows)


def work_table(doc: dict) -> str:
    """What each spec's audit asked of its model (``timings.per_spec``): queries, model calls, clips per call, and
    how its clips shared calls side by side (clips at once, merged calls, the probe's queries, why a kind of
    question was not merged, how calls were padded); a spec whose clips ran one at a time shows "—" there."""
    header = ["spec", "queries", "calls", "clips/call", "clips side by side", "merged calls", "probe queries",
              "padding", "why not merged"]
    rows = []
    for name, work in sorted(((doc.get("timings") or {}).get("per_spec") or {}).items()):
        batching = work.get("batching") or {}
        rows.append([name, _num(work.get("queries")), _num(work.get("calls")),
                     _num(work.get("mean_clips_per_call")), _num(batching.get("clips_at_once")),
                     _num(batching.get("merged_calls")), _num(batching.get("probe_queries")),
                     batching.get("padding") or "—", (batching.get("why_not") or "—").replace("|", "/")])
    return _table(header, rows)


def markdown_tables(doc: dict, arrays: dict | None = None, source: str = "RUN") -> str:
    """Every table as README-ready markdown, each under a heading with the command that made it."""
    parts = [f"<!-- freqrex-audit tables {source} (results schema {doc.get('schema_version')}) -->"]
    for title, body in (("Table 1 · set sizes per class (% of K)", table1(doc)),
                        ("Table 2 · composition ratio per class", table2(doc)),
                        ("Table 3 · Fourier attack (the attack table)", table3(doc)),
                        ("Table 4 · STFT attack", table4(doc)),
                        ("α matrix · sufficient signals (⚑ flat-earther)", alpha_matrix(doc, arrays)),
                        ("Work · queries and model calls per spec (this run's, not a gate)", work_table(doc))):
        parts += [f"### {title}", "", body, ""]
    parts.append("Rates are k / n: " + "; ".join(
        f"`{name}`: {counts} / {over}" for name, (counts, over) in METRICS.items()
        if name.startswith(("fourier_attack.", "stft_attack.")) and not name.endswith("median_snr_db")) + ".")
    return "\n".join(parts) + "\n"
