"""The pytest plugin (entry point ``freqrex_audit`` → :mod:`freqrex_audit.plugin.hooks`): options, collection
of specs into items, xdist glue and the session's results. Importing it imports no torch, transformers, scipy or
matplotlib: those load when a spec is collected."""
