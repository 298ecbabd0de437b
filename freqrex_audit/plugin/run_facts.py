"""What the pytest session knows about the run as a whole, for results.json and pytest's JUnit file:
whether a selection left items out (``run.filtered``), and the run's verdict as JUnit testsuite properties."""

from __future__ import annotations

import pytest

__all__ = ["filtered", "junit_properties"]


def filtered(config: pytest.Config) -> bool:
    """-m, -k, --deselect, node ids or a --lf that had failures to rerun narrowed the run: its figures do not
    speak for the whole suite (finalize adds any item that was computed but not selected). A --lf with no
    known failures among the collected items runs everything, so it is not a filter."""
    opt = config.option
    narrowed = any("::" in str(a) for a in config.args)
    return bool(getattr(opt, "markexpr", "") or getattr(opt, "keyword", "") or lf_narrowed(config)
                or getattr(opt, "deselect", None) or narrowed)


def lf_narrowed(config: pytest.Config) -> bool:
    """--lf / --last-failed left something out: pytest's cache plugin says so in its status line ("rerun
    previous N failures"); no status (an xdist controller, which does not collect) counts as narrowed."""
    if not getattr(config.option, "lf", False):
        return False
    plugin = config.pluginmanager.get_plugin("lfplugin")
    status = getattr(plugin, "_report_status", None)
    skipped_files = getattr(plugin, "_skipped_files", 0)
    return status is None or "rerun previous" in status or "deselecting all" in status or bool(skipped_files)


def junit_properties(config: pytest.Config, doc: dict) -> None:
    """The run's verdict as testsuite properties of pytest's JUnit file (--junitxml), so a CI reading JUnit
    alone sees an interrupted, filtered or erroring run as results.json and the report do."""
    from _pytest.junitxml import xml_key

    xml = config.stash.get(xml_key, None)
    if xml is None:
        return
    from ..audit.records import RUN_SHOWN

    run = doc["run"]
    for name, value in (("freqrex.verdict", run["verdict"]), ("freqrex.shown", RUN_SHOWN[run["verdict"]]),
                        ("freqrex.summary", run["summary"]), ("freqrex.complete", run["complete"]),
                        ("freqrex.filtered", run["filtered"]), ("freqrex.specs_not_loaded", len(doc["errors"]))):
        xml.add_global_property(name, value)
