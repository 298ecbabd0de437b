"""Measurements, not gates: explanation cost against the model's own forward time (``timing``), query counts
on planted models (``queries``, ``planted``) and the zoo families at published widths (``sizes``)."""

SIZES = ("zoo", "small", "base")
"""``bench --size``: zoo, the model as it is; the others are rebuilt at published widths by ``sizes.sized_classifier``
(named here, not in ``sizes``, so that the CLI can offer them without importing torch)."""
