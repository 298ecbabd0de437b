"""``freqrex-audit tables RUN``: README-ready markdown of a run's tables (the paper's Tables 1–4, the attack
table, the α matrix), so no figure in the docs is typed by hand: paste the output with the command beside it."""

from __future__ import annotations

import argparse
from pathlib import Path


def cmd_tables(args: argparse.Namespace) -> int:
    """Print every table of a run folder (or its results.json) as markdown; exit 2 on a file that is not a run."""
    from ..report.tables import markdown_tables
    from ..runs.read import load_run

    path = Path(args.folder)
    if path.is_dir():
        path = path / "results.json"
    if not path.is_file():
        raise FileNotFoundError(f"{args.folder}: no results.json (give a run folder, e.g. reports/<run>, or its "
                                f"results.json)")
    doc, arrays = load_run(path, arrays=False)
    print(markdown_tables(doc, arrays, source=args.folder), end="")
    return 0


def add_tables_command(commands) -> None:
    """Register ``tables`` on the CLI's subcommands."""
    tables = commands.add_parser("tables", help="print a run's tables (paper Tables 1-4, the attack table, the "
                                                "α matrix) as README-ready markdown")
    tables.add_argument("folder", metavar="RUN", help="a run folder (reports/<run>) or its results.json")
    tables.set_defaults(run=cmd_tables)
