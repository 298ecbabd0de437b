"""``freqrex-audit classify | explain | attack``: the one-clip commands, for a model or a spec's model."""

from __future__ import annotations

import argparse
import dataclasses
import sys
from pathlib import Path

import numpy as np

from ..adapters import load_classifier
from ..audio.io import AudioError, load_audio
from ..models.classifier import Classifier
from ..runtime.isolation import private_matplotlib

__all__ = ["spec_from_arg", "classifier_from_arg", "cmd_classify", "cmd_explain", "cmd_attack"]


def spec_from_arg(model: str):
    """The spec when the command-line model is a spec file, else None."""
    if not model.endswith((".yaml", ".yml")):
        return None
    from ..specs.loader import load_spec

    return load_spec(model)


def classifier_from_arg(model: str, device: str, spec=None) -> Classifier:
    """Load the classifier named on the command line; a spec file contributes its ``model`` section."""
    spec = spec or spec_from_arg(model)
    if spec is not None:
        return load_classifier(spec.model, device=device, base_dir=spec.base_dir)
    return load_classifier(model, device=device)


def cmd_classify(args: argparse.Namespace) -> int:
    """Print the top label and its confidence for each audio file."""
    from ..models.classifier import QueryEngine

    clf = classifier_from_arg(args.model, args.device)
    engine = QueryEngine(clf)
    status = 0
    for path in args.audio:
        try:
            x, _ = load_audio(path, sample_rate=clf.sample_rate)
        except AudioError as exc:
            print(f"{path}\terror: {exc.problem}", file=sys.stderr)
            status = 1
            continue
        probs = engine.query(x[None])[0]
        top = int(probs.argmax())
        print(f"{path}\t{clf.labels[top]}\t{probs[top]:.4f}")
    return status


def _clip(args: argparse.Namespace):
    from ..models.classifier import QueryEngine

    spec = spec_from_arg(args.model)
    clf = classifier_from_arg(args.model, args.device, spec)
    x, _ = load_audio(args.audio, sample_rate=clf.sample_rate)
    if args.seconds:
        x = x[: int(args.seconds * clf.sample_rate)]
    from ..models.input_window import crop_to_input_window

    x, cropped = crop_to_input_window(x, clf)  # explain what the model hears
    if cropped:
        print(f"{args.audio}: {cropped}", file=sys.stderr)
    return clf, QueryEngine(clf, batch_size=spec.batch_size if spec else 64), x, spec


def _freqrex_config(args: argparse.Namespace, spec):
    """The spec's FreqReX settings (defaults without a spec), with ``--seed`` applied: one rule for explain
    and attack."""
    from ..engine import FreqReXConfig

    config = spec.freqrex if spec else FreqReXConfig()
    return dataclasses.replace(config, seed=args.seed) if args.seed is not None else config


def _attack_config(args: argparse.Namespace, spec):
    """The spec's attack settings (defaults without a spec); ``--budget`` / ``--query-budget`` override."""
    from ..engine import AttackConfig

    config = spec.attack if spec else AttackConfig()
    changes = {k: v for k, v in (("max_frequencies", args.budget), ("query_budget", args.query_budget)) if v is not None}
    return dataclasses.replace(config, **changes) if changes else config


def cmd_explain(args: argparse.Namespace) -> int:
    """FreqReX on one clip: explanation.json (+npz), WAVs of each subset's signal, a Figure-1-style PNG."""
    import time

    from ..audio.io import save_audio
    from ..engine import explain
    from ..report.clip_figures import explanation_figure

    private_matplotlib(None)

    clf, engine, x, spec = _clip(args)
    began = time.perf_counter()
    exp = explain(engine, x, _freqrex_config(args, spec))
    seconds = time.perf_counter() - began
    out = Path(args.out)
    exp.save(out / "explanation.json")
    for kind in ("original", "sufficient", "necessary", "complete", "inverse"):
        signal = exp.signal(kind)
        if signal is not None:
            save_audio(out / f"{kind}.wav", signal, clf.sample_rate)
    figure = explanation_figure(exp, out / "explanation.png", title=f"{Path(args.audio).name}: {exp.target_label}")
    sizes = ", ".join(f"{k} {len(exp.bins(k))}" if exp.bins(k) is not None else f"{k} none"
                      for k in ("sufficient", "necessary", "complete"))
    print(f"{args.audio}: {exp.target_label} ({exp.confidence:.3f}); {sizes} of {exp.n_bins} bins; "
          f"inverse {exp.labels[exp.inverse_label] if exp.inverse_label is not None else 'none'}")
    print(f"queries: {engine.queries}; wall time: {seconds:.2f} s; written: {out} ({figure.name})")
    return 0


def cmd_attack(args: argparse.Namespace) -> int:
    """Explain, then attack one clip (Alg 2, then Alg 3): adversarial WAVs (float and 16-bit), JSON, PNG."""
    import json
    import time

    from ..audio.io import save_audio
    from ..engine import STFTAttackConfig, explain, fourier_attack, stft_attack
    from ..report.clip_figures import attack_figure

    private_matplotlib(None)

    clf, engine, x, spec = _clip(args)
    began = time.perf_counter()
    exp = explain(engine, x, _freqrex_config(args, spec))
    config = _attack_config(args, spec)
    atk = fourier_attack(engine, x, exp, config)
    st = stft_attack(engine, x, atk, spec.stft_attack if spec else STFTAttackConfig()) if args.stft else None
    seconds = time.perf_counter() - began
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    atk.save(out / "fourier_attack.json")
    if st is not None:
        st.save(out / "stft_attack.json")
    best = st if st is not None and st.success else atk
    if best.success:
        save_audio(out / "adversarial.wav", best.adversarial, clf.sample_rate)
        save_audio(out / "adversarial_int16.wav", np.clip(best.adversarial, -1, 1), clf.sample_rate, subtype="PCM_16")
        attack_figure(x, best, out / "attack.png", clf.labels)
    summary = {"clip": str(args.audio), "label": exp.target_label, "success": atk.success,
               "n_frequencies": atk.n_frequencies, "mutation": str(atk.mutation) if atk.mutation else None,
               "new_label": clf.labels[atk.new_label] if atk.new_label is not None else None,
               "snr_db": atk.snr_db, "survives_int16": atk.survives_int16,
               "stft": None if st is None else {"success": st.success, "frame_size": st.frame_size,
                                                "frames": st.frames_changed, "snr_db": st.snr_db},
               "queries": engine.queries, "seconds": round(seconds, 3)}
    summary["source"], summary["quiet"], summary["margin"] = atk.source, atk.quiet, atk.margin
    summary["candidates"], summary["queries_by_source"] = atk.candidates, atk.queries_by_source
    summary["ladder_mutation"] = str(atk.ladder_mutation) if atk.ladder_mutation else None  # Alg 2's own rung
    if args.exhaustive_single:
        from ..engine.attacks import exhaustive_single_report
        summary["exhaustive_single"] = exhaustive_single_report(engine, x, exp, args.exhaustive_single, config,
                                                                out / "exhaustive_single.json")
    (out / "attack.json").write_text(json.dumps(summary, indent=1))
    if atk.success:
        print(f"{args.audio}: {exp.target_label} → {summary['new_label']}: {atk.summary}; "
              f"survives int16: {atk.survives_int16}")
    else:
        print(f"{args.audio}: {atk.summary}")
    if args.exhaustive_single:
        print(f"exhaustive single-bin search: {summary['exhaustive_single']['line']}")
    print(f"queries: {engine.queries}; wall time: {seconds:.2f} s; written: {out}")
    return 0
