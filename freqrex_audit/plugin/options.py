"""The pytest plugin's options (command line and ini) and the per-process state they configure.

Split from :mod:`freqrex_audit.plugin.hooks` (collection, items, session end) along that seam; the
plugin module re-exports :func:`pytest_addoption` so pytest finds the hook there.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from ..runtime import values
from ..runtime.paths import user_path

MARKERS = {
    "model": "freqrex_model",
    "accuracy": "freqrex_accuracy",
    "sufficiency": "freqrex_sufficiency",
    "necessity": "freqrex_necessity",
    "completeness": "freqrex_completeness",
    "fourier_attack": "freqrex_attack",
    "peer_attack": "freqrex_peer",
    "stft_attack": "freqrex_stft",
    "composition": "freqrex_composition",
    "transferability": "freqrex_transfer",
    "explainers": "freqrex_explainers",
    "faithfulness": "freqrex_faithfulness",
    "regression": "freqrex_regression",
}
MARKER_HELP = {
    "freqrex_model": "FreqReX audit: the model loads and its labels match the dataset",
    "freqrex_accuracy": "FreqReX audit: accuracy on the spec's dataset",
    "freqrex_sufficiency": "FreqReX audit: sufficient subsets are valid and small enough",
    "freqrex_necessity": "FreqReX audit: necessary subsets are valid",
    "freqrex_completeness": "FreqReX audit: complete subsets are valid",
    "freqrex_attack": "FreqReX audit: Fourier attack (Alg 2) resistance",
    "freqrex_stft": "FreqReX audit: STFT attack (Alg 3) resistance",
    "freqrex_composition": "FreqReX audit: sufficient composition ratios",
    "freqrex_transfer": "FreqReX audit: transferability toward peer models",
    "freqrex_explainers": "FreqReX audit: other explainers (L-MAC, latent space) computed on the clips",
    "freqrex_faithfulness": "FreqReX audit: an explainer's faithfulness (AI, AD, AG, FF, Fid-In) gates",
    "freqrex_regression": "FreqReX audit: no regression against a saved baseline",
}
STATE = pytest.StashKey["_State"]()


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("freqrex", "FreqReX audit (model specs)")
    group.addoption("--freqrex-device", default=None, help="device for the models: auto (default), cpu, cuda…")
    group.addoption("--freqrex-devices", default=None, metavar="LIST",
                    help="devices handed out round-robin to xdist workers (gw0, gw1 …), e.g. cuda:0,cuda:1 "
                         "(default: every visible CUDA device, else --freqrex-device)")
    group.addoption("--freqrex-samples", default=None, help="at most N clips per spec (overrides dataset.limit)")
    group.addoption("--freqrex-seed", default=None, help="seed for every spec (overrides freqrex.seed)")
    group.addoption("--freqrex-report", default=None, metavar="DIR", help="where runs are written (default reports/)")
    group.addoption("--freqrex-cache", default=None, metavar="DIR", help="result cache (default .freqrex_cache/)")
    group.addoption("--freqrex-no-cache", action="store_true", default=None, help="compute everything afresh")
    group.addoption("--freqrex-save", default=None, metavar="NAME",
                    help="save this run's metrics as baseline NAME (only a complete, passing, unfiltered run)")
    group.addoption("--freqrex-save-force", default=None, metavar="WHY",
                    help="save the baseline even from a failing, filtered or incomplete run; WHY is recorded")
    group.addoption("--freqrex-compare", default=None, metavar="NAME", help="add regression items against baseline NAME")
    group.addoption("--freqrex-compare-fail", action="append", default=None, metavar="RULE",
                    help="regression rule, e.g. 'fourier_attack.success_rate:+5%%' (repeatable)")
    group.addoption("--freqrex-no-report", action="store_true", default=False,
                    help="write results.json only, not the HTML report")
    group.addoption("--freqrex-progress", choices=("auto", "always", "never"), default="auto",
                    help="live per-spec line (clips, queries, ETA): auto = on a TTY and not under -q")
    group.addoption("--freqrex-keep", default=None, metavar="N",
                    help="keep the N newest run folders under the report folder (default 20; 0 keeps all)")
    group.addoption("--freqrex-deadline", default=None, metavar="SECONDS",
                    help="session deadline: after SECONDS (from the session's start) no new model work starts; "
                         "items not measured are interrupted and pytest exits 2 (interrupted)")
    group.addoption("--freqrex-threads", default=None, metavar="N",
                    help="torch CPU threads per process (default: the cores shared among xdist workers); the "
                         "same N gives bit-identical results serial and under -n")
    parser.addini("freqrex_device", "default for --freqrex-device", default="auto")
    parser.addini("freqrex_threads", "default for --freqrex-threads ('': cores // workers)", default="")
    parser.addini("freqrex_deadline", "default for --freqrex-deadline ('' : none)", default="")
    parser.addini("freqrex_devices", "default for --freqrex-devices", default="")
    parser.addini("freqrex_specs", "folders holding model specs: bare names match a folder of that name anywhere, "
                  "paths are relative to the ini file", type="args", default=["model_specs"])
    parser.addini("freqrex_keep", "default for --freqrex-keep", default="20")
    parser.addini("freqrex_samples", "default for --freqrex-samples", default="")
    parser.addini("freqrex_seed", "default for --freqrex-seed", default="")
    parser.addini("freqrex_report", "default for --freqrex-report", default="reports")
    parser.addini("freqrex_cache", "default for --freqrex-cache ('' disables the cache)", default=".freqrex_cache")
    parser.addini("freqrex_compare_fail", "default --freqrex-compare-fail rules", type="linelist", default=[])
    parser.addini("freqrex_baseline_dir", "where --freqrex-save/--freqrex-compare keep baselines",
                  default=".freqrex/baselines")
    parser.addini("freqrex_loadgroup", "switch xdist --dist load to loadgroup (keeps a spec on one worker)",
                  type="bool", default=True)
    parser.addini("freqrex_xdist_groups", "test files (globs from the rootdir) whose tests run on one xdist worker "
                  "together, as xdist_group marks no longer group under pytest 9.2", type="linelist", default=[])


VALUE_OPTIONS = ("--freqrex-report", "--freqrex-cache", "--freqrex-save", "--freqrex-save-force", "--freqrex-compare",
                 "--freqrex-compare-fail", "--freqrex-device", "--freqrex-devices", "--freqrex-samples",
                 "--freqrex-seed", "--freqrex-keep", "--freqrex-deadline", "--freqrex-threads")
"""This plugin's options that take a value."""


def check_spaced_values(config: pytest.Config) -> None:
    """``--freqrex-report DIR`` (a space, not ``=``): pytest picks its rootdir and ini file before any plugin's
    options are known, so an existing DIR there is read as a test path and can move the rootdir (a run that
    collects nothing, exit 5). When it did, stop with a usage error that says so and how to write it; when it
    did not, the option works as with ``=``."""
    args = [str(a) for a in config.invocation_params.args]
    spaced = [(a, b) for a, b in zip(args, args[1:]) if a in VALUE_OPTIONS and Path(b).exists()]
    if not spaced:
        return
    try:
        from _pytest.config.findpaths import determine_setup

        rootpath, inipath = determine_setup(
            inifile=config.option.inifilename, override_ini=config.option.override_ini,
            args=[str(a) for a in config.option.file_or_dir or []], rootdir_cmd_arg=config.option.rootdir or None,
            invocation_dir=config.invocation_params.dir)[:2]
    except Exception:  # noqa: BLE001 - another pytest's internals: no check rather than a false alarm
        return
    if (Path(rootpath), inipath and Path(inipath)) == (Path(config.rootpath), config.inipath and Path(config.inipath)):
        return
    option, value = spaced[0]
    raise pytest.UsageError(
        f"{option} {value}: pytest read {value} as a test path while choosing its rootdir (before this plugin's "
        f"options are known), so the rootdir became {config.rootpath} instead of {rootpath}; write {option}={value} "
        f"(with '='), or set {option[2:].replace('-', '_')} in the ini file")


class _State:
    """Per-process plugin state: options, the run folder, computed results."""

    def __init__(self, config: pytest.Config):
        self.config = config
        root = config.rootpath

        def opt(name: str, ini: str) -> Any:
            value = config.getoption(name)
            return value if value is not None else config.getini(ini)

        def where(value: str) -> Path:
            path = user_path(value)
            return path if path.is_absolute() else root / path

        self.device = str(opt("freqrex_device", "freqrex_device") or "auto")
        self.devices = _devices(str(opt("freqrex_devices", "freqrex_devices") or ""))
        _check_executor()
        self.threads = _checked(values.positive_int, opt("freqrex_threads", "freqrex_threads"),
                                "--freqrex-threads / freqrex_threads")
        self.samples = _checked(values.positive_int, opt("freqrex_samples", "freqrex_samples"),
                                "--freqrex-samples / freqrex_samples")
        self.seed = _checked(values.seed, opt("freqrex_seed", "freqrex_seed"), "--freqrex-seed / freqrex_seed")
        self.report_root = where(str(opt("freqrex_report", "freqrex_report")))
        cache = opt("freqrex_cache", "freqrex_cache")
        self.cache_dir = None if config.getoption("freqrex_no_cache") or not cache else where(str(cache))
        self.no_report = bool(config.getoption("freqrex_no_report"))
        self.keep = _checked(values.non_negative_int, opt("freqrex_keep", "freqrex_keep"),
                             "--freqrex-keep / freqrex_keep") or 0
        self.save = config.getoption("freqrex_save")
        self.save_force = config.getoption("freqrex_save_force")
        self.compare = config.getoption("freqrex_compare")
        self.baseline_dir = where(str(config.getini("freqrex_baseline_dir")))
        rules = config.getoption("freqrex_compare_fail") or config.getini("freqrex_compare_fail") or []
        self.rules: list = []
        if self.compare:
            from ..runs.baselines import DEFAULT_RULES, RuleError, parse_rule

            try:
                self.rules = [parse_rule(r) for r in (rules or DEFAULT_RULES)]
            except RuleError as exc:
                raise pytest.UsageError(str(exc)) from None
        workerinput = getattr(config, "workerinput", None)
        self.is_worker = workerinput is not None
        self.workers = int(workerinput.get("workercount", 1)) if self.is_worker else 1
        n = getattr(config.option, "numprocesses", None)
        self.controller_of = n if isinstance(n, int) and n > 0 and not self.is_worker else 0  # xdist workers led
        from ..runtime.devices import worker_index

        self.worker_id = str(workerinput.get("workerid", "")) if self.is_worker else ""
        self.worker_index = worker_index(self.worker_id)
        self.relay_progress = bool(workerinput.get("freqrex_progress")) if self.is_worker else False
        if self.is_worker and "freqrex_run_id" in workerinput:
            run_id, started = workerinput["freqrex_run_id"], workerinput["freqrex_started"]
        else:
            from ..runs.folders import new_run_id

            run_id, started = new_run_id(self.report_root), time.time()
        from ..session import AuditSession

        self.session = AuditSession(self.report_root, run_id, self.cache_dir, self.device, self.samples, self.seed,
                                    started)
        self.deadline = _checked(values.positive_seconds, opt("freqrex_deadline", "freqrex_deadline"),
                                 "--freqrex-deadline / freqrex_deadline")
        self.session.start_deadline(self.deadline)  # workers count from the controller's start too
        if self.deadline is not None:
            config.pluginmanager.register(DeadlineWatch(), "freqrex_deadline_watch")
        self.run_dir = self.session.run_dir
        self.parts_dir = self.run_dir / "parts"
        self.report_problem: str | None = None  # why reports cannot be written ('' when they can)
        self.spec_errors = 0  # this process's collection errors (hidden from the test loop's count)
        self.errors: dict[str, str] = {}  # spec file → why it did not load (every process's, on the controller)
        self.ran: dict[str, str] = {}  # item nodeid → pytest's outcome
        self.total = 0  # spec items selected for the run
        self.selected: set[str] = set()  # spec items selected for the run (item ids)
        self.planned: set[str] = set()  # spec files with selected items (run.unfinished: those with no results)
        self.results_path: Path | None = None
        self.report_path: Path | None = None

    @property
    def run_id(self) -> str:
        return self.session.run_id

    @property
    def started(self) -> float:
        return self.session.started

    @property
    def cache(self):
        return self.session.cache

    def share_machine(self) -> None:
        """This process's device: ``devices[worker index mod len]`` (gw0 takes the first); without a device
        list, every visible CUDA device when the device is auto / cuda, else the device. Under xdist the
        worker also takes its share of the CPU cores for torch (cores // workers, at least 1)."""
        if getattr(self, "_shared", False):
            return
        self._shared = True
        from ..runtime.devices import default_devices, device_for

        if self.devices:
            self.device = device_for(self.devices, self.worker_index)
        elif self.is_worker:
            self.device = device_for(default_devices(self.device), self.worker_index)
        self.session.device = self.device
        if self.is_worker or self.threads:
            self._set_torch_threads(self.workers)

    def match_worker_threads(self) -> None:
        """On the xdist controller, before it synthesises the waveform sidecar from the workers' results: the
        workers' torch thread count, so the files are bit for bit the signals the workers measured (CPU FFT
        rounding depends on the thread count)."""
        if self.controller_of:
            self._set_torch_threads(self.controller_of)

    def _set_torch_threads(self, workers: int) -> None:
        """``--freqrex-threads`` when given, else this process's share of the cores among ``workers``."""
        import os

        import torch

        torch.set_num_threads(self.threads or max(1, (os.cpu_count() or 1) // max(1, workers)))

    def use_import_folders(self) -> None:
        """The one import rule (:mod:`freqrex_audit.runtime.imports`): the rootdir and the ini's ``pythonpath``
        appended to ``sys.path`` (pytest has already put ``pythonpath`` ahead; it stays where pytest put it)."""
        if getattr(self, "_imports_done", False):
            return
        self._imports_done = True
        from ..runtime.imports import import_folders, use_folders

        use_folders(import_folders(rootdir=self.config.rootpath,
                                   pythonpath=[str(p) for p in self.config.getini("pythonpath") or []]))

    def where_to_look(self) -> str:
        return str(self.run_dir.relative_to(self.config.rootpath) if self.run_dir.is_relative_to(self.config.rootpath)
                   else self.run_dir)


class DeadlineWatch:
    """Registered with a session deadline: the deadline belongs to this session only. Items keep running
    after it passes (a spec not started computes nothing: :func:`freqrex_audit.audit.run.run_spec` checks it), so
    measured items keep their verdicts; the session's end turns the exit status to INTERRUPTED."""

    def pytest_unconfigure(self, config: pytest.Config) -> None:
        from ..runtime import deadline

        deadline.clear()  # pytester runs several sessions in one process


def _checked(parse: Any, value: Any, names: str) -> Any:
    """An option's value through the check the CLI uses too (:mod:`freqrex_audit.runtime.values`); None when
    unset; a usage error naming the option and its ini twin otherwise."""
    from ..runtime.values import optional

    try:
        return optional(parse, value)
    except ValueError as exc:
        raise pytest.UsageError(f"{names}: {exc}") from None


def _check_executor() -> None:
    """``FREQREX_EXECUTOR`` and its settings, read as every spec will read them: one that cannot work (Ray not
    installed, an address that does not parse or where nothing answers, a bad count or device) is a usage
    error now, not the same traceback in every item. Nothing is started (joining a Ray cluster and checking
    its nodes is the first spec's business), and nothing heavy is imported unless an executor is asked for."""
    import os

    if os.environ.get("FREQREX_EXECUTOR", "serial").strip() in ("", "serial"):
        return
    from ..audit.executors import executor_from_environment

    try:
        executor = executor_from_environment()
        check = getattr(executor, "check", None)
        if callable(check):
            check()
    except ValueError as exc:  # ExecutorError, DeviceError
        raise pytest.UsageError(f"FREQREX_EXECUTOR={os.environ['FREQREX_EXECUTOR']}: {exc}") from None


def _devices(text: str) -> list[str] | None:
    """``--freqrex-devices`` checked against this machine (a clear usage error naming the bad device)."""
    if not text.strip():
        return None
    from ..runtime.devices import DeviceError, parse_devices

    try:
        return parse_devices(text)
    except DeviceError as exc:
        raise pytest.UsageError(f"--freqrex-devices: {exc}") from None
