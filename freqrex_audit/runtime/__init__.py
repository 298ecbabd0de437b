"""Process-wide plumbing every layer may use: the session deadline, devices, progress lines, path rules and
scratch-file isolation. Imports nothing of the package above it, and nothing heavy (no numpy, no torch)."""
