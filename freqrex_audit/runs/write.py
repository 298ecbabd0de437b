"""The run's results file: ``results.json`` + ``results.npz`` in the shape of ``docs/results-schema.md``.

A run is assembled from *parts*, one per spec (``SpecResult`` → :func:`spec_part`), so a pytest-xdist
worker can write its specs' parts into the run folder and the controller merges them at session end
(:func:`save_part`, :func:`load_parts`, :func:`assemble`). Everything except ``timings`` is
deterministic: JSON written with ``sort_keys=True, indent=1``. ``timings`` holds every fact about *this*
run rather than about its inputs: the start time, wall-clock seconds (per run, spec, clip and phase), the
model queries this run actually made (0 for what came from the cache) and the cache hits / misses.
The same audit twice, cold or from the cache, gives the same file apart from that section.
"""

from __future__ import annotations

import io
import json
import subprocess
import time
from pathlib import Path
from typing import Any

import numpy as np

from ..audit.records import GREEN, RED, Outcome, SpecResult, Verdict, run_verdict
from ..engine.codec import atomic_write_bytes, to_jsonable
from ..runtime.devices import cpu_description
from ..runtime.paths import shown_spec
from .baselines import config_hash
from .schema import SCHEMA_VERSION

__all__ = ["spec_part", "assemble", "write_doc", "write_results", "save_part", "load_parts", "run_info",
           "item_name", "finalize", "SCHEMA_VERSION"]

def item_name(prefix: str, check: str, key: str) -> str:
    return f"{prefix}::{check}[{key}]"


GATE_EXTRAS = ("k", "n", "low", "high", "compared", "unmeasured", "baseline", "delta", "over", "attempted",
               "errored", "clips")


def gate_outcome(item_outcome: str, gate_passed: bool | None) -> str:
    """A gate's own outcome: its comparison when its item ran and was judged, else the item's outcome. In an
    expected failure (``xfailed``) the gates that held say passed and the others carry the item's xfail."""
    if item_outcome in (Outcome.PASSED, Outcome.FAILED, Outcome.NOT_MEASURED):
        return Outcome.PASSED if gate_passed else Outcome.FAILED if gate_passed is False else Outcome.NOT_MEASURED
    if item_outcome == Outcome.XFAILED and gate_passed:
        return Outcome.PASSED
    return item_outcome


def gates_of(result: SpecResult, prefix: str, verdicts: list[Verdict] | None = None) -> list[dict]:
    out = []
    for v in verdicts if verdicts is not None else result.verdicts:
        for g in v.gates:
            outcome = gate_outcome(v.outcome, g["passed"])
            out.append({"spec": result.name, "check": v.check, "metric": g["metric"], "value": g["value"],
                        "op": g["op"], "threshold": g["threshold"], "passed": _passed(outcome), "outcome": outcome,
                        "item": item_name(prefix, v.check, v.key), **{k: g.get(k) for k in GATE_EXTRAS}})
    return out


def _passed(outcome: str) -> bool | None:
    return True if outcome in GREEN else False if outcome in RED else None


def _sample_dict(index: int, record: Any, name: str, arrays: dict) -> dict:
    base = f"{name}.{index}"
    return {
        "id": record.sample.id, "path": str(record.sample.path), "label": record.sample.label,
        "status": record.status, "reason": record.reason, "notes": list(record.notes), "predicted": record.predicted,
        "confidence": record.confidence,
        "explanation": (record.explanation.to_dict(arrays, f"{base}.explanation", timings=False)
                        if record.explanation else None),
        "fourier_attack": (record.fourier.to_dict(arrays, f"{base}.fourier_attack", timings=False)
                           if record.fourier else None),
        "stft_attack": record.stft.to_dict(arrays, f"{base}.stft_attack", timings=False) if record.stft else None,
        "noise_floor": record.noise.to_dict(arrays, f"{base}.noise_floor", timings=False) if record.noise else None,
        "peer_attack": record.peer.to_dict(arrays, f"{base}.peer_attack", timings=False) if record.peer else None,
        "robustness": record.robustness,
        "verification": record.verification,
        "methods": ({name: m.to_dict(arrays, f"{base}.methods.{name}", timings=False)
                     for name, m in record.methods.items()} if record.methods else None),
    }


def _sample_timing(record: Any) -> dict:
    """A clip's wall-clock fields (left out of its sample entry so that entry is deterministic)."""
    out: dict[str, Any] = {}
    if record.explanation is not None:
        out["explanation"] = {k: round(v, 6) for k, v in sorted(record.explanation.seconds_by_phase.items())}
    for name, value in (("fourier_attack", record.fourier), ("stft_attack", record.stft), ("noise_floor", record.noise),
                        ("peer_attack", record.peer)):
        if value is not None:
            out[name] = round(value.seconds, 6)
    if record.methods:
        out["methods"] = {name: round(m.seconds, 6) for name, m in sorted(record.methods.items())}
    return out


def mean_clips_per_call(result: SpecResult) -> float | None:
    """Clips per model call through the spec's QueryEngine: its queries (transferability's, made by their own
    engines, aside) over its calls; None when it made none (all from the cache)."""
    own = result.queries - int(result.queries_by_phase.get("transferability", 0))
    calls = int(getattr(result, "calls", 0) or 0)
    return round(own / calls, 2) if calls else None


def spec_part(result: SpecResult, prefix: str | None = None, arrays: dict | None = None) -> dict:
    """Everything the run file needs from one spec (arrays of its samples go into ``arrays``)."""
    arrays = {} if arrays is None else arrays
    prefix = prefix or shown_spec(result.spec.path)
    name = result.name
    counts = {s: sum(r.status == s for r in result.samples) for s in ("ok", "misclassified", "skipped", "error")}
    section = {
        "spec_file": prefix,
        "config_hash": config_hash(result.spec),
        "seed": result.spec.freqrex.seed,
        "model": result.model_info,
        "error": result.error,
        "dataset": {"path": str(result.spec.dataset.path), "n_samples": len(result.samples),
                    "n_analysed": sum(r.analysed for r in result.samples), "n_skipped": counts["skipped"],
                    "n_errors": counts["error"], "n_misclassified": counts["misclassified"]},
        "accuracy": result.accuracy,
        "samples": [_sample_dict(i, r, name, arrays) for i, r in enumerate(result.samples)],
        "tables": result.tables,
        "figures": result.figures,
        "metrics": result.metrics,
        "checks": result.spec.checks,
        "skipped_checks": dict(result.cross_skipped),
        "failed_checks": dict(result.cross_failed),
        "verdicts": [{"check": v.check, "key": v.key, "outcome": v.outcome, "passed": v.passed, "message": v.message,
                      "measured": v.measured, "item": item_name(prefix, v.check, v.key)} for v in result.verdicts],
        "rates": result.rates,
        "transferability": to_jsonable(result.transferability) if result.transferability is not None else None,
        "composition": (to_jsonable(result.composition, arrays, f"{name}.composition")
                        if result.composition is not None else None),
        "explainers": _explainers_section(result),
    }
    return {
        "name": name, "section": to_jsonable(section), "gates": to_jsonable(gates_of(result, prefix)),
        "timing": {"seconds": round(result.seconds, 3), "queries": result.queries, "calls": result.calls,
                   "mean_clips_per_call": mean_clips_per_call(result),
                   "queries_by_phase": result.queries_by_phase, "cache": result.cache_stats,
                   "samples": {r.sample.id: t for r in result.samples if (t := _sample_timing(r))},
                   "peers": {peer: {**work, "seconds": round(work["seconds"], 3)}
                             for peer, work in sorted(result.peer_work.items())},
                   **({"explainers": list(result.explainer_notes)} if result.explainer_notes else {}),
                   **({"batching": result.batching} if result.batching else {})},
        "trust_remote_code": result.spec.trust_remote_code,
    }


def _explainers_section(result: SpecResult) -> dict | None:
    """The spec's explainer settings (None without ``explainers:``). Where the decoder came from (shipped,
    cached, trained) is a fact about this run, so it is in ``timings.per_spec.<spec>.explainers``."""
    settings = result.spec.explainers
    if settings is None:
        return None
    return {"methods": list(settings.methods), "train": str(settings.train) if settings.train else None,
            "clips": settings.clips, "lmac": settings.lmac.to_dict(), "layer": settings.layer,
            "latent": settings.latent.to_dict()}


def _commit() -> str | None:
    """HEAD of the git repository the run started in (the audited project's commit; the engine is
    ``versions.engine``), or None outside one."""
    try:
        out = subprocess.run(["git", "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5)
        return out.stdout.strip() or None if out.returncode == 0 else None
    except (OSError, subprocess.SubprocessError):
        return None


def run_info(seed: int | None, device: str, node_cpus: dict[str, str | None] | None = None) -> dict:
    """The run's facts: seed, device, the CPU (kernels round by instruction set), versions (``engine``: the package version and a hash of the engine's
    sources, what the cache and baselines key on, so a reader can tell which engine computed the run; and each of
    the numeric runtimes the cache keys on, None when absent, so ``compare`` names an onnxruntime or scipy change
    as it names a torch one), commit, and ``node_cpus`` (each node's CPU) when clips ran on nodes with another CPU."""
    from ..audit.cache import computed_by

    info = {"seed": seed, "device": device, "cpu": cpu_description(), "versions": computed_by(), "commit": _commit()}
    return {**info, "node_cpus": dict(node_cpus)} if node_cpus else info


def assemble(parts: list[dict], run: dict, started: float, seconds: float) -> dict:
    """The run document from its specs' parts; :func:`finalize` then states what ran (call it once)."""
    parts = sorted(parts, key=lambda p: p["name"])
    gates = [g for p in parts for g in p["gates"]]
    transfer = next((p["section"]["transferability"] for p in parts if p["section"].get("transferability")), None)
    return {
        "schema_version": SCHEMA_VERSION, "errors": [],
        "run": {**run, "trust_remote_code": sorted(p["name"] for p in parts if p.get("trust_remote_code"))},
        "timings": {"started": time.strftime("%Y-%m-%dT%H:%M:%S%z", time.localtime(started)),
                    "seconds": round(seconds, 3), "per_spec": {p["name"]: p["timing"] for p in parts}},
        "gates": gates,
        "specs": {p["name"]: p["section"] for p in parts},
        "transferability": transfer,
    }


def finalize(doc: dict, ran: dict[str, str] | None = None, total: int | None = None, interrupted: bool = False,
             errors: list[dict] | None = None, filtered: bool = False, planned: list[str] | None = None,
             selected: set[str] | None = None) -> dict:
    """Settle every item's outcome with what the session knows, and derive the run's verdict.

    ``ran``: item → pytest's outcome (passed / failed / skipped / error) for the items that ran; None when
    every computed item ran (the CLI). An item that did not run is ``deselected`` (not selected) or, when
    the run was ``interrupted``, ``interrupted``. An item pytest judged differently from its verdict (a
    crash in the plugin) becomes ``error``. ``errors``: specs that did not load, ``{"spec_file", "message"}``.
    ``total``: items selected for the run (default: every item in ``doc``). ``filtered``: -m / -k / --lf…
    ``planned``: the spec files with selected items; those with no results (the run stopped before them) are
    listed as ``run.unfinished``, so an incomplete run names what it is missing. ``selected``: the items
    selected for the run, when known; one of them that did not run was stopped (``interrupted``: Ctrl-C,
    ``-x`` / ``--maxfail``), never "not selected".
    """
    outcomes: list[str] = []
    gates_by_item: dict[str, list[dict]] = {}
    for g in doc["gates"]:
        gates_by_item.setdefault(g["item"], []).append(g)
    for section in doc["specs"].values():
        for v in section["verdicts"]:
            outcome = v["outcome"]
            if ran is not None and v["item"] not in ran:
                stopped = v["item"] in selected if selected is not None else interrupted
                outcome = Outcome.INTERRUPTED if stopped else Outcome.DESELECTED
                v["message"] = f"not run ({'the run stopped before it' if stopped else 'not selected'}); " \
                               f"computed: {v['message']}"
            elif ran is not None and _pytest_class(ran[v["item"]]) != _pytest_class(outcome):
                v["message"] = f"pytest reported {ran[v['item']]}; the verdict was {outcome}: {v['message']}"
                outcome = Outcome.ERROR
            v["outcome"], v["passed"] = outcome, _passed(outcome)
            for g in gates_by_item.get(v["item"], []):
                # the gate's own comparison as gates_of judged it (its "passed" is the outcome's colour by now:
                # False for not measured too, so re-reading it turned an unmeasured gate into a failed one)
                compared = {Outcome.PASSED: True, Outcome.FAILED: False}.get(g.get("outcome"), g["passed"]
                                                                                    if "outcome" not in g else None)
                g["outcome"] = gate_outcome(outcome, compared)
                g["passed"] = _passed(g["outcome"])
            outcomes.append(outcome)
    errors = list(errors or [])
    n_ran = sum(o not in (Outcome.DESELECTED, Outcome.INTERRUPTED) for o in outcomes)
    total = n_ran if total is None else max(total, n_ran)
    counts = {o: outcomes.count(o) for o in dict.fromkeys(outcomes)}
    complete = not interrupted and n_ran >= total
    filtered = filtered or Outcome.DESELECTED in outcomes  # computed, but not selected
    verdict = run_verdict(outcomes, not interrupted, len(errors))
    summary = f"{n_ran} of {total} items ran" + ("" if complete else " (incomplete)")
    doc["errors"] = errors
    have = {s.get("spec_file") for s in doc["specs"].values()} | {e.get("spec_file") for e in errors}
    doc["run"]["unfinished"] = sorted(set(planned or ()) - have)
    doc["run"].update({"complete": complete, "interrupted": interrupted, "filtered": filtered, "verdict": verdict,
                       "items": {"total": total, "ran": n_ran, "outcomes": counts}, "summary": summary})
    return doc


def _pytest_class(outcome: str) -> str:
    """passed / failed / skipped as pytest sees it (error counts as failed)."""
    if outcome in ("failed", "error") or outcome in RED:
        return "red"
    return "green" if outcome in GREEN or outcome == "passed" else "grey"


def _npz_bytes(arrays: dict[str, np.ndarray]) -> bytes:
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    return buffer.getvalue()


INLINE_MAX = 16
"""A clip's arrays with more elements than this go to results.npz even when the engine inlined them (< 512):
indented JSON spends ~20 bytes a number, which made results.json the biggest part of a short clip's bytes."""


def _clip_arrays_to_npz(doc: dict, arrays: dict[str, np.ndarray]) -> None:
    """Move every inline array of ``specs.<spec>.samples[i]`` with more than :data:`INLINE_MAX` elements into
    ``arrays``, named by its place (``<spec>.<i>.fourier_attack.gain``, the engine's own naming); readers
    accept either form (``{"__ndarray__": …}`` or ``{"__npz__": name}``) and get the same array back."""
    def walk(value: Any, key: str) -> Any:
        if isinstance(value, dict):
            if "__ndarray__" in value and "dtype" in value and "shape" in value:
                a = np.asarray(value["__ndarray__"], dtype=value["dtype"]).reshape(value["shape"])
                if a.size > INLINE_MAX and key not in arrays:
                    arrays[key] = a
                    return {"__npz__": key}
                return value
            return {k: walk(v, f"{key}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [walk(v, f"{key}.{i}") for i, v in enumerate(value)]
        return value

    for name, spec in (doc.get("specs") or {}).items():
        spec["samples"] = [walk(sample, f"{name}.{i}") for i, sample in enumerate(spec.get("samples") or [])]


def write_doc(doc: dict, arrays: dict[str, np.ndarray], out_dir: str | Path) -> Path:
    """Write ``results.json`` (+ ``results.npz``, packed: :mod:`freqrex_audit.runs.packing`) atomically, with
    the index of the waveform sidecar (:mod:`freqrex_audit.runs.waveforms`: its files are written on
    demand, checked against the sha256 recorded here); returns the JSON path."""
    from .packing import pack
    from .waveforms import write_sidecar

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _clip_arrays_to_npz(doc, arrays)  # in place: the caller's doc and arrays stay a pair
    write_sidecar(doc, arrays, out)
    if arrays:  # every array exactly, packed (runs/packing.py); the subsets' WAVs are rebuilt from it on demand
        atomic_write_bytes(out / "results.npz", _npz_bytes(pack(arrays)))
    return atomic_write_bytes(out / "results.json", json.dumps(doc, sort_keys=True, indent=1).encode())


def write_results(results: list[SpecResult], out_dir: str | Path, seed: int | None = None, device: str = "auto",
                  started: float | None = None, prefixes: dict[str, str] | None = None,
                  errors: list[dict] | None = None, total: int | None = None, interrupted: bool = False,
                  deadline: dict | None = None, planned: list[str] | None = None) -> Path:
    """Write the run file for these spec results (every item ran unless ``interrupted``; ``total`` items
    were planned; ``deadline``: :func:`freqrex_audit.runtime.deadline.facts`, as ``run.deadline``); returns the
    ``results.json`` path."""
    arrays: dict[str, np.ndarray] = {}
    parts = [spec_part(r, (prefixes or {}).get(r.name), arrays) for r in results]
    started = started if started is not None else time.time() - sum(r.seconds for r in results)
    doc = assemble(parts, run_info(seed, device), started, time.time() - started)
    finalize(doc, None, total, interrupted, errors, planned=planned)
    if deadline is not None:
        doc["run"]["deadline"] = deadline
    return write_doc(doc, arrays, out_dir)


def save_part(folder: str | Path, part: dict, arrays: dict[str, np.ndarray]) -> Path:
    """One spec's part, written by whichever process computed it (a worker or the controller)."""
    folder = Path(folder)
    safe = part["name"]
    if arrays:
        atomic_write_bytes(folder / f"{safe}.npz", _npz_bytes(arrays))
    return atomic_write_bytes(folder / f"{safe}.json", json.dumps(part, sort_keys=True).encode())


def load_parts(folder: str | Path) -> tuple[list[dict], dict[str, np.ndarray]]:
    folder = Path(folder)
    parts, arrays = [], {}
    if not folder.is_dir():
        return parts, arrays
    for path in sorted(folder.glob("*.json")):
        parts.append(json.loads(path.read_text()))
        sidecar = path.with_suffix(".npz")
        if sidecar.exists():
            with np.load(sidecar, allow_pickle=False) as npz:
                arrays.update({k: npz[k] for k in npz.files})
    return parts, arrays
