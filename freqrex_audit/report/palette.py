"""The report's one palette: Okabe-Ito colours (colour-blind safe) by role, for every figure the report and the
CLI draw, so a role (the sufficient set, the clip) has one colour wherever it appears."""

OKABE_ITO = ("#0072B2", "#E69F00", "#009E73", "#CC79A7", "#56B4E9", "#D55E00", "#F0E442", "#000000")
COLOURS = {"signal": "#0072B2", "responsibility": "#009E73", "spectrum": "#B0B0B0", "background": "#D0D0D0",
           "sufficient": "#D55E00", "necessary": "#E69F00", "complete": "#56B4E9"}
"""Role → colour; ``background`` is the original clip drawn behind a subset's signal."""
