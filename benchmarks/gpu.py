"""A GPU run, ready to go: the zoo's four families at base size on CUDA, in about four minutes.

    python benchmarks/gpu.py                    # CUDA if there is one; writes gpu.json as it goes
    python benchmarks/gpu.py --json out.json --budget-s 240 --families ast wav2vec2
    python benchmarks/gpu.py --dry-run          # tiny models on the CPU in seconds: checks the script runs

What it measures, each step written to the JSON the moment it ends (a run cut short keeps what it had):

1. ``explain`` per family at ``--size`` (base: AST/Wav2Vec2/HuBERT-base, Whisper-base's encoder; random
   weights from a fixed seed, the zoo's feature extractors and windows, ``freqrex_audit/bench/sizes.py``) on a
   1-s clip, in fp32 and bf16: queries, model calls, mean clips per call, explanation time, the model's own
   forward time for the same calls and for the same queries in full batches, and the ratios (README's
   overhead table).
2. Batched vs batch size 1: the model's forward time per query at ``--batch-size`` and at 1.
3. The QueryEngine's out-of-memory halving: simulated on any device (a model that refuses batches over 8),
   and on CUDA for real (a per-process memory cap, 30-s clips, a batch far too large): the batch it settled
   on, that every query was counted once, that the answers match batch-size-1 answers.
4. Per-query time at 30 s (each model's window of a 30-s clip, as an audit crops it) through the QueryEngine,
   and, while the budget lasts, a 30-s explanation per family.
5. A paper-scale estimate: 5 models × 100 clips × 30 s on 1 and 8 GPUs, from the measured per-query times and
   query counts (this script runs no attack: the attack spends its whole ``query_budget`` on every clip).

It imports only the engine, the QueryEngine, the transformers adapter and ``bench.sizes`` / ``bench.timing``:
no soundfile, POT, pydantic or matplotlib (``tests/test_gpu_benchmark.py`` runs it with them blocked; its
imports load without YAML and scipy too).
Without soundfile the engine's 16-bit round trip is numpy's copy of libsndfile 1.2's (the engine's EMD never
imports POT: it is POT's numpy code, bit for bit). It needs torch, numpy and transformers. Nothing is downloaded.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import sys
import time
from pathlib import Path

if __package__ in (None, ""):  # run as a script: this checkout's package, before any installed one
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import numpy as np  # noqa: E402
import torch  # noqa: E402

from freqrex_audit.bench.sizes import parameter_count, sized_classifier  # noqa: E402
from freqrex_audit.bench.timing import _peak_memory_mb, _sync, bench_clip, forward_time, full_batches  # noqa: E402
from freqrex_audit.engine.attack_config import AttackConfig  # noqa: E402
from freqrex_audit.engine.explanation import FreqReXConfig, explain  # noqa: E402
from freqrex_audit.models.classifier import Classifier, QueryEngine, resolve_device  # noqa: E402
from freqrex_audit.models.input_window import crop_to_input_window  # noqa: E402

FAMILIES = ("ast", "whisper", "wav2vec2", "hubert")
PAPER = {"models": 5, "clips": 100, "seconds": 30.0}
VERIFY_QUERIES = 3  # the audit's verification of the three handed-out subsets
ATTACK_QUERIES = AttackConfig().query_budget
"""Queries the default attack spends on a clip: since #29 it searches for a quieter flip until its budget is
spent, so every measured clip costs the whole budget (README's demo attack table). This script runs no attack."""


class Recorder:
    """The JSON document, rewritten (atomically) after every step."""

    def __init__(self, path: Path, meta: dict):
        self.path = path
        self.doc = {"meta": meta, "explain": [], "batching": [], "oom_halving": {}, "long": [],
                    "explain_30s": [], "estimate": None, "skipped": []}
        self.write()

    def add(self, section: str, value) -> None:
        if isinstance(self.doc[section], list):
            self.doc[section].append(value)
        elif isinstance(self.doc[section], dict) and isinstance(value, dict):
            self.doc[section].update(value)
        else:
            self.doc[section] = value
        self.write()

    def write(self) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        scratch = self.path.with_name(self.path.name + ".part")
        scratch.write_text(json.dumps(self.doc, indent=1, default=_plain))
        os.replace(scratch, self.path)


def _plain(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    return str(value)


def say(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def explain_row(family: str, clf: Classifier, seconds: float, precision: str, batch_size: int,
                config: FreqReXConfig) -> dict:
    """One explanation against the model's own forward time (bench.timing.bench_model without attacks)."""
    x, _ = crop_to_input_window(bench_clip(seconds, clf.sample_rate), clf)
    if clf.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(clf.device)
    engine = QueryEngine(clf, batch_size=batch_size, precision=precision)
    engine.query(x[None])  # warm-up: kernels, lazy init
    fallback = engine.check_precision(x)
    engine.queries, engine.call_sizes = 0, []
    _sync(clf.device)
    began = time.perf_counter()
    exp = explain(engine, x, config)
    _sync(clf.device)
    explain_s = time.perf_counter() - began
    calls = list(engine.call_sizes)
    floor, _ = forward_time(clf, len(x), calls, autocast=engine.autocast)
    floor_full, _ = forward_time(clf, len(x), full_batches(exp.queries, engine.batch_size), autocast=engine.autocast)
    return {"family": family, "model": clf.name, "parameters": parameter_count(clf), "device": str(clf.device),
            "precision": precision, "ran_in": "fp32" if engine.autocast is None else precision,
            "precision_fallback": fallback, "seconds": seconds, "window_s": len(x) / clf.sample_rate,
            "n_bins": len(x) // 2 + 1, "batch_size": engine.batch_size, "queries": exp.queries,
            "calls": len(calls), "mean_clips_per_call": exp.queries / max(1, len(calls)),
            "queries_by_phase": dict(exp.queries_by_phase), "explain_s": explain_s, "forward_s": floor,
            "forward_full_s": floor_full, "overhead": explain_s / floor if floor > 0 else math.nan,
            "overhead_full_batches": explain_s / floor_full if floor_full > 0 else math.nan,
            "s_per_query": explain_s / max(1, exp.queries), "peak_memory_mb": _peak_memory_mb(clf.device)}


def batching_row(family: str, clf: Classifier, seconds: float, batch_size: int, queries: int) -> dict:
    """The model's forward time per query at ``batch_size`` and at 1 (inputs pre-built, fp32)."""
    x, _ = crop_to_input_window(bench_clip(seconds, clf.sample_rate), clf)
    batched, _ = forward_time(clf, len(x), full_batches(queries, batch_size))
    single, _ = forward_time(clf, len(x), [1] * queries)
    return {"family": family, "model": clf.name, "queries": queries, "batch_size": batch_size,
            "batched_s_per_query": batched / queries, "batch1_s_per_query": single / queries,
            "batching_speedup": single / batched if batched > 0 else math.nan}


class _RefusesLargeBatches(Classifier):
    """Raises CUDA's out-of-memory error for batches over ``limit``, on any device."""

    def __init__(self, inner: Classifier, limit: int):
        self.inner, self.limit = inner, limit
        self.labels, self.sample_rate, self.device, self.name = inner.labels, inner.sample_rate, inner.device, inner.name
        self.refused = 0

    def predict(self, waveforms: torch.Tensor) -> torch.Tensor:
        if waveforms.shape[0] > self.limit:
            self.refused += 1
            raise torch.OutOfMemoryError(f"simulated: {waveforms.shape[0]} > {self.limit}")
        return self.inner.predict(waveforms)


def oom_simulated(clf: Classifier, seconds: float, limit: int = 8, count: int = 40, batch_size: int = 64) -> dict:
    x, _ = crop_to_input_window(bench_clip(seconds, clf.sample_rate), clf)
    batch = torch.from_numpy(np.stack([x * (0.5 + 0.5 * i / count) for i in range(count)]))
    refusing = _RefusesLargeBatches(clf, limit)
    engine = QueryEngine(refusing, batch_size=batch_size)
    probs = engine.query(batch)
    reference = QueryEngine(clf, batch_size=limit).query(batch)
    return {"model": clf.name, "start_batch_size": batch_size, "settled_batch_size": engine.batch_size,
            "refused_calls": refusing.refused, "queries": engine.queries, "asked": count,
            "counted_once": engine.queries == count, "max_abs_diff_vs_batch_of_limit": float(np.abs(probs - reference).max()),
            "ok": engine.batch_size == limit and engine.queries == count and np.allclose(probs, reference, atol=1e-5)}


def oom_cuda(clf: Classifier, seconds: float, cap_gb: float, count: int) -> dict:
    """A real out-of-memory: the process may use ``cap_gb`` of the GPU; ``count`` clips asked in one batch."""
    x, _ = crop_to_input_window(bench_clip(seconds, clf.sample_rate), clf)
    batch = torch.from_numpy(np.stack([x * (0.5 + 0.5 * i / count) for i in range(count)]))
    total = torch.cuda.get_device_properties(clf.device).total_memory
    torch.cuda.empty_cache()
    torch.cuda.set_per_process_memory_fraction(min(1.0, cap_gb * 2**30 / total), clf.device)
    try:
        engine = QueryEngine(clf, batch_size=count)
        _sync(clf.device)
        began = time.perf_counter()
        probs = engine.query(batch)
        _sync(clf.device)
        seconds_taken = time.perf_counter() - began
    finally:
        torch.cuda.set_per_process_memory_fraction(1.0, clf.device)
        torch.cuda.empty_cache()
    single = QueryEngine(clf, batch_size=1).query(batch[:2])
    return {"model": clf.name, "clip_s": seconds, "window_s": len(x) / clf.sample_rate, "cap_gb": cap_gb,
            "start_batch_size": count, "settled_batch_size": engine.batch_size, "queries": engine.queries,
            "asked": count, "counted_once": engine.queries == count, "calls": len(engine.call_sizes),
            "seconds": seconds_taken, "max_abs_diff_vs_batch1": float(np.abs(probs[:2] - single).max()),
            "ok": engine.queries == count and engine.batch_size < count and np.allclose(probs[:2], single, atol=1e-3)}


def long_row(family: str, clf: Classifier, seconds: float, precision: str, batch_size: int, queries: int) -> dict:
    """Per-query time through the QueryEngine (synthesis included, full batches) on the window of a long clip."""
    x, _ = crop_to_input_window(bench_clip(seconds, clf.sample_rate), clf)
    engine = QueryEngine(clf, batch_size=batch_size, precision=precision)
    engine.query(x[None])
    spectrum = torch.fft.rfft(torch.from_numpy(x).double())
    factors = torch.ones(queries, len(spectrum), dtype=torch.bool)
    factors[:, ::7] = False
    engine.queries, engine.call_sizes = 0, []
    _sync(clf.device)
    began = time.perf_counter()
    engine.query_spectral(spectrum, factors, len(x))
    _sync(clf.device)
    took = time.perf_counter() - began
    return {"family": family, "model": clf.name, "precision": precision, "clip_s": seconds,
            "window_s": len(x) / clf.sample_rate, "queries": queries, "settled_batch_size": engine.batch_size,
            "s_per_query": took / queries}


def paper_estimate(doc: dict, dry_run: bool) -> dict:
    """5 models × 100 clips × 30 s from what was measured: per family, queries per clip (the 30-s explanation
    if it ran, else the 1-s one) + verification + the default attack's budget, times the seconds per query (the
    30-s explanation's if it ran, else the 30-s QueryEngine time × the 1-s explanation's overhead)."""
    per_family = {}
    for family in {row["family"] for row in doc["explain"] + doc["long"]}:
        short = [r for r in doc["explain"] if r["family"] == family and r["precision"] == "fp32"]
        full = [r for r in doc["explain_30s"] if r["family"] == family]
        long = [r for r in doc["long"] if r["family"] == family and r["precision"] == "fp32"]
        if full:
            queries, s_per_query, source = full[0]["queries"], full[0]["s_per_query"], "30-s explanation"
        elif short and long:
            overhead = short[0]["explain_s"] / max(short[0]["forward_full_s"], 1e-12)
            queries, s_per_query = short[0]["queries"], long[0]["s_per_query"] * max(1.0, overhead)
            source = "1-s explanation's queries × 30-s per-query time × its overhead"
        else:
            continue
        clip_queries = queries + VERIFY_QUERIES + ATTACK_QUERIES
        per_family[family] = {"queries_per_clip": clip_queries, "s_per_query": s_per_query,
                              "s_per_clip": clip_queries * s_per_query, "source": source}
    if not per_family:
        return {"note": "nothing measured to estimate from"}
    mean_clip = sum(f["s_per_clip"] for f in per_family.values()) / len(per_family)
    model_s = [f["s_per_clip"] * PAPER["clips"] for f in per_family.values()]
    model_s += [mean_clip * PAPER["clips"]] * max(0, PAPER["models"] - len(model_s))  # the 5th: the families' mean
    total = sum(model_s[:PAPER["models"]])
    return {"paper": PAPER, "per_family": per_family, "attack_queries": ATTACK_QUERIES,
            "one_gpu_h": total / 3600, "eight_gpus_h": total / 8 / 3600,
            "note": ("DRY RUN: tiny models on the CPU; not an estimate of anything" if dry_run else
                     "4 families measured, the 5th model counted as their mean; windows are the zoo's (AST "
                     "1.015 s, Whisper 1 s; released AST/Whisper read 10.24 s / 30 s, so their t_q is larger); "
                     "8 GPUs assumes linear scaling")}


def markdown(doc: dict) -> str:
    lines = ["| model | precision | params | queries | calls | clips/call | explain s | forward s (same calls) | "
             "overhead | vs full batches | peak MB |", "|---|---|---|---|---|---|---|---|---|---|---|"]
    for r in doc["explain"]:
        lines.append(f"| {r['model']} | {r['ran_in']} | {(r['parameters'] or 0) / 1e6:.1f} M | {r['queries']} | "
                     f"{r['calls']} | {r['mean_clips_per_call']:.1f} | {r['explain_s']:.2f} | {r['forward_s']:.2f} | "
                     f"{r['overhead']:.2f} | {r['overhead_full_batches']:.2f} | {r['peak_memory_mb']:.0f} |")
    for r in doc["batching"]:
        lines.append(f"\n{r['model']}: batch {r['batch_size']} {1e3 * r['batched_s_per_query']:.2f} ms/query, "
                     f"batch 1 {1e3 * r['batch1_s_per_query']:.2f} ms/query ({r['batching_speedup']:.1f}×)")
    est = doc.get("estimate") or {}
    if "one_gpu_h" in est:
        lines.append(f"\npaper scale (5 × 100 × 30 s): {est['one_gpu_h']:.2f} h on 1 GPU, "
                     f"{est['eight_gpus_h']:.2f} h on 8 ({est['note']})")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--json", default="gpu.json", help="where the results go (rewritten after every step)")
    parser.add_argument("--device", default="auto", help="auto: CUDA when there is one (default), else the CPU")
    parser.add_argument("--size", default="base", choices=("small", "base"))
    parser.add_argument("--families", nargs="+", choices=FAMILIES, default=list(FAMILIES))
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--budget-s", type=float, default=240.0, help="steps that would start later are skipped")
    parser.add_argument("--oom-cap-gb", type=float, default=4.0, help="the GPU memory the real OOM step may use")
    parser.add_argument("--dry-run", action="store_true",
                        help="tiny models, short clips, the CPU unless --device says otherwise: checks the script")
    args = parser.parse_args(argv)

    began = time.monotonic()
    device = resolve_device("cpu" if args.dry_run and args.device == "auto" else args.device)
    size = "tiny" if args.dry_run else args.size
    short_s, long_s = (0.25, 1.0) if args.dry_run else (1.0, PAPER["seconds"])
    per_query = 4 if args.dry_run else args.batch_size * 2
    config = (FreqReXConfig(seed=0, iterations=1, min_iterations=1, max_depth=2, grid_points=8, prune=False)
              if args.dry_run else FreqReXConfig(seed=0))
    if args.dry_run:
        torch.set_num_threads(1)  # a check, not a measurement: one thread is quickest on a shared CPU
    meta = {"argv": sys.argv[1:] if argv is None else argv, "dry_run": args.dry_run, "size": size,
            "device": str(device), "gpu": torch.cuda.get_device_name(device) if device.type == "cuda" else None,
            "torch": torch.__version__, "cuda": torch.version.cuda, "python": platform.python_version(),
            "host": platform.node(), "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
            "batch_size": args.batch_size, "budget_s": args.budget_s}
    if device.type != "cuda" and not args.dry_run:
        say(f"no CUDA device ({device}): the numbers are CPU numbers, not GPU ones")
    rec = Recorder(Path(args.json), meta)

    def left() -> float:
        return args.budget_s - (time.monotonic() - began)

    def step(name: str, reserve: float, work) -> None:
        """Run ``work`` unless less than ``reserve`` seconds are left; an error is recorded, never fatal."""
        if left() < reserve:
            rec.add("skipped", {"step": name, "why": f"budget: {left():.0f} s left"})
            say(f"skip {name}: budget")
            return
        t0 = time.monotonic()
        try:
            work()
        except Exception as exc:  # noqa: BLE001 - one step's failure must not lose the others
            rec.add("skipped", {"step": name, "why": f"{type(exc).__name__}: {exc}"[:500]})
            say(f"{name} failed: {type(exc).__name__}: {exc}")
            return
        say(f"{name}: {time.monotonic() - t0:.1f} s ({left():.0f} s left)")

    models: dict[str, Classifier] = {}

    def model(family: str) -> Classifier:
        if family not in models:
            models[family] = sized_classifier(f"zoo://instruments/{family}", size, str(device))
        return models[family]

    reserve = 0 if args.dry_run else 20
    for family in args.families:  # 1 + 2: the table's rows first, they matter most
        for precision in ("fp32", "bf16"):
            step(f"explain {family} {precision}", reserve, lambda f=family, p=precision: rec.add(
                "explain", explain_row(f, model(f), short_s, p, args.batch_size, config)))
        step(f"batching {family}", reserve, lambda f=family: rec.add(
            "batching", batching_row(f, model(f), short_s, args.batch_size, per_query)))
    first = args.families[0]
    step("oom simulated", 0, lambda: rec.add("oom_halving", {"simulated": oom_simulated(model(first), short_s)}))
    if device.type == "cuda":
        big = "wav2vec2" if "wav2vec2" in args.families else first
        step("oom cuda", reserve, lambda: rec.add("oom_halving", {"cuda": oom_cuda(model(big), long_s, args.oom_cap_gb, 256)}))
    else:
        rec.add("oom_halving", {"cuda": "not run: no CUDA device"})
    for family in args.families:  # 4: long clips, per query, then whole explanations while time lasts
        for precision in ("fp32", "bf16"):
            step(f"30 s per query {family} {precision}", reserve, lambda f=family, p=precision: rec.add(
                "long", long_row(f, model(f), long_s, p, args.batch_size, per_query)))
    for family in args.families[:1] if args.dry_run else args.families:
        step(f"30 s explanation {family}", 60 if not args.dry_run else 0, lambda f=family: rec.add(
            "explain_30s", explain_row(f, model(f), long_s, "fp32", args.batch_size, config)))
    rec.add("estimate", paper_estimate(rec.doc, args.dry_run))
    rec.doc["meta"]["seconds"] = time.monotonic() - began
    rec.write()
    print(markdown(rec.doc))
    say(f"wrote {rec.path} in {time.monotonic() - began:.0f} s; paste its table into README (GPU figures there "
        f"are estimates until this has run)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
