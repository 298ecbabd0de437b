"""Repo-level pytest setup: never reach a model hub while testing (pyproject.toml's freqrex_xdist_groups keeps some
test modules on one xdist worker)."""

import os

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest_plugins = ["pytester"]  # the plugin's end-to-end tests run pytest inside pytest
