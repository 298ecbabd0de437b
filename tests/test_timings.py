"""results.json ``timings.per_spec``: a spec's figures are its own work; the peers its transferability check
computed are listed apart (``peers``), so a fast model that asks for transferability is not charged a slow
peer's clips, queries or cache traffic."""

from __future__ import annotations

import json
from pathlib import Path

from freqrex_audit.audit.run import run_spec
from freqrex_audit.audit.cache import Cache
from freqrex_audit.report import render_report
from freqrex_audit.runs.write import write_results
from freqrex_audit.specs.loader import load_spec
from tests.audit_models import write_robust_dataset

ASKER = """
name: asker
model: {target: "tests.audit_models:robust"}
dataset: {path: data}
attack: {budget: 5, pool: ranking}
%s
checks:
  accuracy: {min: 0.5}
  %s
"""


def _specs(folder: Path) -> tuple[Path, Path]:
    write_robust_dataset(folder / "data", per_class=1)
    peer = ASKER.replace("name: asker", "name: peer").replace('"tests.audit_models:robust"',  # another model
                                                               '"tests.audit_models:slow", options: {seconds: 0}')
    (folder / "peer.yaml").write_text(peer % ("", ""))
    (folder / "asker.yaml").write_text(ASKER % ("peers: [peer]", "transferability: {min_alpha: 0.0}"))
    (folder / "alone.yaml").write_text(ASKER.replace("name: asker", "name: alone") % ("", ""))
    return folder / "asker.yaml", folder / "peer.yaml"


def test_a_peer_computed_for_transferability_is_recorded_apart_from_the_asking_spec(tmp_path: Path):
    asker_path, peer_path = _specs(tmp_path)
    alone = run_spec(load_spec(tmp_path / "alone.yaml"), "cpu", Cache(tmp_path / "alone"))  # no peers
    peer_alone = run_spec(load_spec(peer_path), "cpu", Cache(tmp_path / "peer_cache"), cross=False)
    cache = Cache(tmp_path / "cache")
    asker = run_spec(load_spec(asker_path), "cpu", cache)
    transfer = asker.transferability.queries
    assert asker.error is None and set(transfer) == {"asker", "peer"} and transfer["peer"] > 0

    # own work: the asker's clips (as without transferability) and the α/β queries to its own model
    assert asker.queries == alone.queries + transfer["asker"]
    assert asker.queries == sum(asker.queries_by_phase.values())
    assert asker.queries_by_phase["transferability"] == transfer["asker"]
    assert asker.cache_stats["misses"] == alone.cache_stats["misses"] + 1  # + the α/β matrix, cached too
    # the peer's work: its clips (what it costs alone) and the α/β queries to its model
    work = asker.peer_work["peer"]
    assert work["queries"] == peer_alone.queries + transfer["peer"]
    assert work["cache"]["misses"] == peer_alone.cache_stats["misses"] and work["seconds"] > 0
    assert asker.seconds >= 0 and cache.misses == asker.cache_stats["misses"] + work["cache"]["misses"]

    out = write_results([asker], tmp_path / "run", device="cpu")  # validated by the schema when read back
    timing = json.loads(out.read_text())["timings"]["per_spec"]["asker"]
    assert timing["queries"] == asker.queries and timing["peers"]["peer"]["queries"] == work["queries"]
    # model calls through the spec's own engine; the mean batch leaves out transferability (its own engines)
    assert 0 < timing["calls"] == asker.calls <= asker.queries
    assert timing["mean_clips_per_call"] == round((asker.queries - transfer["asker"]) / asker.calls, 2)
    html = render_report(out).read_text()
    assert f"peer peer (computed for transferability): {work['queries']:,} queries" in html

    # a rerun on the same cache: every clip and the α/β matrix are hits, nobody is charged a query
    again = run_spec(load_spec(asker_path), "cpu", cache)
    assert again.queries == 0 and again.peer_work["peer"]["queries"] == 0, (again.queries, again.peer_work)
    assert "transferability" not in {k for k, v in again.queries_by_phase.items() if v}
    assert again.transferability.to_json() == asker.transferability.to_json()



def test_without_a_cache_a_run_computes_a_peer_once_and_keeps_nothing(tmp_path: Path):
    """``--no-cache``: the peer the asking spec computed for transferability is not computed again when the run
    audits it as a spec of its own (a scratch cache lasts as long as the run), and the run leaves no folder."""
    import subprocess

    from tests.audit_runs import cli_command, subprocess_env

    _specs(tmp_path)
    scratch = tmp_path / "tmp"
    scratch.mkdir()
    done = subprocess.run(cli_command("audit", "asker.yaml", "peer.yaml", "--no-cache", "--report", "reports",
                                      "--device", "cpu", "-q"), cwd=tmp_path, env=subprocess_env(TMPDIR=str(scratch)),
                          capture_output=True, text=True, timeout=300)
    assert done.returncode in (0, 1) and "Traceback" not in done.stderr, done.stdout + done.stderr  # 1: flat-earther
    per_spec = json.loads(next(tmp_path.glob("reports/*/results.json")).read_text())["timings"]["per_spec"]
    computed = per_spec["asker"]["peers"]["peer"]
    assert computed["queries"] > 0 and computed["cache"]["misses"] > 0  # computed here, as the asker's peer
    own = per_spec["peer"]
    assert own["queries"] == 0 and own["cache"]["misses"] == 0 and own["cache"]["hits"] > 0, own
    assert not list(scratch.iterdir()), "the run's scratch cache was left behind"
    assert not (tmp_path / ".freqrex_cache").exists()
