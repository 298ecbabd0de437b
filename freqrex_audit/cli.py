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


def zoo_model_names() -> list[str]:
    """Every model the bundled zoo ships, as zoo:// names."""
    from .zoo import ZOO_ROOT

    return sorted(f"zoo://{d.parent.parent.name}/{d.name}" for d in ZOO_ROOT.glob("*/models/*") if d.is_dir())


def cmd_bench(args: argparse.Namespace) -> int:
    """Explanation cost against the model's own forward time, per model and clip length."""
    import json

    from .bench import bench_model, format_table, rows_as_json

    models = args.models or zoo_model_names()
    if not models:
        print("freqrex-audit bench: no models given and the zoo is empty", file=sys.stderr)
        return 2
    rows = []
    for name in models:
        clf = classifier_from_arg(name, args.device)
        for seconds in args.seconds:
            row = bench_model(name, clf, seconds, batch_size=args.batch_size,
                              with_batch1=seconds <= args.batch1_max_seconds)
            rows.append(row)
            print(f"{name} {seconds:g}s: {row.queries} queries in {row.explain_s:.2f} s "
                  f"(overhead ×{row.overhead_ratio:.2f})", file=sys.stderr)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows_as_json(rows), indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render the HTML report (and the runs index beside it) from a saved results.json."""
    from .report import render_index, render_report

    results = Path(args.results)
    if not results.is_file():
        raise FileNotFoundError(f"{results}: no such results file")
    out = render_report(results, args.out, max_sample_cards=args.max_cards)
    if args.out is None:
        render_index(results.parent.parent)
    print(out)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="freqrex-audit", description=__doc__)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    classify = commands.add_parser("classify", help="print label and confidence for audio files")
    classify.add_argument("model", help=MODEL_HELP)
    classify.add_argument("audio", nargs="+", help="audio files (wav, flac, ogg, mp3…)")
    classify.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    classify.set_defaults(run=cmd_classify)

    bench = commands.add_parser("bench", help="explanation cost vs the model's own forward time")
    bench.add_argument("models", nargs="*", help=f"models to measure (default: every zoo model); {MODEL_HELP}")
    bench.add_argument("--seconds", type=float, nargs="+", default=[1.0, 5.0, 30.0], help="clip lengths")
    bench.add_argument("--batch-size", type=int, default=64)
    bench.add_argument("--batch1-max-seconds", type=float, default=1.0,
                       help="also time batch size 1 for clips up to this long (slow)")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--json", help="write the measurements as JSON to this file")
    bench.set_defaults(run=cmd_bench)

    report = commands.add_parser("report", help="re-render the HTML audit report from a saved results.json")
    report.add_argument("results", help="results.json written by an audit (its .npz sidecar is read too)")
    report.add_argument("--out", default=None, help="HTML file to write (default: report.html beside the JSON)")
    report.add_argument("--max-cards", type=int, default=12, help="most per-sample cards per spec (default 12)")
    report.set_defaults(run=cmd_report)
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
