"""A run folder: results.json + results.npz written (``write``) and read back trusting nothing (``read``,
``schema``), the waveform sidecar (``waveforms``), baselines and comparisons (``baselines``, ``compare``) and the
transferability paper's spectra rebuilt from a folder alone (``spectra``)."""
