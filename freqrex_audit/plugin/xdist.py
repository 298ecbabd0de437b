"""pytest-xdist glue: what the controller hands every worker, live progress relayed from the workers to the
controller's terminal, and specs shared between workers instead of computed twice.

* **Progress.** A worker cannot write to the terminal. While it computes a spec it sends the counts (clips
  done / total, queries, seconds) after every clip as a pytest report of its own phase (``when ==
  "freqrex_progress"``), through the one channel xdist forwards: ``pytest_runtest_logreport``. The
  controller turns them into its :class:`~freqrex_audit.runtime.progress.Board` (the only writer, from pytest's own
  thread) and reports them to nobody else (no status letter, no JUnit entry, no outcome).
* **Shared specs.** A spec with transferability needs its peers' results. Computed inside each worker's run,
  two workers would compute the same peer at the same time (the demo's four instrument specs each name the
  other three). So a worker first computes its peers itself, one file lock (*claim*) per spec in the run
  folder: a peer that another worker is computing is waited for and then read from the shared cache.
  A worker holds at most one claim at a time, so claims cannot deadlock.
"""

from __future__ import annotations

import time
from contextlib import contextmanager
from fnmatch import fnmatch
from pathlib import Path
from typing import Any, Iterator

import pytest

from .nodeids import is_spec_nodeid, item_id, spec_file

PROGRESS_WHEN = "freqrex_progress"
PROGRESS_KEY = "freqrex_progress"


def progress_mode(config: pytest.Config) -> str | None:
    """The one rule for showing progress, read on the process that owns the terminal: ``"live"`` (a line
    rewritten in place) with ``--freqrex-progress always`` or on a TTY, ``"plain"`` (a whole line at least every
    10 s of work) when ``auto`` writes to a file or pipe (a CI log), None with ``never`` or ``-q``."""
    mode = config.getoption("freqrex_progress")
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    if mode == "never" or reporter is None:
        return None
    if mode == "always":
        return "live"
    if config.get_verbosity() < 0:
        return None
    return "live" if reporter.isatty() else "plain"


def progress_wanted(config: pytest.Config) -> bool:
    """Whether progress is shown at all (:func:`progress_mode`)."""
    return progress_mode(config) is not None


class ProgressRelay:
    """A worker's progress callback for one spec: each call becomes a progress report of ``item`` (the item
    computing the spec), which xdist forwards to the controller."""

    def __init__(self, item: pytest.Item, name: str, where: str):
        self.item, self.name, self.where = item, name, where
        self.started = self.sent = time.monotonic()
        self.counts = (0, 0)

    def tick(self, queries: int) -> None:
        """Between clips (a long clip): the latest counts, at most once a second."""
        if self.counts[1] and time.monotonic() - self.sent >= 1.0:
            self(self.counts[0], self.counts[1], queries)

    def __call__(self, done: int, total: int, queries: int) -> None:
        self.counts, self.sent = (done, total), time.monotonic()
        counts = {"name": self.name, "done": done, "total": total, "queries": queries,
                  "elapsed": time.monotonic() - self.started, "where": self.where}
        report = pytest.TestReport(nodeid=self.item.nodeid, location=self.item.location, keywords={},
                                   outcome="passed", longrepr=None, when=PROGRESS_WHEN,  # type: ignore[arg-type]
                                   user_properties=[(PROGRESS_KEY, counts)], duration=0.0)
        self.item.ihook.pytest_runtest_logreport(report=report)

    def close(self) -> None:
        """Nothing to end: the controller ends a spec's line when its last clip is reported."""


def is_progress(report: Any) -> bool:
    return getattr(report, "when", None) == PROGRESS_WHEN


def use_loadgroup(config: pytest.Config) -> None:
    """``-n N`` (xdist's ``--dist load``) becomes ``--dist loadgroup``, which :meth:`XdistHooks.
    pytest_xdist_make_scheduler` serves with :func:`spec_scheduler` (``freqrex_loadgroup = false`` keeps load)."""
    if getattr(config.option, "dist", "no") == "load" and config.getini("freqrex_loadgroup"):
        config.option.dist = "loadgroup"


def spec_scheduler(config: pytest.Config, log: Any) -> Any:
    """xdist's loadgroup scheduler with one group per spec file (all of a spec's items go to one worker) and
    one per test file named by the ``freqrex_xdist_groups`` ini globs.

    xdist groups items by an ``@<group>`` suffix its workers append to their node ids from the
    ``xdist_group`` mark; with pytest >= 9.2 (node ids no longer read ``_nodeid``) and with a ``--dist`` that
    a plugin switched (workers parse the command line, which lacks it) that suffix is missing and every
    item would be its own group. Groups are recognised by their file instead."""
    from xdist.scheduler import LoadGroupScheduling

    files = [str(g) for g in config.getini("freqrex_xdist_groups")]

    class SpecGroupScheduling(LoadGroupScheduling):
        def _split_scope(self, nodeid: str) -> str:
            path = nodeid.split("::", 1)[0]
            if is_spec_nodeid(nodeid):
                return "freqrex-spec:" + path
            if any(fnmatch(path, glob) for glob in files):
                return "freqrex-file:" + path
            return super()._split_scope(nodeid)

    return SpecGroupScheduling(config, log)


class XdistHooks:
    """Registered only when pytest-xdist is present (controller and workers)."""

    def __init__(self, state: Any):
        self.state = state
        self.board = None

    # --- controller → workers ---------------------------------------------------------------------
    def pytest_configure_node(self, node: Any) -> None:
        node.workerinput["freqrex_run_id"] = self.state.run_id
        node.workerinput["freqrex_started"] = self.state.started
        node.workerinput["freqrex_progress"] = progress_wanted(self.state.config)

    def pytest_xdist_make_scheduler(self, config: pytest.Config, log: Any) -> Any:
        return spec_scheduler(config, log) if config.getvalue("dist") == "loadgroup" else None

    def pytest_xdist_node_collection_finished(self, node: Any, ids: list[str]) -> None:
        self.state.total = max(self.state.total, sum(is_spec_nodeid(i) for i in ids))
        self.state.selected |= {item_id(i) for i in ids if is_spec_nodeid(i)}
        self.state.planned |= {spec_file(i) for i in self.state.selected}

    # --- progress reports: nobody's outcome, the controller's board -------------------------------
    @pytest.hookimpl(tryfirst=True)
    def pytest_report_teststatus(self, report: Any, config: pytest.Config):
        if is_progress(report):
            return "", "", ""
        return None

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logreport(self, report: pytest.TestReport):
        if is_progress(report):
            if not self.state.is_worker:
                self._show(dict(report.user_properties).get(PROGRESS_KEY) or {})
        elif self.board is not None:
            self.board.commit()  # pytest writes next: its dot or line starts on a fresh line
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_runtest_logstart(self, nodeid: str, location: Any):
        if self.board is not None:
            self.board.commit()
        return (yield)

    @pytest.hookimpl(wrapper=True, tryfirst=True)
    def pytest_sessionfinish(self, session: pytest.Session):
        if self.board is not None:
            self.board.commit()
        return (yield)

    def _show(self, counts: dict) -> None:
        if self.board is None:
            reporter = self.state.config.pluginmanager.get_plugin("terminalreporter")
            if reporter is None:
                return
            from ..runtime.progress import Board

            writer = reporter._tw  # the terminal's own writer: its line bookkeeping stays true
            self.board = Board(lambda text: (writer.write(text), writer.flush()),
                               lambda: writer.width_of_current_line, lambda: writer.fullwidth,
                               plain=progress_mode(self.state.config) == "plain")
        try:
            self.board.update(str(counts["name"]), int(counts["done"]), int(counts["total"]),
                              int(counts["queries"]), float(counts["elapsed"]), str(counts.get("where", "")))
        except (KeyError, TypeError, ValueError):
            return  # not our counts (another plugin's report of that phase): nothing to show


# --- shared specs ----------------------------------------------------------------------------------

class SpecClaims:
    """One file lock per spec name under ``folder`` (the run folder, shared by the workers)."""

    def __init__(self, folder: Path):
        self.folder = folder

    @contextmanager
    def hold(self, name: str, wait: bool = True) -> Iterator[bool]:
        """Hold spec ``name``'s claim (True), or yield False when ``wait`` is off and another process holds it.
        Without ``fcntl`` (Windows) every claim is granted: workers may then compute a peer twice."""
        try:
            import fcntl
        except ImportError:
            yield True
            return
        self.folder.mkdir(parents=True, exist_ok=True)
        with open(self.folder / f"{name}.lock", "a+") as handle:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
            except BlockingIOError:
                yield False
                return
            try:
                yield True
            finally:
                fcntl.flock(handle, fcntl.LOCK_UN)


def compute_peers_first(spec: Any, session: Any, claims: SpecClaims, progress_for: Any = None) -> None:
    """Put every peer of ``spec`` in the shared cache before ``spec``'s own run reads them: free peers first
    (computed here), then those another worker holds (waited for, then read). Exactly the call
    transferability makes later, so that call finds everything cached. A peer that fails to load is left to
    that later call, which reports it. ``session``: the :class:`~freqrex_audit.session.AuditSession`."""
    from ..specs.loader import find_peer, load_spec

    peers = []
    for name in spec.peers:
        try:
            peers.append(load_spec(find_peer(spec, name)))
        except Exception:  # noqa: BLE001 - transferability says why, as that check's verdict
            continue
    for wait in (False, True):
        for peer in list(peers):
            with claims.hold(peer.name, wait) as held:
                if not held:
                    continue
                progress = progress_for(peer.name) if progress_for is not None else None
                try:
                    session.run(peer, cross=False, progress=progress)
                except Exception:  # noqa: BLE001 - as above
                    pass
                finally:
                    if progress is not None:
                        progress.close()
                peers.remove(peer)


def claims_for(state: Any) -> SpecClaims | None:
    """The run's claims when workers can share results (an xdist worker with the cache on), else None."""
    if not state.is_worker or state.cache_dir is None:
        return None
    return SpecClaims(state.parts_dir / "claims")  # removed with the parts when the run is assembled
