"""Algorithms 2 and 3 on classifiers with known weaknesses; every success is re-verified by the model."""

from __future__ import annotations

import numpy as np
import pytest

import freqrex_audit as fa
from freqrex_audit.audio.io import int16_roundtrip
from freqrex_audit.engine.attacks import Mutation

from . import known_models as km

N = 4000  # 0.5 s at 8 kHz: bin spacing 2 Hz
LADDER = fa.AttackConfig(continuous=False)  # Alg 2 and #16's sources alone: the ladder's own mutations (#29 keeps them)


def label_of(clf: fa.Classifier, x: np.ndarray) -> int:
    return int(fa.QueryEngine(clf).query(x[None])[0].argmax())


def explained(clf, x):
    return fa.explain(clf, x, fa.FreqReXConfig(seed=0))


def verify(clf, x, atk) -> None:
    """A reported success must be a real one: the returned clip has another label."""
    assert atk.success and atk.adversarial is not None
    assert label_of(clf, atk.adversarial) == atk.new_label != atk.original_label
    assert np.isfinite(atk.snr_db)


@pytest.mark.parametrize("threshold", [0.85, 0.6, 0.3])
def test_single_bin_threshold_needs_one_frequency_and_the_smallest_crossing_mutation(threshold):
    x = km.tones({440: 1.0, 1000: 0.6}, noise=0.0)
    clf = km.amplitude_threshold_model(440, threshold, N)
    exp = explained(clf, x)
    atk = fa.fourier_attack(clf, x, exp, LADDER)
    verify(clf, x, atk)
    assert atk.n_frequencies == 1 and list(atk.hz) == [440.0]
    # The 440 Hz amplitude is 1.0: the label flips once it is scaled below the threshold, so the
    # answer is the smallest-perturbation scaling s < threshold in the default list.
    crossing = [m for m in fa.AttackConfig().ordered if m.kind == "scale" and m.value < threshold]
    assert atk.mutation == crossing[0]


def test_three_bins_are_needed():
    freqs = (440.0, 1000.0, 1500.0)
    x = km.tones({f: 0.6 for f in freqs}, noise=0.0)  # amplitudes sum to 1.8 > 1.5
    clf = km.three_bin_model(freqs, N)
    exp = explained(clf, x)
    config = fa.AttackConfig(mutations=(Mutation("scale", 0.9), Mutation("scale", 0.75), Mutation("scale", 0.5)),
                             continuous=False)
    atk = fa.fourier_attack(clf, x, exp, config)
    verify(clf, x, atk)
    # 0.5 on one tone bin leaves 1.5 (not below); on two, 1.2 — so exactly two tones are cut.
    # (Silent neighbours that share a tone's responsibility may be ranked, and mutated, in between.)
    assert len(set(atk.hz) & set(freqs)) == 2 and atk.n_frequencies <= len(exp.sufficient)
    assert atk.mutation == Mutation("scale", 0.5)
    # Forbid halving: with 0.75 at most, all three tones must change (1.35 < 1.5; two give 1.5).
    gentle = fa.AttackConfig(mutations=(Mutation("scale", 0.9), Mutation("scale", 0.75)), continuous=False)
    atk3 = fa.fourier_attack(clf, x, exp, gentle)
    verify(clf, x, atk3)
    assert set(freqs) <= set(atk3.hz) and atk3.mutation == Mutation("scale", 0.75)


def test_redundant_causes_are_flipped_beyond_the_sufficient_set():
    """OR of two bands: one band is sufficient, so no mutation of the sufficient set alone can flip the
    label (the paper's pool); the attack's other sources cut both tones."""
    x = km.tones({300: 1.0, 1200: 1.0, 2000: 1.0}, noise=0.0)
    clf = km.or_model()
    exp = explained(clf, x)
    both = km.band_bins(300, N) | km.band_bins(1200, N)
    assert set(exp.sufficient.tolist()) < both  # one band's bins
    atk = fa.fourier_attack(clf, x, exp, LADDER)
    verify(clf, x, atk)
    # Both tones are cut (bins 150 and 600 at 2 Hz spacing); the 2000 Hz tone is left alone.
    assert {150, 600} <= set(atk.bins.tolist()) and 1000 not in atk.bins
    assert atk.mutation.kind == "scale" and atk.mutation.value < 1
    with pytest.raises(ValueError, match="pool must be one of sufficient, ranking"):
        fa.AttackConfig(pool="everything")


def test_unflippable_model_reports_failure_not_a_false_success():
    x = km.tones({440: 1.0, 1000: 0.6})
    clf = km.unflippable_model()
    exp = explained(clf, x)
    atk = fa.fourier_attack(clf, x, exp, fa.AttackConfig(query_budget=50))
    assert not atk.success and atk.adversarial is None and atk.new_label is None and not atk.quiet
    assert atk.queries <= 50 and atk.candidates >= 40
    assert atk.summary == f"no flip, searched {atk.candidates} candidates with {atk.queries} queries"
    st = fa.stft_attack(clf, x, atk)
    assert not st.success and st.queries == 0 and "did not succeed" in st.tried["all"]


def test_frequency_cap_bounds_every_candidate():
    freqs = (440.0, 1000.0, 1500.0)
    x = km.tones({f: 0.6 for f in freqs}, noise=0.0)
    clf = km.three_bin_model(freqs, N)
    exp = explained(clf, x)
    gentle = (Mutation("scale", 0.75),)
    capped = fa.fourier_attack(clf, x, exp, fa.AttackConfig(mutations=gentle, max_frequencies=2, continuous=False))
    assert not capped.success  # three tones must change; two is the cap
    atk = fa.fourier_attack(clf, x, exp, fa.AttackConfig(mutations=gentle, max_frequencies=3, continuous=False))
    verify(clf, x, atk)
    assert set(freqs) == set(atk.hz) and atk.n_frequencies == 3


def test_phase_rotations_are_supported_and_ordered_by_size():
    config = fa.AttackConfig(mutations=(Mutation("phase", 180), Mutation("scale", 0.5), Mutation("phase", 30)),
                             continuous=False)
    assert [str(m) for m in config.ordered] == ["×0.5", "+30°", "+180°"]  # sizes 0.5, 0.518, 2
    assert {m.kind for m in config.extremes} == {"phase", "scale"}
    x = km.tones({440: 1.0, 1000: 0.6}, noise=0.0)
    clf = km.amplitude_threshold_model(440, 0.8, N)
    atk = fa.fourier_attack(clf, x, explained(clf, x), config)
    verify(clf, x, atk)
    assert atk.mutation == Mutation("scale", 0.5)  # a phase rotation never changes an amplitude


def test_stft_attack_changes_only_frames_in_the_deciding_segment():
    sr, seconds = km.SR, 2.0
    t = np.arange(int(seconds * sr)) / sr
    burst = ((t >= 0.8) & (t < 1.2)) * np.sin(2 * np.pi * 440 * t)  # the event the model listens for
    x = (km.tones({1000: 0.6}, seconds=seconds, noise=0.0) + burst).astype(np.float32)
    clf = km.segment_model(0.75, 1.25, threshold=400.0)  # about half the burst's band energy (790)
    exp = explained(clf, x)
    # Attenuations only: a phase turn of one bin reshapes the burst in time, and a ×1000 boost clipped
    # to [-1, 1] squashes it (real, loud flips that the STFT cannot localise to the burst's frames).
    cuts = fa.AttackConfig(mutations=tuple(m for m in fa.AttackConfig().mutations if m.kind == "scale"), max_scale=1)
    atk = fa.fourier_attack(clf, x, exp, cuts)
    verify(clf, x, atk)
    st = fa.stft_attack(clf, x, atk)
    verify(clf, x, st)
    assert st.frame_size == 256
    assert st.reconstruction_error < 1e-5
    hop = st.frame_size // 4
    centres = st.frames * hop / sr
    assert (centres > 0.75 - st.frame_size / sr).all() and (centres < 1.25 + st.frame_size / sr).all()
    assert 0.6 <= st.start_s and st.end_s <= 1.4


def test_stft_tries_the_next_frame_size_only_after_a_failure():
    x = km.tones({440: 1.0, 1000: 0.6}, noise=0.0)
    clf = km.amplitude_threshold_model(440, 0.8, N)
    atk = fa.fourier_attack(clf, x, explained(clf, x))
    st = fa.stft_attack(clf, x, atk, fa.STFTAttackConfig(frame_sizes=(256, 512), frame_budget=3))
    assert list(st.tried) == ["256", "512"] and all("failed within 3" in v for v in st.tried.values())
    assert not st.success
    ok = fa.stft_attack(clf, x, atk)
    verify(clf, x, ok)
    assert list(ok.tried) == ["256"]


def test_int16_survival_is_measured_by_asking_the_model():
    x = km.tones({440: 1.0, 1000: 0.6}, noise=0.0)
    clf = km.amplitude_threshold_model(440, 0.8, N)
    atk = fa.fourier_attack(clf, x, explained(clf, x))
    restored = int16_roundtrip(atk.adversarial, km.SR)
    assert atk.survives_int16 == (label_of(clf, restored) != atk.original_label)


def test_results_round_trip_and_summaries():
    x = km.tones({440: 1.0, 1000: 0.6}, noise=0.0)
    clf = km.amplitude_threshold_model(440, 0.8, N)
    exp = explained(clf, x)
    atk = fa.fourier_attack(clf, x, exp)
    st = fa.stft_attack(clf, x, atk)
    assert fa.FourierAttack.from_json(atk.to_json()).to_json() == atk.to_json()
    assert fa.STFTAttack.from_json(st.to_json()).to_json() == st.to_json()
    failed = fa.fourier_attack(km.unflippable_model(), x, exp, fa.AttackConfig(query_budget=5))
    summary = fa.summarize_attacks([atk, failed], [st, fa.stft_attack(clf, x, failed)], lengths=[len(x), len(x)])
    # one name, one meaning (engine/summaries.METRICS): a *_rate is a share of the clips counting quiet flips,
    # a *_share a share of the verified flips at any loudness (the paper's reading)
    assert summary["raw_success_rate"] == 0.5 and summary["successes"] == 1
    assert summary["success_rate"] == summary["single_rate"] == summary["five_rate"] == 0.5 * atk.quiet
    assert summary["single_share"] == 1.0 and summary["five_share"] == 1.0
    assert summary["counts"]["single_share"] == [1, 1] and summary["counts"]["single_rate"] == [int(atk.quiet), 2]
    assert summary["denominators"]["single_share"] == "verified flips"
    assert summary["denominators"]["single_rate"] == "measured clips"
    assert summary["int16_survival_share"] == float(atk.survives_int16)
    assert summary["int16_survival_rate"] == 0.5 * (atk.quiet and atk.survives_int16)
    assert summary["queries_by_source"]["original"] == 2 and summary["won_by_source"] == {atk.source: 1}
    stft = summary["stft"]
    assert stft["measured"] == 2 and stft["attempted"] == 1 and stft["success_share"] == 1.0
    assert stft["share_256"] == 1.0 and stft["success_rate"] == stft["rate_256"] == 0.5 * st.quiet
    assert stft["denominators"]["success_rate"] == "STFT-measured clips"


def test_queries_are_counted_exactly():
    x = km.tones({440: 1.0, 1000: 0.6}, noise=0.0)
    counting = km.CountingClassifier(km.amplitude_threshold_model(440, 0.8, N))
    exp = explained(counting, x)
    before = counting.seen
    atk = fa.fourier_attack(counting, x, exp)
    assert counting.seen - before == atk.queries
    before = counting.seen
    st = fa.stft_attack(counting, x, atk)
    assert counting.seen - before == st.queries
