"""FreqReX on tiny random-weight HF models of every family: valid results on 1 s and 10 s clips."""

from __future__ import annotations

import pytest

import freqrex_audit as fa
from freqrex_audit.bench.timing import bench_clip

from .hf_models import build_tiny_model
from .test_engine_ground_truth import assert_valid

FAMILIES = ["ast", "wav2vec2", "hubert", "whisper"]
FAST = fa.FreqReXConfig(seed=0, iterations=3, min_iterations=1, iteration_budget=60)


@pytest.fixture(scope="module")
def classifiers(tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny_hf")
    return {family: fa.load_classifier(str(build_tiny_model(family, root / family)), device="cpu")
            for family in FAMILIES}


@pytest.mark.parametrize("family", FAMILIES)
@pytest.mark.parametrize("seconds", [1.0, 10.0])
def test_explanations_of_tiny_hf_models_are_valid(classifiers, family, seconds):
    clf = classifiers[family]
    x = bench_clip(seconds, clf.sample_rate, seed=1)
    engine = fa.QueryEngine(clf, batch_size=32)
    exp = fa.explain(engine, x, FAST)
    assert exp.n_bins == len(x) // 2 + 1 and engine.queries == exp.queries
    assert exp.sufficient is not None and exp.fraction("sufficient") <= 1.0
    assert_valid(clf, exp)


def test_attack_on_a_tiny_hf_model_is_verified_counted_and_within_its_budget(classifiers):
    """Every query the attack reports is one the model answered, the query budget holds, a flip is re-verified
    on the very clip returned, and a search without a flip says how much of its rule it covered."""
    from .known_models import CountingClassifier

    clf = classifiers["wav2vec2"]
    x = bench_clip(1.0, clf.sample_rate, seed=2)
    exp = fa.explain(clf, x, FAST)
    counting = CountingClassifier(clf)
    atk = fa.fourier_attack(counting, x, exp, fa.AttackConfig(max_frequencies=100, query_budget=200))
    assert counting.seen == atk.queries <= 200
    assert atk.coverage is not None and atk.coverage.bins == exp.n_bins
    if atk.success:
        probs = fa.QueryEngine(clf).query(atk.adversarial[None])[0]
        assert int(probs.argmax()) == atk.new_label != exp.target
        assert 1 <= atk.n_frequencies <= 100 and float(probs.max() - probs[exp.target]) >= atk.min_margin
    else:
        assert atk.adversarial is None
        assert atk.queries == 200 or atk.coverage.complete  # it spent its budget, or its rule was covered
