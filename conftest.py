"""Repo-level pytest setup: never reach a model hub while testing; keep some test modules on one xdist worker."""

import os

import pytest

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("HF_DATASETS_OFFLINE", "1")

pytest_plugins = ["pytester"]  # the plugin's end-to-end tests run pytest inside pytest

# Test modules whose items go to one xdist worker together. A module- or session-scoped fixture is built once per
# worker that runs one of the module's tests: tests/test_honest_gates.py's module audit (~2½ CPU-minutes) was
# built on both workers, and test_plugin_e2e's and test_verdicts' shared result caches were filled twice (each
# worker's first run computes the fragile and robust specs, ~15 s). test_honest_gates' `xdist_group` mark could not
# keep it on one: the plugin's scheduler (plugin/xdist.py) groups ordinary tests by xdist's `@group` node-id
# suffix, which workers no longer add (README, "xdist"), so every test was its own group. Grouping is decided
# here, on the controller, from the node id's file.
ONE_WORKER_MODULES = frozenset({"tests/test_honest_gates.py", "tests/test_plugin_e2e.py", "tests/test_verdicts.py"})


@pytest.hookimpl(tryfirst=True, optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    """The plugin's spec scheduler, with each module of ONE_WORKER_MODULES as one work unit."""
    if config.getvalue("dist") != "loadgroup":
        return None  # the plugin switches -n's `load` to `loadgroup`; any other --dist is left to xdist
    from freqrex_audit.plugin.xdist import spec_scheduler

    scheduler = spec_scheduler(config, log)
    split = scheduler._split_scope

    def split_scope(nodeid: str) -> str:
        path = nodeid.split("::", 1)[0]
        return f"module:{path}" if path in ONE_WORKER_MODULES else split(nodeid)

    scheduler._split_scope = split_scope
    return scheduler
