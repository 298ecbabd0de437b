"""``freqrex-audit``: classify, explain, attack, audit, report and bench from the shell."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Sequence

from . import __version__
from .adapters import load_classifier
from .audio import AudioError, load_audio
from .classifier import Classifier, ClassifierError

MODEL_HELP = "a zoo:// name, a model directory or file, package.module:factory, or a spec .yaml"


def classifier_from_arg(model: str, device: str) -> Classifier:
    """Load the classifier named on the command line; a spec file contributes its ``model`` section."""
    if model.endswith((".yaml", ".yml")):
        from .specs import load_spec

        spec = load_spec(model)
        return load_classifier(spec.model, device=device, base_dir=spec.base_dir)
    return load_classifier(model, device=device)


def cmd_classify(args: argparse.Namespace) -> int:
    """Print the top label and its confidence for each audio file."""
    from .classifier import QueryEngine

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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="freqrex-audit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser("classify", help="print label and confidence for audio files")
    classify.add_argument("model", help=MODEL_HELP)
    classify.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3…)")
    classify.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    classify.set_defaults(run=cmd_classify)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        return int(args.run(args) or 0)
    except (ClassifierError, AudioError, FileNotFoundError, ValueError) as exc:
        print(f"freqrex-audit: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
