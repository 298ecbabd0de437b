"""``freqrex-audit cache [FOLDER]``: what a result cache holds, and pruning it by last use.

The cache only grows: every engine change (a new engine hash) and every new clip or model adds entries that
old runs no longer read. ``--older-than DAYS`` and ``--max-size SIZE`` delete the least recently used entries
(a hit touches its entry); a deleted entry is recomputed, bit for bit, when a run needs it again."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from .arguments import byte_size, non_negative_days


def shown(n_bytes: float) -> str:
    """A byte count as people read it: ``812 B``, ``3.4 KB``, ``87.2 MB``, ``1.5 GB`` (powers of 1,024)."""
    for unit in ("B", "KB", "MB"):
        if n_bytes < 1024:
            return f"{n_bytes:.0f} {unit}" if unit == "B" else f"{n_bytes:.1f} {unit}"
        n_bytes /= 1024
    return f"{n_bytes:.1f} GB"


def cmd_cache(args: argparse.Namespace) -> int:
    """Print what the cache holds by kind; with --older-than / --max-size delete the least recently used entries."""
    from ..audit.cache import cache_entries, prune_cache

    root = Path(args.folder)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such cache folder (an audit's --cache, default .freqrex_cache)")
    entries, now = cache_entries(root), time.time()
    pruning = args.older_than is not None or args.max_size is not None
    doomed = prune_cache(entries, None if args.older_than is None else args.older_than * 86400, args.max_size, now)
    if not args.dry_run:
        for entry in doomed:
            entry.path.unlink(missing_ok=True)  # (another process may have pruned it)
        gone = set(doomed)
        entries = [e for e in entries if e not in gone]
    for kind in ("results", "figures"):  # what the folder holds now
        mine = [e for e in entries if e.kind == kind]
        age = f", last used {(now - mine[-1].used) / 86400:.1f}–{(now - mine[0].used) / 86400:.1f} days ago" if mine else ""
        print(f"{root}: {kind}: {len(mine)} entries, {shown(sum(e.size for e in mine))}{age}")
    if pruning:
        verb = "would remove" if args.dry_run else "removed"
        print(f"{root}: {verb} {len(doomed)} least recently used entries ({shown(sum(e.size for e in doomed))})")
    return 0


def add_cache_command(commands) -> None:
    """Register ``cache`` on the CLI's subcommands."""
    cache = commands.add_parser("cache", help="show what a result cache holds; prune it by last use "
                                              "(--older-than DAYS, --max-size SIZE)")
    cache.add_argument("folder", nargs="?", default=".freqrex_cache", metavar="FOLDER",
                       help="the cache folder (an audit's --cache; default .freqrex_cache)")
    cache.add_argument("--older-than", type=non_negative_days, default=None, metavar="DAYS",
                       help="delete the entries no run has used for DAYS days")
    cache.add_argument("--max-size", type=byte_size, default=None, metavar="SIZE",
                       help="then delete the least recently used entries until the rest fit in SIZE (500M, 2G)")
    cache.add_argument("--dry-run", action="store_true", help="say what would be deleted, delete nothing")
    cache.set_defaults(run=cmd_cache)
