"""``freqrex-audit``: the command line (``main``) and its one-clip commands (``clip``)."""
