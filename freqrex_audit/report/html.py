"""Render a run's ``results.json`` (+ ``results.npz``) into one HTML page a release manager reads in a minute.

Order: the run's verdict and one row per spec (first screen), the gates with failures first (each explained
and linked to the clips and figures that decided it), then each spec's tables, figures, clips and sample
cards, then run facts. Everything comes from the results file: outcomes are read, never re-judged.

Size budget: ``max_sample_cards`` (default 3 per spec; clips that decided a red gate and flipped clips
first) and ``max_audio_bytes`` (default 1.2 MB of embedded FLAC); players past the budget are written as
files beside the page (``<report>_files/``) and linked, and the page says how many. The demo stays < 3 MB.
"""

from __future__ import annotations

import datetime as _dt
import os
from pathlib import Path
from typing import Iterable

import jinja2
import numpy as np

from ..engine.explanation import Explanation
from ..audit.records import NOT_RUN, RED, RUN_SHOWN, run_verdict
from ..runs.read import ResultsError, load_run
from . import figures
from .figure_cache import figures_cached_in
from .cards import AudioBudget, flipped, pick_cards, sample_card
from .composites import SidecarLinks, composites_view
from .decision import NOT_RUN_TEXT, card_backlinks, gate_rows, item_key, not_run, outcome_of, spec_rows
from .tables import TABLE3, as_array, metric_columns, stft_names
from .explainers import explainers_view
from .format import fmt_bins, fmt_count, fmt_number, fmt_op, fmt_percent, fmt_rate, fmt_share, fmt_snr

__all__ = ["render_report", "render_index", "render_run", "load_results", "MAX_AUDIO_BYTES", "MAX_SAMPLE_CARDS"]

MAX_AUDIO_BYTES = 1_200_000
MAX_SAMPLE_CARDS = 3
TEMPLATES = Path(__file__).with_name("templates")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters.update(num=fmt_number, pct=fmt_percent, count=fmt_count, rate=fmt_rate, snr=fmt_snr, op=fmt_op)
    return env


def load_results(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The validated results dict and its ``.npz`` sidecar's arrays (empty when there is none); a file that
    is not what an audit writes is a :class:`~freqrex_audit.runs.read.ResultsError` naming file and key."""
    return load_run(path)


# ------------------------------------------------------------------------------------------ anchors

def build_anchors(specs: dict[str, dict], has_transfer: bool) -> dict:
    """Every element id the page has, so each link names an element that exists."""
    sections, clips, flips = {}, {}, {}
    for i, (name, spec) in enumerate(specs.items(), 1):
        sections[name] = {part: f"{part}-{i}" for part in
                          ("spec", "table1", "table2", "composites", "attacks", "fig2", "fig3", "inverse", "clips",
                           "explainers")}
        samples = spec.get("samples") or []
        clips[name] = {s["id"]: f"clip-{i}-{j}" for j, s in enumerate(samples, 1)}
        flips[name] = [s["id"] for s in samples if flipped(s)]
    return {"sections": sections, "clips": clips, "flipped": flips, "transfer": has_transfer}


# ------------------------------------------------------------------------------------------ specs

def _why_empty(spec: dict, check: str, default: str) -> str:
    """Why a table has no rows, in the results' own words where it has them."""
    for key in ("error",):
        if spec.get(key):
            return f"The spec did not run: {spec[key]}"
    for key in ("failed_checks", "skipped_checks"):
        reason = (spec.get(key) or {}).get(check)
        if reason:
            return f"Not computed: {reason}"
    if not (spec.get("dataset") or {}).get("n_analysed"):
        return "No clip was analysed (none labelled correctly, or every clip was skipped): see the clips table."
    return default


def inverse_table(spec: dict, arrays: dict, classes: list[str]) -> dict:
    """Inverse classification per class: which label each clip gets without its necessary frequencies.
    A clip that keeps its own label did not invert; it is counted apart, never as an inversion."""
    rows: dict[str, dict] = {}
    targets: list[str] = []
    for s in spec.get("samples") or []:
        if not s.get("explanation"):
            continue
        exp = Explanation.from_dict(s["explanation"], arrays)
        row = rows.setdefault(exp.target_label, {"clips": 0, "own": 0, "missing": 0, "to": {}})
        row["clips"] += 1
        if exp.inverse_label is None:
            row["missing"] += 1
        elif exp.inverse_label == exp.target:
            row["own"] += 1
        else:
            to = exp.labels[exp.inverse_label]
            row["to"][to] = row["to"].get(to, 0) + 1
            targets.append(to)
    order = [c for c in classes if c in rows] + [c for c in rows if c not in classes]
    to_labels = [c for c in classes if c in targets] + sorted(set(targets) - set(classes))
    return {"rows": [{"cls": c, **rows[c]} for c in order], "to": to_labels,
            "figure": figures.inverse_counts({c: rows[c]["to"] for c in order}, to_labels) if targets else None}


def spec_view(name: str, spec: dict, arrays: dict, anchors: dict, max_cards: int, budget: AudioBudget,
              red_clips: set[str], backlinks: dict, timing: dict, run_dir: Path | None = None,
              page_dir: Path | None = None) -> dict:
    tables, figs = spec.get("tables") or {}, spec.get("figures") or {}
    labels = [str(x) for x in (spec.get("model") or {}).get("labels") or []]
    suff = tables.get("sufficiency_by_class") or {}
    classes = [c for c in labels if c in suff] + [c for c in suff if c not in labels]
    samples = spec.get("samples") or []
    ids = anchors["sections"][name]
    clip_ids = anchors["clips"][name]
    links = SidecarLinks(spec, run_dir, page_dir, name, arrays)
    cards = [sample_card(s, arrays, budget, clip_ids[s["id"]].replace("clip-", "card-"), links)
             for s in pick_cards(samples, max_cards, red_clips)]
    carded = {c["id"]: c["anchor"] for c in cards}
    for c in cards:
        c["backlinks"] = backlinks.get((name, c["id"]), [])
    analysed = [s for s in samples if s.get("explanation") is not None]
    rates = spec.get("rates") or {}
    attacks = tables.get("attacks") or {}
    stft = attacks.get("stft") or {}
    frame_sizes = [int(w) for w in stft.get("frame_sizes") or []]
    model = spec.get("model") or {}
    return {
        "name": name, "ids": ids, "spec_file": spec.get("spec_file"), "model": model,
        "dataset": spec.get("dataset") or {}, "accuracy": rates.get("accuracy.accuracy"),
        "accuracy_value": spec.get("accuracy"), "seed": spec.get("seed"), "config_hash": spec.get("config_hash"),
        "checks": spec.get("checks") or {}, "error": spec.get("error"),
        "classes": classes, "labels": labels, "sufficiency": suff,
        "table1_empty": None if suff else _why_empty(spec, "sufficiency", "No clip has a sufficient set."),
        "composition": tables.get("composition_by_class") or {},
        "table2_empty": None if tables.get("composition_by_class") else _why_empty(
            spec, "composition", "Composition was not requested (checks.composition is not in the spec)."
            if "composition" not in (spec.get("checks") or {}) else "No class had two sufficient signals to compose."),
        "composites": composites_view(spec, links, labels or classes), "sidecar_note": links.note,
        "sidecar_folder": (spec.get("waveforms") or {}).get("folder") if links.index else None,
        "attacks": attacks, "rates": rates, "stft": stft,
        "table3": metric_columns(rates, "fourier_attack", TABLE3),
        "table4": metric_columns(rates, "stft_attack", stft_names(frame_sizes)),
        "table3_empty": NOT_RUN_TEXT if not_run(spec, "fourier_attack") else None if attacks.get("attacked")
        else _why_empty(spec, "fourier_attack", "No clip's attack was measured (the attack runs on correctly "
                                                "labelled clips; see the clip table for errored and not-measured clips)."),
        "table4_empty": NOT_RUN_TEXT if not_run(spec, "stft_attack") else None if stft.get("measured") else
        "The STFT attack localises a Fourier flip in time; no clip was flipped by the Fourier attack (or none "
        "is long enough for one frame), so there was nothing to localise.",
        "fig_responsibility": figures.class_responsibility(figs.get("class_responsibility") or {}, labels or classes)
        if figs.get("class_responsibility") else None,
        "fig_necessary": figures.necessary_histogram(figs.get("necessary_histogram") or {}, labels or classes)
        if figs.get("necessary_histogram") else None,
        "fig_empty": _why_empty(spec, "sufficiency", "No analysed clip had a necessary set."),
        "inverse": inverse_table(spec, arrays, labels or classes),
        "attack_table": attack_rows(samples, clip_ids),
        "clips": [{"sample": s, "anchor": clip_ids[s["id"]], "card": carded.get(s["id"]),
                   "flipped": flipped(s), "attack": s.get("fourier_attack"),
                   "gates": backlinks.get((name, s["id"]), [])} for s in samples],
        "cards": cards, "cards_left_out": len(analysed) - len(cards), "max_cards": max_cards,
        "timing": timing, "explainers": explainers_view(spec, arrays, budget, ids["explainers"], timing),
    }


def attack_rows(samples: list[dict], clip_ids: dict) -> list[dict]:
    """#29's attack table, one row per attacked clip: FreqReX beside the peer attack and the noise floor, and
    the clip's robustness figure (the quietest flip by any method), from results.json alone."""
    rows = []
    for s in samples:
        atk = s.get("fourier_attack")
        if not atk:
            continue
        peer, noise, fig = s.get("peer_attack") or {}, s.get("noise_floor") or {}, s.get("robustness") or {}
        rows.append({
            "id": s["id"], "anchor": clip_ids.get(s["id"]),
            "freqrex": atk.get("snr_db") if atk.get("success") else None, "freqrex_n": atk.get("n_frequencies"),
            "freqrex_q": atk.get("queries"), "freqrex_source": atk.get("source"),
            "peer_method": peer.get("method"), "peer": peer.get("snr_db") if peer.get("success") else None,
            "peer_q": peer.get("queries"), "peer_n": peer.get("n_changed"), "peer_error": peer.get("error"),
            "noise_db": noise.get("snr_db"), "noise_flips": noise.get("flips") or {}, "noise_draws": noise.get("draws"),
            "quietest": fig.get("snr_db"), "method": fig.get("method"), "defect": fig.get("defect")})
    return rows


def _cell_style(value: float) -> str:
    """A colour-blind-safe sequential blue (Okabe-Ito #0072B2 over white) for an α/β value in [0, 1]."""
    if not np.isfinite(value):
        return ""
    v = float(np.clip(value, 0, 1))
    colour = "#fff" if v > 0.6 else "#1d2327"
    return f"background:rgba(0,114,178,{0.08 + 0.85 * v:.2f});color:{colour}"


def transfer_view(block: dict | None, arrays: dict) -> dict | None:
    """α and β matrices as shaded tables (each number appears once), with the flat-earthers marked."""
    if not block:
        return None
    models = [str(m) for m in block.get("models") or []]
    flat = [str(m) for m in block.get("flat_earthers") or []]
    tables = []
    for kind in ("sufficient", "complete"):
        part = block.get(kind) or {}
        for measure, symbol in (("alpha", "α"), ("beta", "β")):
            m = as_array(part.get(measure), arrays)
            if m is None:
                continue
            out_, in_ = as_array(part.get(f"{measure}_out"), arrays), as_array(part.get(f"{measure}_in"), arrays)
            tables.append({"title": f"{symbol} · {kind} signals", "measure": measure,
                           "rows": [{"model": models[i], "flat": models[i] in flat,
                                     "cells": [{"v": float(v), "style": "" if i == j else _cell_style(float(v)),
                                                "diag": i == j} for j, v in enumerate(m[i])],
                                     "out": None if out_ is None else float(out_[i])} for i in range(len(models))],
                           "col_in": None if in_ is None else [float(v) for v in in_]})
    return {"models": models, "flat_earthers": flat, "rule": block.get("flat_earther_rule"),
            "epsilon": block.get("epsilon"), "entropy_bound": block.get("entropy_bound"),
            "ttest": {"statistic": block.get("ttest_statistic"), "pvalue": block.get("ttest_pvalue"),
                      "pairs": block.get("ttest_pairs")}, "tables": tables}


# ------------------------------------------------------------------------------------------ run

def run_state(results: dict) -> dict:
    """The run's verdict and completeness as every view shows it (read from ``run``; derived for old files)."""
    run = results.get("run") or {}
    verdicts = [v for s in (results.get("specs") or {}).values() for v in s.get("verdicts") or []]
    verdict = run.get("verdict") or run_verdict([outcome_of(v) for v in verdicts], True,
                                                len(results.get("errors") or []))
    summary = run.get("summary") or f"{len(verdicts)} of {len(verdicts)} items ran"
    complete = run.get("complete", True)
    label = RUN_SHOWN.get(verdict, verdict.upper())
    if not complete and verdict != "interrupted":
        label += " · INCOMPLETE"
    headline = f"{label}: {summary}"
    errors = results.get("errors") or []
    if errors:
        headline += f"; {len(errors)} spec(s) did not load: " + ", ".join(e.get("spec_file", "?") for e in errors)
    if run.get("unfinished"):
        headline += "; unfinished (no results): " + ", ".join(run["unfinished"])
    stopped = run.get("deadline") or {}
    if stopped.get("hit"):
        headline += f"; DEADLINE: {stopped.get('message') or 'the session deadline passed'}"
    if run.get("filtered"):
        headline += "; filtered run (-m / -k / --lf): unselected items were not run"
    return {"verdict": verdict, "label": label, "complete": complete, "headline": headline, "errors": errors,
            "summary": summary, "css": "PASS" if verdict == "passed" else "NO" if verdict == "not_run" else "FAIL"}


def _seeds(run: dict, specs: dict) -> str:
    """The seed as it was used: the run's override, else each spec's own ``freqrex.seed``."""
    if run.get("seed") is not None:
        return f"{run['seed']} (set for the whole run)"
    seeds = {name: s.get("seed") for name, s in specs.items()}
    distinct = set(seeds.values())
    if len(distinct) == 1 and None not in distinct:
        return f"{distinct.pop()} (every spec's freqrex.seed)"
    return ", ".join(f"{n}: {fmt_number(v)}" for n, v in seeds.items()) or "no specs"


def build_context(results: dict, arrays: dict, max_sample_cards: int, max_audio_bytes: int, source: str,
                  files_dir: Path | None = None, run_dir: Path | None = None, page_dir: Path | None = None) -> dict:
    """Everything the template shows. ``run_dir`` (the folder of results.json) turns on the links to the
    waveform sidecar, relative to ``page_dir`` (the HTML's folder; default ``run_dir``)."""
    budget = AudioBudget(max_audio_bytes, files_dir)
    raw_specs = results.get("specs") or {}
    state = run_state(results)
    anchors = build_anchors(raw_specs, bool(results.get("transferability")))
    verdicts = [{**v, "spec": name} for name, s in raw_specs.items() for v in s.get("verdicts") or []]
    gates = results.get("gates") or []
    rows = gate_rows(gates, verdicts, raw_specs, anchors)
    backlinks = card_backlinks(rows)
    red_clips = {name: {item_key(v.get("item")) for v in verdicts if v["spec"] == name and outcome_of(v) in RED}
                 for name in raw_specs}
    timings = results.get("timings") or {}
    per_spec = timings.get("per_spec") or {}
    specs = {name: spec_view(name, spec, arrays, anchors, max_sample_cards, budget, red_clips[name], backlinks,
                             per_spec.get(name) or {}, run_dir, page_dir)
             for name, spec in raw_specs.items()}
    run = results.get("run") or {}
    red = [r for r in rows if r["outcome"] in RED]
    return {
        "title": f"freqrex audit · {state['label']} · {', '.join(specs) or 'no specs'}",
        "state": state, "run": run, "timings": timings, "source": source,
        "spec_rows": spec_rows(raw_specs, state["errors"], anchors, timings),
        "red_rows": red, "other_rows": [r for r in rows if r["outcome"] not in RED], "n_gates": len(rows),
        "gate_counts": gate_counts(rows),
        "specs": specs, "seed_text": _seeds(run, raw_specs),
        "trust_remote_code": list(run.get("trust_remote_code") or []),
        "transfer": transfer_view(results.get("transferability"), arrays),
        "audio": {"embedded_bytes": budget.used, "limit": max_audio_bytes, "refused": budget.refused,
                  "written": budget.written, "written_bytes": budget.written_bytes,
                  "folder": files_dir.name if files_dir is not None else None},
        "cards_left_out": sum(s["cards_left_out"] for s in specs.values()),
        "schema_version": results.get("schema_version"),
        "rendered": rendered_at(),
        "fmt_share": fmt_share, "fmt_bins": fmt_bins,
    }


def rendered_at() -> str:
    """The render time the page shows: ``$SOURCE_DATE_EPOCH`` when set (the reproducible-builds convention, so
    the same results render byte for byte the same page), else now; UTC, to the minute."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH", "").strip()
    when = _dt.datetime.now(_dt.timezone.utc)
    if epoch.isdigit():
        try:
            when = _dt.datetime.fromtimestamp(int(epoch), _dt.timezone.utc)
        except (OverflowError, OSError, ValueError):  # past year 9999: not a date, so the clock decides
            pass
    return when.strftime("%Y-%m-%d %H:%M UTC")


def gate_counts(rows: Iterable[dict]) -> dict[str, int]:
    """How many gates (report rows or results.json gates) passed, were red, did not run, were skipped."""
    outcomes = [outcome_of(r) for r in rows]
    return {"passed": outcomes.count("passed"), "failed": outcomes.count("failed") + outcomes.count("error"),
            "not_measured": outcomes.count("not_measured"), "not_run": sum(o in NOT_RUN for o in outcomes),
            "skipped": outcomes.count("skipped"), "xfailed": outcomes.count("xfailed")}


def render_report(results_json_path: str | Path, out_html: str | Path | None = None,
                  max_sample_cards: int = MAX_SAMPLE_CARDS, max_audio_bytes: int = MAX_AUDIO_BYTES,
                  audio_files: bool = True, figure_cache: str | Path | None = None) -> Path:
    """Write the HTML report of a run (default: ``report.html`` beside the JSON). Players past
    ``max_audio_bytes`` go to ``<name>_files/`` beside it when ``audio_files``, else are left out. Figures are
    read from and kept in ``<figure_cache>/figures`` when it is given (:mod:`.figure_cache`)."""
    path = Path(results_json_path)
    results, arrays = load_results(path)
    out = Path(out_html) if out_html else path.with_name("report.html")
    out.parent.mkdir(parents=True, exist_ok=True)
    files_dir = out.with_name(out.stem + "_files") if audio_files else None
    if files_dir is not None and files_dir.is_dir():
        for old in files_dir.glob("*.flac"):
            old.unlink()
    with figures_cached_in(figure_cache):
        context = build_context(results, arrays, max_sample_cards, max_audio_bytes, path.name, files_dir,
                                run_dir=path.parent, page_dir=out.parent)
    html = _env().get_template("report.html.j2").render(**context)
    out.write_text(html, encoding="utf-8")
    return out


def _runs(reports_dir: Path) -> Iterable[dict]:
    for results_path in sorted(reports_dir.glob("*/results.json")):
        try:
            results, _ = load_run(results_path, arrays=False)
        except ResultsError as exc:  # one bad run folder is one row saying why, never a broken index
            yield {"dir": results_path.parent.name, "error": f"unreadable results.json: "
                                                             f"{exc.key + ': ' if exc.key else ''}{exc.problem}"}
            continue
        gates = results.get("gates") or []
        state = run_state(results)
        report = next((p for p in (results_path.with_name("report.html"),) if p.exists()), None)
        yield {"dir": results_path.parent.name, "error": None,
               "started": (results.get("timings") or {}).get("started"),
               "specs": list((results.get("specs") or {}).keys()) + [f"{e.get('spec_file')} (ERROR)"
                                                                     for e in state["errors"]]
               + [f"{f} (UNFINISHED)" for f in (results.get("run") or {}).get("unfinished") or []],
               "verdict": state["label"], "headline": state["headline"], "css": state["css"],
               "gates": len(gates), **gate_counts(gates),
               "report": f"{results_path.parent.name}/{report.name}" if report else None,
               "results": f"{results_path.parent.name}/results.json"}


def render_index(reports_dir: str | Path) -> Path:
    """Write ``index.html`` in ``reports_dir`` listing every run folder (newest first)."""
    reports_dir = Path(reports_dir)
    runs = sorted(_runs(reports_dir), key=lambda r: (r.get("started") or "", r["dir"]), reverse=True)
    out = reports_dir / "index.html"
    out.write_text(_env().get_template("index.html.j2").render(runs=runs), encoding="utf-8")
    return out


def render_run(results_json_path: str | Path, reports_dir: str | Path,
               report_too: bool = True, figure_cache: str | Path | None = None) -> tuple[Path | None, list[str]]:
    """A finished run's report (unless not ``report_too``) and the runs index, each on its own: a report that
    fails to render still gets its run an index row (and the other way round). Returns the report's path
    (None if none) and what failed, for the caller to print; a report bug never changes the run's verdict
    or exit status. ``figure_cache``: the result cache's folder, whose figures a rerun reuses."""
    problems, report = [], None
    try:
        report = render_report(results_json_path, figure_cache=figure_cache) if report_too else None
    except Exception as exc:  # noqa: BLE001 - a report bug must not hide the audit's verdicts
        problems.append(f"report not rendered: {type(exc).__name__}: {exc}")
    try:
        render_index(reports_dir)
    except Exception as exc:  # noqa: BLE001 - as above
        problems.append(f"index not rendered: {type(exc).__name__}: {exc}")
    return report, problems
