"""``freqrex-audit bench``: explanation cost against the model's own forward time, query counts on planted
models, FreqReX's quietest flip against HopSkipJump and noise (``--peers``), and the explainer comparisons
README quotes (``--explainers``, ``--latent-paper``)."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from .clip import classifier_from_arg

__all__ = ["cmd_bench", "zoo_model_names"]


def zoo_model_names() -> list[str]:
    """Every model the bundled zoo ships, as zoo:// names."""
    from ..runtime.paths import ZOO_ROOT

    return sorted(f"zoo://{d.parent.parent.name}/{d.name}" for d in ZOO_ROOT.glob("*/models/*") if d.is_dir())


def cmd_bench(args: argparse.Namespace) -> int:
    """Explanation cost against the model's own forward time, per model and clip length."""
    from ..bench.timing import bench_model, format_table, rows_as_json

    if args.explainers or args.latent_paper:
        return _bench_explainers(args)
    if args.peers:
        from ..bench.peers import format_peer_table, peer_rows
        from ..bench.peers import rows_as_json as peer_json

        if not args.models:
            print("freqrex-audit bench --peers: give the specs to measure (their model, dataset and configs)",
                  file=sys.stderr)
            return 2
        device = "cpu" if args.device == "auto" else args.device
        rows = peer_rows(args.models, snr_db=args.snr, noise_draws=args.noise_draws, device=device,
                         attack_seed=args.attack_seed, attack_budget=args.attack_budget)
        print(format_peer_table(rows, args.snr))
        if args.json:
            Path(args.json).write_text(json.dumps(peer_json(rows, args.snr), indent=1))
            print(f"wrote {args.json}", file=sys.stderr)
        return 0
    if args.queries:
        from ..bench.queries import format_query_table, query_rows, query_rows_as_json

        rows = query_rows(args.seconds, args.seeds)
        print(format_query_table(rows))
        if args.json:
            Path(args.json).write_text(json.dumps(query_rows_as_json(rows), indent=1))
            print(f"wrote {args.json}", file=sys.stderr)
        return 0
    models = args.models or zoo_model_names()
    if not models:
        print("freqrex-audit bench: no models given and the zoo is empty", file=sys.stderr)
        return 2
    rows = []
    for name in models:
        if args.size == "zoo":
            clf = classifier_from_arg(name, args.device)
        else:
            from ..bench.sizes import sized_classifier

            clf = sized_classifier(name, args.size, args.device)
        for seconds in args.seconds:
            row = bench_model(clf.name if args.size != "zoo" else name, clf, seconds, batch_size=args.batch_size,
                              with_batch1=seconds <= args.batch1_max_seconds, precision=args.precision,
                              attacks=not args.no_attacks, repeats=args.repeats)
            rows.append(row)
            print(f"{name} {seconds:g}s: {row.queries} queries in {row.explain_s:.2f} s "
                  f"(overhead ×{row.overhead_ratio:.2f})", file=sys.stderr)
    print(format_table(rows))
    if args.json:
        Path(args.json).write_text(json.dumps(rows_as_json(rows), indent=1))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0


def _bench_explainers(args: argparse.Namespace) -> int:
    """``bench --explainers`` / ``--latent-paper``: the README's explainer tables (bench/explainers.py)."""
    import torch

    from ..bench.explainers import compare_methods, format_latent_paper, format_methods, latent_paper

    torch.set_num_threads(args.threads or 1)
    out: dict = {}
    if args.explainers:
        for name in args.models or [f"zoo://instruments/{m}" for m in ("ast", "wav2vec2", "hubert", "whisper")]:
            print(f"{name}: comparing explainers …", file=sys.stderr, flush=True)
            out[name] = compare_methods(name, args.clips, args.seeds[0], args.device, args.methods)
            print(format_methods(name, out[name]) + "\n", flush=True)
    if args.latent_paper:
        out["latent_paper"] = latent_paper(seed=args.seeds[0], device=args.device)
        print(format_latent_paper(out["latent_paper"]), flush=True)
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1, default=float))
        print(f"wrote {args.json}", file=sys.stderr)
    return 0
