"""Dataset-level attack figures in the paper's shape (Tables 3 and 4), each rate with its denominator.

Two readings of "1-frequency success" exist and both are kept, labelled: ``single_rate`` divides by all
attacked clips (what our gates cap), ``single_share`` divides by the successful attacks (the paper's
Table 3: "% of successful attacks needing 1 / ≤ 5 frequencies"). ``quiet_*`` counts only flips with
SNR ≥ the attack's ``min_snr_db``.
"""

from __future__ import annotations

import numpy as np

DENOMINATORS = {
    "success_rate": "attacked clips", "quiet_success_rate": "attacked clips",
    "single_rate": "attacked clips", "five_rate": "attacked clips",
    "quiet_single_rate": "attacked clips",
    "single_share": "successful attacks", "five_share": "successful attacks",
    "int16_survival_rate": "successful attacks", "degenerate_rate": "attacked clips",
}
"""What each rate in :func:`summarize_attacks` divides by (shown beside it in results and report)."""


def _rate(count: int, of: int) -> float:
    return count / of if of else float("nan")


def _add_queries(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + int(value)


def summarize_attacks(fourier: list, stft: list | None = None,
                      frame_sizes: tuple[int, ...] = (256, 512, 1024)) -> dict[str, float | int | dict]:
    """Rates (with counts and denominators), median SNR and frequencies, and where the queries went."""
    total = len(fourier)
    wins = [a for a in fourier if a.success]
    quiet = [a for a in wins if a.quiet]
    fewest = [getattr(a, "fewest_frequencies", None) or a.n_frequencies or 0 for a in wins]  # any flip that few
    single = sum(f == 1 for f in fewest)
    five = sum(f <= 5 for f in fewest)
    by_source: dict[str, int] = {}
    won_by: dict[str, int] = {}
    for a in fourier:
        _add_queries(by_source, a.queries_by_source)
    for a in wins:
        won_by[a.source] = won_by.get(a.source, 0) + 1
    summary: dict[str, float | int | dict] = {
        "attacked": total,
        "successes": len(wins),
        "quiet_successes": len(quiet),
        "success_rate": _rate(len(wins), total),
        "quiet_success_rate": _rate(len(quiet), total),
        "single_rate": _rate(single, total),
        "five_rate": _rate(five, total),
        "quiet_single_rate": _rate(sum((getattr(a, "fewest_quiet_frequencies", None) or a.n_frequencies) == 1
                                       for a in quiet), total),
        "single_share": _rate(single, len(wins)),
        "five_share": _rate(five, len(wins)),
        "single": single,
        "five": five,
        "int16_survival_rate": _rate(sum(bool(a.survives_int16) for a in wins), len(wins)),
        "median_snr_db": float(np.median([a.snr_db for a in wins])) if wins else float("nan"),
        "median_frequencies": float(np.median([a.n_frequencies for a in wins])) if wins else float("nan"),
        "degenerate": sum(bool(a.degenerate) for a in fourier),
        "degenerate_rate": _rate(sum(bool(a.degenerate) for a in fourier), total),
        "queries": int(sum(a.queries for a in fourier)),
        "queries_by_source": dict(sorted(by_source.items())),
        "won_by_source": dict(sorted(won_by.items())),
        "candidates": int(sum(a.candidates for a in fourier)),
        "denominators": dict(DENOMINATORS),
    }
    if stft is not None:
        attempted = [s for s, f in zip(stft, fourier) if f.success and s.attempted]
        done = [s for s in attempted if s.success]
        by_frame: dict[str, int] = {}
        for s in stft:
            _add_queries(by_frame, s.queries_by_frame)
        summary["stft"] = {
            "attempted": len(attempted),
            "successes": len(done),
            "success_rate": _rate(len(done), len(attempted)),
            "quiet_success_rate": _rate(sum(bool(s.quiet) for s in done), len(attempted)),
            "per_frame_size": {str(w): _rate(sum(s.frame_size == w for s in done), len(attempted)) for w in frame_sizes},
            "int16_survival_rate": _rate(sum(bool(s.survives_int16) for s in done), len(done)),
            "median_snr_db": float(np.median([s.snr_db for s in done])) if done else float("nan"),
            "median_frames": float(np.median([s.frames_changed for s in done])) if done else float("nan"),
            "queries": int(sum(s.queries for s in stft)),
            "queries_by_frame_size": dict(sorted(by_frame.items(), key=lambda kv: int(kv[0]))),
            "denominators": {"success_rate": "attempted clips (Fourier flip, at least one frame long)",
                             "quiet_success_rate": "attempted clips", "per_frame_size": "attempted clips",
                             "int16_survival_rate": "successful STFT attacks"},
        }
    return summary
