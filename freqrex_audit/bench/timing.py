"""``freqrex-audit bench``: how close an explanation runs to the model's own batched forward time.

For a black-box method the floor is the model's own forward time for the calls the engine made (the same
batch sizes, in the same order, on pre-built inputs); everything above it is the engine's own work
(synthesis, bookkeeping, output checks). FreqReX is adaptive — each level asks only what the last one
left open — so its calls are often smaller than ``batch_size``; the floor at full batches is reported
beside it, and the gap between the two is what small calls cost the model, not the engine. For each
model and clip length this measures queries and calls per phase, explanation wall time, both floors,
the ratios, peak memory, the batch-size-1 slowdown, and the attacks' queries and time.
"""

from __future__ import annotations

import math
import platform
import resource
import time
from dataclasses import asdict, dataclass

import numpy as np
import torch

from ..models.classifier import Classifier, QueryEngine
from .sizes import parameter_count
from ..models.input_window import crop_to_input_window
from ..engine import AttackConfig, FreqReXConfig, explain, fourier_attack, stft_attack


@dataclass
class BenchRow:
    """One (model, clip length) measurement."""

    model: str
    parameters: int | None  # of a torch-backed model (bench --size rebuilds them larger)
    device: str
    seconds: float
    window_s: float  # what the engine explained: the model's input window when the clip is longer (input_window.py)
    precision: str
    n_bins: int
    batch_size: int
    queries: int
    calls: int  # model calls the explanation made
    mean_clips_per_call: float  # queries / calls: the mean batch the engine filled (batch_size at most)
    queries_by_phase: dict
    explain_s: float
    forward_s: float  # the model alone, for the same calls (same batch sizes)
    overhead_ratio: float  # explain / forward, wall clock: the engine's own cost on a quiet machine or a GPU
    overhead_cpu: float  # the same ratio in this process's CPU seconds: robust to other jobs on a shared CPU
    forward_full_s: float  # the model alone, for the same queries in full batches of batch_size
    overhead_full_batches: float  # explain / forward_full_s: engine work plus what adaptive small calls cost
    queries_per_s: float
    peak_memory_mb: float
    batch1_explain_s: float | None
    batching_speedup: float | None
    attack_queries: int
    attack_s: float
    sufficient_valid: bool


def bench_clip(seconds: float, sample_rate: int, seed: int = 0) -> np.ndarray:
    """A music-like test clip: a few harmonic tones with vibrato and a little noise."""
    rng = np.random.default_rng(seed)
    t = np.arange(int(seconds * sample_rate)) / sample_rate
    x = np.zeros_like(t)
    for f0 in rng.uniform(150, 900, size=3):
        vibrato = 1 + 0.003 * np.sin(2 * np.pi * 5 * t)
        for h in range(1, 5):
            x += np.sin(2 * np.pi * f0 * h * vibrato * t) / h
    x += 0.05 * rng.standard_normal(len(t))
    return (0.3 * x / np.max(np.abs(x))).astype(np.float32)


def forward_time(classifier: Classifier, n_samples: int, call_sizes: list[int], repeats: int = 1,
                 autocast: torch.dtype | None = None) -> tuple[float, float]:
    """(wall, CPU) seconds the model alone needs for calls of these batch sizes (inputs pre-built), from the
    fastest of ``repeats``."""
    batch = torch.randn(max(call_sizes, default=1), n_samples, device=classifier.device) * 0.1
    best, best_cpu = math.inf, math.inf
    device_type = "cuda" if classifier.device.type == "cuda" else "cpu"
    with torch.inference_mode(), torch.autocast(device_type, dtype=autocast or torch.bfloat16, enabled=bool(autocast)):
        classifier.predict(batch[:1])  # warm-up
        for _ in range(repeats):
            _sync(classifier.device)
            began, began_cpu = time.perf_counter(), time.process_time()
            for size in call_sizes:
                classifier.predict(batch[:size])
            _sync(classifier.device)
            best = min(best, time.perf_counter() - began)
            best_cpu = min(best_cpu, time.process_time() - began_cpu)
    return best, best_cpu


def full_batches(queries: int, batch_size: int) -> list[int]:
    """Call sizes for ``queries`` queries sent in full batches (the last one partial)."""
    full, rest = divmod(queries, batch_size)
    return [batch_size] * full + ([rest] if rest else [])


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def _peak_memory_mb(device: torch.device) -> float:
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    scale = 1 if platform.system() == "Darwin" else 1024  # ru_maxrss: bytes on macOS, KiB on Linux
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * scale / 2**20


def bench_model(name: str, classifier: Classifier, seconds: float, batch_size: int = 64,
                config: FreqReXConfig | None = None, with_batch1: bool = False, precision: str = "fp32",
                attacks: bool = True, repeats: int = 1) -> BenchRow:
    """Measure one explanation (+ attacks, unless ``attacks`` is false) of a ``seconds``-long clip against the
    model's forward floor. With ``repeats`` > 1 the explanation and both floors are timed that many times
    and the fastest of each kept (the explanation is deterministic, so every repeat asks the same calls):
    short runs on a shared CPU vary by ±20 % otherwise.

    Like an audit, the clip is first cropped to the model's input window (the model ignores the rest)."""
    config = config or FreqReXConfig(seed=0)
    x, _note = crop_to_input_window(bench_clip(seconds, classifier.sample_rate), classifier)
    if classifier.device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(classifier.device)
    engine = QueryEngine(classifier, batch_size=batch_size, precision=precision)
    engine.query(x[None])  # warm-up (lazy init, kernels), not counted below
    engine.check_precision(x)  # reduced precision only where it agrees with fp32 on this clip
    explain_s = explain_cpu = math.inf
    for _ in range(max(1, repeats)):
        engine.queries, engine.call_sizes = 0, []
        _sync(classifier.device)
        began, began_cpu = time.perf_counter(), time.process_time()
        exp = explain(engine, x, config)
        _sync(classifier.device)
        explain_s = min(explain_s, time.perf_counter() - began)
        explain_cpu = min(explain_cpu, time.process_time() - began_cpu)
    calls = list(engine.call_sizes)
    floor, floor_cpu = forward_time(classifier, len(x), calls, repeats=repeats, autocast=engine.autocast)
    floor_full, _ = forward_time(classifier, len(x), full_batches(exp.queries, batch_size), repeats=repeats,
                                 autocast=engine.autocast)
    probs = engine.query(exp.signal("sufficient")[None])[0]
    valid = int(probs.argmax()) == exp.target and probs[exp.target] >= config.min_confidence * exp.confidence

    began, q0 = time.perf_counter(), engine.queries
    if attacks:
        stft_attack(engine, x, fourier_attack(engine, x, exp, AttackConfig()))
    attack_s, attack_q = time.perf_counter() - began, engine.queries - q0

    batch1_s = speedup = None
    if with_batch1:
        began = time.perf_counter()
        explain(QueryEngine(classifier, batch_size=1), x, config)
        batch1_s = time.perf_counter() - began
        speedup = batch1_s / explain_s
    return BenchRow(
        model=name, parameters=parameter_count(classifier), device=str(classifier.device), seconds=seconds, window_s=len(x) / classifier.sample_rate,
        precision=precision if engine.autocast is not None else "fp32", n_bins=exp.n_bins, batch_size=batch_size,
        queries=exp.queries, calls=len(calls),
        mean_clips_per_call=exp.queries / max(1, len(calls)), queries_by_phase=dict(exp.queries_by_phase), explain_s=explain_s,
        forward_s=floor, overhead_ratio=explain_s / floor if floor > 0 else math.nan,
        overhead_cpu=explain_cpu / floor_cpu if floor_cpu > 0 else math.nan, forward_full_s=floor_full,
        overhead_full_batches=explain_s / floor_full if floor_full > 0 else math.nan,
        queries_per_s=exp.queries / explain_s,
        peak_memory_mb=_peak_memory_mb(classifier.device), batch1_explain_s=batch1_s, batching_speedup=speedup,
        attack_queries=attack_q, attack_s=attack_s, sufficient_valid=bool(valid))


def format_table(rows: list[BenchRow]) -> str:
    """A plain-text table of the measurements, one row per (model, clip length)."""
    head = ("model", "params", "device", "clip s", "window s", "precision", "K bins", "queries", "calls", "clips/call", "explain s", "forward s",
            "overhead", "overhead CPU", "full-batch forward s", "overhead vs full batches", "q/s", "peak MB", "batch-1 ×",
            "attack q", "valid")
    lines = [head]
    for r in rows:
        lines.append((r.model, "-" if r.parameters is None else f"{r.parameters / 1e6:.1f} M", r.device, f"{r.seconds:g}", f"{r.window_s:g}", r.precision, f"{r.n_bins:,}", f"{r.queries:,}", f"{r.calls:,}", f"{r.mean_clips_per_call:.1f}",
                      f"{r.explain_s:.2f}", f"{r.forward_s:.2f}", f"{r.overhead_ratio:.2f}", f"{r.overhead_cpu:.2f}",
                      f"{r.forward_full_s:.2f}", f"{r.overhead_full_batches:.2f}", f"{r.queries_per_s:.0f}",
                      f"{r.peak_memory_mb:.0f}", "-" if r.batching_speedup is None else f"{r.batching_speedup:.1f}",
                      f"{r.attack_queries:,}", "yes" if r.sufficient_valid else "NO"))
    widths = [max(len(line[i]) for line in lines) for i in range(len(head))]
    return "\n".join("  ".join(cell.rjust(w) for cell, w in zip(line, widths)) for line in lines)


def rows_as_json(rows: list[BenchRow]) -> list[dict]:
    return [asdict(r) for r in rows]
