"""Model specs: which files are specs (``discovery``), reading their YAML safely (``safe_yaml``), the schema
(``document``, printed by ``json_schema``) and the validated :class:`~freqrex_audit.specs.loader.Spec` (``loader``).

Kept free of eager imports: the pytest plugin reads ``discovery`` at start-up, before any spec is collected."""
