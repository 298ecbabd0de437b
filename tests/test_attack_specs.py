"""The attack's spec keys: both budgets named apart, the ladder's largest scale, margin, SNR and int16."""

from __future__ import annotations

from pathlib import Path

import pytest

from freqrex_audit.specs.loader import SpecError, load_spec

from .test_specs import GOOD, folder, write  # noqa: F401  (the fixture)


def test_attack_keys_reach_the_config(folder):  # noqa: F811
    spec = load_spec(write(folder, GOOD.replace("fourier_attack: {budget: 1000, max_success_rate: 0.5}", "fourier_attack: {max_success_rate: 1.0}") +
                           "attack: {max_frequencies: 50, query_budget: 400, max_scale: 100, min_margin: 0.1,\n"
                           "         min_snr_db: 20, require_int16: true, screen_bins: 8, degenerate_share: 0.01}\n"
                           "stft_attack: {min_margin: 0.2, min_snr_db: 15}\n"))
    a = spec.attack
    assert (a.max_frequencies, a.query_budget, a.max_scale, a.min_margin) == (50, 400, 100.0, 0.1)
    assert a.min_snr_db == 20 and a.require_int16 and a.screen_bins == 8 and a.degenerate_share == 0.01
    assert max(m.value for m in a.ordered if m.kind == "scale") == 100  # ×1000 is dropped by max_scale
    assert spec.stft_attack.min_margin == 0.2 and spec.stft_attack.min_snr_db == 15


@pytest.mark.parametrize("attack,key,problem", [
    ("{query_budget: 2}", "attack.query_budget", "must be ≥ 3"),
    ("{max_scale: 0.5}", "attack.max_scale", "must be"),
    ("{min_margin: 1.5}", "attack.min_margin", "must be in"),
    ("{require_int16: maybe}", "attack.require_int16", "must be true or false"),
    ("{budget: 5, max_frequencies: 5}", "attack.budget", "older name of attack.max_frequencies"),
])
def test_bad_attack_keys_name_the_key(folder, attack, key, problem):  # noqa: F811
    path: Path = write(folder, GOOD.replace("fourier_attack: {budget: 1000, max_success_rate: 0.5}", "fourier_attack: {max_success_rate: 1.0}") +
                       f"attack: {attack}\n")
    with pytest.raises(SpecError) as info:
        load_spec(path)
    assert info.value.key == key and problem in str(info.value), str(info.value)


def test_cli_exhaustive_single_reports_the_flips_that_exist(tmp_path, capsys):
    """``attack --exhaustive-single N``: every single bin among the top N × the ladder, beside the attack."""
    import json

    import soundfile as sf

    from freqrex_audit.cli.main import main

    from . import attack_models as am

    clip = tmp_path / "clip.wav"
    sf.write(clip, am.clip({}, cosine=True), am.SR, subtype="FLOAT")
    out = tmp_path / "at"
    assert main(["attack", "tests.attack_models:phase_model", str(clip), "--out", str(out), "--no-stft",
                 "--exhaustive-single", "200"]) == 0
    summary = json.loads((out / "attack.json").read_text())
    ex = summary["exhaustive_single"]
    assert ex["bins_tried"] == 200 and ex["queries"] == 200 * 13 and ex["flips"] >= 1
    assert summary["success"] and summary["ladder_mutation"] == "+180°" and summary["queries_by_source"]
    assert summary["snr_db"] >= ex["best_snr_db"] - 0.1  # the walked / boundary flip: never louder than the ladder's
    assert (out / "exhaustive_single.json").exists()
    printed = capsys.readouterr().out
    assert "exhaustive single-bin search:" in printed and "+180°" in printed
