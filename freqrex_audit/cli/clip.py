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

__all__ = ["spec_from_arg", "classifier_from_arg", "cmd_classify", "cmd_explain", "cmd_attack", "cmd_train_lmac"]


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
    if spec is None:
        return clf, QueryEngine(clf), x, spec
    return clf, QueryEngine(clf, batch_size=spec.batch_size, pad_calls=spec.pad_calls), x, spec  # as the audit asks


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
    """One clip explained by ``--method``: explanation.json (+npz) with the method, its kept part (mask and
    WAV), faithfulness, queries / gradient calls and seconds; for FreqReX also its subsets' WAVs and Figure 1."""
    import time

    from ..audio.io import save_audio
    from ..engine import explain
    from ..report.clip_figures import explanation_figure

    private_matplotlib(None)

    clf, engine, x, spec = _clip(args)
    if getattr(args, "method", "freqrex") != "freqrex":
        return _explain_other(args, clf, engine, x, spec)
    began = time.perf_counter()
    exp = explain(engine, x, _freqrex_config(args, spec))
    seconds = time.perf_counter() - began
    out = Path(args.out)
    from ..engine.methods import freqrex_method

    judged = freqrex_method(engine, x, exp, seconds)
    _save_merged(exp, judged, out / "explanation.json")
    if judged.available:
        save_audio(out / "kept.wav", judged.kept, clf.sample_rate)
        save_audio(out / "removed.wav", judged.removed, clf.sample_rate)
    for kind in ("original", "sufficient", "necessary", "complete", "inverse"):
        signal = exp.signal(kind)
        if signal is not None:
            save_audio(out / f"{kind}.wav", signal, clf.sample_rate)
    figure = explanation_figure(exp, out / "explanation.png", title=f"{Path(args.audio).name}: {exp.target_label}")
    sizes = ", ".join(f"{k} {len(exp.bins(k))}" if exp.bins(k) is not None else f"{k} none"
                      for k in ("sufficient", "necessary", "complete"))
    print(f"{args.audio}: {exp.target_label} ({exp.confidence:.3f}); {sizes} of {exp.n_bins} bins; "
          f"inverse {exp.labels[exp.inverse_label] if exp.inverse_label is not None else 'none'}")
    if judged.available:
        print(_faithfulness_line(judged))
    print(f"queries: {engine.queries}; wall time: {seconds:.2f} s; written: {out} ({figure.name})")
    return 0


def _save_merged(exp, judged, path: Path) -> None:
    """explanation.json for FreqReX: the Explanation (so ``Explanation.load`` still reads it) plus the fields
    every method's explanation.json has (method, mask, kept, faithfulness, queries, gradient calls…)."""
    import json

    from ..engine.codec import atomic_write_bytes

    arrays: dict = {}
    doc = exp.to_dict(arrays)
    for key, value in judged.to_dict(arrays, "method").items():
        doc.setdefault(key, value)
    if arrays:
        import io

        buffer = io.BytesIO()
        np.savez_compressed(buffer, **arrays)
        atomic_write_bytes(path.with_suffix(".npz"), buffer.getvalue())
    atomic_write_bytes(path, json.dumps(doc, sort_keys=True, indent=1).encode())


def _faithfulness_line(result) -> str:
    f = result.faithfulness
    return (f"{result.method}: kept {100 * result.kept_share:.2f}% of {result.representation}, "
            f"{100 * result.energy_share:.1f}% of its energy; kept heard as {result.kept_label} "
            f"(p {result.probs[1][result.target]:.3f}), removed as {result.removed_label} "
            f"(p {result.probs[2][result.target]:.3f}); AI {f['ai']:.0f} AD {f['ad']:.3f} AG {f['ag']:.3f} "
            f"FF {f['ff']:.3f} Fid-In {f['fid_in']:.0f}")


def _explain_other(args: argparse.Namespace, clf, engine, x, spec) -> int:
    """``explain --method lmac|latent``: the method's result as explanation.json (+npz), original / kept /
    removed WAVs and a spectrogram PNG (the clip beside what the method kept)."""
    import dataclasses

    from ..audio.io import save_audio
    from ..audit.explainers import explain_with
    from ..engine.latent import LatentConfig
    from ..engine.lmac import LMACConfig
    from ..report.clip_figures import kept_figure

    settings = spec.explainers if spec is not None else None
    latent = settings.latent if settings is not None else LatentConfig()
    if args.codec:
        codec = args.codec if args.codec.startswith("hf://") else str(_codec_path(args.codec))
        latent = dataclasses.replace(latent, codec=codec)
    train = args.train or (settings.train if settings is not None else None)
    result = explain_with(engine, x, args.method, train=train, lmac=settings.lmac if settings else LMACConfig(),
                          layer=settings.layer if settings else None, latent=latent,
                          cache=None if args.cache in ("", "none") else args.cache)
    out = Path(args.out)
    result.save(out / "explanation.json")
    if not result.available:
        print(f"{args.audio}: {args.method}: {result.reason}")
        print(f"written: {out / 'explanation.json'}")
        return 1
    save_audio(out / "original.wav", x, clf.sample_rate)
    save_audio(out / "kept.wav", result.kept, clf.sample_rate)
    save_audio(out / "removed.wav", result.removed, clf.sample_rate)
    figure = kept_figure(x, result.kept, clf.sample_rate, result.method, out / "explanation.png")
    print(f"{args.audio}: {result.target_label} ({result.probs[0][result.target]:.3f})")
    print(_faithfulness_line(result))
    print(f"queries: {result.queries}; gradient calls: {result.gradient_calls}; wall time: {result.seconds:.2f} s; "
          f"written: {out} ({figure.name})")
    return 0


def _codec_path(text: str) -> Path:
    if text.startswith("zoo://"):
        from ..runtime.paths import resolve_zoo_path

        return resolve_zoo_path(text)
    return Path(text)


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


def cmd_train_lmac(args: argparse.Namespace) -> int:
    """Train an L-MAC decoder for a model on clips the audit will not score and save it (decoder.safetensors
    and lmac.json with the model's fingerprint and the clips' digest). The zoo's decoders were made this way."""
    import dataclasses
    import time

    import torch

    from ..audit.explainers import train_decoder, training_clips
    from ..engine.lmac import LMACConfig, save_decoder
    from ..models.whitebox import NotWhiteBox, white_box

    if args.threads:
        torch.set_num_threads(args.threads)
    spec = spec_from_arg(args.model)
    clf = classifier_from_arg(args.model, args.device, spec)
    config = spec.explainers.lmac if spec is not None and spec.explainers else LMACConfig()
    changes = {k: v for k, v in (("steps", args.steps), ("seed", args.seed)) if v is not None}
    config = dataclasses.replace(config, **changes)
    try:
        wb = white_box(clf, args.layer)
    except NotWhiteBox as exc:
        print(f"freqrex-audit: L-MAC is not available: {exc}", file=sys.stderr)
        return 1
    train = str(_codec_path(args.train)) if args.train.startswith("zoo://") else args.train
    clips = training_clips(Path(train), clf)
    began = time.perf_counter()
    trained = train_decoder(clf, wb, clips, config, args.train, name=args.model)
    folder = save_decoder(trained, args.out)
    print(f"{args.model}: L-MAC decoder trained on {len(clips)} clips ({clips.shape[1]} samples each) in "
          f"{time.perf_counter() - began:.0f} s; last step {trained.meta['log'][-1]}; written: {folder}")
    return 0