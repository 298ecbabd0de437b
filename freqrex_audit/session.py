"""One audit session, whichever front end drives it: ``freqrex-audit audit`` and the pytest plugin.

Both load specs under one name rule (two specs with one name are refused), count the items they plan,
start the session deadline, run each spec with the session's device, cache, clip limit and seed, write the
run folder (results.json + results.npz + the waveform sidecar) and render the report and the runs index.
Only how specs are found and how items are reported differ: the CLI prints, pytest collects items.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from .runtime import deadline
from .runtime.paths import shown_spec

__all__ = ["AuditSession"]


class AuditSession:
    """The settings and bookkeeping of one run: ``run_dir`` is ``report_root/run_id``; the cache is opened on
    first use (``cache_dir`` None: no cache). Nothing heavy is imported until a spec is loaded."""

    def __init__(self, report_root: Path, run_id: str, cache_dir: Path | None = None, device: str = "auto",
                 samples: int | None = None, seed: int | None = None, started: float | None = None):
        self.report_root, self.run_id = Path(report_root), run_id
        self.cache_dir, self.device, self.samples, self.seed = cache_dir, device, samples, seed
        self.started = time.time() if started is None else started
        self.names: dict[str, Path] = {}  # spec name → the file that has it
        self._cache = None
        self._scratch: tempfile.TemporaryDirectory | None = None  # the --no-cache run's own cache, removed with it

    @property
    def run_dir(self) -> Path:
        return self.report_root / self.run_id

    @property
    def cache(self) -> Any:
        """The result cache; without a cache folder (``--no-cache``) a scratch folder that lasts as long as the
        session: nothing is reused from or kept for other runs, but what this run computed is never computed twice
        in it (a spec's transferability peers, later audited as specs of their own, were computed up to four times
        in the demo without it)."""
        if self._cache is None:
            from .audit.cache import Cache

            if self.cache_dir is None:
                self._scratch = tempfile.TemporaryDirectory(prefix="freqrex-run-")
                self._cache = Cache(self._scratch.name, lasting=False)
            else:
                self._cache = Cache(self.cache_dir)
        return self._cache

    def start_deadline(self, seconds: float | None) -> None:
        """The session deadline counts from the session's start (xdist workers pass the controller's)."""
        deadline.start(seconds, self.started)

    def load(self, path: Path, shown: str | None = None) -> Any:
        """The spec at ``path``, validated; a :class:`~freqrex_audit.specs.safe_yaml.SpecError` names it as
        ``shown`` (default: :func:`~freqrex_audit.runtime.paths.shown_spec`) when its name is another spec's."""
        from .specs.loader import SpecError, load_spec

        spec = load_spec(path)
        other = self.names.get(spec.name)
        if other is not None and Path(other).resolve() != Path(path).resolve():
            raise SpecError(shown or shown_spec(path), "name", f"{spec.name!r} is also the name of "
                            f"{shown_spec(other)}: two specs with one name would overwrite each other's results")
        self.names[spec.name] = Path(path)
        return spec

    def plan(self, spec: Any) -> list[tuple[str, str]]:
        """The (check, key) items the spec has under this session's clip limit; OSError / ValueError when its
        dataset cannot be listed."""
        from .audit.datasets import list_samples
        from .audit.gates import planned_items

        return planned_items(spec, list_samples(spec.with_limit(self.samples).dataset))

    def run(self, spec: Any, stages: frozenset[str] | None = None, cross: bool = True,
            progress: Callable[[int, int, int], None] | None = None,
            progress_for: Callable[[str], Any] | None = None) -> Any:
        """Audit one spec with the session's device, cache, clip limit and seed (``cross``, ``progress_for``: see
        :func:`~freqrex_audit.audit.run.run_spec`)."""
        from .audit.run import run_spec

        return run_spec(spec, self.device, self.cache, self.samples, self.seed, cross=cross, stages=stages,
                        progress=progress, progress_for=progress_for)

    def stages(self, spec: Any) -> frozenset[str] | None:
        """What the spec's planned items need computed (:func:`~freqrex_audit.audit.stages.stages_for`): the CLI
        runs every item of a spec, so it computes what they need and nothing more; None (everything) when the
        dataset cannot be listed (the model check reports it)."""
        from .audit.stages import stages_for

        try:
            return stages_for(self.plan(spec))
        except (OSError, ValueError):
            return None

    def write(self, parts: list[dict], arrays: dict, *, errors: list[dict], total: int, interrupted: bool,
              planned: list[str], ran: dict[str, str] | None = None, filtered: bool = False,
              selected: set[str] | None = None, before_write: Callable[[dict], None] | None = None
              ) -> tuple[Path, dict]:
        """Assemble the specs' parts into the run document, settle what ran (:func:`~freqrex_audit.runs.write.
        finalize`), record the deadline and write the run folder; returns results.json's path and the document.
        ``before_write`` sees the finished document first (pytest puts the verdict into JUnit there)."""
        from .audit.executors import node_cpus
        from .runs.write import assemble, finalize, run_info, write_doc

        doc = assemble(parts, run_info(self.seed, self.device, node_cpus()), self.started, time.time() - self.started)
        stopped = deadline.facts(doc)  # workers' cuts included: the deadline interrupts like Ctrl-C
        finalize(doc, ran, total, interrupted or bool(stopped and stopped["hit"]), errors, filtered, planned, selected)
        doc["run"]["deadline"] = stopped
        if before_write is not None:
            before_write(doc)
        return write_doc(doc, arrays, self.run_dir), doc

    def render(self, results: Path, report_too: bool = True) -> tuple[Path | None, list[str]]:
        """The run's report (unless not ``report_too``) and the runs index; matplotlib's own cache and the drawn
        figures (a rerun's report draws only what changed) go into the result cache's folder, not the user's home.
        Without the report and without an index yet, nothing is written (an index that exists never goes stale).
        Returns the report's path and what failed to render."""
        if not report_too and not (self.report_root / "index.html").exists():
            return None, []
        from .runtime.isolation import private_matplotlib

        try:
            private_matplotlib(self.cache_dir)
        except ValueError as exc:  # NoWritableFolder: no writable folder for matplotlib at all: the run stands, the page says why not
            return None, [str(exc)]
        from .report.html import render_run

        return render_run(results, self.report_root, report_too=report_too, figure_cache=self.cache_dir)
