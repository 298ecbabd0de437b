"""#29 beside the attack: the noise floor, the field's attack as a peer (ART), the per-clip robustness figure,
and the peer_attack check through a whole audit. Planted models, so what should flip is known."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

import freqrex_audit as fa
from freqrex_audit.engine.noise_floor import noise, noise_floor
from freqrex_audit.engine.summaries import robustness
from freqrex_audit.engine.peers import HOPSKIPJUMP, art_available, check_method, peer_attack
from freqrex_audit.specs.loader import SpecError, load_spec

from . import attack_models as am
from .audit_models import write_fragile_dataset
from .audit_runs import audit, load
from .test_specs import GOOD, folder, write  # noqa: F401  (the fixture)

needs_art = pytest.mark.skipif(not art_available(), reason="the [art] extra (adversarial-robustness-toolbox) is not installed")


def test_noise_is_scaled_to_the_exact_snr_and_pink_falls_with_frequency():
    rng = np.random.default_rng(0)
    pink = noise("pink", 8000, rng)
    spectrum = np.abs(np.fft.rfft(pink)) ** 2
    assert spectrum[1:400].mean() > 20 * spectrum[3000:4000].mean()
    with pytest.raises(ValueError, match="white, pink"):
        noise("brown", 10, rng)


def test_noise_floor_flags_a_fragile_clip_and_counts_its_queries():
    clf, x = am.runner_up_model(), am.clip({1700: 0.01})
    engine = fa.QueryEngine(clf)
    quiet = noise_floor(engine, x, 0, snr_db=30.0, draws=3)
    assert not quiet.fragile and quiet.queries == 6 == engine.queries and quiet.flips == {"white": 0, "pink": 0}
    # Noise as loud as the clip buries the 440 Hz tone that A reads: the label goes.
    loud = noise_floor(clf, x, 0, snr_db=-10.0, draws=3)
    assert loud.fragile and "FRAGILE" in loud.summary
    assert noise_floor(clf, x, 0, snr_db=-10.0, draws=3).to_json() == loud.to_json()  # seeded
    assert fa.engine.noise_floor.NoiseFloor.from_json(loud.to_json()).to_json() == loud.to_json()


def test_the_robustness_figure_is_the_quietest_flip_by_any_method_and_names_a_defect():
    atk = SimpleNamespace(success=True, snr_db=12.0)
    peer = SimpleNamespace(success=True, snr_db=18.0, method="hopskipjump")
    calm = SimpleNamespace(fragile=False, snr_db=20.0, kinds_that_flip=[])
    assert robustness(atk, peer, calm) == {"snr_db": 18.0, "method": "hopskipjump", "defect": None}
    fragile = SimpleNamespace(fragile=True, snr_db=20.0, kinds_that_flip=["white"])
    fig = robustness(atk, None, fragile)
    assert fig["method"] == "white noise" and fig["snr_db"] == 20.0 and "louder than plain noise" in fig["defect"]
    assert robustness(SimpleNamespace(success=True, snr_db=25.0), None, fragile)["defect"] is None
    assert robustness(SimpleNamespace(success=False, snr_db=None), None, calm) is None


def test_square_and_simba_are_refused_with_the_reason():
    with pytest.raises(ValueError, match="strided"):
        check_method("square")
    with pytest.raises(ValueError, match="neural-network estimator"):
        check_method("simba")
    with pytest.raises(ValueError, match="must be one of hopskipjump"):
        check_method("fgsm")


@needs_art
def test_hopskipjump_runs_through_the_engine_within_the_budget():
    clf, x = am.runner_up_model(), am.clip({1700: 0.01})
    engine = fa.QueryEngine(clf)
    peer = peer_attack(engine, x, 0, "hopskipjump", budget=400, seed=0)
    assert peer.queries == engine.queries <= 400 and peer.budget == 400
    assert peer.settings == HOPSKIPJUMP and peer.error is None
    assert peer.success and peer.adversarial is not None and peer.n_changed > 100  # dense: most bins change
    probs = fa.QueryEngine(clf).query(peer.adversarial[None])[0]
    assert probs.argmax() != 0 and probs.max() - probs[0] >= 0.05
    # At the same queries the frequency attack finds the one-bin flip; a dense L2 attack is louder here.
    exp = fa.explain(clf, x, fa.FreqReXConfig(seed=0))
    ours = fa.fourier_attack(clf, x, exp)
    assert ours.snr_db > peer.snr_db


@needs_art
def test_hopskipjump_with_the_same_seed_gives_the_same_flip():
    """ART draws HopSkipJump's starting point from an unseeded generator (OS entropy): the adapter seeds it, so the
    same seed gives the same adversarial clip, twice in one process, and another seed another one."""
    clf, x = am.runner_up_model(), am.clip({1700: 0.01})
    runs = [peer_attack(fa.QueryEngine(clf), x, 0, "hopskipjump", budget=120, seed=seed) for seed in (0, 0, 1)]
    assert all(r.success for r in runs)
    assert np.array_equal(runs[0].adversarial, runs[1].adversarial) and runs[0].snr_db == runs[1].snr_db
    assert not np.array_equal(runs[0].adversarial, runs[2].adversarial)


@needs_art
def test_peer_attack_check_through_an_audit(tmp_path, monkeypatch):
    write_fragile_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "spec.yaml").write_text(
        'model: {target: "tests.audit_models:fragile", batch_size: 64}\n'
        "dataset: {path: data}\nfreqrex: {seed: 0}\nattack: {query_budget: 320, noise_draws: 2, min_snr_db: 10}\n"
        "checks:\n  fourier_attack: {max_success_rate: 1.0}\n"
        "  peer_attack: {method: hopskipjump, max_success_rate: 1.0}\n")
    monkeypatch.chdir(tmp_path)
    doc = load(audit(tmp_path, "spec.yaml", cache=None))
    spec = next(iter(doc["specs"].values())) if isinstance(doc["specs"], dict) else doc["specs"][0]
    samples = [s for s in spec["samples"] if s.get("fourier_attack")]
    assert samples
    for s in samples:
        peer, atk = s["peer_attack"], s["fourier_attack"]
        explained = sum(s["explanation"]["queries_by_phase"].values())
        assert peer["method"] == "hopskipjump" and peer["budget"] == explained + atk["queries"]
        assert peer["queries"] <= peer["budget"]
        assert s["noise_floor"]["draws"] == 2 and set(s["noise_floor"]["flips"]) == {"white", "pink"}
        fig = s["robustness"]
        if atk["success"] or peer["success"]:
            assert fig["snr_db"] == max(v for v in (atk["snr_db"] if atk["success"] else None,
                                                    peer["snr_db"] if peer["success"] else None) if v is not None)
    gates = [g for g in doc["gates"] if g["check"] == "peer_attack"]
    assert gates and gates[0]["metric"] == "success_rate" and gates[0]["passed"]


def test_peer_attack_spec_keys(folder):  # noqa: F811
    base = GOOD.replace("fourier_attack: {budget: 1000, max_success_rate: 0.5}", "fourier_attack: {max_success_rate: 1.0}")
    spec = load_spec(write(folder, base.replace("sufficiency: {}", "sufficiency: {}, peer_attack: {max_success_rate: 0.5}")))
    assert spec.checks["peer_attack"] == {"max_success_rate": 0.5}
    with pytest.raises(SpecError) as info:
        load_spec(write(folder, base.replace("sufficiency: {}", "sufficiency: {}, peer_attack: {method: square, "
                                                                "max_success_rate: 0.5}")))
    assert "no honest 1-D adapter" in str(info.value) or "strided" in str(info.value)


def test_bench_peers_table_counts_quiet_flips_medians_and_noise_defects():
    from freqrex_audit.bench.peers import (PeerRow, format_peer_table, median_with_misses, rows_as_json, rows_from_json,
                                           summary)

    rows = [PeerRow("m", "a", "x", 1000, 400, 25.0, 1, "walk", 21.0, 1000, 0, 16),
            PeerRow("m", "b", "x", 900, 300, 12.0, 1000, "boundary", 30.0, 900, 3, 16),  # noise flips, we are louder
            PeerRow("m", "c", "x", 800, 200, None, None, None, None, 53, 0, 16)]
    s = summary(rows, 20.0)
    assert (s["quiet_freqrex"], s["quiet_hsj"], s["quiet_noise"]) == (1, 2, 1)
    assert s["median_freqrex"] == 18.5 and s["median_hsj"] == 25.5 and s["both"] == 2
    assert s["median_all_freqrex"] == 12.0 and s["median_all_hsj"] == 21.0  # the miss (clip c) is the loudest
    assert median_with_misses([None, None, 5.0]) is None and median_with_misses([None, 5.0, 7.0, 9.0]) == 6.0
    assert (s["freqrex_quieter"], s["hsj_quieter"]) == (1, 1) and s["louder_than_noise"] == ["m b"]
    table = format_peer_table(rows, 20.0)
    assert "| m | a | 1,000 (400 + 600) | 25.0 (1, walk) | 21.0 | 0/16 |" in table
    assert "max_eval 200" in table and "init_eval 25" in table and "init_size 50" in table and "batch_size 64" in table
    doc = rows_as_json(rows, 20.0)  # the --json file says which engine and model runtimes computed it
    assert rows_from_json(doc) == rows and doc["summary"] == s and doc["versions"]["numpy"] == np.__version__
    assert doc["versions"]["engine"] and {"onnxruntime", "ai-edge-litert", "silero-vad"} <= set(doc["versions"])


def fragile_bench_spec(root, attack: str) -> str:
    """A one-clip spec on the fragile planted model for ``bench --peers`` (its ``attack:`` section given)."""
    write_fragile_dataset(root / "data", per_class=1)
    (root / "spec.yaml").write_text(
        'model: {target: "tests.audit_models:fragile", batch_size: 64}\n'
        f"dataset: {{path: data, limit: 1}}\nfreqrex: {{seed: 0}}\nattack: {attack}\n"
        "checks: {accuracy: {min: 0.5}}\n")
    return str(root / "spec.yaml")


def test_bench_peers_attack_seed_reaches_both_attacks_and_the_noise(tmp_path, monkeypatch):
    """``bench --peers --attack-seed N`` replaces each spec's attack seed for FreqReX's attack, HopSkipJump's start and
    the noise draws alike (how README's second seed is measured); without it the spec's own seed is used. (The
    peer attack is only recorded, not run, so the test needs no [art] extra.)"""
    import freqrex_audit.bench.peers as bench_peers

    spec = fragile_bench_spec(tmp_path, "{query_budget: 200, seed: 5}")
    seen = []

    def spy(name, seed_of, answer=None):
        real = getattr(bench_peers, name)

        def recorded(*args, **kwargs):
            seen.append((name, seed_of(args)))
            return answer if answer is not None else real(*args, **kwargs)
        monkeypatch.setattr(bench_peers, name, recorded)

    spy("fourier_attack", lambda args: args[3].seed)  # (engine, x, explanation, config)
    spy("peer_attack", lambda args: args[7],  # (engine, x, label, method, budget, margin, snr, seed)
        answer=SimpleNamespace(success=False, snr_db=None, queries=0))
    spy("noise_floor", lambda args: args[6])  # (engine, x, label, snr, draws, margin, seed)
    for given, expected in ((None, 5), (7, 7)):
        seen.clear()
        rows = bench_peers.peer_rows([spec], noise_draws=2, attack_seed=given)
        assert rows and rows[0].queries == rows[0].explain_queries + 200
        assert sorted(seen) == [("fourier_attack", expected), ("noise_floor", expected), ("peer_attack", expected)]


def test_bench_peers_attack_budget_is_freqrex_s_and_hopskipjump_gets_the_same_total(tmp_path, monkeypatch):
    """``bench --peers --attack-budget N`` sets FreqReX's attack query_budget; HopSkipJump is given the explanation's
    queries plus the attack's, as at the spec's own budget (the peer attack is recorded, not run)."""
    import freqrex_audit.bench.peers as bench_peers

    spec = fragile_bench_spec(tmp_path, "{query_budget: 200}")
    budgets = []
    monkeypatch.setattr(bench_peers, "peer_attack", lambda *args: budgets.append(args[4]) or SimpleNamespace(
        success=False, snr_db=None, queries=0))
    real = bench_peers.fourier_attack
    configs = []
    monkeypatch.setattr(bench_peers, "fourier_attack",
                        lambda engine, x, exp, config: configs.append(config) or real(engine, x, exp, config))
    rows = bench_peers.peer_rows([spec], noise_draws=1, attack_budget=300)
    assert [c.query_budget for c in configs] == [300]
    assert rows and budgets == [rows[0].queries] and rows[0].explain_queries < rows[0].queries <= rows[0].explain_queries + 300
