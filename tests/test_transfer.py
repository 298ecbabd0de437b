"""transfer.py: α / β matrices (Defs 4–5), the paired t-test and flat-earthers on planted models."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.stats

import freqrex_audit as fa
from freqrex_audit.engine import TransferResult, TransferSignal, transfer_signals, transferability

from .conftest import tone_mix
from .planted import peak_model

SECONDS = 0.25
A_BANDS = dict(low=(200, 600), high=(1200, 1800))
D_BANDS = dict(low=(2000, 2400), high=(3000, 3600))


def records(low_freqs, high_freqs, extra=None, sr=8000):
    """Sufficient signals = pure tones in the model's bands; complete = the tone plus a weaker one."""
    out = []
    for label, freqs in (("low", low_freqs), ("high", high_freqs)):
        for f in freqs:
            complete = tone_mix({f: 1.0, (extra or f + 40): 0.4}, SECONDS, sr=sr)
            out.append(TransferSignal(label, tone_mix({f: 1.0}, SECONDS, sr=sr), complete, sr))
    return out


A_SIGNALS = records((300, 400, 500), (1300, 1500, 1700))
D_SIGNALS = records((2100, 2200, 2300), (3100, 3300, 3500))


def test_identical_models_transfer_fully_both_ways():
    clf = peak_model(**A_BANDS)
    result = transferability({"f": clf, "g": peak_model(**A_BANDS)}, {"f": A_SIGNALS, "g": A_SIGNALS})
    for kind in ("sufficient", "complete"):
        assert np.array_equal(result.alpha(kind), np.ones((2, 2)))
        assert np.array_equal(result.beta(kind), np.ones((2, 2)))
    assert result.sufficient.n_signals.tolist() == [6, 6]
    assert result.flat_earthers == ()
    assert np.isnan(result.ttest_statistic) and result.ttest_pairs == 2  # no variation: NaN, no crash
    assert result.queries == {"f": 24, "g": 24}  # 12 sufficient + 12 complete signals per target


def test_real_explanations_transfer_between_identical_models():
    clf = peak_model(**A_BANDS)
    clips = [tone_mix({400: 1.0, 1500: 0.6}, SECONDS, noise=0.05, seed=1),
             tone_mix({1500: 1.0, 400: 0.5}, SECONDS, noise=0.05, seed=2)]
    explanations = [fa.explain(clf, x, fa.FreqReXConfig(seed=0, iterations=4)) for x in clips]
    signals = transfer_signals(explanations)
    assert [s.label for s in signals] == ["low", "high"]
    result = transferability({"f": clf, "g": peak_model(**A_BANDS)}, {"f": signals})
    assert np.array_equal(result.alpha("sufficient")[0], [1.0, 1.0])
    assert np.isnan(result.alpha("sufficient")[1]).all()  # g gave no signals: its row is undefined


def test_disjoint_bands_do_not_transfer():
    result = transferability({"a": peak_model(**A_BANDS), "d": peak_model(**D_BANDS)},
                             {"a": A_SIGNALS, "d": D_SIGNALS})
    for kind in ("sufficient", "complete"):
        alpha = result.alpha(kind)
        assert np.diag(alpha).tolist() == [1.0, 1.0]
        assert alpha[0, 1] == 0.0 and alpha[1, 0] == 0.0
    assert result.flat_earthers == ()  # two models: nobody to be an outlier against


def four_models():
    classifiers = {
        "a1": peak_model(**A_BANDS),
        "a2": peak_model(low=(250, 650), high=(1250, 1850)),
        "a3": peak_model(low=(150, 550), high=(1150, 1750)),
        "d": peak_model(**D_BANDS),
    }
    signals = {name: A_SIGNALS for name in ("a1", "a2", "a3")} | {"d": D_SIGNALS}
    return classifiers, signals


def test_the_one_model_on_a_different_band_is_the_only_flat_earther():
    classifiers, signals = four_models()
    result = transferability(classifiers, signals)
    assert result.flat_earthers == ("d",)
    alpha = result.alpha()
    assert np.allclose(alpha[:3, :3], 1.0) and np.allclose(alpha[3, :3], 0) and np.allclose(alpha[:3, 3], 0)
    assert np.allclose(result.sufficient.alpha_out, [2 / 3, 2 / 3, 2 / 3, 0])
    assert np.allclose(result.sufficient.alpha_in, [2 / 3, 2 / 3, 2 / 3, 0])
    assert "0.6 x the other models' mean" in result.flat_earther_rule
    assert result.flat_earthers_complete == ("d",)
    # Without the outlier the group is homogeneous: no flags.
    del classifiers["d"], signals["d"]
    assert transferability(classifiers, signals).flat_earthers == ()


def test_entropy_bound_separates_beta_from_alpha():
    # A low-gain copy gives the right class with a nearly flat output: α = 1, β = 0 at ε = 0.5.
    classifiers = {"sharp": peak_model(**A_BANDS), "flat": peak_model(**A_BANDS, gain=1.0)}
    signals = {"sharp": A_SIGNALS}
    result = transferability(classifiers, signals, epsilon=0.5)
    assert result.entropy_bound == pytest.approx(0.5 * np.log2(3))
    assert result.alpha()[0].tolist() == [1.0, 1.0] and result.beta()[0].tolist() == [1.0, 0.0]
    loose = transferability(classifiers, signals, epsilon=1.0)
    assert np.array_equal(loose.beta()[0], loose.alpha()[0])
    with pytest.raises(ValueError, match="epsilon"):
        transferability(classifiers, signals, epsilon=0.0)


def test_paired_t_test_compares_sufficient_with_complete():
    # Three low bands of different widths; complete low tones sit nearer the band edges than the
    # sufficient ones, so the narrow-band model "b" accepts fewer complete signals than sufficient.
    classifiers = {"a": peak_model(**A_BANDS), "b": peak_model(low=(350, 600), high=(1200, 1800)),
                   "c": peak_model(low=(200, 450), high=(1200, 1600))}
    highs = [tone_mix({f: 1.0}, SECONDS) for f in (1300, 1500, 1700)]
    signals = [TransferSignal("low", tone_mix({f: 1.0}, SECONDS), tone_mix({g: 1.0}, SECONDS), 8000)
               for f, g in ((300, 250), (400, 300), (500, 580))]
    signals += [TransferSignal("high", h, h, 8000) for h in highs]
    result = transferability(classifiers, {name: signals for name in classifiers})
    off = ~np.eye(3, dtype=bool)
    a, b = result.alpha("sufficient")[off], result.alpha("complete")[off]
    expected = scipy.stats.ttest_rel(a, b)
    assert result.ttest_pairs == 6
    assert result.ttest_statistic == pytest.approx(expected.statistic)
    assert result.ttest_pvalue == pytest.approx(expected.pvalue)
    assert result.ttest_statistic > 0  # sufficient signals transfer better here
    assert result.alpha("sufficient")[0].tolist() == [1.0, 5 / 6, 4 / 6]
    assert result.alpha("complete")[0].tolist() == [1.0, 4 / 6, 4 / 6]


def test_sample_rates_are_resampled_and_labels_matched_by_name():
    # "wide" runs at 16 kHz and calls its classes "lo" / "hi"; signals are at 8 kHz.
    classifiers = {"a": peak_model(**A_BANDS), "wide": peak_model(**A_BANDS, sr=16000, labels=("lo", "hi", "none"))}
    result = transferability(classifiers, {"a": A_SIGNALS}, label_map={"wide": {"lo": "low", "hi": "high"}})
    assert result.alpha()[0].tolist() == [1.0, 1.0]
    assert result.labels == ("low", "high", "none")
    with pytest.raises(ValueError, match=r"'wide'.*missing \['high', 'low'\]"):
        transferability(classifiers, {"a": A_SIGNALS})


def test_models_with_a_different_label_set_are_named():
    classifiers = {"a": peak_model(**A_BANDS), "b": peak_model(**A_BANDS),
                   "odd": peak_model(**A_BANDS, labels=("low", "high", "other"))}
    with pytest.raises(ValueError, match=r"\['odd'\] differ from \['a', 'b'\].*extra \['other'\]"):
        transferability(classifiers, {"a": A_SIGNALS})
    with pytest.raises(ValueError, match="without a classifier"):
        transferability({"a": classifiers["a"]}, {"zzz": A_SIGNALS})
    with pytest.raises(ValueError, match="label 'mid'"):
        transferability({"a": classifiers["a"]}, {"a": [TransferSignal("mid", np.zeros(8), None, 8000)]})


def test_result_round_trips_through_json(tmp_path):
    classifiers, signals = four_models()
    del signals["a3"]  # a NaN row survives the trip
    result = transferability(classifiers, signals)
    restored = TransferResult.from_json(result.to_json())
    assert restored.to_json() == result.to_json()
    assert restored.flat_earthers == result.flat_earthers and restored.models == result.models
    assert np.array_equal(restored.alpha(), result.alpha(), equal_nan=True)
    loaded = TransferResult.load(result.save(tmp_path / "transfer.json"))
    assert np.array_equal(loaded.beta("complete"), result.beta("complete"), equal_nan=True)


# The transferability paper's Tables 1-3 (sufficient α, rows = source, columns = target; diagonal unused)
# and the calls its text makes on them: the recalibrated rule must reproduce them.
PAPER_TABLES = {
    "table1_voice_sufficient": (["VC1", "VC2", "VC3", "VC4", "VC5"], [
        [None, 0.123, 0.278, 0.289, 0.212], [0.051, None, 0.077, 0.101, 0.789], [0.17, 0.073, None, 0.184, 0.189],
        [0.175, 0.123, 0.192, None, 0.159], [0.288, 0.016, 0.062, 0.077, None]], ("VC5",)),
    "table2_music_sufficient": (["MC1", "MC2", "MC3", "MC4", "MC5"], [
        [None, 0.171, 0.408, 0.248, 0.24], [0.327, None, 0.238, 0.248, 0.265], [0.47, 0.218, None, 0.253, 0.19],
        [0.315, 0.211, 0.351, None, 0.305], [0.146, 0.21, 0.174, 0.261, None]], ()),
    "table2_music_complete": (["MC1", "MC2", "MC3", "MC4", "MC5"], [
        [None, 0.277, 0.514, 0.282, 0.434], [0.384, None, 0.449, 0.295, 0.339], [0.573, 0.338, None, 0.297, 0.4],
        [0.479, 0.409, 0.478, None, 0.603], [0.491, 0.451, 0.419, 0.451, None]], ()),
    "table3_asvspoof_sufficient": (["SP1", "SP2", "SP3"], [
        [None, 0.859, 0.782], [0.192, None, 0.882], [0.354, 0.254, None]], ("SP3",)),
    "table3_asvspoof_complete": (["SP1", "SP2", "SP3"], [
        [None, 0.764, 0.664], [0.856, None, 0.766], [0.797, 0.72, None]], ()),
}


@pytest.mark.parametrize("table", sorted(PAPER_TABLES))
def test_flat_earther_rule_reproduces_the_papers_calls_on_its_tables(table):
    from freqrex_audit.engine.transfer import _off_diagonal_means, flat_earthers

    models, rows, expected = PAPER_TABLES[table]
    alpha = np.array([[np.nan if v is None else v for v in row] for row in rows])
    out, _ = _off_diagonal_means(alpha)
    assert flat_earthers(models, out) == expected
