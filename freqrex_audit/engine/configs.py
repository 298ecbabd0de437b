"""Every algorithm's settings, apart from the algorithms: the spec loader, the schema and every reader of a run
folder need the settings' names, defaults and checks, never torch (``freqrex-audit tables``, ``compare`` and
``schema`` start in a fraction of a second). Each algorithm's module re-exports its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from .codec import Result

__all__ = ["MAX_PARTS", "CONVERGENCE_RULES", "METHODS", "FreqReXConfig", "STFTAttackConfig", "LMACConfig",
           "LatentConfig"]

MAX_PARTS = 12
"""Most parts per partition: a split queries 2^p − 2 unions (4,094 at p = 12; p = 64 would never finish)."""

CONVERGENCE_RULES = ("running", "literal")

METHODS = ("freqrex", "lmac", "latent")
"""The explainers ``freqrex-audit explain --method`` and a spec's ``explainers:`` may name."""


@dataclass(frozen=True)
class FreqReXConfig(Result):
    """Every knob of Algorithm 1, with the defaults this project measured and chose.

    seed: base seed; iteration i uses the generator seeded with (seed, i).
    parts: p, parts per partition (2^p − 2 mutants per split: 14 for p = 4).
    refine_parts: parts per split below the first level (None: ``parts``). Opt-in; with smallest-first
        querying (below) p = 4 costs as few queries as binary splits on a single band (README).
    partition: "contiguous" random bands, or "interleaved" random non-contiguous parts.
    iterations: most responsibility iterations; min_iterations: fewest before stopping early.
    epsilon: stop once the EMD between successive running maps is ≤ this. Measured on the ratio, AND,
        OR and parity models of tests/known_models.py (3 seeds each): ε = 0.005 stopped after 3–15
        iterations (median 6) with 21–74% of a full 20-iteration run's queries; sufficient sets had the
        same size as the full run's on ratio, OR and parity, and 3–7 vs 2–5 bins on AND (all precision
        1.0). ε = 0.01 stopped at 3–8 but once kept 13 bins for AND's 2; ε = 0.002 cost 2–3× more.
    convergence: "running" (default) compares successive running maps; "literal" is the paper's test,
        this iteration's map R_i against the running map R_g. Under both, an iteration with no passing
        mutant is not a convergence step and does not count towards min_iterations (README: measurements).
    max_depth / min_part_size / iteration_budget / refine_top: refinement limits per iteration
        (levels, smallest part split further in bins, queries, passing mutants refined per node and level).
        refine_top = 1 measured best on the planted conjunctions and single band (README table).
    smallest_first: ask each node's unions of children size by size and stop at the first size that
        passes (Def. 2 credits only smallest sufficient sets): p queries per level on a single band instead
        of 2^p − 2. Cut the single-band explanation from 379 to 128 queries at 1 s and 464 to 216 at 30 s
        (README). False: every proper union asked and every passing one credited (the earlier reading).
    min_confidence: δ, the sufficient prefix keeps the target with conf ≥ δ·conf(x).
    chain_length: L, prefixes in a row (bins, as the paper counts them) that must all be sufficient.
    grid_points: size of the geometric grid of prefix sizes (48: with the bin-level chain and pruning, 64
        found the same sufficient prefixes on the known models at ~12 more queries); refine_points:
        linear sub-grid size.
    decimals: completeness matches the original confidence to this many decimals.
    search_chunk: candidates asked together in the necessary/complete search; fixed (not the batch
        size) so that results and query counts never depend on the hardware's batch size.
    prune / prune_budget: after the paper's prefix search, remove in batches the bins of the sufficient
        prefix that the label does not need (``minimal``; ``sufficient`` stays the paper's prefix set), at
        most ``prune_budget`` queries.
    fragility_check: re-query every found subset's handed-out signal with 1e-6 relative noise and after a
        16-bit PCM round trip (2 queries per subset, one batch) and record which it does not survive.
    batch_size: queries per model call (None: the QueryEngine's).
    """

    seed: int = 0
    parts: int = 4
    refine_parts: int | None = None
    partition: str = "contiguous"
    iterations: int = 20
    min_iterations: int = 3
    epsilon: float = 0.005
    convergence: str = "running"
    max_depth: int = 8
    min_part_size: int = 4
    iteration_budget: int = 200
    refine_top: int = 1
    smallest_first: bool = True
    min_confidence: float = 0.5
    chain_length: int = 5
    grid_points: int = 48
    refine_points: int = 16
    decimals: int = 2
    search_chunk: int = 8
    prune: bool = True
    prune_budget: int = 64
    fragility_check: bool = True
    batch_size: int | None = None
    speculate: int = 0  # opt-in: 2 measured +1.4 % queries for 12 % fewer calls (README, #33)

    def __post_init__(self) -> None:
        checks = {
            "parts": 2 <= self.parts <= MAX_PARTS,
            "refine_parts": self.refine_parts is None or 2 <= self.refine_parts <= MAX_PARTS,
            "iterations": self.iterations >= 1,
            "min_iterations": 1 <= self.min_iterations, "epsilon": self.epsilon >= 0,
            "max_depth": self.max_depth >= 1, "min_part_size": self.min_part_size >= 1,
            "iteration_budget": self.iteration_budget >= 1, "refine_top": self.refine_top >= 1,
            "min_confidence": 0 <= self.min_confidence <= 1, "chain_length": self.chain_length >= 1,
            "grid_points": self.grid_points >= 2, "refine_points": self.refine_points >= 1,
            "decimals": self.decimals >= 0, "search_chunk": self.search_chunk >= 1, "speculate": self.speculate >= 0, "prune_budget": self.prune_budget >= 1, "batch_size": self.batch_size is None or self.batch_size >= 1,
            "partition": self.partition in ("contiguous", "interleaved"),
            "convergence": self.convergence in CONVERGENCE_RULES,
        }
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"FreqReXConfig: invalid {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")


@dataclass(frozen=True)
class STFTAttackConfig(Result):
    """Algorithm 3's knobs: frame sizes tried in order, and the most frames changed per size.

    ``neighbours``: STFT bins on each side of the nearest one that are mutated too. A Hann-windowed
    sinusoid spreads over the nearest bin and one on each side, so mutating the nearest bin alone
    leaves much of the frequency's energy untouched (0 reproduces the paper's nearest-bin rule).
    ``min_margin`` / ``min_snr_db``: as in the Fourier attack (a flip needs the margin; quiet ≥ SNR).
    """

    frame_sizes: tuple[int, ...] = (256, 512, 1024)
    frame_budget: int | None = None
    neighbours: int = 1
    min_margin: float = 0.05
    min_snr_db: float = 10.0
    search_chunk: int = 32
    batch_size: int | None = None

    def __post_init__(self) -> None:
        if not self.frame_sizes or any(w < 4 or w % 4 for w in self.frame_sizes):
            raise ValueError(f"STFTAttackConfig: frame sizes must be multiples of 4, got {self.frame_sizes}")
        if self.neighbours < 0:
            raise ValueError(f"STFTAttackConfig: neighbours must be ≥ 0, got {self.neighbours}")
        if self.frame_budget is not None and self.frame_budget < 1:
            raise ValueError(f"STFTAttackConfig: frame_budget must be ≥ 1, got {self.frame_budget}")
        if not 0 <= self.min_margin < 1:
            raise ValueError(f"STFTAttackConfig: min_margin must be in [0, 1), got {self.min_margin}")


@dataclass(frozen=True)
class LMACConfig(Result):
    """Every knob of L-MAC's decoder and its training.

    frame_size: STFT frame (hop = frame/4, Hann; 512 at 16 kHz = 32 ms frames, 31 Hz bins).
    width / bands: decoder channels, and mask rows before interpolation to the frame's frequency bins.
    steps / batch / lr: Adam steps on random training clips with random gain (×0.6–1.4).
    l1: λ, weight of the mask's mean (smaller masks); out_weight: β, weight of the masked-out term.
    guidance_steps / guidance: extra steps of the guidance stage and its weight γ (0 steps: no guidance).
    threshold: the binary mask keeps the cells whose sigmoid output exceeds this.
    seed: decoder initialisation and the training batches' order and gains.
    """

    frame_size: int = 512
    width: int = 64
    bands: int = 64
    steps: int = 600
    batch: int = 16
    lr: float = 1e-3
    l1: float = 1.0
    out_weight: float = 1.0
    guidance_steps: int = 0
    guidance: float = 1.0
    threshold: float = 0.5
    seed: int = 0


@dataclass(frozen=True)
class LatentConfig(Result):
    """Latent-space explanation settings.

    codec: a local EncodecModel folder, ``zoo://…`` or ``hf://org/name`` from the local cache (None: the
        caller's default, the zoo codec). keep: share of latent features kept. ig_steps: Integrated Gradients
        steps (one gradient call each, batched by ``ig_batch``); baseline: the all-zero latent. seed: the noise.
    """

    codec: str | None = None
    keep: float = 0.2
    ig_steps: int = 32
    ig_batch: int = 32
    seed: int = 0
