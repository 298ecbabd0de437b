"""Measurements, not gates: explanation cost against the model's own forward time (``timing``), query counts
on planted models (``queries``, ``planted``) and the zoo families at published widths (``sizes``)."""
