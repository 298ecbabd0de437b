"""The Fourier attack's configuration (its own module, so the attack and its diagnostics share it)."""

from __future__ import annotations

from dataclasses import dataclass, field

from .codec import Result
from .mutations import Mutation, default_mutations, extremes, ladder

ATTACK_POOLS = ("sufficient", "ranking")
VERIFY_RESERVE = 2  # the fresh query on the returned clip and its 16-bit round trip


@dataclass(frozen=True)
class AttackConfig(Result):
    """The Fourier attack's knobs. Two budgets, named apart:

    - ``max_frequencies``: most bins one candidate may mutate (the paper's budget; default 1000);
    - ``query_budget``: most model queries per clip, all sources together (default 2000: at 2,000 the attack
      out-flips ART's HopSkipJump at equal queries on every reading of README's peer table; at 1,000 it did not).

    ``mutations`` (any order) become the ladder, quietest first, without boosts above ``max_scale``.
    ``pool``: the paper's prefix source walks the ``sufficient`` set (default) or the whole ``ranking``;
    a degenerate explanation (sufficient set of ≤ ``degenerate_bins`` bins or under ``degenerate_share``
    of all bins) widens it to the ranking too. ``min_margin``: a flip needs the new top class this far
    above the original label. ``min_snr_db``: flips at least this quiet count as ``quiet``.
    ``require_int16``: a flip must also survive a 16-bit WAV round trip. ``screen_bins``: top-ranked
    bins tried alone before anything else; ``branch``/``beam``/``nudge``: the runner-up descent (bands split ``branch``-way, ``beam`` kept, probed by moving
    magnitudes ±``nudge``·max|X|);
    ``max_set``: largest grown set; ``ladder_sets``: flipping sets whose whole ladder is tried.
    ``search_chunk``: candidates asked together (fixed, so query counts never depend on batch size).

    #29, the quietest flip rather than the first: ``continuous`` (default) gives the ladder's sources
    ``ladder_share`` of the budget, walks the ``walk_flips`` quietest ladder flips to the boundary to
    ``tol_db`` (:mod:`.walk`), then spends the rest on the sparse boundary search (:mod:`.boundary_search`):
    score gradients probed at ``gradient_probe_db`` on the quietest flip's bins (at most ``gradient_pool``; before any
    flip, the ranking's and the descent's top ``gradient_pool``), and a HopSkipJump-style walk in
    ``sparse_bins`` bins (capped by ``max_frequencies``) asking 2·``probes``·√t queries for its t-th estimate
    of the boundary's normal; its bins and probes are drawn from ``seed``. The winner is the quietest verified
    flip, or one with fewer frequencies within ``tie_db`` of it. ``continuous: false`` is the ladder alone with the whole budget (Alg 2 and #16's sources, the
    preference quiet → fewer frequencies → quieter): the mutations it reports are the ladder's own.
    ``noise_draws``: the audit's noise floor asks this many white and pink draws at ``min_snr_db`` first.
    """

    mutations: tuple[Mutation, ...] = field(default_factory=default_mutations)
    max_frequencies: int = 1000
    query_budget: int = 2000
    max_scale: float = 1000.0
    pool: str = "sufficient"
    min_margin: float = 0.05
    min_snr_db: float = 10.0
    require_int16: bool = False
    screen_bins: int = 32
    branch: int = 8
    beam: int = 2
    nudge: float = 0.01
    max_set: int = 5
    ladder_sets: int = 2
    degenerate_bins: int = 2
    degenerate_share: float = 0.001
    search_chunk: int = 32
    batch_size: int | None = None
    continuous: bool = True
    ladder_share: float = 0.2
    walk_flips: int = 4
    tol_db: float = 0.5
    gradient_pool: int = 24
    gradient_probe_db: float = 30.0
    sparse_bins: int = 1000
    probes: int = 8
    tie_db: float = 0.5
    seed: int = 0
    noise_draws: int = 4

    def __post_init__(self) -> None:
        checks = {"max_frequencies": self.max_frequencies >= 1, "query_budget": self.query_budget > VERIFY_RESERVE,
                  "max_scale": self.max_scale >= 1, "min_margin": 0 <= self.min_margin < 1,
                  "screen_bins": self.screen_bins >= 0, "branch": self.branch >= 2, "beam": self.beam >= 1,
                  "max_set": self.max_set >= 1, "ladder_sets": self.ladder_sets >= 0,
                  "degenerate_bins": self.degenerate_bins >= 0, "degenerate_share": 0 <= self.degenerate_share <= 1,
                  "search_chunk": self.search_chunk >= 1, "nudge": 0 < self.nudge <= 1,
                  "ladder_share": 0 < self.ladder_share <= 1, "walk_flips": self.walk_flips >= 0,
                  "tol_db": self.tol_db > 0, "gradient_pool": self.gradient_pool >= 0, "sparse_bins": self.sparse_bins >= 0,
                  "probes": self.probes >= 1, "tie_db": self.tie_db >= 0,
                  "noise_draws": self.noise_draws >= 0}
        bad = [name for name, ok in checks.items() if not ok]
        if bad:
            raise ValueError(f"AttackConfig: invalid {', '.join(f'{b}={getattr(self, b)!r}' for b in bad)}")
        if self.pool not in ATTACK_POOLS:
            raise ValueError(f"AttackConfig: pool must be one of {', '.join(ATTACK_POOLS)}, got {self.pool!r}")
        if not self.ordered:
            raise ValueError("AttackConfig: at least one mutation is needed")

    @property
    def budget(self) -> int:
        """The frequency cap under its older name (``max_frequencies``)."""
        return self.max_frequencies

    @property
    def ordered(self) -> tuple[Mutation, ...]:
        """The ladder: mutations quietest first (by |m − 1|), none louder than ``max_scale``."""
        return ladder(self.mutations, self.max_scale)

    @property
    def extremes(self) -> tuple[Mutation, ...]:
        """The largest mutation of each direction (down, up, phase): what the screens try first."""
        return extremes(self.ordered)
