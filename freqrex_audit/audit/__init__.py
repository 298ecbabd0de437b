"""One spec's audit: clips (``datasets``) through the per-clip pipeline (``pipeline``), serially or on an
executor (``executors``), cached (``cache``), summed up (``aggregates``) and judged (``evidence``, ``gates``) into
the records every view reads (``records``). :func:`~freqrex_audit.audit.run.run_spec` is the entry; a session of
several specs is :mod:`~freqrex_audit.audit.session`."""
