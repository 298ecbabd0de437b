"""A realistic ``results.json`` + ``results.npz`` for report tests, built from REAL engine runs.

Two tiny band-energy classifiers (three classes: bass / mid / treble at 8 kHz) are explained and
attacked on a few 0.5-s clips per class; every table and figure series is computed from those
results, the way ``audit.py`` does (see docs/results-schema.md). Nothing numeric is typed in,
except the transferability block (see :func:`transfer_block`).
"""

from __future__ import annotations

import datetime as _dt
import io
import json
import platform
from pathlib import Path

import numpy as np
import torch

import freqrex_audit as fa
from freqrex_audit.audio.io import AudioError, validate_waveform
from freqrex_audit.audio import spectrum
from freqrex_audit.audit.gate_rules import rate_gate as _rate_gate
from freqrex_audit.audit.records import wilson
from freqrex_audit.runs.schema import SCHEMA_VERSION
from freqrex_audit.runs.write import finalize

SR = 8000
SECONDS = 0.5
LABELS = ("bass", "mid", "treble")
BANDS_A = ((0, 600), (600, 1800), (1800, 4000))
BANDS_B = ((0, 500), (500, 2000), (2000, 4000))
CLASS_TONES = {"bass": (180.0, 420.0), "mid": (900.0, 1400.0), "treble": (2400.0, 3200.0)}
SMALL = fa.FreqReXConfig(seed=0, iterations=4, min_iterations=2, iteration_budget=80, grid_points=32,
                         refine_points=8)


def band_classifier(bands: tuple[tuple[int, int], ...], sharpness: float, name: str) -> fa.Classifier:
    """Softmax over log band energies above a floor: the class is the band with most energy, and a
    subset is only confidently that class once it carries a good part of the band's energy."""

    def fn(x: torch.Tensor) -> torch.Tensor:
        power = torch.fft.rfft(x).abs() ** 2 / x.shape[-1] ** 2
        hz = torch.fft.rfftfreq(x.shape[-1], 1 / SR)
        energy = torch.stack([power[:, (hz >= lo) & (hz < hi)].sum(-1) for lo, hi in bands], dim=-1)
        return torch.softmax(sharpness * torch.log(energy + 0.01), dim=-1)

    return fa.Classifier.from_callable(fn, LABELS, SR, name=name)


def clip(label: str, index: int) -> np.ndarray:
    """A 0.5-s clip of class ``label``: two tones in its band, a weaker tone elsewhere, some noise."""
    rng = np.random.default_rng(100 * LABELS.index(label) + index)
    t = np.arange(int(SECONDS * SR)) / SR
    f1, f2 = CLASS_TONES[label]
    other = [f for name, fs in CLASS_TONES.items() if name != label for f in fs][index % 4]
    near = index % 2  # odd clips sit near the decision boundary, so one frequency can flip them
    x = (0.5 * np.sin(2 * np.pi * (f1 + 20 * index) * t) + (0.12 if near else 0.3) * np.sin(2 * np.pi * f2 * t)
         + (0.45 if near else 0.2) * np.sin(2 * np.pi * other * t) + 0.03 * rng.standard_normal(len(t)))
    return x.astype(np.float32)


def composition_ratio(engine: fa.QueryEngine, exps: list[fa.Explanation], target: int) -> float:
    """Table 2: greedily average sufficient signals (by confidence), keep an addition if the class holds."""
    signals = [(e.confidence, e.signal("sufficient")) for e in exps if e.sufficient is not None]
    if not signals:
        return float("nan")
    signals.sort(key=lambda pair: -pair[0])
    kept: list[np.ndarray] = []
    for _, s in signals:
        trial = np.mean(kept + [s], axis=0)
        if int(engine.query(trial[None].astype(np.float32))[0].argmax()) == target:
            kept.append(s)
    return len(kept) / len(signals)


def run_spec(name: str, clf: fa.Classifier, clips_per_class: int, arrays: dict, spec_index: int) -> dict:
    """Explain and attack every clip of one spec; aggregate tables and figure series from the results."""
    engine = fa.QueryEngine(clf, batch_size=64)
    samples, exps, fouriers, stfts = [], [], [], []
    phases: dict[str, int] = {}
    seconds = 0.0
    dataset = [(label, f"{label}/{i:03d}.flac", clip(label, i)) for label in LABELS for i in range(clips_per_class)]
    dataset.append(("mid", "mid/silent.flac", np.zeros(int(SECONDS * SR), np.float32)))
    correct = 0
    for i, (label, sid, x) in enumerate(dataset):
        record = {"id": sid, "path": f"/data/tones/{sid}", "label": label, "status": "ok", "reason": None,
                  "predicted": None, "confidence": None, "explanation": None, "fourier_attack": None,
                  "stft_attack": None}
        samples.append(record)
        try:
            x = validate_waveform(x, sid)
        except AudioError as exc:  # one bad clip is reported and skipped, never dropped
            record.update(status="skipped", reason=exc.problem)
            continue
        exp = fa.explain(engine, x, SMALL)
        record.update(predicted=exp.target_label, confidence=exp.confidence)
        if exp.target_label != label:
            record.update(status="misclassified", reason=f"model says {exp.target_label!r}, dataset says {label!r}")
            continue
        correct += 1
        atk = fa.fourier_attack(engine, x, exp, fa.AttackConfig(max_frequencies=100, query_budget=200))
        st = fa.stft_attack(engine, x, atk)
        key = f"s{spec_index}.{i}"
        record.update(explanation=exp.to_dict(arrays, f"{key}.explanation"),
                      fourier_attack=atk.to_dict(arrays, f"{key}.fourier_attack"),
                      stft_attack=st.to_dict(arrays, f"{key}.stft_attack"))
        exps.append(exp), fouriers.append(atk), stfts.append(st)
        for phase, q in exp.queries_by_phase.items():
            phases[phase] = phases.get(phase, 0) + q
        phases["fourier_attack"] = phases.get("fourier_attack", 0) + atk.queries
        phases["stft_attack"] = phases.get("stft_attack", 0) + st.queries
        seconds += sum(exp.seconds_by_phase.values()) + atk.seconds + st.seconds

    by_class = {c: [e for e in exps if e.target_label == c] for c in LABELS}
    sufficiency = {}
    for c, group in by_class.items():
        row = {"n": len(group)}
        for kind in ("sufficient", "necessary", "complete"):
            values = [e.fraction(kind) * 100 for e in group if e.fraction(kind) is not None]
            row[kind] = float(np.mean(values)) if values else None
        sufficiency[c] = row
    composition = {c: composition_ratio(engine, g, LABELS.index(c)) for c, g in by_class.items() if g}
    edges = np.linspace(0, SR / 2, 41)
    class_resp, necessary_hist = {}, {}
    for c, group in by_class.items():
        if not group:
            continue
        maps = [e.responsibility / max(float(e.responsibility.sum()), 1e-12) for e in group]
        hz = spectrum.bin_to_hz(np.arange(group[0].n_bins), len(group[0].waveform), SR)
        class_resp[c] = {"hz": hz.tolist(), "value": np.mean(maps, axis=0).tolist()}
        necessary = np.concatenate([e.hz("necessary") for e in group if e.necessary is not None] or [np.zeros(0)])
        necessary_hist[c] = {"hz_edges": edges.tolist(), "counts": np.histogram(necessary, edges)[0].tolist()}
    inverse: dict[str, int] = {}
    for e in exps:
        if e.inverse_label is not None:
            inverse[e.labels[e.inverse_label]] = inverse.get(e.labels[e.inverse_label], 0) + 1
    analysed = sum(s["status"] in ("ok", "misclassified") for s in samples)
    quiet = [a.success and a.quiet for a in fouriers]
    rates = {"accuracy.accuracy": rate(correct, analysed),
             "fourier_attack.success_rate": rate(sum(quiet), len(fouriers)),
             "fourier_attack.single_rate": rate(sum(q and a.n_frequencies == 1 for q, a in zip(quiet, fouriers)),
                                                len(fouriers)),
             "stft_attack.success_rate": rate(sum(bool(st.success) for st in stfts), len(stfts))}
    return {
        "spec_file": f"model_specs/{name}.yaml",
        "model": {"name": clf.name, "fingerprint": clf.fingerprint, "labels": list(LABELS), "sample_rate": SR},
        "dataset": {"path": "/data/tones", "n_samples": len(samples), "n_analysed": analysed,
                    "n_skipped": sum(s["status"] == "skipped" for s in samples)},
        "accuracy": correct / analysed if analysed else float("nan"),
        "seed": SMALL.seed, "config_hash": f"{abs(hash((name, SMALL.seed))) % 16**16:016x}",
        "checks": {"accuracy": {"min": 0.8}, "sufficiency": {"max_fraction": 0.02},
                   "fourier_attack": {"max_success_rate": 0.5, "max_single_rate": 0.3},
                   "stft_attack": {"max_success_rate": 0.9, "min_clips": 10}},
        "rates": rates, "error": None, "skipped_checks": {}, "failed_checks": {},
        "_fractions": {r["id"]: (e.fraction("sufficient") if e.sufficient is not None else None)
                       for r, e in zip([r for r in samples if r["explanation"] is not None], exps)},
        "samples": samples,
        "tables": {"sufficiency_by_class": sufficiency, "composition_by_class": composition,
                   "attacks": fa.summarize_attacks(fouriers, stfts)},
        "figures": {"class_responsibility": class_resp, "necessary_histogram": necessary_hist,
                    "inverse_counts": inverse},
        "_timing": {"seconds": seconds, "queries": engine.queries, "queries_by_phase": phases},
    }


def rate(k: int, n: int) -> dict:
    """A rate as the results file stores it: k/n, value and the 95 % Wilson interval."""
    low, high = wilson(k, n) or (None, None)
    return {"k": int(k), "n": int(n), "value": k / n if n else None, "low": low, "high": high}


def transfer_block(models: list[str]) -> dict:
    """The cross-model block, CONSTRUCTED BY HAND: engine/transfer.py is being written in parallel.

    Its shape follows the draft ``TransferResult.to_dict()`` (models, labels, epsilon, sufficient /
    complete matrices with alpha, beta and row/column means, flat_earthers); the values are a
    made-up four-model group in which the last model is a flat-earther, so the heatmaps and the
    flat-earther marking can be rendered and tested before the real block exists.
    """
    names = models + ["tone-net-c", "tone-net-flat"]
    rng = np.random.default_rng(7)
    block = {"models": names, "labels": list(LABELS), "epsilon": 0.5, "entropy_bound": 0.5 * float(np.log2(3)),
             "ttest_pairs": 12, "ttest_statistic": -1.7, "ttest_pvalue": 0.12,
             "flat_earthers": ["tone-net-flat"],
             "flat_earther_rule": "outgoing and incoming sufficient α both below the others' mean by > max(2·std, 0.25)",
             "queries": {"sufficient": 480, "complete": 410}}
    n = len(names)
    for kind, base in (("sufficient", 0.55), ("complete", 0.65)):
        alpha = np.clip(base + 0.15 * rng.standard_normal((n, n)), 0, 1)
        alpha[-1, :] *= 0.15
        alpha[:, -1] *= 0.15
        np.fill_diagonal(alpha, 1.0)
        beta = alpha * np.clip(0.8 + 0.1 * rng.standard_normal((n, n)), 0, 1)
        np.fill_diagonal(beta, 1.0)
        off = ~np.eye(n, dtype=bool)

        def mean(m: np.ndarray, axis: int) -> list[float]:
            return np.round(np.nanmean(np.where(off, m, np.nan), axis=axis), 3).tolist()

        block[kind] = {"kind": kind, "alpha": np.round(alpha, 3).tolist(), "beta": np.round(beta, 3).tolist(),
                       "n_signals": [6] * n, "alpha_out": mean(alpha, 1), "alpha_in": mean(alpha, 0),
                       "beta_out": mean(beta, 1), "beta_in": mean(beta, 0)}
    return block


def build_results(out_dir: str | Path, clips_per_class: int = 2) -> Path:
    """Run both specs, write ``results.json`` + ``results.npz`` under ``out_dir``; returns the JSON path."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    arrays: dict[str, np.ndarray] = {}
    models = {"tones-a": band_classifier(BANDS_A, 4.0, "tone-net-a"),
              "tones-b": band_classifier(BANDS_B, 2.5, "tone-net-b")}
    specs = {name: run_spec(name, clf, clips_per_class, arrays, i) for i, (name, clf) in enumerate(models.items())}
    timings = {name: spec.pop("_timing") for name, spec in specs.items()}
    gates: list[dict] = []

    def settle(spec: str, check: str, key: str, members: list[dict]) -> None:
        """Gates of one item, and its verdict: failed > not measured > passed (as gates.py settles them)."""
        item = f"model_specs/{spec}.yaml::{check}[{key}]"
        outcome = ("failed" if any(g["passed"] is False for g in members) else
                   "not_measured" if any(g["passed"] is None for g in members) else "passed")
        for g in members:
            g.update(spec=spec, check=check, item=item, baseline=g.get("baseline"), delta=g.get("delta"),
                     outcome="passed" if g["passed"] else outcome)
            g.setdefault("unmeasured", None), g.setdefault("compared", None)
            for extra in ("k", "n", "low", "high"):
                g.setdefault(extra, None)
        gates.extend(members)
        specs[spec]["verdicts"].append({"check": check, "key": key, "outcome": outcome,
                                        "passed": {"passed": True, "failed": False}.get(outcome, False),
                                        "message": f"{check}[{key}]: {outcome}", "measured": None, "item": item})

    for name, spec in specs.items():
        spec["verdicts"] = []
        rates, fractions = spec["rates"], spec.pop("_fractions")
        settle(name, "accuracy", "aggregate", [_rate_gate("accuracy", rates["accuracy.accuracy"], ">=", 0.8,
                                                          {"min_clips": 1}, "accuracy.accuracy")])
        for sid, fraction in fractions.items():
            settle(name, "sufficiency", sid, [{"metric": "sufficient_fraction", "value": fraction, "op": "<=",
                                               "threshold": 0.02, "passed": None if fraction is None
                                               else bool(fraction <= 0.02)}])
        attack = [_rate_gate("success_rate", rates["fourier_attack.success_rate"], "<=", 0.5, {"min_clips": 1},
                             "fourier_attack.success_rate"),
                  _rate_gate("single_rate", rates["fourier_attack.single_rate"], "<=", 0.3, {"min_clips": 1},
                             "fourier_attack.single_rate")]
        if name == "tones-a":
            attack[0].update(baseline=0.25, delta=None if attack[0]["value"] is None else attack[0]["value"] - 0.25)
        settle(name, "fourier_attack", "aggregate", attack)
        settle(name, "stft_attack", "aggregate",
               [_rate_gate("success_rate", rates["stft_attack.success_rate"], "<=", 0.9, {"min_clips": 10},
                              "stft_attack.success_rate")])
    results = {
        "schema_version": SCHEMA_VERSION, "errors": [],
        "run": {"seed": SMALL.seed, "device": "cpu",
                "versions": {"freqrex_audit": fa.__version__, "torch": torch.__version__, "transformers": None,
                             "python": platform.python_version()},
                "commit": None, "trust_remote_code": ["tones-b"]},
        "timings": {"started": _dt.datetime(2025, 1, 2, 3, 4, 5).isoformat(),
                    "seconds": float(sum(t["seconds"] for t in timings.values())), "per_spec": timings},
        "gates": gates,
        "specs": specs,
        "transferability": transfer_block([m.name for m in models.values()]),
    }
    finalize(results, errors=[{"spec_file": "model_specs/broken.yaml",
                               "message": "model_specs/broken.yaml: checks.accuracy.min: must be a number in [0, 1]"}])
    path = out_dir / "results.json"
    path.write_text(json.dumps(results, sort_keys=True, indent=1))
    buffer = io.BytesIO()
    np.savez_compressed(buffer, **arrays)
    path.with_suffix(".npz").write_bytes(buffer.getvalue())
    return path


if __name__ == "__main__":  # python -m tests.report_fixtures OUT_DIR
    import sys
    import time

    began = time.perf_counter()
    print(build_results(sys.argv[1] if len(sys.argv) > 1 else "reports/fixture"), f"{time.perf_counter() - began:.1f}s")
