"""The report's first screen: the run's verdict, one row per spec, and the gate table with failures
first, each gate explained and linked to the clips and figures that decided it.

Outcomes are read from the results file (``run.verdict``, every gate's and verdict's ``outcome``);
nothing here re-judges a gate. The per-spec label is :func:`~freqrex_audit.audit.records.run_verdict` of that spec's items (the run's own
rule), marked PARTIAL when only some of them ran.
"""

from __future__ import annotations


from ..audit.records import RED, RUN_SHOWN, SHOWN, Outcome, partial, run_verdict
from .explain import describe_value, explain_gate
from .format import fmt_rate

__all__ = ["SEVERITY", "outcome_of", "item_key", "gate_rows", "spec_rows", "css_of", "not_run", "NOT_RUN_TEXT"]

SEVERITY = ("error", "failed", "not_measured", "interrupted", "deselected", "xfailed", "skipped", "passed")
KEY_RATES = (("accuracy.accuracy", "accuracy"), ("fourier_attack.success_rate", "quiet Fourier flips"),
             ("fourier_attack.single_rate", "quiet 1-freq flips"),
             ("stft_attack.success_rate", "quiet STFT flips"))


NOT_RUN_TEXT = "Not run in this run: none of this check's items were selected (-m, -k, --lf, --deselect)."


def not_run(spec: dict, check: str) -> bool:
    """The spec has items of ``check`` and none of them ran (deselected or interrupted): its figures say "not
    run", never a count of clips this run did not look at."""
    outcomes = [outcome_of(v) for v in spec.get("verdicts") or [] if v.get("check") == check]
    return bool(outcomes) and all(o in ("deselected", "interrupted") for o in outcomes)


def outcome_of(row: dict) -> str:
    """A gate's or verdict's outcome; results files from before schema 2 only had ``passed``."""
    if row.get("outcome"):
        return str(row["outcome"])
    return {True: "passed", False: "failed"}.get(row.get("passed"), "skipped")


def css_of(outcome: str) -> str:
    return "pass" if outcome == "passed" else "fail" if outcome in RED else "muted"


def _rank(outcome: str) -> int:
    return SEVERITY.index(outcome) if outcome in SEVERITY else len(SEVERITY)


def item_key(item: str | None) -> str | None:
    """``spec.yaml::check[key]`` → ``key``."""
    tail = str(item or "").split("::", 1)[-1]
    return tail[tail.index("[") + 1:-1] if "[" in tail and tail.endswith("]") else None


def _evidence(row: dict, anchors: dict) -> list[dict]:
    """Links to what decided a gate: the clip it is about, or the section and clips behind an aggregate."""
    spec, check = row.get("spec"), str(row.get("check") or "")
    sections = anchors["sections"].get(spec) or {}
    clips = anchors["clips"].get(spec) or {}
    links: list[dict] = []
    keys = row.get("_keys") or []
    for key in keys[:6]:
        if key in clips:
            links.append({"href": "#" + clips[key], "text": key})
    if check in ("fourier_attack", "stft_attack") and not keys:
        links.append({"href": "#" + sections["attacks"], "text": "Tables 3–4"})
        links += [{"href": "#" + clips[k], "text": k} for k in (anchors["flipped"].get(spec) or [])[:4] if k in clips]
    elif check in ("sufficiency", "necessity", "completeness"):
        links += [{"href": "#" + sections["table1"], "text": "Table 1"},
                  {"href": "#" + sections["fig2" if check == "sufficiency" else "fig3"],
                   "text": "Figure 2" if check == "sufficiency" else "Figure 3"}]
    elif check == "composition":
        links.append({"href": "#" + sections["table2"], "text": "Table 2"})
    elif check == "transferability":
        links.append({"href": "#transferability" if anchors.get("transfer") else "#" + sections["spec"],
                      "text": "transferability"})
    elif check == "accuracy":
        links.append({"href": "#" + sections["clips"], "text": "clips"})
    if not links and sections:
        links.append({"href": "#" + sections["spec"], "text": spec})
    return links


def _context(spec: dict | None, failing: list | None = None, measured: int | None = None) -> dict:
    snr = next((s["fourier_attack"].get("min_snr_db") for s in (spec or {}).get("samples") or []
                if s.get("fourier_attack") and s["fourier_attack"].get("min_snr_db") is not None), None)
    return {"min_snr_db": snr, "failing_clips": failing or [], "measured_clips": measured}


def gate_rows(gates: list[dict], verdicts: list[dict], specs: dict[str, dict], anchors: dict) -> list[dict]:
    """One row per aggregate gate; per-clip gates folded into one row per (spec, check, metric) naming the
    clips that failed; verdicts without a gate (model load, blocked checks) get a row. Sorted by
    outcome severity, then spec order; each row has an ``id``, an explanation and evidence links."""
    rows: list[dict] = []
    groups: dict[tuple, list[dict]] = {}
    gated = {str(g.get("item")) for g in gates}
    for gate in gates:
        key = item_key(gate.get("item"))
        if key is None or key == "aggregate":
            rows.append({**gate, "outcome": outcome_of(gate), "_keys": [], "_context": _context(specs.get(gate.get("spec")))})
        else:
            groups.setdefault((gate.get("spec"), gate.get("check"), gate.get("metric")), []).append(gate)
    for (spec, _check, metric), members in groups.items():
        outcomes = [outcome_of(g) for g in members]
        judged = sum(o in ("passed", "failed") for o in outcomes)
        red_gates = [g for g, o in zip(members, outcomes) if o in RED]
        red = [item_key(g.get("item")) for g in red_gates]
        worst = min(outcomes, key=_rank)
        shown = f"{outcomes.count('passed')} of {judged} measured clips pass ({len(members)} clips)"
        decisive = next(g for g, o in zip(members, outcomes) if o == worst)  # its item names the row
        rows.append({**decisive, "metric": f"{metric} (per clip)", "shown": shown, "value": None, "k": None,
                     "n": None, "outcome": worst, "baseline": None, "delta": None,
                     "_keys": red or [item_key(g.get("item")) for g in members],
                     "_context": _context(specs.get(spec), [(item_key(g.get("item")), g.get("value"))
                                                            for g in red_gates], judged)})
    for v in verdicts:
        if str(v.get("item")) not in gated and outcome_of(v) not in ("passed", "skipped"):
            rows.append({"spec": v.get("spec"), "check": v.get("check"), "metric": v.get("key"),
                         "shown": (v.get("message") or "").splitlines()[0][:200], "op": "", "threshold": None,
                         "outcome": outcome_of(v), "item": v.get("item"), "baseline": None, "delta": None,
                         "_keys": [], "_context": {}})
    order = {name: i for i, name in enumerate(specs)}
    rows.sort(key=lambda r: (_rank(r["outcome"]), order.get(r.get("spec"), len(order))))
    for i, row in enumerate(rows, 1):
        row["id"] = f"gate-{i}"
        row["label"] = SHOWN.get(row["outcome"], row["outcome"])
        row["css"] = css_of(row["outcome"])
        row["value_text"] = describe_value(row)
        row["explain"] = explain_gate(row, row["_context"])
        row["evidence"] = _evidence(row, anchors)
    return rows


def result_queries(spec: dict) -> int:
    """Model queries the spec's per-clip results cost (explanations + attacks), whether this run made them
    or read them from the cache (``timings.per_spec[*].queries`` counts only the queries this run made)."""
    total = 0
    for sample in spec.get("samples") or []:
        total += sum(((sample.get("explanation") or {}).get("queries_by_phase") or {}).values())
        for attack in ("fourier_attack", "stft_attack"):
            total += int((sample.get(attack) or {}).get("queries") or 0)
    return total


def spec_rows(specs: dict[str, dict], errors: list[dict], anchors: dict, timings: dict) -> list[dict]:
    """One row per spec (and per spec file that did not load): its items' outcomes, worst first, and its
    key rates with k/n and interval; specs with red items first."""
    rows = []
    for i, (name, spec) in enumerate(specs.items()):
        outcomes = [outcome_of(v) for v in spec.get("verdicts") or []]
        counts = {o: outcomes.count(o) for o in SEVERITY if o in outcomes}
        # the spec's verdict as the run's is derived (one rule), marked partial when only some items ran
        verdict = run_verdict(outcomes, Outcome.INTERRUPTED not in outcomes)
        label = RUN_SHOWN[verdict] + (" · PARTIAL" if partial(outcomes) and verdict != "interrupted" else "")
        worst = {"interrupted": Outcome.INTERRUPTED, "not_run": "deselected"}.get(verdict, verdict)
        rates = spec.get("rates") or {}
        figures = [{"name": label, "text": "not run" if not_run(spec, key.split(".")[0])
                    else fmt_rate(rates.get(key)) or "not measured"}
                   for key, label in KEY_RATES if key in rates or not_run(spec, key.split(".")[0])]
        per = (timings.get("per_spec") or {}).get(name) or {}
        rows.append({"name": name, "href": "#" + anchors["sections"][name]["spec"], "outcome": worst,
                     "label": label, "css": css_of(worst),
                     "counts": [{"outcome": o, "label": SHOWN.get(o, o), "n": n, "css": css_of(o)}
                                for o, n in counts.items()],
                     "figures": figures, "queries": per.get("queries"), "cost": result_queries(spec),
                     "error": spec.get("error"), "_i": i})
    for e in errors:
        rows.append({"name": e.get("spec_file", "?"), "href": None, "outcome": "error", "label": "ERROR",
                     "css": "fail", "counts": [], "figures": [], "queries": None, "cost": None, "error": e.get("message"),
                     "_i": len(rows)})
    rows.sort(key=lambda r: (_rank(r["outcome"]), r["_i"]))
    return rows


def card_backlinks(rows: list[dict]) -> dict[tuple[str, str], list[dict]]:
    """(spec, clip id) → the gate rows that clip decided (so each sample card links back)."""
    out: dict[tuple[str, str], list[dict]] = {}
    for row in rows:
        for link in row["evidence"]:
            if link["href"].startswith("#clip-"):
                out.setdefault((row.get("spec"), link["text"]), []).append(
                    {"href": "#" + row["id"], "text": f"{row.get('check')} · {row.get('metric')} ({row['label']})"})
    return out

