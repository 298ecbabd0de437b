"""pytest plugin: collects model specs (``model_specs/*.yaml``) into FreqReX audit test items.

* Every ``*.yaml`` / ``*.yml`` under a directory named ``model_specs`` (and any spec file named on the
  command line) becomes one collector; its items are ``<spec file>::<check>[<sample id or aggregate>]``
  with a marker per check (``-m freqrex_attack``…). A broken spec is one collection error naming the
  file and the key; the other specs still run (the run still exits non-zero).
* A spec's results are computed once, on its first item, and reused by its other items. Under
  pytest-xdist ``--dist load`` (what ``-n N`` uses) is switched to ``--dist loadgroup``, served by a
  scheduler that groups items by spec file, so a spec's items (and its model) stay on one worker.
  (``freqrex_loadgroup = false`` in the ini file turns the switch off.) Each worker takes its share of the
  cores and its device (``--freqrex-devices``), relays its progress to the controller's terminal, and
  computes a spec's peers before the spec, coordinated with the other workers (:mod:`.plugin_xdist`).
* Whichever process computes a spec writes its part into ``<report>/<run-id>/parts/``; the controller
  (or the only process) merges the parts at session end into ``results.json`` + ``results.npz``, renders
  the HTML report (and the runs index ``reports/index.html``), and prints the path.
* Each item's outcome comes from :func:`freqrex_audit.audit.gates.evaluate` (passed, failed, not_measured,
  skipped); the controller records pytest's own outcome of every item and the spec files that did not
  collect, and :func:`freqrex_audit.runs.write.finalize` marks what did not run as deselected / interrupted
  and derives the run's verdict, so results.json, the report, the index and JUnit's testsuite properties
  (:mod:`.plugin_run`) say what pytest said.
* ``--freqrex-save NAME`` stores the metrics as a baseline (refused from a failing, filtered or
  incomplete run unless ``--freqrex-save-force WHY``), ``--freqrex-compare NAME`` adds
  ``regression[<check.metric>]`` items checked with ``--freqrex-compare-fail`` rules.

Nothing heavy is imported until a spec is collected, so the plugin is harmless in other projects.
"""

from __future__ import annotations

import shutil
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytest

from ..specs.discovery import SPEC_SUFFIXES, in_spec_dir
from .nodeids import is_spec_nodeid, item_id, spec_file
from .options import (MARKER_HELP, MARKERS, STATE, _State, check_spaced_values,  # noqa: F401
                      pytest_addoption)  # pytest finds the hook here


def pytest_configure(config: pytest.Config) -> None:
    for name, text in MARKER_HELP.items():
        config.addinivalue_line("markers", f"{name}: {text}")
    config.addinivalue_line("markers", "xdist_group(name): the spec items' group under pytest-xdist (registered "
                                       "here too, so -p no:xdist warns of no unknown mark)")
    check_spaced_values(config)
    config.stash[STATE] = _State(config)
    config.pluginmanager.register(_Recorder(config.stash[STATE]), "freqrex_recorder")
    if config.pluginmanager.hasplugin("xdist"):
        from .xdist import XdistHooks, use_loadgroup

        use_loadgroup(config)

        config.pluginmanager.register(XdistHooks(config.stash[STATE]), "freqrex_xdist")




def pytest_collection_finish(session: pytest.Session) -> None:
    state: _State | None = session.config.stash.get(STATE, None)
    if state is not None and not state.is_worker:
        state.total = max(state.total, sum(is_spec_nodeid(i.nodeid) for i in session.items))
        state.selected |= {item_id(i.nodeid) for i in session.items if is_spec_nodeid(i.nodeid)}
        state.planned |= {spec_file(i) for i in state.selected}



class _Recorder:
    """pytest's own view of the run, kept for results.json: which spec items ran with which outcome (on
    the controller, xdist workers' reports included) and which spec files did not load."""

    def __init__(self, state: _State):
        self.state = state

    def pytest_collectreport(self, report: pytest.CollectReport) -> None:
        if report.failed and is_spec_nodeid(report.nodeid):
            text = str(report.longrepr).strip()
            self.state.errors.setdefault(report.nodeid, text.splitlines()[-1] if text else "collection error")

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if not is_spec_nodeid(report.nodeid):
            return
        if report.when == "call" or (report.when == "setup" and (report.failed or report.skipped)):
            self.state.ran[item_id(report.nodeid)] = "error" if report.failed and report.when != "call" else report.outcome
        elif report.when == "teardown" and report.failed:
            self.state.ran[item_id(report.nodeid)] = "error"




def _is_spec_file(file_path: Path, config: pytest.Config) -> bool:
    """The one discovery rule (:func:`freqrex_audit.specs.discovery.in_spec_dir`): a YAML file inside a ``freqrex_specs``
    folder, or named on the command line."""
    if file_path.suffix not in SPEC_SUFFIXES:
        return False
    root = config.inipath.parent if config.inipath else config.rootpath
    if in_spec_dir(file_path, config.getini("freqrex_specs"), root):
        return True
    invocation = config.invocation_params.dir
    for arg in config.args:
        named = Path(str(arg).split("::", 1)[0])
        named = named if named.is_absolute() else invocation / named
        try:
            if named.resolve() == file_path.resolve():
                return True
        except OSError:
            continue
    return False


def pytest_collect_file(file_path: Path, parent: pytest.Collector):
    if _is_spec_file(file_path, parent.config):
        from ..runtime.paths import shown_name

        node = SpecFile.from_parent(parent, path=file_path)
        if shown_name(node.nodeid) != node.nodeid:  # a non-UTF-8 file name: never put its raw bytes in a node id
            node = SpecFile.from_parent(parent, path=file_path, nodeid=shown_name(node.nodeid),
                                        name=shown_name(node.name))  # (JUnit and the terminal could not write it)
        return node
    return None


class GateFailure(Exception):
    """A gate or per-sample check that did not hold; its message is the whole story."""


class SpecFile(pytest.File):
    """One model spec: collects its items, computes its results once (on the first item)."""

    spec: Any = None
    _result: Any = None

    def collect(self):
        from ..specs.safe_yaml import SpecError

        state: _State = self.config.stash[STATE]
        if state.report_problem is None:  # checked once, when the first spec is collected
            from ..runtime.paths import unwritable

            state.report_problem = unwritable(state.report_root, "report") or ""
        if state.report_problem:
            raise pytest.UsageError(f"freqrex: {state.report_problem}; set --freqrex-report DIR")
        state.use_import_folders()
        try:
            self.spec = state.session.load(self.path, self.nodeid)
            try:
                planned = state.session.plan(self.spec)
            except (OSError, ValueError) as exc:
                raise SpecError(self.nodeid, "dataset.path", str(exc)) from None
        except SpecError:
            state.spec_errors += 1
            raise
        items = planned + [("regression", rule.metric) for rule in state.rules]
        for check, key in items:
            # the node id is given whole so pytest >= 9 parses it as name + parameters, the way it parses
            # the ids --lf / --deselect read back (built from the name it would keep "check[key]" as a name)
            yield SpecItem.from_parent(self, name=f"{check}[{key}]", nodeid=f"{self.nodeid}::{check}[{key}]",
                                       check=check, key=key)

    def line_of(self, check: str) -> int:
        """0-based line of the spec's ``<check>:`` key (``model:`` for the model check, ``checks:`` for a
        regression item) — where a skip or failure of that check points. Always a line: a key written in flow
        style (``checks: {accuracy: …}``) points at its ``checks:`` line, an unreadable file at line 0 (a skip
        whose item has no line crashed pytest itself: INTERNALERROR in reports.py)."""
        import re

        key = {"model": "model", "regression": "checks"}.get(check, check)
        try:
            lines = self.path.read_text(encoding="utf-8-sig", errors="replace").splitlines()
        except OSError:
            return 0
        for name in (key, "checks"):
            found = re.compile(rf"^\s*{re.escape(name)}\s*:|[{{,]\s*{re.escape(name)}\s*:")
            line = next((i for i, text in enumerate(lines) if found.search(text)), None)
            if line is not None:
                return line
        return 0

    def repr_failure(self, excinfo):
        from ..specs.safe_yaml import SpecError

        if excinfo.errisinstance(SpecError):
            return str(excinfo.value)
        return super().repr_failure(excinfo)

    def result(self, item: pytest.Item | None = None):
        """The spec's results, computed on the first call (``item``: the item asking, whose reports carry the
        progress to the xdist controller)."""
        if self._result is None:
            from .xdist import claims_for, compute_peers_first
            from ..runs.write import save_part, spec_part
            from ..audit.stages import stages_for

            state: _State = self.config.stash[STATE]
            state.share_machine()
            mine = [(i.check, i.key) for i in self.session.items if isinstance(i, SpecItem) and i.parent is self]
            stages = stages_for(mine)
            claims = claims_for(state)
            if claims is not None and "cross" in stages and "transferability" in self.spec.checks:
                compute_peers_first(self.spec, state.session, claims, lambda peer: _progress(
                    self.config, f"{peer} (peer of {self.spec.name})", item))
            line = _progress(self.config, self.spec.name, item)
            try:
                with claims.hold(self.spec.name) if claims is not None else nullcontext():
                    result = state.session.run(self.spec, stages=stages, progress=line, progress_for=lambda name: (
                        _progress(self.config, name, item)))
            finally:
                if line is not None:
                    line.close()
            result.verdicts += _regressions(state, result)
            arrays: dict = {}
            save_part(state.parts_dir, spec_part(result, self.nodeid, arrays), arrays)
            self._result = result
        return self._result


def _progress(config: pytest.Config, name: str, item: pytest.Item | None):
    """The spec's progress callback: a line in pytest's terminal (live on a TTY, plain every 10 s of work
    otherwise), relayed reports on an xdist worker (when the controller shows progress), or None (-q, never).
    It is written through pytest's terminal writer with output capture suspended, as pytest's own live
    logging is, so plain ``pytest`` (capturing) shows it too, and never into a test's captured output."""
    from .xdist import ProgressRelay, progress_mode
    from ..runtime.progress import LiveLine

    state: _State = config.stash[STATE]
    if state.is_worker:
        where = f"{state.worker_id} {state.device}".strip()
        return ProgressRelay(item, name, where) if state.relay_progress and item is not None else None
    mode = progress_mode(config)
    if mode is None:
        return None
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    capture = config.pluginmanager.get_plugin("capturemanager")

    ours = [False]  # live: the terminal's current line is our own (rewritten with \r)

    def write(text: str) -> None:
        with capture.global_and_fixture_disabled() if capture is not None else nullcontext():
            if reporter._tw.width_of_current_line and not ours[0]:
                reporter.write("\n")  # pytest is mid-line ("model_specs/x.yaml ..."): start a new one
            reporter.write(text, flush=True)
            ours[0] = mode == "live" and not text.endswith("\n")

    return LiveLine(name, write, plain=mode == "plain")



def _regressions(state: _State, result) -> list:
    from ..runs.baselines import regression_verdicts

    if not state.rules:
        return []
    from ..runs.baselines import annotate_gates

    annotate_gates(result, state.baseline_dir / f"{state.compare}.json")
    return regression_verdicts(state.rules, result, state.baseline_dir / f"{state.compare}.json", state.compare)


class SpecItem(pytest.Item):
    def __init__(self, *, check: str, key: str, **kwargs: Any):
        super().__init__(**kwargs)
        self.check = check
        self.key = key
        self.add_marker(MARKERS[check])
        self.add_marker(pytest.mark.xdist_group(self.parent.spec.name))

    def runtest(self) -> None:
        state: _State = self.config.stash[STATE]
        result = self.parent.result(self)
        verdict = result.verdict(self.check, self.key)
        if verdict is None:
            raise GateFailure(f"{item_id(self.nodeid)}: no verdict was computed (did the dataset change during the run?)")
        props = self.user_properties
        for gate in verdict.gates:  # JUnit properties: only values that exist (a missing one is no "None")
            name = f"{self.check}.{gate['metric']}"
            props += [(key, value) for key, value in ((name, gate["value"]), (f"{name}.threshold", gate["threshold"]),
                                                      (f"{name}.baseline", gate.get("baseline")),
                                                      (f"{name}.delta", gate.get("delta"))) if value is not None]
        props.append(("freqrex_report", state.where_to_look()))
        if verdict.measured:
            props.append(("freqrex.measured", verdict.measured))
        props.append(("freqrex.outcome", verdict.outcome))
        if verdict.outcome == "xfailed":  # a declared weakness, measured: pytest's own xfail
            raise pytest.xfail.Exception(verdict.message)
        if verdict.passed is None:  # the skip points at the spec's line, not into the plugin
            raise pytest.skip.Exception(verdict.message, _use_item_location=True)
        if not verdict.passed:
            shown = "NOT MEASURED: " if verdict.outcome == "not_measured" else ""
            raise GateFailure(f"{result.name}: {shown}{verdict.message}\n"
                              f"report: {state.where_to_look()}/ (results.json: specs.{result.name}, "
                              f"gates with item {item_id(self.nodeid)!r})")

    def repr_failure(self, excinfo, style=None):
        if excinfo.errisinstance(GateFailure):
            return str(excinfo.value)
        return super().repr_failure(excinfo, style)

    def reportinfo(self):
        from ..runtime.paths import shown_name

        return Path(shown_name(self.path)), self.parent.line_of(self.check), f"{self.parent.spec.name}::{self.name}"


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtestloop(session: pytest.Session):
    """A broken spec is a collection error, but it must not stop the other specs from running."""
    state: _State | None = session.config.stash.get(STATE, None)
    hidden = state.spec_errors if state and not session.config.option.continue_on_collection_errors else 0
    session.testsfailed -= hidden
    try:
        return (yield)
    finally:
        session.testsfailed += hidden


@pytest.hookimpl(tryfirst=True)  # before junitxml writes its file, so the run's verdict goes into it
def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    state: _State | None = session.config.stash.get(STATE, None)
    if state is None or state.is_worker or state.report_problem:  # nowhere to write: the error says so
        return
    if session.config.option.collectonly:  # nothing ran: no run folder
        return
    if not state.parts_dir.is_dir() and not state.errors and not state.total:  # no spec in this session
        return
    from ..runs.write import load_parts
    from .run_facts import filtered, junit_properties

    parts, arrays = load_parts(state.parts_dir)
    if not parts and not state.errors and not state.total:
        return

    def before_write(doc: dict) -> None:
        stopped = doc["run"]["deadline"]
        if stopped and stopped["hit"]:  # never green: pytest's exit status says interrupted, as after Ctrl-C
            state.deadline_line = f"{stopped['message']}; {doc['run']['summary']}"
            session.exitstatus = pytest.ExitCode.INTERRUPTED
        junit_properties(session.config, doc)
        state.match_worker_threads()  # the sidecar's signals, synthesised with the workers' thread count

    errors = [{"spec_file": f, "message": m} for f, m in sorted(state.errors.items())]
    state.results_path, doc = state.session.write(
        parts, arrays, errors=errors, total=state.total, interrupted=exitstatus == pytest.ExitCode.INTERRUPTED,
        planned=sorted(state.planned), ran=state.ran, filtered=filtered(session.config),
        selected=state.selected or None, before_write=before_write)
    shutil.rmtree(state.parts_dir, ignore_errors=True)
    state.report_path = state.results_path
    from ..runs.folders import prune_runs

    state.pruned = prune_runs(state.report_root, state.keep, state.run_dir)
    report, problems = state.session.render(state.results_path, report_too=not state.no_report)
    state.report_path = report or state.results_path
    state.report_error = "; ".join(problems) or None
    if state.save:
        from ..runs.baselines import BaselineRefused, save_baseline

        try:
            state.saved_baseline = save_baseline(state.baseline_dir / f"{state.save}.json", doc, state.save,
                                                 force=state.save_force)
        except BaselineRefused as exc:
            state.baseline_refused = str(exc)
            if session.exitstatus == pytest.ExitCode.OK:
                session.exitstatus = pytest.ExitCode.USAGE_ERROR


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    state: _State | None = config.stash.get(STATE, None)
    if state is None or state.results_path is None:
        return
    terminalreporter.write_sep("-", "freqrex audit")
    terminalreporter.write_line(f"freqrex results: {state.results_path}")
    if state.report_path != state.results_path:
        terminalreporter.write_line(f"freqrex report: {state.report_path}")
    if getattr(state, "deadline_line", None):
        terminalreporter.write_line(f"freqrex DEADLINE: {state.deadline_line}")
    if getattr(state, "report_error", None):
        terminalreporter.write_line(f"freqrex {state.report_error}")
    if getattr(state, "saved_baseline", None):
        terminalreporter.write_line(f"freqrex baseline saved: {state.saved_baseline}")
    if getattr(state, "baseline_refused", None):
        terminalreporter.write_line(f"freqrex baseline NOT saved: {state.baseline_refused}")
