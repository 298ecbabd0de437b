"""Every named metric, defined once: what it counts and what it divides by (the paper's Tables 3 and 4 too).

One name, one meaning. Gates (``audit/evidence.py``), the run's tables, the report, ``freqrex-audit tables``,
the results schema's descriptions and README all read :data:`METRICS` and compute rates with
:func:`attack_counts`, so ``fourier_attack.int16_survival_rate`` is the same number wherever it is shown:

* a ``*_rate`` is a share of **clips** (the measured ones), counting **quiet** flips (SNR ≥ the attack's
  ``min_snr_db``), except ``raw_success_rate`` (any loudness);
* a ``*_share`` is a share of **flips** (verified, any loudness: the paper's reading, "% of successful attacks
  needing 1 frequency"; its Table 4 per frame size).

Which clips are "measured" is the audit's decision (:mod:`freqrex_audit.audit.evidence`); these functions
count over the clips they are given.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

__all__ = ["METRICS", "DENOMINATORS", "metric_definition", "attack_counts", "summarize_attacks", "wilson", "robustness"]

DENOMINATORS = {
    "answered clips": "clips the model gave a prediction for (clips that errored are counted apart)",
    "analysed clips": "clips FreqReX explained",
    "measured clips": "clips whose Fourier attack is evidence: a quiet flip, or a search that covered the rule "
                      "(README, 'Checks and gates')",
    "verified flips": "measured clips whose attack found a verified flip, at any loudness",
    "peer-attacked clips": "measured clips the peer attack ran on (checks.peer_attack)",
    "STFT-measured clips": "measured clips at least one STFT frame long (a clip the Fourier attack could not "
                           "flip counts as one the STFT attack could not flip)",
    "STFT-attempted clips": "STFT-measured clips with a Fourier flip, which the STFT attack tried to localise "
                            "(the paper's Table 4)",
}
"""What each denominator named in :data:`METRICS` is."""

METRICS: dict[str, tuple[str, str]] = {
    "accuracy.accuracy": ("clips classified as their label", "answered clips"),
    "sufficiency.mean_fraction": ("mean share of the K rfft bins in a clip's sufficient set", "analysed clips"),
    "necessity.mean_fraction": ("mean share of the K bins in a clip's necessary set (clips with one)", "analysed clips"),
    "completeness.mean_fraction": ("mean share of the K bins in a clip's complete set (clips with one)",
                                   "analysed clips"),
    "fourier_attack.success_rate": ("clips with a quiet verified flip (SNR ≥ attack.min_snr_db)", "measured clips"),
    "fourier_attack.raw_success_rate": ("clips with a verified flip at any loudness", "measured clips"),
    "fourier_attack.single_rate": ("clips with a quiet flip of one frequency", "measured clips"),
    "fourier_attack.five_rate": ("clips with a quiet flip of at most five frequencies", "measured clips"),
    "fourier_attack.int16_survival_rate": ("clips with a quiet flip that still flips after a 16-bit WAV round trip",
                                           "measured clips"),
    "fourier_attack.single_share": ("verified flips of one frequency", "verified flips"),
    "fourier_attack.five_share": ("verified flips of at most five frequencies", "verified flips"),
    "fourier_attack.int16_survival_share": ("verified flips that still flip after a 16-bit WAV round trip",
                                            "verified flips"),
    "fourier_attack.median_snr_db": ("median SNR (dB) of the verified flips", "verified flips"),
    "peer_attack.success_rate": ("clips a peer attack (ART) flipped quietly at FreqReX's own query count",
                                 "peer-attacked clips"),
    "stft_attack.success_rate": ("clips with a quiet STFT flip (SNR ≥ stft_attack.min_snr_db)", "STFT-measured clips"),
    "stft_attack.rate_<w>": ("clips whose quiet STFT flip changed <w>-sample frames", "STFT-measured clips"),
    "stft_attack.int16_survival_rate": ("clips with a quiet STFT flip that survives a 16-bit WAV round trip",
                                        "STFT-measured clips"),
    "stft_attack.success_share": ("STFT flips at any loudness", "STFT-attempted clips"),
    "stft_attack.share_<w>": ("STFT flips with <w>-sample frames", "STFT-attempted clips"),
    "composition.min_ratio": ("the lowest class composition ratio (Table 2)", "classes"),
    "transferability.min_alpha": ("the lowest α(this model → peer) of sufficient signals", "peers"),
    "freqrex.mean_queries": ("mean model queries per explanation", "analysed clips"),
}
"""Every metric name a gate, a baseline, a table or the report uses: (what it counts, what it divides by).
``<w>`` stands for a frame size in samples."""


def metric_definition(name: str) -> tuple[str, str] | None:
    """``(counts, over)`` for a metric name, frame-size names (``rate_256``) included; None if unknown."""
    if name in METRICS:
        return METRICS[name]
    head, _, tail = name.rpartition("_")
    if tail.isdigit() and f"{head}_<w>" in METRICS:
        counts, over = METRICS[f"{head}_<w>"]
        return counts.replace("<w>", tail), over
    return None


def _stft_eligible(fourier: Sequence, stft: Sequence | None, lengths: Sequence[int] | None,
                   frame_sizes: Sequence[int]) -> list[bool]:
    """Which clips count for the STFT metrics: long enough for the smallest frame, and (for a Fourier flip)
    with an STFT result. Without ``lengths`` a flipped clip the STFT attack could not try counts as too short."""
    out = []
    for i, f in enumerate(fourier):
        s = stft[i] if stft is not None else None
        if lengths is not None:
            ok = lengths[i] >= min(frame_sizes) and (not f.success or s is not None)
        else:
            ok = not f.success or (s is not None and s.attempted)
        out.append(ok)
    return out


def attack_counts(fourier: Sequence, stft: Sequence | None = None, frame_sizes: Sequence[int] = (256, 512, 1024),
                  lengths: Sequence[int] | None = None) -> dict[str, tuple[int, int]]:
    """Every attack metric of :data:`METRICS` as ``(count, denominator)`` over these (measured) clips.

    ``fourier``: one Fourier attack per clip; ``stft``: the STFT attack per clip (None: not run), or None for
    no STFT metrics; ``lengths``: each clip's samples (decides which clips are STFT-measured)."""
    n = len(fourier)
    flips = [a for a in fourier if a.success]
    quiet = [a for a in flips if a.quiet]
    fewest_quiet = [_fewest(a, quiet=True) for a in quiet]
    fewest = [_fewest(a, quiet=False) for a in flips]
    counts = {
        "fourier_attack.success_rate": (len(quiet), n),
        "fourier_attack.raw_success_rate": (len(flips), n),
        "fourier_attack.single_rate": (sum(f == 1 for f in fewest_quiet), n),
        "fourier_attack.five_rate": (sum(f <= 5 for f in fewest_quiet), n),
        "fourier_attack.int16_survival_rate": (sum(bool(a.survives_int16) for a in quiet), n),
        "fourier_attack.single_share": (sum(f == 1 for f in fewest), len(flips)),
        "fourier_attack.five_share": (sum(f <= 5 for f in fewest), len(flips)),
        "fourier_attack.int16_survival_share": (sum(bool(a.survives_int16) for a in flips), len(flips)),
    }
    if stft is not None:
        eligible = _stft_eligible(fourier, stft, lengths, frame_sizes)
        m = sum(eligible)
        tried = [s for s, f, ok in zip(stft, fourier, eligible) if ok and f.success]
        done = [s for s in tried if s.success]
        won = [s for s in done if s.quiet]
        counts["stft_attack.success_rate"] = (len(won), m)
        counts["stft_attack.int16_survival_rate"] = (sum(bool(s.survives_int16) for s in won), m)
        counts["stft_attack.success_share"] = (len(done), len(tried))
        for w in frame_sizes:
            counts[f"stft_attack.rate_{w}"] = (sum(s.frame_size == w for s in won), m)
            counts[f"stft_attack.share_{w}"] = (sum(s.frame_size == w for s in done), len(tried))
    return counts


def _fewest(attack, quiet: bool) -> int:
    """The fewest frequencies of any verified-search flip on this clip (quiet ones only with ``quiet``): the
    returned flip is the quietest, which may mutate more bins than another flip the search also found. Attacks
    saved before #29 know only their returned flip."""
    fewest = attack.fewest_quiet_frequencies if quiet else attack.fewest_frequencies
    return int(fewest or attack.n_frequencies or 0)


def _value(count: tuple[int, int]) -> float:
    return count[0] / count[1] if count[1] else float("nan")


def _add_queries(into: dict[str, int], more: dict[str, int]) -> None:
    for key, value in more.items():
        into[key] = into.get(key, 0) + int(value)


def summarize_attacks(fourier: list, stft: list | None = None, frame_sizes: tuple[int, ...] = (256, 512, 1024),
                      lengths: Sequence[int] | None = None) -> dict[str, float | int | dict]:
    """Tables 3 and 4 over these clips: every metric of :func:`attack_counts` under its own name (without the
    check prefix) and as ``counts[name] = [k, n]``, medians, and where the queries went."""
    counts = attack_counts(fourier, stft, frame_sizes, lengths)
    flips = [a for a in fourier if a.success]
    by_source: dict[str, int] = {}
    won_by: dict[str, int] = {}
    for a in fourier:
        _add_queries(by_source, a.queries_by_source)
    for a in flips:
        won_by[a.source] = won_by.get(a.source, 0) + 1
    fourier_names = [k for k in counts if k.startswith("fourier_attack.")]
    summary: dict[str, float | int | dict] = {
        "attacked": len(fourier), "successes": len(flips), "quiet_successes": sum(a.quiet for a in flips),
        **{k.split(".", 1)[1]: _value(counts[k]) for k in fourier_names},
        "counts": {k.split(".", 1)[1]: list(counts[k]) for k in fourier_names},
        "median_snr_db": float(np.median([a.snr_db for a in flips])) if flips else float("nan"),
        "median_frequencies": float(np.median([a.n_frequencies for a in flips])) if flips else float("nan"),
        "degenerate": sum(bool(a.degenerate) for a in fourier),
        "queries": int(sum(a.queries for a in fourier)),
        "queries_by_source": dict(sorted(by_source.items())),
        "won_by_source": dict(sorted(won_by.items())),
        "candidates": int(sum(a.candidates for a in fourier)),
        "denominators": {k.split(".", 1)[1]: metric_definition(k)[1] for k in fourier_names},
    }
    if stft is not None:
        stft_names = [k for k in counts if k.startswith("stft_attack.")]
        done = [s for s, f in zip(stft, fourier) if s is not None and f.success and s.success]
        by_frame: dict[str, int] = {}
        for s in stft:
            if s is not None:
                _add_queries(by_frame, s.queries_by_frame)
        summary["stft"] = {
            "measured": counts["stft_attack.success_rate"][1], "attempted": counts["stft_attack.success_share"][1],
            "successes": len(done),
            **{k.split(".", 1)[1]: _value(counts[k]) for k in stft_names},
            "counts": {k.split(".", 1)[1]: list(counts[k]) for k in stft_names},
            "frame_sizes": [int(w) for w in frame_sizes],
            "median_snr_db": float(np.median([s.snr_db for s in done])) if done else float("nan"),
            "median_frames": float(np.median([s.frames_changed for s in done])) if done else float("nan"),
            "queries": int(sum(s.queries for s in stft if s is not None)),
            "queries_by_frame_size": dict(sorted(by_frame.items(), key=lambda kv: int(kv[0]))),
            "denominators": {k.split(".", 1)[1]: metric_definition(k)[1] for k in stft_names},
        }
    return summary


def wilson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of k successes in n trials (None when n == 0)."""
    if n <= 0:
        return None
    from statistics import NormalDist

    z = NormalDist().inv_cdf(0.5 + confidence / 2)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, centre - half), min(1.0, centre + half)


def robustness(fourier, peer=None, noise=None) -> dict | None:
    """One figure per clip (#29, point 5): the quietest flip found by any method, with the method.

    ``fourier`` is the FreqReX attack, ``peer`` a :class:`~.peers.PeerAttack`, ``noise`` the floor (noise
    that flips counts at its SNR). ``defect`` names an attack louder than noise that flips the clip.
    None when nothing flipped the clip."""
    found = []
    if fourier is not None and fourier.success:
        found.append((float(fourier.snr_db), "freqrex"))
    if peer is not None and peer.success:
        found.append((float(peer.snr_db), peer.method))
    if noise is not None and noise.fragile:
        found.append((float(noise.snr_db), f"{'+'.join(noise.kinds_that_flip)} noise"))
    if not found:
        return None
    snr, method = max(found)
    defect = None
    if noise is not None and noise.fragile and (fourier is None or not fourier.success or fourier.snr_db < noise.snr_db):
        heard = f"{fourier.snr_db:.1f} dB" if fourier is not None and fourier.success else "no flip"
        defect = (f"the frequency attack ({heard}) is louder than plain noise that flips the clip "
                  f"({noise.snr_db:g} dB SNR)")
    return {"snr_db": snr, "method": method, "defect": defect}
