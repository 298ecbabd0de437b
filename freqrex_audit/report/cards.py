"""Sample cards (Figure-1 panels and players of one clip) and the audio budget that keeps the page small.

Players are embedded as lossless FLAC until ``max_audio_bytes`` is reached; the rest are written as
files beside the HTML (``<report>_files/``) and linked, so the page stays small and every clip still plays.
"""

from __future__ import annotations

import base64
import re
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from ..audio import spectrum as spec
from ..audio.io import encode_audio
from ..audit.messages import change_text
from ..engine.attacks import FourierAttack, STFTAttack
from ..engine.explanation import Explanation
from ..engine.metrics import snr_db
from . import figures
from .format import fmt_bins, fmt_snr

__all__ = ["AudioBudget", "pick_cards", "sample_card", "flipped"]

if TYPE_CHECKING:
    from .composites import SidecarLinks


class AudioBudget:
    """Embeds players until ``limit`` bytes of data URI; then writes FLAC files into ``folder`` (when given)."""

    def __init__(self, limit: int, folder: Path | None = None):
        self.limit, self.folder = limit, folder
        self.used = self.refused = self.written = self.written_bytes = 0

    def uri(self, samples: np.ndarray | None, sample_rate: int, name: str) -> str | None:
        if samples is None:
            return None
        flac = encode_audio(samples, sample_rate)
        uri = "data:audio/flac;base64," + base64.b64encode(flac).decode("ascii")
        if self.used + len(uri) <= self.limit:
            self.used += len(uri)
            return uri
        if self.folder is None:
            self.refused += 1
            return None
        self.folder.mkdir(parents=True, exist_ok=True)
        path = self.folder / (re.sub(r"[^A-Za-z0-9._-]+", "_", name) + ".flac")
        path.write_bytes(flac)
        self.written += 1
        self.written_bytes += len(flac)
        return f"{self.folder.name}/{path.name}"


def flipped(sample: dict) -> bool:
    """A clip whose Fourier attack found a quiet, verified flip (what the attack gates count)."""
    atk = sample.get("fourier_attack") or {}
    return bool(atk.get("success") and atk.get("quiet", True))


def pick_cards(samples: list[dict], limit: int, first: set[str] | None = None) -> list[dict]:
    """Up to ``limit`` analysed samples: clips named in ``first`` (they decided a red gate) and flipped
    clips before the rest, then round-robin over classes; shown in dataset order."""
    first = first or set()
    analysed = [s for s in samples if s.get("explanation") is not None]
    urgent = [s for s in analysed if s["id"] in first] + [s for s in analysed if s["id"] not in first and flipped(s)]
    chosen = urgent[:limit]
    by_class: dict[str, list[dict]] = {}
    for s in analysed:
        if all(s is not c for c in chosen):
            by_class.setdefault(str(s.get("label")), []).append(s)
    queues = list(by_class.values())
    while len(chosen) < limit and any(queues):
        for queue in queues:
            if queue and len(chosen) < limit:
                chosen.append(queue.pop(0))
    order = {id(s): i for i, s in enumerate(samples)}
    return sorted(chosen, key=lambda s: order[id(s)])


def _attack_detail(atk: FourierAttack | STFTAttack | None) -> str:
    if atk is None:
        return "not run"
    if not atk.success:
        return (atk.summary if isinstance(atk, FourierAttack)
                else "; ".join(f"{k}: {v}" for k, v in atk.tried.items()) or "did not flip the clip")
    if isinstance(atk, FourierAttack):
        n = atk.n_frequencies
        text = f"{n} frequenc{'y' if n == 1 else 'ies'}, {change_text(atk)}"
        if len(atk.hz):
            text += f" at {', '.join(f'{h:,.0f}' for h in atk.hz[:5])}{' …' if len(atk.hz) > 5 else ''} Hz"
        return text + f"; {'quiet' if atk.quiet else 'loud'}, {atk.queries:,} queries"
    return (f"frame {atk.frame_size}, {atk.frames_changed} frame(s) changed, "
            f"{atk.start_s:.2f}–{atk.end_s:.2f} s, {atk.mutation}")


def sample_card(sample: dict, arrays: dict, budget: AudioBudget, anchor: str,
                links: "SidecarLinks | None" = None) -> dict:
    """Figure-1 panels and the players of one analysed clip (original, subsets, inverse, attacks); each
    subset's player links its exact float32 WAV in the run's waveform sidecar when ``links`` has one."""
    exp = Explanation.from_dict(sample["explanation"], arrays)
    fourier = FourierAttack.from_dict(sample["fourier_attack"], arrays) if sample.get("fourier_attack") else None
    stft = STFTAttack.from_dict(sample["stft_attack"], arrays) if sample.get("stft_attack") else None
    rate, x = exp.sample_rate, np.asarray(exp.waveform, dtype=np.float32)
    hz = spec.bin_to_hz(np.arange(exp.n_bins), len(x), rate)
    magnitude = np.abs(np.fft.rfft(x.astype(np.float64)))
    panels = figures.sample_panels(
        x, rate, hz, np.asarray(exp.responsibility, dtype=float), magnitude,
        {k: getattr(exp, k) for k in ("sufficient", "necessary", "complete")}, exp.signal("sufficient"))
    players = []
    subset_conf = {"original": exp.confidence, "sufficient": exp.sufficient_confidence,
                   "necessary": exp.necessary_confidence, "complete": exp.complete_confidence}
    for kind in ("original", "sufficient", "necessary", "complete", "inverse"):
        signal = exp.signal(kind)
        inverse = kind == "inverse"
        label = (exp.labels[exp.inverse_label] if exp.inverse_label is not None else None) if inverse else \
            (exp.target_label if signal is not None else None)
        bins = exp.bins(kind) if kind != "original" else None
        detail = ""
        if inverse:
            removed = (exp.inverse_rule or "necessary-complement").split("-")[0]
            detail = f"the clip without its {removed} frequencies"
            if exp.inverse_label is not None and exp.inverse_label == exp.target:
                detail += " — keeps its own label"
        elif exp.is_fragile(kind):
            detail = f"fragile: lost under {', '.join(exp.fragile[kind])}"
        players.append({
            "kind": kind, "found": signal is not None, "uri": budget.uri(signal, rate, f"{anchor}-{kind}"),
            "label": label, "confidence": exp.inverse_confidence if inverse else subset_conf[kind],
            "conf_note": "of the target class" if kind in ("sufficient", "necessary", "complete") else "",
            "snr": None if signal is None or kind == "original" else fmt_snr(snr_db(x, signal)),
            "int16": None, "bins": fmt_bins(len(bins), exp.n_bins) if bins is not None else None,
            "detail": detail, "exact": links.clip(sample["id"], kind) if links is not None else None})
    for kind, atk in (("Fourier attack", fourier), ("STFT attack", stft)):
        found = atk is not None and atk.success and atk.adversarial is not None
        players.append({
            "kind": kind, "found": found,
            "uri": budget.uri(atk.adversarial, rate, f"{anchor}-{kind.split()[0].lower()}") if found else None,
            "label": exp.labels[atk.new_label] if found and atk.new_label is not None else None,
            "confidence": atk.new_confidence if found else None, "conf_note": "",
            "snr": fmt_snr(atk.snr_db) if found else None, "int16": atk.survives_int16 if found else None,
            "bins": None, "detail": _attack_detail(atk), "exact": None})
    return {"id": sample["id"], "anchor": anchor, "label": sample.get("label"), "predicted": exp.target_label,
            "confidence": exp.confidence, "panels": panels, "players": players, "duration_s": len(x) / rate,
            "sample_rate": rate, "queries": exp.queries, "iterations": exp.iterations,
            "convergence": convergence_words(exp), "notes": list(sample.get("notes") or [])}


def convergence_words(exp: Explanation) -> str:
    """How the responsibility loop ended, for the card's header ("" for an explanation that did not record it)."""
    if exp.converged is None:
        return ""
    if exp.converged:
        return "converged"
    if exp.stopped == "nothing passed":
        return "NOT CONVERGED: no proper mutant ever kept the label (the ranking is magnitude order)"
    return f"not converged: {exp.stopped}"
