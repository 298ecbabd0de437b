"""The sparse boundary search (#29, point 2): walk to the decision boundary in a few rfft bins.

Candidates here are additive complex changes δ_k of a few rfft bins (not the ladder's multipliers), so
a bin the clip barely uses can be raised as easily as a loud one is turned down. Parseval gives every
candidate's energy before any query: ‖Δx‖² = Σ w_k·|δ_k|² / T with w = 1 at DC and Nyquist (never
touched here) and 2 elsewhere, so a level is chosen in dB SNR and the waveform follows. Every query
goes through the ladder's :class:`~.search.BudgetedSearch` (one budget, counted per source, fixed
chunks) and every flip it sees is recorded with its exact SNR (the clip is clipped to its range, as
boosts are).

Two sources spend what the ladder left:

- ``gradient``: the log-odds score toward the other classes, max_c log p(c) − log p(original), is
  differenced on the real and imaginary part of each pool bin (two queries a bin, at a small level; the pool is
  the quietest flip's bins, so the line re-aims that flip's change within them);
  the direction that raises it fastest per unit energy, restricted to the k most sensitive bins
  (k = 1, 4, 16, all), is line-searched: louder by 6 dB until it flips, then bisected in dB;
- ``boundary``: HopSkipJump's geometry in a subspace of k bins (the quietest flip's bins, their
  neighbours and harmonics, then bins drawn at random): start from the quietest flip or from random
  phases on the subspace, whichever flips with less energy; bisect from the clip to it, estimate the
  boundary's normal from random probes of the score, step along it, bisect back, keep the point when it
  is quieter. Scores, not decisions, make each estimate cheaper than HopSkipJump's; as in HopSkipJump the
  probes per estimate grow with √t.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch

from ..audio import spectrum as spec
from .search import BudgetedSearch, Flip

Delta = dict[int, complex]
STEP_DB = 6.0  # how much louder each step of a line search goes until it flips
PROBE_RADIUS = 0.005  # the boundary search's probes, as a fraction of the point's distance from the clip
MAX_PROBE_RADIUS = 0.1  # how far it widens when the model's scores are quantised (int8 models)
BISECT_GUESS = 0.5
"""After a step, the bisection back to the boundary first asks this fraction of the last point's distance: the
boundary rarely comes that much nearer in one step, so the bisection starts from a ~2× bracket instead of searching
down from the clip (a query or two saved per step; silero-vad 0.7 dB quieter on average, 3 clips × 3 seeds)."""


class SparseSearch:
    """Asks additive bin changes through the ladder's :class:`BudgetedSearch` (same budget, same flips)."""

    def __init__(self, search: BudgetedSearch, rng: np.random.Generator):
        self.search, self.rng = search, rng
        self.n = int(search.x.shape[-1])
        self.spectrum = search.spectrum.to(torch.complex128)
        k = self.spectrum.shape[-1]
        self.weight = np.full(k, 2.0)
        self.weight[0] = 1.0
        if self.n % 2 == 0:
            self.weight[-1] = 1.0
        self.usable = np.arange(1, k - 1 if self.n % 2 == 0 else k)  # DC and Nyquist must stay real
        mags = self.spectrum.abs().cpu().numpy()
        phases = self.spectrum.cpu().numpy()
        self.unit = np.where(mags > 0, phases / np.maximum(mags, 1e-300), 1.0 + 0j)  # each bin's own phase
        self.power = search.power

    # -- energy and levels --------------------------------------------------------------------------
    def energy(self, delta: Delta) -> float:
        return float(sum(self.weight[k] * abs(v) ** 2 for k, v in delta.items()) / self.n)

    def snr(self, delta: Delta) -> float:
        e = self.energy(delta)
        return float(10 * np.log10(self.power / e)) if e > 0 else float("inf")

    def at_snr(self, delta: Delta, snr_db: float) -> Delta:
        """``delta`` rescaled so that its energy gives ``snr_db`` (Parseval, before clipping)."""
        scale = np.sqrt(self.power / 10 ** (snr_db / 10) / max(self.energy(delta), 1e-300))
        return {k: v * scale for k, v in delta.items()}

    # -- queries -------------------------------------------------------------------------------------
    def ask(self, source: str, deltas: Sequence[Delta]) -> list[np.ndarray]:
        """Probabilities for as many of ``deltas`` as the budget allows; flips are recorded on the search."""
        rows = [(np.fromiter(d.keys(), np.int64, len(d)), np.fromiter(d.values(), np.complex128, len(d)))
                for d in deltas]
        return self._ask(source, rows)

    def ask_on(self, source: str, bins: np.ndarray, values: np.ndarray) -> list[np.ndarray]:
        """As :meth:`ask`, for rows of changes ``values`` [m, len(bins)] on the same ``bins``: no dict per row
        (building one for each 1,000-bin row was most of the boundary search's own time)."""
        return self._ask(source, [(bins, row) for row in np.atleast_2d(values)])

    def waveforms(self, rows: Sequence[tuple[np.ndarray, np.ndarray]]) -> torch.Tensor:
        """The clip with each row's changes (bins, complex values) added, clipped to its range as boosts are."""
        changes = np.zeros((len(rows), self.spectrum.shape[-1]), dtype=np.complex128)
        for i, (bins, values) in enumerate(rows):
            changes[i, bins] = values
        waves = spec.irfft(torch.from_numpy(changes), self.n).to(torch.float32).to(self.search.x.device)
        return (waves + self.search.x[None]).clamp(-self.search.bound, self.search.bound)

    def _ask(self, source: str, rows: list[tuple[np.ndarray, np.ndarray]]) -> list[np.ndarray]:
        """Ask ``rows`` of (bins, complex changes) in the search's fixed chunks; record each flip with its exact SNR."""
        s = self.search
        rows = rows[: max(0, s.remaining)]
        answers: list[np.ndarray] = []
        for start in range(0, len(rows), s.chunk):
            chunk = rows[start:start + s.chunk]
            waves = self.waveforms(chunk)
            q0 = s.engine.queries
            probs = s.engine.query(waves)
            s.spent += len(chunk)
            s.queries_by_source[source] = s.queries_by_source.get(source, 0) + s.engine.queries - q0
            energies = torch.linalg.vector_norm(waves - s.x[None], dim=-1, dtype=torch.float64).cpu().numpy() ** 2
            for (bins, values), p, e in zip(chunk, probs, energies):
                s.n_asked += 1
                changed = values != 0
                count = int(changed.sum())
                if count and s.flipped(p) and count <= s.max_frequencies:
                    kept, deltas = bins[changed], values[changed]
                    order = np.argsort(kept, kind="stable")
                    kept, deltas = kept[order], deltas[order]
                    s.flips.append(Flip(tuple(kept.tolist()), None, source, int(p.argmax()),
                                        float(p.max() - p[s.original]),
                                        float(10 * np.log10(s.power / max(e, 1e-300))), s.n_asked,
                                        tuple(deltas.tolist())))
                    s.pool.update(kept.tolist())
            answers.extend(probs)
        return answers

    def score(self, probs: np.ndarray) -> float:
        """max over the other classes of log p(c) − log p(original): unsaturated near p = 1."""
        others = np.delete(probs, self.search.original)
        return float(np.log(others.max() + 1e-30) - np.log(probs[self.search.original] + 1e-30))

    def flips(self, probs: np.ndarray) -> bool:
        return self.search.flipped(probs)

    # -- sources -------------------------------------------------------------------------------------
    def line_search(self, source: str, direction: Delta, start_db: float, tol_db: float, floor_db: float = -30.0
                    ) -> float | None:
        """The quietest level (dB SNR) at which ``direction`` flips: louder by 6 dB from ``start_db`` until it
        does, then bisected in dB to ``tol_db``. Gives up below ``floor_db`` or when already louder than the
        quietest flip known (it could not win)."""
        quiet, loud = None, None
        level = start_db
        while self.search.remaining > 0 and level >= floor_db:
            best = self.search.quietest_snr
            if best is not None and level < best - tol_db:
                return None
            answer = self.ask(source, [self.at_snr(direction, level)])
            if not answer:
                return None
            if self.flips(answer[0]):
                loud = level
                break
            quiet, level = level, level - STEP_DB
        if loud is None:
            return None
        if quiet is None:  # the first level flipped: look quieter until it does not
            quiet = loud + STEP_DB
            while self.search.remaining > 0:
                answer = self.ask(source, [self.at_snr(direction, quiet)])
                if not answer or not self.flips(answer[0]):
                    break
                loud, quiet = quiet, quiet + STEP_DB
        while quiet - loud > tol_db and self.search.remaining > 0:
            mid = (quiet + loud) / 2
            answer = self.ask(source, [self.at_snr(direction, mid)])
            if not answer:
                break
            if self.flips(answer[0]):
                loud = mid
            else:
                quiet = mid
        return loud

    def gradient(self, source: str, bins: Sequence[int], probe_db: float) -> tuple[Delta, float] | None:
        """Forward differences of the score on each bin's real and imaginary part (2 queries a bin + 1).

        Returns the steepest-ascent direction per unit energy (δ_k ∝ g_k / w_k) and the clip's score."""
        answers = self.ask(source, [{}])
        if not answers:
            return None
        f0 = self.score(answers[0])
        eps = float(np.sqrt(self.power / 10 ** (probe_db / 10) * self.n / 2))
        rows = [{int(b): eps * turn * self.unit[b]} for b in bins for turn in (1.0, 1j)]
        answers = self.ask(source, rows)
        if len(answers) < len(rows):
            return None
        direction: Delta = {}
        for i, b in enumerate(bins):
            real = (self.score(answers[2 * i]) - f0) / eps
            imag = (self.score(answers[2 * i + 1]) - f0) / eps
            if real or imag:
                direction[int(b)] = complex(real + 1j * imag) * self.unit[b] / self.weight[b]
        return direction, f0

    def gradient_lines(self, pool: Sequence[int], sizes: Sequence[int], probe_db: float, tol_db: float) -> None:
        """Source ``gradient``: line searches along the score's gradient on the top-k bins of ``pool``."""
        pool = [int(b) for b in pool if 0 < b < self.weight.size and b in set(self.usable.tolist())]
        found = self.gradient("gradient", pool, probe_db) if pool else None
        if found is None or not found[0]:
            return
        direction, f0 = found
        ranked = sorted(direction, key=lambda b: -abs(direction[b]) ** 2 * self.weight[b])
        for k in dict.fromkeys(min(k, len(ranked)) for k in sizes):
            top = {b: direction[b] for b in ranked[:k]}
            # the level at which the linearised score would gain what a flip needs, as a starting point
            slope = float(np.sqrt(sum(self.weight[b] * abs(v) ** 2 for b, v in top.items()) / self.n)) * self.n
            need = max(-f0, 0.0) + 0.2
            start = 10 * np.log10(self.power / max((need / max(slope, 1e-30)) ** 2, 1e-300))
            self.line_search("gradient", top, float(np.clip(start, -20.0, 60.0)), tol_db)

    def subspace(self, seed: Flip | None, k: int) -> np.ndarray:
        """The bins of the boundary search: the flip's bins, their neighbours and harmonics, then bins drawn at
        random over the whole spectrum up to ``k``. Bins over the whole spectrum reach quieter flips than the
        explanation's top-ranked bins (silero-vad: 14.8 against 9.3 dB; AST: 26.7 against 21.9 dB, 1,000
        queries): a model's boundary is rarely only where the clip is loud. Drawn, not evenly spaced: bins a
        fixed step apart only make signals that repeat every n/step samples, so the change cannot gather in
        the frames where the model is fragile (random bins: 3.2 dB quieter on average over six clips)."""
        bins: list[int] = []
        if seed is not None:
            bins += list(seed.bins)
            for b in seed.bins:
                bins += [b - 2, b - 1, b + 1, b + 2, 2 * b, 3 * b, b // 2]
        first, last = int(self.usable[0]), int(self.usable[-1])
        kept = [b for b in dict.fromkeys(bins) if first <= b <= last][:k]
        others = np.setdiff1d(np.arange(first, last + 1), np.asarray(kept, dtype=np.int64))
        drawn = self.rng.choice(others, size=min(max(0, k - len(kept)), others.size), replace=False)
        return np.asarray(kept + sorted(int(b) for b in drawn), dtype=np.int64)[:max(k, 1)]

    def boundary(self, bins: np.ndarray, seed: Flip | None, iterations: int, probes: int, tol_db: float) -> None:
        """Source ``boundary``: HopSkipJump's walk along the boundary in the span of ``bins`` (see module doc).

        Each estimate asks the point itself and 2·probes·√t − 1 one-sided probes around it (one query a
        direction, where antithetic pairs cost two: 1.5 dB quieter on average over six clips)."""
        if not len(bins) or self.search.remaining <= 0:
            return
        scale = np.sqrt(self.n / self.weight[bins])  # coordinates v with ‖v‖² = energy

        def values(v: np.ndarray) -> np.ndarray:  # rows of coordinates → complex changes of ``bins``
            return (v[..., 0::2] + 1j * v[..., 1::2]) * scale

        def flipping(v: np.ndarray) -> bool | None:  # None: the budget is spent
            answer = self.ask_on("boundary", bins, values(v))
            return self.flips(answer[0]) if answer else None

        def bisect(v: np.ndarray, guess: float = 0.0) -> np.ndarray:
            """The boundary on the segment from the clip to ``v`` (which flips), to ``tol_db``; ``guess``, a
            fraction of ``v`` thought not to flip, is asked first."""
            lo, hi = 0.0, 1.0  # fractions of v: lo does not flip, hi does
            if 0.0 < guess < 1.0:
                answer = flipping(guess * v)
                if answer is None:
                    return v
                lo, hi = (0.0, guess) if answer else (guess, 1.0)
            while self.search.remaining > 0 and (lo == 0.0 or 20 * np.log10(hi / lo) > tol_db):
                mid = hi / 4 if lo == 0.0 else float(np.sqrt(lo * hi))
                answer = flipping(mid * v)
                if answer is None:
                    break
                lo, hi = (lo, mid) if answer else (mid, hi)
                if mid < 1e-6:
                    break
            return hi * v

        starts = []
        start = self._seed_start(bins, scale, seed)
        if start is not None and flipping(start):  # the seed's bins outside the subspace may have been needed
            starts.append(bisect(start))
        v0 = self.rng.standard_normal(2 * len(bins))
        v0 /= np.linalg.norm(v0)
        for level in (20.0, 10.0, 0.0, -10.0, -20.0):  # random phases and magnitudes, louder until they flip
            v = v0 * np.sqrt(self.power / 10 ** (level / 10))
            answer = flipping(v)
            if answer is None:
                break
            if answer:
                starts.append(bisect(v))
                break
        if not starts:
            return
        probe_radius = PROBE_RADIUS
        point = min(starts, key=np.linalg.norm)  # the start nearer the clip, each on the boundary
        for t in range(1, iterations + 1):
            wanted = 2 * int(round(probes * np.sqrt(t)))  # queries for this estimate, growing as HopSkipJump's
            asked = min(wanted, self.search.remaining - 4)  # what is left keeps room to step and bisect
            if asked < probes:
                return
            radius = float(np.linalg.norm(point))
            u = self.rng.standard_normal((asked - 1, point.size))
            u /= np.linalg.norm(u, axis=1, keepdims=True)
            answers = self.ask_on("boundary", bins, values(np.vstack([point, point + probe_radius * radius * u])))
            if len(answers) < asked:
                return
            scores = np.array([self.score(p) for p in answers])
            if len(np.unique(scores)) < asked / 2:  # a quantised output: probe farther so differences say more
                probe_radius = min(2 * probe_radius, MAX_PROBE_RADIUS)
            normal = ((scores[1:] - scores[0])[:, None] * u).sum(axis=0)
            if not np.any(normal):
                return
            normal /= np.linalg.norm(normal)
            step = radius / np.sqrt(t)
            moved = None
            while self.search.remaining > 0 and step > 1e-3 * radius:
                answer = flipping(point + step * normal)
                if answer is None:
                    return
                if answer:
                    moved = point + step * normal
                    break
                step /= 2
            if moved is None:
                continue
            closer = bisect(moved, BISECT_GUESS * radius / np.linalg.norm(moved))
            if np.linalg.norm(closer) < radius:
                point = closer

    def _seed_start(self, bins: np.ndarray, scale: np.ndarray, seed: Flip | None) -> np.ndarray | None:
        """The quietest flip so far in the subspace's coordinates (None without one)."""
        if seed is None:
            return None
        v = np.zeros(2 * len(bins))
        where = {int(b): i for i, b in enumerate(bins)}
        for b, d in zip(seed.bins, seed.delta if seed.delta is not None else self.ladder_delta(seed)):
            i = where.get(int(b))
            if i is not None:
                v[2 * i], v[2 * i + 1] = d.real / scale[i], d.imag / scale[i]
        return v if np.any(v) else None

    def ladder_delta(self, flip: Flip) -> tuple[complex, ...]:
        """A ladder flip as additive changes: δ_k = (m − 1)·X_k."""
        m = flip.mutation.multiplier
        values = self.spectrum.cpu().numpy()
        return tuple(complex((m - 1) * values[b]) for b in flip.bins)
