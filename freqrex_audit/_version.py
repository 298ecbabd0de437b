"""The package version, apart from ``__init__`` so that importing it costs nothing."""

__version__ = "0.1.0"
