"""``freqrex-audit``: classify, explain, attack, audit, report and bench from the shell."""

from __future__ import annotations

import argparse
import importlib
import json
import os
import sys
from pathlib import Path
from typing import Callable, Sequence

from .._version import __version__
from ..audio.io import AudioError
from ..bench import SIZES
from ..models.origins import ClassifierError
from .cache import add_cache_command
from .tables import add_tables_command
from ..runtime.isolation import private_matplotlib
from .arguments import device_list, non_negative_int, positive_float, positive_int, seed_value


def later(module: str, name: str) -> Callable[[argparse.Namespace], int]:
    """The command ``name`` of ``freqrex_audit.cli.<module>``, imported when it runs: those modules import torch
    (2–6 s), which ``--help`` and a usage error never need (the other commands still import it on their way)."""

    def run(args: argparse.Namespace) -> int:
        return getattr(importlib.import_module(f"{__package__}.{module}"), name)(args)

    run.__name__ = name
    return run


cmd_bench = later("bench", "cmd_bench")
cmd_classify, cmd_explain = later("clip", "cmd_classify"), later("clip", "cmd_explain")
cmd_attack, cmd_train_lmac = later("clip", "cmd_attack"), later("clip", "cmd_train_lmac")

DEADLINE_EXIT = 3
"""``freqrex-audit audit`` exit status when ``--deadline`` passed before the run was done (the run is incomplete)."""
MODEL_HELP = "a zoo:// name, a model directory or file, package.module:factory, or a spec .yaml"


def cmd_report(args: argparse.Namespace) -> int:
    """Re-render the HTML report (and the runs index beside it) from a saved results.json."""
    private_matplotlib(None)
    from ..report import render_index, render_report

    from ..runs.read import ResultsError

    results = Path(args.results)
    if results.is_dir() and (results / "results.json").is_file():  # a run folder, as `compare` accepts
        results = results / "results.json"
    if not results.is_file():
        raise FileNotFoundError(f"{results}: no such results file (give a run folder or its results.json)")
    try:  # render_report reads through results_file.load_run: a bad file is a ResultsError naming file and key
        out = render_report(results, args.out, max_sample_cards=args.max_cards, figure_cache=args.cache)
    except ResultsError:
        raise
    except Exception as exc:  # noqa: BLE001 - a valid-looking file the renderer still chokes on: name it, no traceback
        raise ResultsError(results, "", f"cannot be rendered ({type(exc).__name__}: {str(exc)[:200]}); the file "
                                        f"passed validation, so this is a freqrex-audit bug: please report it") from None
    if args.out is None:
        render_index(results.parent.parent)
    print(out)
    return 0


def cmd_spectra(args: argparse.Namespace) -> int:
    """Rebuild the transferability paper's §5.1–5.2 from a run folder's results.json + waveform sidecar."""
    from ..runs.spectra import compare_spectra, rebuild_spectra

    rebuilt = rebuild_spectra(args.folder)
    if args.json:
        Path(args.json).write_text(json.dumps(rebuilt, sort_keys=True, indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    for name, part in rebuilt.items():
        print(f"{name}:")
        for label, block in part["classes"].items():
            entropies = block["signal_entropies"]
            mean = sum(entropies) / len(entropies) if entropies else float("nan")
            composite = block["composite_entropy"]
            print(f"  {label}: composite entropy {'—' if composite is None else f'{composite:.4f}'}; "
                  f"clip entropy mean {mean:.4f} over {len(entropies)} clip(s)")
        for pair, test in part["tests"].items():
            p = test.get("pvalue")
            print(f"  {pair}: Mann–Whitney U {test.get('statistic')}, p = {'—' if p is None else f'{p:.4g}'}, "
                  f"effect {test.get('effect')}")
    differences = compare_spectra(args.folder)
    if differences:
        print(f"differs from the recorded analysis in {len(differences)} place(s):", *differences[:20], sep="\n  ")
        return 1
    print("equal to the analysis recorded in results.json")
    return 0


def cmd_waveforms(args: argparse.Namespace) -> int:
    """Write a run folder's waveform sidecar files (results schema 4 writes them on demand), each checked
    against the sha256 results.json recorded; a signal that cannot be rebuilt exactly is named, not written."""
    from ..runs.spectra import run_folder
    from ..runs.waveforms import RunSignals

    folder = run_folder(args.folder)
    signals = RunSignals(folder)
    entries = list(signals.entries())
    problems = [p for p in (signals.problem(e, write=True) for e in entries) if p]
    print(f"{len(entries) - len(problems)} of {len(entries)} sidecar file(s) in {folder}/waveforms, each equal to "
          f"the sha256 results.json recorded")
    if problems:
        print(f"{len(problems)} not written:", *problems[:20], sep="\n  ", file=sys.stderr)
        return 1
    return 0


def cmd_compare(args: argparse.Namespace) -> int:
    """Print the metric deltas between two runs / baselines (B − A)."""
    from ..runs.compare import (delta_rows, document_of, format_differences, format_table, metrics_in,
                                setting_differences)

    where = Path(args.baseline_dir)
    a, b = document_of(args.a, where), document_of(args.b, where)
    differences = format_differences(setting_differences(a.get("run") or {}, b.get("run") or {}))
    if differences:
        print(differences + "\n")
    print(format_table(delta_rows(metrics_in(a), metrics_in(b)), args.a, args.b, changed_only=args.changed))
    return 0


def cmd_schema(args: argparse.Namespace) -> int:
    """Print the JSON Schema of a model spec (for editors: yaml-language-server, VS Code, PyCharm)."""
    from ..specs.json_schema import spec_schema

    if args.results:
        from ..runs.read import RESULTS_SCHEMA

        print(json.dumps(RESULTS_SCHEMA, indent=1))
        return 0
    print(json.dumps(spec_schema(), indent=1))
    return 0


def spec_cost(result: object) -> str:
    """``74 queries, 1.7 s`` for the spec's own work, then what its peers cost it (computed for transferability),
    each where it belongs: ``(+ peer hubert: 10,900 queries, 38.0 s)``."""
    text = f"{result.queries:,} queries, {result.seconds:.1f} s"  # type: ignore[attr-defined]
    peers = [f"peer {name}: {work['queries']:,} queries, {work['seconds']:.1f} s"
             for name, work in sorted((getattr(result, "peer_work", None) or {}).items())]
    return text + (f" (+ {'; '.join(peers)})" if peers else "")


def cmd_audit(args: argparse.Namespace) -> int:
    """Run specs without pytest and write the run's results. Exit status: 0 every gate passed, 1 a gate
    failed or was not measured, 2 a spec did not load (or a usage error), 3 the --deadline passed first,
    130 interrupted."""
    from ..audit.executors import configure, make_executor, start_executor
    from ..audit.records import EXIT_CODES, RUN_SHOWN, SHOWN
    from ..runs.folders import new_run_id
    from ..runs.write import spec_part
    from ..runtime import deadline
    from ..runtime.paths import shown_spec, unwritable
    from ..runtime.progress import stream_line
    from ..session import AuditSession
    from ..specs.loader import SpecError, find_specs, spec_dirs_from_ini

    configure(make_executor(args.executor, args.address, args.workers, args.devices, args.retries)
              if args.executor else "environment")
    if args.threads:
        import torch

        torch.set_num_threads(args.threads)

    dirs, root = spec_dirs_from_ini()
    paths = find_specs(args.specs, dirs, root)
    if not paths:
        print(f"freqrex-audit: error: no spec files in {', '.join(args.specs) or 'the spec folders'}: nothing to "
              f"audit (a spec is a *.yaml / *.yml file named on the command line or inside a spec folder: "
              f"{' '.join(dirs)}; set freqrex_specs in the pytest ini file)", file=sys.stderr)
        return 2
    for folder, what in ((args.report, "report"), *(((args.cache, "cache"),) if not args.no_cache else ())):
        problem = unwritable(folder, what)
        if problem:
            print(f"freqrex-audit: error: {problem}", file=sys.stderr)
            return 2
    session = AuditSession(Path(args.report), new_run_id(args.report), None if args.no_cache else Path(args.cache),
                           args.device, args.samples, args.seed)
    specs, errors = [], []
    for path in paths:
        try:
            specs.append(session.load(path))
        except SpecError as exc:
            print(f"ERROR {exc}", file=sys.stderr)
            errors.append({"spec_file": shown_spec(Path(path)), "message": str(exc)})
    total, needs = 0, {}
    for spec in specs:
        try:
            total += len(session.plan(spec))
        except Exception:  # noqa: BLE001 - an unreadable dataset is the model[load] item's failure
            total += 1
        needs[spec.name] = session.stages(spec)  # compute what the spec's checks need, as pytest does
    start_executor()  # Ray: connect and check every node now; a bad address or node is a usage error (2)
    session.start_deadline(args.deadline)
    parts, arrays, interrupted = [], {}, False
    try:
        for spec in specs:
            if deadline.passed():  # no new model work: the specs not started are not run
                print(f"DEADLINE {deadline.message()}: {spec.name} and the specs after it were not started",
                      file=sys.stderr)
                break
            line = stream_line(spec.name, quiet=args.quiet)
            try:
                result = session.run(spec, stages=needs.get(spec.name), progress=line,
                                     progress_for=lambda name: stream_line(name, quiet=args.quiet))
            finally:
                if line is not None:
                    line.close()
            parts.append(spec_part(result, None, arrays))
            for warning in result.model_info.get("warnings") or []:  # self-check noise, uncacheable model…
                print(f"WARN {spec.name}: {warning}")
            for v in result.verdicts:
                if v.outcome != "passed" or args.verbose:
                    print(f"{SHOWN[v.outcome]} {spec.name}::{v.check}[{v.key}]: {v.message.splitlines()[0]}")
                    for text in v.message.splitlines()[1:]:
                        print(f"     {text}")
            counts = {o: sum(v.outcome == o for v in result.verdicts) for o in dict.fromkeys(v.outcome
                                                                                            for v in result.verdicts)}
            print(f"{spec.name}: {', '.join(f'{n} {o}' for o, n in counts.items())}; {spec_cost(result)}")
    except KeyboardInterrupt:
        interrupted = True
        print("freqrex-audit: interrupted; writing what ran", file=sys.stderr)
    if not parts and not errors and not interrupted and not deadline.passed():  # the deadline cut all: exit 3
        return 0
    out, doc = session.write(parts, arrays, errors=errors, total=total, interrupted=interrupted,
                             planned=[shown_spec(s.path) for s in specs])
    run = doc["run"]
    stopped = run.get("deadline")
    hit = bool(stopped and stopped["hit"])
    deadline.clear()
    print(f"run: {RUN_SHOWN[run['verdict']]}: {run['summary']}" + (f"; {stopped['message']}" if hit else ""))
    print(f"results: {out}")
    report, problems = session.render(out, report_too=not args.no_report)
    if report is not None:
        print(f"report: {report}")
    for problem in problems:  # the run's verdict and exit status stand: results.json has them
        print(f"freqrex-audit: {problem}", file=sys.stderr)
    return DEADLINE_EXIT if hit and not interrupted else EXIT_CODES[run["verdict"]]


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
    bench.add_argument("--seconds", type=positive_float, nargs="+", default=[1.0, 5.0, 30.0], help="clip lengths")
    bench.add_argument("--batch-size", type=positive_int, default=64)
    bench.add_argument("--batch1-max-seconds", type=float, default=1.0,
                       help="also time batch size 1 for clips up to this long (slow)")
    bench.add_argument("--device", default="auto")
    bench.add_argument("--size", choices=SIZES, default="zoo",
                       help="rebuild each transformers model at this width with random weights (same window and "
                            "extractor): small ≈ 3–4 M parameters, base = AST/Wav2Vec2/HuBERT-base, Whisper-base's encoder")
    bench.add_argument("--repeats", type=positive_int, default=1,
                       help="time the explanation and its floors this many times, keep the fastest of each")
    bench.add_argument("--no-attacks", action="store_true", help="time the explanation only (attack q shows 0)")
    bench.add_argument("--precision", choices=("fp32", "bf16", "fp16"), default="fp32", help="autocast (checked vs fp32)")
    bench.add_argument("--queries", action="store_true",
                       help="instead: count an explanation's queries on the planted single-band model (at each "
                            "--seconds) and the planted 2/4/8-band conjunctions; deterministic, no zoo models")
    bench.add_argument("--seeds", type=non_negative_int, nargs="+", default=[0], help="seeds for --queries")
    bench.add_argument("--attack-seed", type=non_negative_int, default=None,
                       help="--peers: both attacks' seed (FreqReX's attack.seed, HopSkipJump's start) instead of "
                            "each spec's, to see how much one seed says")
    bench.add_argument("--attack-budget", type=positive_int, default=None,
                       help="--peers: FreqReX's attack query_budget instead of each spec's (HopSkipJump still gets the "
                            "explanation's and the attack's queries together)")
    bench.add_argument("--explainers", action="store_true",
                       help="instead: L-MAC vs gradient saliency, random masks and FreqReX's sufficient set, and the "
                            "latent method vs random latents, on the zoo's held-out clips (README's table)")
    bench.add_argument("--latent-paper", action="store_true",
                       help="instead: the latent paper's classification agreement and accuracy drop on "
                            "zoo://instruments/latent")
    bench.add_argument("--clips", type=positive_int, default=None, help="--explainers: at most N held-out clips")
    bench.add_argument("--methods", nargs="+", choices=("freqrex", "lmac", "latent"),
                       default=["freqrex", "lmac", "latent"], help="--explainers: the methods (and their baselines)")
    bench.add_argument("--threads", type=positive_int, default=None, help="--explainers: torch threads (default 1)")
    bench.add_argument("--peers", action="store_true",
                       help="with spec files as MODELS: FreqReX's quietest flip vs ART's HopSkipJump at the same query "
                            "count vs white noise, per clip (#29; needs the [art] extra)")
    bench.add_argument("--snr", type=float, default=20.0, help="--peers: the quiet threshold and the noise level, dB")
    bench.add_argument("--noise-draws", type=positive_int, default=16, help="--peers: white-noise draws per clip")
    bench.add_argument("--json", help="write the measurements as JSON to this file")
    bench.set_defaults(run=cmd_bench)

    report = commands.add_parser("report", help="re-render the HTML audit report from a saved results.json")
    report.add_argument("results", help="a run folder, or the results.json an audit wrote in it (its .npz sidecar is read too)")
    report.add_argument("--out", default=None, help="HTML file to write (default: report.html beside the JSON)")
    report.add_argument("--max-cards", type=non_negative_int, default=12, help="most per-sample cards per spec (default 12)")
    report.add_argument("--cache", default=None, help="a result cache folder whose drawn figures to reuse and add to "
                                                      "(the audit's --cache: its figures are not drawn again); "
                                                      "default: draw every figure, keep none")
    report.set_defaults(run=cmd_report)

    spectra = commands.add_parser("spectra", help="rebuild spectral entropy / PSD / Mann–Whitney (transferability "
                                                  "paper §5.1–5.2) from a run folder's waveform sidecar, no model")
    spectra.add_argument("folder", metavar="RUN", help="run folder (reports/<run>) or its results.json")
    spectra.add_argument("--json", help="also write the rebuilt analysis as JSON to this file")
    spectra.set_defaults(run=cmd_spectra)
    waveforms = commands.add_parser("waveforms", help="write a run folder's waveform sidecar (the exact float32 WAVs "
                                                      "of every clip's subsets, rebuilt from results.npz and "
                                                      "checked against results.json's sha256)")
    waveforms.add_argument("folder", metavar="RUN", help="run folder (reports/<run>) or its results.json")
    waveforms.set_defaults(run=cmd_waveforms)

    compare = commands.add_parser("compare", help="table of metric deltas between two runs or baselines (B − A)")
    compare.add_argument("a", metavar="RUN_A", help="results.json, a run folder or a baseline name")
    compare.add_argument("b", metavar="RUN_B", help="results.json, a run folder or a baseline name")
    compare.add_argument("--baseline-dir", default=".freqrex/baselines", help="where baseline names are looked up")
    compare.add_argument("--changed", action="store_true", help="only the metrics that changed")
    compare.set_defaults(run=cmd_compare)

    add_tables_command(commands)
    add_cache_command(commands)

    schema = commands.add_parser("schema", help="print the JSON Schema of a model spec (editor autocompletion)")
    schema.add_argument("--results", action="store_true", help="the JSON Schema of results.json instead")
    schema.set_defaults(run=cmd_schema)

    audit = commands.add_parser("audit", help="run model specs without pytest; exit 0 all gates passed, 1 a gate "
                                              "failed or was not measured, 2 spec/usage error, 3 --deadline "
                                              "passed, 130 interrupted")
    audit.add_argument("specs", nargs="*", metavar="SPEC_OR_DIR",
                       help="spec files, or folders searched for specs (default: the freqrex_specs folders)")
    audit.add_argument("--report", default="reports", help="folder for the run (default reports/)")
    audit.add_argument("--samples", type=positive_int, default=None, help="at most N clips per spec")
    audit.add_argument("--seed", type=seed_value, default=None, help="override every spec's freqrex.seed")
    audit.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    audit.add_argument("--cache", default=".freqrex_cache", help="result cache folder (default .freqrex_cache/)")
    audit.add_argument("--no-cache", action="store_true", help="compute everything afresh")
    audit.add_argument("--no-report", action="store_true",
                       help="write results.json only, not the HTML report (the runs index is still updated)")
    audit.add_argument("-v", "--verbose", action="store_true", help="print passing checks too")
    audit.add_argument("-q", "--quiet", action="store_true", help="no live progress line (it shows only on a TTY)")
    audit.add_argument("--deadline", type=positive_float, default=None, metavar="SECONDS",
                       help="session deadline: after SECONDS no new model work starts; what was not measured is "
                            f"interrupted and the exit status is {DEADLINE_EXIT}")
    audit.add_argument("--executor", choices=("serial", "process", "ray"),
                       help="where clips run (default: $FREQREX_EXECUTOR or serial)")
    audit.add_argument("--address", help="Ray: none (default: a private local instance, even when another Ray "
                       "runs here), auto (the cluster running on this machine, or $RAY_ADDRESS), HOST:PORT (a "
                       "cluster's head), ray://HOST:10001 (Ray Client); joining a cluster is said on stderr")
    audit.add_argument("--workers", type=positive_int, help="process: pool size (default 2); ray: most clips at "
                       "a time (and a local instance's CPUs; default: this machine's)")
    audit.add_argument("--retries", type=non_negative_int, default=None, metavar="N",
                       help="process / ray: try a clip whose worker process (or node) died N more times before "
                            "it is recorded as an error (default 1)")
    audit.add_argument("--threads", type=positive_int, help="torch CPU threads (default: torch's); the same "
                       "number gives bit-identical results.json on any machine, under pytest -n and on every "
                       "--executor worker (the count travels with each clip)")
    audit.add_argument("--devices", type=device_list, metavar="LIST",
                       help="process executor: clip i runs on device i mod n, e.g. cuda:0,cuda:1 (default: every "
                            "visible CUDA device when --device is auto/cuda, else --device)")
    audit.set_defaults(run=cmd_audit)

    for name, func, text in (("explain", cmd_explain, "explain one clip (FreqReX, L-MAC or latent space): "
                                                      "explanation.json, WAVs, a figure"),
                             ("attack", cmd_attack, "Fourier (and STFT) attack on one clip")):
        sub = commands.add_parser(name, help=text)
        sub.add_argument("model", help=MODEL_HELP)
        sub.add_argument("audio", help="the clip")
        sub.add_argument("--out", required=True, help="output folder")
        sub.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
        sub.add_argument("--seconds", type=positive_float, default=None, help="analyse only the first N seconds")
        sub.add_argument("--seed", type=seed_value, default=None, help="FreqReX seed (default: the spec's, else 0)")
        if name == "explain":
            sub.add_argument("--method", choices=("freqrex", "lmac", "latent"), default="freqrex",
                             help="the explainer (default freqrex); lmac and latent need a white-box torch model")
            sub.add_argument("--train", default=None, help="lmac: clips the decoder trains on (a folder of class "
                             "folders or a CSV; default: the spec's explainers.train, or the zoo's decoder)")
            sub.add_argument("--codec", default=None, help="latent: an EnCodec folder or hf://org/name from the "
                             "local cache (default: the spec's, else zoo://instruments/codec)")
            sub.add_argument("--cache", default=".freqrex_cache", help="where trained L-MAC decoders are kept "
                             "(default .freqrex_cache/)")
        if name == "attack":
            sub.add_argument("--budget", type=positive_int, default=None,
                             help="most frequencies one candidate mutates (default: the spec's attack.max_frequencies, else 1000)")
            sub.add_argument("--query-budget", type=positive_int, default=None,
                             help="most model queries per clip (default: the spec's attack.query_budget, else 2000)")
            sub.add_argument("--exhaustive-single", type=non_negative_int, default=0, metavar="N",
                             help="diagnostic: also try every single bin among the top N of the ranking × the "
                                  "whole ladder (no budget) and report the flips that exist")
            sub.add_argument("--no-stft", dest="stft", action="store_false", help="skip the STFT attack")
        sub.set_defaults(run=func)

    train = commands.add_parser("train-lmac", help="train an L-MAC decoder for a model and save it")
    train.add_argument("model", help=MODEL_HELP)
    train.add_argument("--train", required=True, help="the clips it trains on (a folder of class folders, a CSV, "
                       "or zoo://task/name): clips the audit will not score")
    train.add_argument("--out", required=True, help="folder for decoder.safetensors and lmac.json")
    train.add_argument("--steps", type=positive_int, default=None, help="training steps (default 600)")
    train.add_argument("--seed", type=seed_value, default=None, help="decoder seed (default 0)")
    train.add_argument("--layer", default=None, help="torch module models: the layer the decoder reads")
    train.add_argument("--threads", type=positive_int, default=None, help="torch CPU threads")
    train.add_argument("--device", default="auto", help="cpu, cuda, cuda:N or auto (default)")
    train.set_defaults(run=cmd_train_lmac)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    from ..runtime.imports import import_folders, use_folders

    use_folders(import_folders())  # the one import rule: pytest's rootdir and ini pythonpath, appended (as pytest)
    try:
        return int(args.run(args) or 0)
    except KeyboardInterrupt:
        print("freqrex-audit: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # `freqrex-audit schema | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except (ClassifierError, AudioError, FileNotFoundError, ValueError) as exc:
        print(f"freqrex-audit: error: {exc}", file=sys.stderr)
        return 2
    finally:
        from ..runtime import deadline

        deadline.clear()  # a deadline belongs to one command (main() may be called again in one process)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
