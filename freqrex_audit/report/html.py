"""Render a run's ``results.json`` (+ ``results.npz``) into one self-contained HTML file.

Everything in the page comes from the results file: tables are read, figures are drawn from the
stored series, players embed the stored waveforms (or ones the result dataclasses reconstruct, like
``Explanation.signal("sufficient")``) as lossless 24-bit FLAC. The page needs no network and no JS.

Size budget: ``max_sample_cards`` (default 12) caps the per-sample cards (Figure-1 panels and seven
players each); on top of that ``max_audio_bytes`` (default 20 MB of FLAC) stops embedding players
once reached, so a 100-clip audit of 10-s clips stays a file that opens and mails (~25 MB at worst;
a 0.5-s 8-kHz clip costs ~10 KB a player). Cards are chosen round-robin across classes so each class
is shown; the page says how many clips were left out.
"""

from __future__ import annotations

import base64
import datetime as _dt
import json
import math
from pathlib import Path
from typing import Any, Iterable

import jinja2
import numpy as np

from .. import spectrum as spec
from ..audio import encode_audio
from ..engine.attacks import FourierAttack, STFTAttack
from ..engine.explain import Explanation
from ..engine.metrics import snr_db
from ..records import RED, SHOWN, run_verdict
from . import figures

__all__ = ["render_report", "render_index", "load_results", "MAX_AUDIO_BYTES"]

MAX_AUDIO_BYTES = 20_000_000
TEMPLATES = Path(__file__).with_name("templates")


def _env() -> jinja2.Environment:
    env = jinja2.Environment(loader=jinja2.FileSystemLoader(str(TEMPLATES)), autoescape=True,
                             undefined=jinja2.StrictUndefined, trim_blocks=True, lstrip_blocks=True)
    env.filters["num"] = fmt_number
    env.filters["pct"] = fmt_percent
    return env


def fmt_number(value: Any, digits: int = 3) -> str:
    """Numbers as the report shows them: ``n/a`` for None/NaN, ∞ for infinities, ``digits`` significant."""
    if value is None:
        return "n/a"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, int):
        return str(value)
    try:
        v = float(value)
    except (TypeError, ValueError):
        return str(value)
    if math.isnan(v):
        return "n/a"
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    return f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.2e}"


def fmt_percent(value: Any) -> str:
    """A share in [0, 1] as a percentage with one decimal."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{100 * float(value):.1f}%"


def load_results(path: str | Path) -> tuple[dict, dict[str, np.ndarray]]:
    """The results dict and its ``.npz`` sidecar's arrays (empty when there is none)."""
    path = Path(path)
    results = json.loads(path.read_text())
    sidecar = path.with_suffix(".npz")
    arrays: dict[str, np.ndarray] = {}
    if sidecar.exists():
        with np.load(sidecar) as npz:
            arrays = {k: npz[k] for k in npz.files}
    return results, arrays


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


def audio_uri(samples: np.ndarray, sample_rate: int) -> str:
    return "data:audio/flac;base64," + base64.b64encode(encode_audio(samples, sample_rate)).decode("ascii")


# ------------------------------------------------------------------------------------------ samples

def pick_cards(samples: list[dict], limit: int) -> list[dict]:
    """Up to ``limit`` analysed samples, round-robin over classes (dataset order within a class)."""
    by_class: dict[str, list[dict]] = {}
    for s in samples:
        if s.get("explanation") is not None:
            by_class.setdefault(str(s.get("label")), []).append(s)
    chosen: list[dict] = []
    queues = list(by_class.values())
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    order = {id(s): i for i, s in enumerate(samples)}
    return sorted(chosen, key=lambda s: order[id(s)])


class AudioBudget:
    def __init__(self, limit: int):
        self.limit, self.used, self.refused = limit, 0, 0

    def uri(self, samples: np.ndarray | None, sample_rate: int) -> str | None:
        if samples is None:
            return None
        uri = audio_uri(samples, sample_rate)
        if self.used + len(uri) > self.limit:
            self.refused += 1
            return None
        self.used += len(uri)
        return uri


def sample_card(sample: dict, arrays: dict, budget: AudioBudget) -> dict:
    """Figure-1 panels and the seven players of one analysed clip."""
    exp = Explanation.from_dict(sample["explanation"], arrays)
    fourier = FourierAttack.from_dict(sample["fourier_attack"], arrays) if sample.get("fourier_attack") else None
    stft = STFTAttack.from_dict(sample["stft_attack"], arrays) if sample.get("stft_attack") else None
    rate, x = exp.sample_rate, np.asarray(exp.waveform, dtype=np.float32)
    hz = spec.bin_to_hz(np.arange(exp.n_bins), len(x), rate)
    magnitude = np.abs(np.fft.rfft(x.astype(np.float64)))
    panels = figures.sample_panels(
        x, rate, hz, np.asarray(exp.responsibility, dtype=float), magnitude,
        {k: getattr(exp, k) for k in ("sufficient", "necessary", "complete")}, exp.signal("sufficient"))

    def label(index: int | None) -> str | None:
        return None if index is None else exp.labels[index]

    players = []
    subset_conf = {"original": exp.confidence, "sufficient": exp.sufficient_confidence,
                   "necessary": exp.necessary_confidence, "complete": exp.complete_confidence}
    for kind in ("original", "sufficient", "necessary", "complete", "inverse"):
        signal = exp.signal(kind)
        if kind == "inverse":
            shown_label, conf = label(exp.inverse_label), exp.inverse_confidence
        else:
            shown_label, conf = (exp.target_label if signal is not None else None), subset_conf[kind]
        players.append({
            "kind": kind, "found": signal is not None, "uri": budget.uri(signal, rate), "label": shown_label,
            "confidence": conf, "conf_note": "of the target class" if kind in ("sufficient", "necessary", "complete") else "",
            "snr_db": None if signal is None or kind == "original" else snr_db(x, signal),
            "int16": None, "share": exp.fraction(kind) if kind in ("sufficient", "necessary", "complete") else None,
            "detail": (f"the clip with its {(exp.inverse_rule or 'necessary-complement').split('-')[0]} frequencies removed"
                       if kind == "inverse" else f"fragile: lost under {', '.join(exp.fragile[kind])}"
                       if getattr(exp, "is_fragile", lambda k: False)(kind) else "")})
    for kind, atk in (("Fourier attack", fourier), ("STFT attack", stft)):
        found = atk is not None and atk.success and atk.adversarial is not None
        detail = ""
        if atk is not None and atk.success:
            if isinstance(atk, FourierAttack):
                detail = f"{atk.n_frequencies} frequencies, mutation {atk.mutation}"
                if len(atk.hz):
                    detail += f" at {', '.join(f'{h:.0f}' for h in atk.hz[:5])}{' …' if len(atk.hz) > 5 else ''} Hz"
                detail += f"; {'quiet' if atk.quiet else 'loud'}, source {atk.source}, {atk.queries} queries"
            else:
                detail = (f"frame {atk.frame_size}, {atk.frames_changed} frames changed, "
                          f"{atk.start_s:.2f}–{atk.end_s:.2f} s, mutation {atk.mutation}")
        elif atk is not None:
            detail = atk.summary if isinstance(atk, FourierAttack) else \
                "; ".join(f"{k}: {v}" for k, v in atk.tried.items()) or "did not succeed"
        else:
            detail = "not run"
        players.append({
            "kind": kind, "found": found, "uri": budget.uri(atk.adversarial, rate) if found else None,
            "label": label(atk.new_label) if found else None, "confidence": atk.new_confidence if found else None,
            "conf_note": "", "snr_db": atk.snr_db if found else None,
            "int16": atk.survives_int16 if found else None, "share": None, "detail": detail})
    return {"id": sample["id"], "label": sample.get("label"), "predicted": exp.target_label,
            "confidence": exp.confidence, "panels": panels, "players": players,
            "queries": exp.queries, "iterations": exp.iterations, "notes": list(sample.get("notes") or [])}


# ------------------------------------------------------------------------------------------ specs

def spec_view(name: str, spec: dict, arrays: dict, max_cards: int, budget: AudioBudget) -> dict:
    tables = spec.get("tables") or {}
    figs = spec.get("figures") or {}
    labels = [str(x) for x in (spec.get("model") or {}).get("labels") or []]
    suff = tables.get("sufficiency_by_class") or {}
    classes = [c for c in labels if c in suff] + [c for c in suff if c not in labels]
    samples = spec.get("samples") or []
    cards = pick_cards(samples, max_cards)
    analysed = [s for s in samples if s.get("explanation") is not None]
    view = {
        "name": name, "spec_file": spec.get("spec_file"), "model": spec.get("model") or {},
        "dataset": spec.get("dataset") or {}, "accuracy": spec.get("accuracy"),
        "classes": classes, "sufficiency": suff, "composition": tables.get("composition_by_class") or {},
        "attacks": tables.get("attacks") or {},
        "not_analysed": [s for s in samples if s.get("status") != "ok" or s.get("explanation") is None],
        "noted": [s for s in samples if s.get("notes") and s.get("status") == "ok" and s.get("explanation") is not None],
        "cards": [sample_card(s, arrays, budget) for s in cards],
        "cards_left_out": len(analysed) - len(cards), "max_cards": max_cards,
        "fig_responsibility": figures.class_responsibility(figs["class_responsibility"])
        if figs.get("class_responsibility") else None,
        "fig_necessary": figures.necessary_histogram(figs["necessary_histogram"])
        if figs.get("necessary_histogram") else None,
        "inverse_counts": figs.get("inverse_counts") or {},
        "fig_inverse": figures.inverse_counts(figs["inverse_counts"]) if figs.get("inverse_counts") else None,
    }
    stft = view["attacks"].get("stft") or {}
    view["stft"] = stft
    view["frame_sizes"] = sorted((stft.get("per_frame_size") or {}), key=lambda w: int(w))
    return view


def transfer_view(block: dict | None, arrays: dict) -> dict | None:
    if not block:
        return None
    models = [str(m) for m in block.get("models") or []]
    flat = [str(m) for m in block.get("flat_earthers") or []]
    matrices, tables = {}, []
    for kind in ("sufficient", "complete"):
        part = block.get(kind)
        if not part:
            continue
        for measure in ("alpha", "beta"):
            m = as_array(part.get(measure), arrays)
            if m is None:
                continue
            matrices[f"{'α' if measure == 'alpha' else 'β'} {kind}"] = m
            out_ = as_array(part.get(f"{measure}_out"), arrays)
            in_ = as_array(part.get(f"{measure}_in"), arrays)
            tables.append({"title": f"{'α' if measure == 'alpha' else 'β'} · {kind} signals",
                           "rows": [{"model": models[i], "flat": models[i] in flat,
                                     "cells": [float(v) for v in m[i]],
                                     "out": None if out_ is None else float(out_[i])}
                                    for i in range(len(models))],
                           "col_in": None if in_ is None else [float(v) for v in in_]})
    return {"models": models, "flat_earthers": flat, "rule": block.get("flat_earther_rule"),
            "epsilon": block.get("epsilon"), "entropy_bound": block.get("entropy_bound"),
            "ttest": {"statistic": block.get("ttest_statistic"), "pvalue": block.get("ttest_pvalue"),
                      "pairs": block.get("ttest_pairs")},
            "figure": figures.transfer_heatmaps(models, matrices, flat) if matrices else None, "tables": tables}


def _outcome(row: dict) -> str:
    """A gate's or verdict's outcome; results files from before schema 2 only had ``passed``."""
    if row.get("outcome"):
        return str(row["outcome"])
    return {True: "passed", False: "failed"}.get(row.get("passed"), "skipped")


def gate_rows(gates: list[dict], verdicts: list[dict] | None = None) -> list[dict]:
    """The verdict table: aggregate gates as they are; per-clip gates folded into one row per
    (spec, check, metric) reading "passed/measured of total clips", with every failing or not-measured clip
    kept as its own row; items that carry no gate (not measured, not run) get a row of their own."""
    rows: list[dict] = []
    groups: dict[tuple, list[dict]] = {}
    gated = {str(g.get("item")) for g in gates}
    for gate in gates:
        item = str(gate.get("item") or "")
        if item.endswith("[aggregate]") or "[" not in item:
            rows.append({**gate, "shown": gate.get("value"), "outcome": _outcome(gate)})
        else:
            groups.setdefault((gate.get("spec"), gate.get("check"), gate.get("metric")), []).append(gate)
    for (_spec_name, _check, metric), members in groups.items():
        outcomes = [_outcome(g) for g in members]
        passed = outcomes.count("passed")
        judged = sum(o in ("passed", "failed") for o in outcomes)
        worst = next((o for o in ("error", "failed", "not_measured", "interrupted", "deselected", "skipped")
                      if o in outcomes), "passed")
        rows.append({**members[0], "metric": f"{metric} (per clip)",
                     "shown": f"{passed}/{judged} passed, measured {judged} of {len(members)} clips",
                     "outcome": worst, "baseline": None, "delta": None})
        rows += [{**g, "shown": g.get("value"), "outcome": _outcome(g),
                  "metric": f"{g.get('metric')} · {g.get('item', '').split('[')[-1][:-1]}"}
                 for g in members if _outcome(g) in ("failed", "not_measured", "error")]
    for v in verdicts or []:
        if str(v.get("item")) not in gated and _outcome(v) not in ("passed", "skipped"):
            rows.append({"spec": v.get("spec"), "check": v.get("check"), "metric": v.get("key"),
                         "shown": (v.get("message") or "").splitlines()[0][:160], "op": "", "threshold": None,
                         "outcome": _outcome(v), "item": v.get("item"), "baseline": None, "delta": None})
    for row in rows:
        row["label"] = SHOWN.get(row["outcome"], row["outcome"])
        row["css"] = "pass" if row["outcome"] == "passed" else "fail" if row["outcome"] in RED else "muted"
    order = {name: i for i, name in enumerate(dict.fromkeys([g.get("spec") for g in gates] +
                                                           [v.get("spec") for v in verdicts or []]))}
    return sorted(rows, key=lambda r: order.get(r.get("spec"), 0))


def run_state(results: dict) -> dict:
    """The run's verdict and completeness as every view shows it (read from ``run``; derived for old files)."""
    run = results.get("run") or {}
    verdicts = [v for s in (results.get("specs") or {}).values() for v in s.get("verdicts") or []]
    verdict = run.get("verdict") or run_verdict([_outcome(v) for v in verdicts], True, len(results.get("errors") or []))
    summary = run.get("summary") or f"{len(verdicts)} of {len(verdicts)} items ran"
    complete = run.get("complete", True)
    label = {"passed": "PASS", "failed": "FAIL", "error": "ERROR", "interrupted": "INCOMPLETE",
             "not_run": "NOT RUN"}.get(verdict, verdict.upper())
    if not complete and verdict != "interrupted":
        label += " · INCOMPLETE"
    headline = f"{label}: {summary}"
    errors = results.get("errors") or []
    if errors:
        headline += f"; {len(errors)} spec(s) did not load: " + ", ".join(e.get("spec_file", "?") for e in errors)
    if run.get("filtered"):
        headline += "; filtered run (-m / -k / --lf): unselected items were not run"
    return {"verdict": verdict, "label": label, "complete": complete, "headline": headline, "errors": errors,
            "css": "PASS" if verdict == "passed" else "NO" if verdict == "not_run" else "FAIL"}


def build_context(results: dict, arrays: dict, max_sample_cards: int, max_audio_bytes: int,
                  source: str) -> dict:
    budget = AudioBudget(max_audio_bytes)
    gates = results.get("gates") or []
    verdicts = [{**v, "spec": name} for name, s in (results.get("specs") or {}).items()
                for v in s.get("verdicts") or []]
    specs = {name: spec_view(name, spec, arrays, max_sample_cards, budget)
             for name, spec in (results.get("specs") or {}).items()}
    run = results.get("run") or {}
    timings = results.get("timings") or {}
    state = run_state(results)
    failed = [g for g in gates if _outcome(g) in RED]
    return {
        "title": f"freqrex audit · {state['label']} · {', '.join(specs) or 'no specs'}",
        "verdict": state["label"], "state": state,
        "gates": gates, "gate_rows": gate_rows(gates, verdicts), "n_failed": len(failed), "specs": specs, "run": run,
        "timings": timings,
        "trust_remote_code": list(run.get("trust_remote_code") or []),
        "transfer": transfer_view(results.get("transferability"), arrays),
        "audio_refused": budget.refused, "audio_bytes": budget.used, "max_audio_bytes": max_audio_bytes,
        "schema_version": results.get("schema_version"), "source": source,
        "rendered": _dt.datetime.now(_dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
    }


def render_report(results_json_path: str | Path, out_html: str | Path | None = None,
                  max_sample_cards: int = 12, max_audio_bytes: int = MAX_AUDIO_BYTES) -> Path:
    """Write the self-contained HTML report of a run (default: ``report.html`` beside the JSON)."""
    path = Path(results_json_path)
    results, arrays = load_results(path)
    out = Path(out_html) if out_html else path.with_name("report.html")
    html = _env().get_template("report.html.j2").render(
        **build_context(results, arrays, max_sample_cards, max_audio_bytes, path.name))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(html, encoding="utf-8")
    return out


def _runs(reports_dir: Path) -> Iterable[dict]:
    for results_path in sorted(reports_dir.glob("*/results.json")):
        try:
            results = json.loads(results_path.read_text())
        except (OSError, ValueError) as exc:
            yield {"dir": results_path.parent.name, "error": f"unreadable results.json ({exc})"}
            continue
        gates = results.get("gates") or []
        failed = sum(_outcome(g) in RED for g in gates)
        state = run_state(results)
        report = next((p for p in (results_path.with_name("report.html"),) if p.exists()), None)
        yield {"dir": results_path.parent.name, "error": None,
               "started": (results.get("timings") or {}).get("started"),
               "specs": list((results.get("specs") or {}).keys()) + [f"{e.get('spec_file')} (ERROR)"
                                                                     for e in state["errors"]],
               "verdict": state["label"], "headline": state["headline"], "css": state["css"],
               "gates": len(gates), "failed": failed, "passed": sum(_outcome(g) == "passed" for g in gates),
               "report": f"{results_path.parent.name}/{report.name}" if report else None,
               "results": f"{results_path.parent.name}/results.json"}


def render_index(reports_dir: str | Path) -> Path:
    """Write ``index.html`` in ``reports_dir`` listing every run folder (newest first)."""
    reports_dir = Path(reports_dir)
    runs = sorted(_runs(reports_dir), key=lambda r: (r.get("started") or "", r["dir"]), reverse=True)
    out = reports_dir / "index.html"
    out.write_text(_env().get_template("index.html.j2").render(runs=runs), encoding="utf-8")
    return out
