"""Clips side by side (#33): a spec's clips share model calls only where every score keeps its bits.

Ground truth is the one-clip-at-a-time run (``model.clips_at_once: 1``): the lockstep run's results.json and
arrays must equal it, its calls must be fuller, and a model whose rows depend on their neighbours must never be
merged. The :class:`~freqrex_audit.models.lockstep.Lockstep` itself is tested with threads asking by hand.
"""

from __future__ import annotations

import threading

import numpy as np
import pytest
import torch

from freqrex_audit import Classifier, QueryEngine
from freqrex_audit.models.classifier import ClassifierError
from freqrex_audit.models.lockstep import Lockstep
from freqrex_audit.runtime import deadline
from tests.audit_models import write_fragile_dataset
from tests.audit_runs import FRAGILE_SPEC, assert_same_arrays, audit, load, npz_arrays, stable_text


def _runs(project, target: str, model: str = "") -> tuple[dict, dict, str, str]:
    """The same spec run one clip at a time, then side by side: (timing, timing, text, text) of both runs."""
    runs = []
    for extra in (", clips_at_once: 1", ""):
        (project / "spec.yaml").write_text((FRAGILE_SPEC % target).replace("batch_size: 64", f"batch_size: 64{model}{extra}"))
        runs.append(audit(project, "spec.yaml", cache=None))
    assert_same_arrays(npz_arrays(runs[1]), npz_arrays(runs[0]))
    alone, side = (load(r)["timings"]["per_spec"]["spec"] for r in runs)
    return alone, side, stable_text(runs[0]), stable_text(runs[1])


@pytest.fixture
def project(tmp_path, monkeypatch):
    write_fragile_dataset(tmp_path / "data", per_class=3)  # 6 clips
    monkeypatch.chdir(tmp_path)
    return tmp_path


def test_clips_side_by_side_give_the_one_at_a_time_results_in_fuller_calls(project):
    alone, side, alone_text, side_text = _runs(project, "tests.audit_models:fragile")
    assert side_text == alone_text  # records, verdicts, query counts per clip: identical
    batching = side["batching"]
    assert alone.get("batching") is None and batching["clips_at_once"] == 6 and batching["merges"] is True
    assert batching["probe_queries"] > 0 and side["queries_by_phase"]["batching_probe"] == batching["probe_queries"]
    assert side["queries"] == alone["queries"] + batching["probe_queries"]  # the probe is the only extra question
    assert side["calls"] < alone["calls"] / 3 and batching["merged_calls"] > 0
    assert side["mean_clips_per_call"] > 3 * alone["mean_clips_per_call"]
    from freqrex_audit.report.tables import work_table  # `freqrex-audit tables RUN` prints what the run spent

    row = work_table({"timings": {"per_spec": {"spec": side}}}).splitlines()[2].split(" | ")
    assert row[1:7] == [f"{side['queries']:,}", f"{side['calls']:,}", f"{side['mean_clips_per_call']:,.1f}", "6",
                        f"{batching['merged_calls']:,}", f"{batching['probe_queries']:,}"]


def test_a_model_in_its_own_process_gives_the_same_results_side_by_side(project):
    """``isolation: subprocess``: every call crosses a pipe to the model's process (its own threads); clips side
    by side still give the one-at-a-time results, in far fewer calls (measured 13.4 s → 5.7 s on 4 clips)."""
    import shutil
    from pathlib import Path

    shutil.copy(Path(__file__).with_name("audit_models.py"), project / "planted_models.py")
    alone, side, alone_text, side_text = _runs(project, "planted_models:fragile",
                                               ", isolation: subprocess, labels: [quiet, loud], sample_rate: 8000")
    assert side_text == alone_text and side["batching"]["merges"] is True
    assert side["calls"] < alone["calls"] / 2


def test_a_model_whose_rows_depend_on_their_call_is_never_merged(project):
    alone, side, alone_text, side_text = _runs(project, "tests.lockstep_models:batch_dependent")
    assert side_text == alone_text
    batching = side["batching"]
    assert batching["merges"] is False and batching["merged_calls"] == 0
    assert "change with the other rows" in batching["why_not"]
    assert side["queries"] == alone["queries"] + batching["probe_queries"]


def test_padded_calls_let_a_model_whose_rows_move_with_the_call_size_merge(project):
    """``pad_calls``: every call holds ``batch_size`` rows, so a model whose rows move with the call's row count (as
    kernels chosen by shape do on a GPU) gives each clip the same bits alone and side by side, and now merges."""
    alone, side, alone_text, side_text = _runs(project, "tests.lockstep_models:batch_dependent", ", pad_calls: true")
    assert side_text == alone_text
    assert side["batching"]["merges"] is True and side["calls"] < alone["calls"] / 3
    assert side["queries"] == alone["queries"] + side["batching"]["probe_queries"]  # padding rows are not queries


def test_one_row_questions_sent_as_pairs_merge_where_a_lone_row_takes_another_path(project):
    """``pad_calls: pairs`` sends a one-row call as two rows, so a model whose lone rows round otherwise (a CPU's
    BLAS: the zoo transformers) merges its one-row questions too; the default ``auto`` chooses it for such a model
    (the load-time self-check saw it); ``off`` keeps them alone and says why."""
    alone, side, alone_text, side_text = _runs(project, "tests.lockstep_models:one_row_differs")
    assert side_text == alone_text and side["batching"]["merges"] is True and side["batching"]["why_not"] is None
    assert side["batching"]["padding"] == "pairs"  # auto: the self-check saw a lone row round otherwise
    assert side["queries"] == alone["queries"] + side["batching"]["probe_queries"]  # the copies are not queries
    _, off, _, _ = _runs(project, "tests.lockstep_models:one_row_differs", ", pad_calls: 'off'")
    assert off["batching"]["why_not"].startswith("one-row questions:") and side["calls"] < off["calls"]
    assert off["queries"] - off["batching"]["probe_queries"] == alone["queries"] - alone["queries_by_phase"].get(
        "batching_probe", 0)  # padding changes no question: the same search, asked in other calls


def test_auto_padding_is_pairs_only_for_a_model_whose_lone_row_rounds_otherwise():
    from freqrex_audit.models.self_check import self_check
    from tests import audit_models, lockstep_models

    found = {name: self_check(factory())["padding"] for name, factory in (
        ("one_row_differs", lockstep_models.one_row_differs), ("fragile", audit_models.fragile),
        ("batch_dependent", lockstep_models.batch_dependent))}
    assert found == {"one_row_differs": "pairs", "fragile": "off", "batch_dependent": "off"}  # pairs would not help
    def capped(x: torch.Tensor) -> torch.Tensor:  # a lone row rounds otherwise, and no call may hold over 8 rows
        if x.shape[0] > 8:
            raise ValueError("at most 8 rows a call")
        return lockstep_models.one_row_differs().predict(x)

    report = self_check(Classifier.from_callable(capped, ["quiet", "loud"], 8000))
    assert report["padding"] == "off" and report["batch_difference"] < 1e-5  # the batch checks stand
    clf = lockstep_models.one_row_differs()
    assert QueryEngine(clf, pad_calls="auto").pad_calls == "off"  # no self-check ran: nothing to go on
    clf.self_check = {"padding": "pairs"}
    assert QueryEngine(clf, pad_calls="auto").pad_calls == "pairs" and QueryEngine(clf).pad_calls == "off"
    assert QueryEngine(clf, pad_calls=True).pad_calls == "full" and QueryEngine(clf, pad_calls=False).pad_calls == "off"


def test_a_spec_names_its_padding_and_a_wrong_one_is_refused_by_key_and_line(project):
    from freqrex_audit.specs.loader import load_spec
    from freqrex_audit.specs.safe_yaml import SpecError

    found = {}
    for value in ("true", "false", "'off'", "pairs", "auto", "sideways"):
        (project / "spec.yaml").write_text((FRAGILE_SPEC % "tests.audit_models:fragile").replace(
            "batch_size: 64", f"batch_size: 64, pad_calls: {value}"))
        try:
            found[value] = load_spec(project / "spec.yaml").pad_calls
        except SpecError as exc:
            found[value] = str(exc)
    assert found == {"true": "full", "false": "off", "'off'": "off", "pairs": "pairs", "auto": "auto",
                     "sideways": "spec.yaml: model.pad_calls: must be one of auto, off, pairs, full, true or false, got "
                                 "'sideways' (line 2)"}


def test_pairs_pad_only_a_lone_row_and_never_past_the_batch_size():
    def model(x: torch.Tensor) -> torch.Tensor:  # a lone row rounds otherwise
        return torch.softmax(torch.stack([x[:, 1], -x[:, 1] + 1e-4 * (x.shape[0] == 1)], dim=-1), dim=-1)

    rows = np.concatenate([_rows(1, 1), _rows(2, 1)])
    pairs = QueryEngine(Classifier.from_callable(model, ["a", "b"], 8000), batch_size=8, pad_calls="pairs")
    assert np.array_equal(pairs.query(rows[:1]), _engine(model).query(rows)[:1])  # asked as two rows
    assert not np.array_equal(_engine(model).query(rows[:1]), _engine(model).query(rows)[:1])  # the premise
    assert pairs.queries == 1 and pairs.call_sizes == [1]
    single = QueryEngine(Classifier.from_callable(model, ["a", "b"], 8000), batch_size=1, pad_calls="pairs")
    assert np.array_equal(single.query(rows[:1]), _engine(model).query(rows[:1]))  # batch_size 1: one row a call
    with pytest.raises(ValueError, match="pad_calls must be one of auto, off, pairs, full"):
        QueryEngine(Classifier.from_callable(model, ["a", "b"], 8000), pad_calls="sideways")


def test_a_padded_call_answers_its_rows_as_a_full_call_does():
    def model(x: torch.Tensor) -> torch.Tensor:  # rows move with the call's row count
        return torch.softmax(torch.stack([x[:, 1], -x[:, 1] + 1e-4 * x.shape[0]], dim=-1), dim=-1)

    padded = QueryEngine(Classifier.from_callable(model, ["a", "b"], 8000), batch_size=8, pad_calls=True)
    rows = np.concatenate([_rows(1, 3), _rows(2, 5)])
    assert np.array_equal(padded.query(rows[:3]), _engine(model, 8).query(rows)[:3])  # 3 rows asked in a call of 8
    assert padded.queries == 3 and padded.call_sizes == [3]


def _engine(fn, batch_size: int = 64) -> QueryEngine:
    return QueryEngine(Classifier.from_callable(fn, ["a", "b"], 8000), batch_size=batch_size)


def _rows(mark: float, n: int = 2) -> np.ndarray:
    rows = np.zeros((n, 16), np.float32)
    rows[:, 1] = mark
    return rows


def _ask_in_step(lockstep: Lockstep, asks: dict[int, list[np.ndarray]]) -> dict[int, list]:
    """Threads (one per order) asking their batches in turn; what each got (scores or the exception)."""
    got: dict[int, list] = {order: [] for order in asks}
    views = {order: lockstep.view(order) for order in asks}
    for _ in asks:
        lockstep.join()

    def run(order: int) -> None:
        try:
            for batch in asks[order]:
                try:
                    got[order].append(views[order].query(batch))
                except Exception as exc:  # noqa: BLE001 - recorded for the test
                    got[order].append(exc)
        finally:
            lockstep.leave()

    threads = [threading.Thread(target=run, args=(order,)) for order in asks]
    for t in threads[::-1]:  # started in reverse: the rounds' order must not depend on it
        t.start()
    for t in threads:
        t.join(30)
    assert not any(t.is_alive() for t in threads)
    return got


def test_a_round_asks_in_clip_order_and_a_refused_row_fails_only_its_own_clip():
    seen: list[list[float]] = []

    def model(x: torch.Tensor) -> torch.Tensor:
        seen.append(x[:, 1].tolist())
        if bool((x[:, 1] == 7).any()):
            raise ValueError("row 7 is refused")
        return torch.softmax(torch.stack([x[:, 1], -x[:, 1]], dim=-1), dim=-1)

    engine = _engine(model)
    lockstep = Lockstep(engine)
    got = _ask_in_step(lockstep, {0: [_rows(1), _rows(7)], 1: [_rows(2), _rows(3)], 2: [_rows(4), _rows(5)]})
    # round 1: each alone (the answers), then merged once (the probe) in clip order: merging keeps every bit
    assert seen[:4] == [[1, 1], [2, 2], [4, 4], [1, 1, 2, 2, 4, 4]] and lockstep.probe_queries == 6
    # round 2: merged in clip order, refused for row 7; then each question alone, each with its own answer
    assert seen[4:] == [[7, 7, 3, 3, 5, 5], [7, 7], [3, 3], [5, 5]]
    assert isinstance(got[0][1], ClassifierError) and "row 7 is refused" in str(got[0][1])
    for order, marks in ((1, (2, 3)), (2, (4, 5))):
        for scores, mark in zip(got[order], marks):
            assert np.array_equal(scores, _engine(model).query(_rows(mark)))
    assert engine.queries == 6 + 6 + 4  # round 1 alone and probed, round 2 alone (the refused call is not counted)


def test_rows_that_change_with_their_neighbours_are_asked_alone_after_the_probe():
    def model(x: torch.Tensor) -> torch.Tensor:
        logits = torch.stack([x[:, 1], -x[:, 1] + 1e-4 * x.shape[0]], dim=-1)
        return torch.softmax(logits, dim=-1)

    engine = _engine(model)
    lockstep = Lockstep(engine)
    got = _ask_in_step(lockstep, {0: [_rows(1), _rows(2, 3)], 1: [_rows(3), _rows(4, 3)]})
    assert engine.call_sizes == [2, 2, 4, 3, 3] and lockstep.shapes.merges == {
        (((16,), torch.float32, torch.device("cpu")), False): False}
    assert np.array_equal(got[1][1], _engine(model).query(_rows(4, 3)))


def test_a_stopped_lockstep_lets_a_waiting_clip_go():
    lockstep = Lockstep(_engine(lambda x: torch.softmax(torch.zeros(len(x), 2), -1)))
    lockstep.join()
    lockstep.join()  # a second clip that never asks: the first waits for it
    errors: list[BaseException] = []

    def ask() -> None:
        try:
            lockstep.view(0).query(_rows(1))
        except BaseException as exc:  # noqa: BLE001 - recorded for the test
            errors.append(exc)

    thread = threading.Thread(target=ask)
    thread.start()
    thread.join(0.2)
    assert thread.is_alive()
    lockstep.stop("not measured: stopped")
    thread.join(10)
    assert not thread.is_alive() and isinstance(errors[0], deadline.DeadlineReached)


def test_the_deadline_stops_clips_in_lockstep_between_calls(tmp_path, monkeypatch):
    """A 0.3-s deadline on a model that advances a fake clock 0.01 s a call: no call starts after it, each clip is
    measured or cut (its items interrupted), and the clip threads end."""
    from types import SimpleNamespace

    from freqrex_audit.audit.records import Outcome
    from freqrex_audit.audit.run import run_spec
    from freqrex_audit.specs.loader import load_spec
    from tests import hostile_models as hm
    from tests.test_deadline import SPEC, project

    project(tmp_path)
    (tmp_path / "slow.yaml").write_text(SPEC.replace("slow\"", "ticking\"").replace("sleep_s: 0.05", "tick_s: 0.01"))
    monkeypatch.setattr(hm, "CLOCK", [0.0])
    monkeypatch.setattr(deadline, "time", SimpleNamespace(time=lambda: hm.CLOCK[0]))
    deadline.start(0.3, started=0.0)
    try:
        result = run_spec(load_spec(tmp_path / "slow.yaml"), "cpu")
    finally:
        deadline.clear()
    measured = [r.sample.id for r in result.samples if r.analysed]
    cut = [r.sample.id for r in result.samples if deadline.cut_short(r.reason)]
    assert cut and sorted(measured + cut) == sorted(r.sample.id for r in result.samples)
    assert hm.CLOCK[0] < 0.3 + 0.01 + 1e-9  # no model call started after the deadline
    outcomes = {(v.check, v.key): v.outcome for v in result.verdicts}
    assert all(outcomes[("sufficiency", c)] == Outcome.INTERRUPTED for c in cut)
    assert outcomes[("accuracy", "aggregate")] == Outcome.INTERRUPTED
    assert not [t for t in threading.enumerate() if t.name == "freqrex-clip"]


def test_a_model_that_hangs_on_the_probe_fails_the_first_clip_of_the_call():
    """The probe's merged call is a model call like any other: a hang there is a clip's error (so the spec fails
    "model hung"), never a round of clips quietly not analysed."""
    from freqrex_audit.models.classifier import ClassifierTimeout

    release = threading.Event()

    def model(x: torch.Tensor) -> torch.Tensor:
        if x.shape[0] > 2:
            release.wait(30)
        return torch.softmax(torch.stack([x[:, 1], -x[:, 1]], dim=-1), dim=-1)

    engine = QueryEngine(Classifier.from_callable(model, ["a", "b"], 8000), batch_size=64, timeout_s=0.5)
    got = _ask_in_step(Lockstep(engine), {0: [_rows(1), _rows(2)], 1: [_rows(3), _rows(4)]})
    release.set()
    assert isinstance(got[0][0], ClassifierTimeout) and "did not return within the 0.5 s" in str(got[0][0])
    assert np.array_equal(got[1][0], _engine(model).query(_rows(3)))  # its answer, asked alone, stands
    assert all(type(g).__name__ == "AlreadyHung" for g in (got[0][1], got[1][1]))


def test_the_progress_line_counts_clips_done_in_any_order(project):
    """Outcomes come in clip order; the progress line counts clips as they finish, never going back."""
    from freqrex_audit.audit.run import run_spec
    from freqrex_audit.specs.loader import load_spec

    (project / "spec.yaml").write_text(FRAGILE_SPEC % "tests.audit_models:fragile")
    seen: list[tuple[int, int]] = []
    result = run_spec(load_spec(project / "spec.yaml"), "cpu", progress=lambda d, t, q: seen.append((d, q)))
    done = [d for d, _ in seen]
    assert result.batching["merges"] and done == sorted(done) and done[0] == 0 and done[-1] == 6
    assert [q for _, q in seen] == sorted(q for _, q in seen) and seen[-1][1] == result.queries
