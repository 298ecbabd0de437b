"""benchmarks/gpu.py runs on a machine without soundfile, POT or pydantic (#33): its imports and a CPU dry
run, in a child process where those modules cannot be imported. No timing is asserted."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu.py"

BLOCKER = """
import sys
BLOCKED = set(sys.argv[1].split(","))
for name in BLOCKED:  # None in sys.modules: `import name` fails, importlib.util.find_spec says absent, as uninstalled
    sys.modules[name] = None
"""
MISSING = "soundfile,ot,pydantic,matplotlib"  # what a GPU machine may lack (transformers itself needs YAML)
MISSING_AT_IMPORT = MISSING + ",yaml,scipy"  # scipy: CPU synthesis only (audio.spectrum); YAML: transformers only


def run_blocked(code: str, blocked: str, *args: str, timeout: float = 600) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "HF_HUB_OFFLINE": "1"}
    return subprocess.run([sys.executable, "-c", BLOCKER + code, blocked, *args], capture_output=True, text=True,
                          cwd=ROOT, env=env, timeout=timeout)


def test_the_benchmark_imports_without_soundfile_pot_pydantic_yaml_or_scipy():
    code = """
import runpy
runpy.run_path(sys.argv[2], run_name="gpu_benchmark")  # its module body: every import it makes
import freqrex_audit.engine
leaked = sorted(m for m, v in sys.modules.items() if v is not None and m.split(".")[0] in BLOCKED)
assert not leaked, leaked
print("imported")
"""
    done = run_blocked(code, MISSING_AT_IMPORT, str(SCRIPT))
    assert done.returncode == 0, done.stderr[-3000:]
    assert "imported" in done.stdout


def test_the_benchmark_dry_run_writes_every_section(tmp_path):
    out = tmp_path / "gpu.json"
    code = """
import runpy
sys.argv = [sys.argv[2], "--dry-run", "--families", "ast", "wav2vec2", "--json", sys.argv[3]]
runpy.run_path(sys.argv[0], run_name="__main__")
"""
    done = run_blocked(code, MISSING, str(SCRIPT), str(out))
    assert done.returncode == 0, done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert doc["meta"]["dry_run"] and doc["meta"]["device"] == "cpu"
    assert doc["skipped"] == []
    assert {(r["family"], r["precision"]) for r in doc["explain"]} == {
        (f, p) for f in ("ast", "wav2vec2") for p in ("fp32", "bf16")}
    for row in doc["explain"]:
        assert row["queries"] > 0 and row["calls"] > 0
        assert row["mean_clips_per_call"] == pytest.approx(row["queries"] / row["calls"])
    assert {r["family"] for r in doc["batching"]} == {"ast", "wav2vec2"}
    simulated = doc["oom_halving"]["simulated"]
    assert simulated["ok"] and simulated["settled_batch_size"] == 8 and simulated["counted_once"]
    assert doc["oom_halving"]["cuda"].startswith("not run")
    assert len(doc["long"]) == 4 and len(doc["explain_30s"]) == 1
    assert doc["estimate"]["note"].startswith("DRY RUN") and doc["estimate"]["one_gpu_h"] > 0
    assert "| ast-tiny | fp32 |" in done.stdout


def test_the_numpy_16_bit_round_trip_matches_libsndfile():
    """Without soundfile the engine's fragility check quantises in numpy; on this machine's libsndfile it is
    the same bit for bit (soundfile stays the one used wherever it is installed)."""
    soundfile = pytest.importorskip("soundfile")
    from freqrex_audit.audio.io import int16_quantised, int16_roundtrip

    if not soundfile.__libsndfile_version__.startswith("1.2"):
        pytest.skip(f"the numpy copy follows libsndfile 1.2, this is {soundfile.__libsndfile_version__}")
    rng = np.random.default_rng(0)
    steps = np.arange(-40000, 40000) / 32768
    x = np.concatenate([rng.uniform(-1.3, 1.3, 50000), rng.normal(0, 1e-4, 20000), steps, steps + 0.5 / 32768,
                        np.nextafter(steps, 2), np.nextafter(steps, -2), [1.0, -1.0, 0.0]]).astype(np.float32)
    assert np.array_equal(int16_quantised(x), int16_roundtrip(x, 8000))


def test_the_emd_is_pot_s_bit_for_bit():
    """emd_1d ports POT's numpy wasserstein_1d instead of importing POT (2–3 s a process): the same value to the
    last bit on maps with zeros, ties and thousands of bins, so a responsibility map's stopping rule cannot move."""
    pytest.importorskip("ot")
    import ot

    from freqrex_audit.engine.responsibility import emd_1d, wasserstein_1d_sorted

    rng = np.random.default_rng(1)
    for n in (1, 2, 17, 4001, 24001):
        for _ in range(5):
            u, v = rng.random(n) * (rng.random(n) < 0.3), rng.random(n) * (rng.random(n) < 0.9)
            u[0] += 1e-3
            v[-1] += 1e-3
            u, v = u / u.sum(), v / v.sum()
            positions = np.arange(n, dtype=np.float64) / n
            pot = float(ot.wasserstein_1d(positions, positions, u, v, p=1))
            assert wasserstein_1d_sorted(positions, u, v) == pot
            assert emd_1d(u * 3.0, v) == float(ot.wasserstein_1d(positions, positions, u * 3.0 / (u * 3.0).sum(),
                                                                 v / v.sum(), p=1))
