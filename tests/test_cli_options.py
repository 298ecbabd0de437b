"""Every CLI subcommand honours --seed and the spec's config keys (explain and attack read one helper)."""

from __future__ import annotations

import pytest

import freqrex_audit.engine as engine
from freqrex_audit.cli.main import main
from tests.audit_models import write_fragile_dataset

SPEC = """
name: fragile
model: {target: "tests.audit_models:fragile"}
dataset: {path: data}
freqrex: {seed: 7}
attack: {max_frequencies: 3, query_budget: 50}
checks:
  accuracy: {min: 0.5}
"""


class Seen(Exception):
    pass


@pytest.mark.parametrize("command", ["explain", "attack"])
@pytest.mark.parametrize("extra, seed", [([], 7), (["--seed", "11"], 11)])
def test_seed_and_spec_settings_reach_the_engine(tmp_path, monkeypatch, command, extra, seed):
    write_fragile_dataset(tmp_path / "data", per_class=1)
    (tmp_path / "spec.yaml").write_text(SPEC)
    seen = {}

    def fake_explain(eng, x, config):
        seen["seed"] = config.seed
        raise Seen

    def fake_attack(eng, x, exp, config):
        seen["attack"] = (config.max_frequencies, config.query_budget)
        raise Seen

    monkeypatch.setattr(engine, "explain", fake_explain)
    with pytest.raises(Seen):
        main([command, str(tmp_path / "spec.yaml"), str(tmp_path / "data" / "loud" / "000.wav"),
              "--out", str(tmp_path / "out"), "--device", "cpu", *extra])
    assert seen["seed"] == seed
    if command == "attack":  # the spec's attack keys, and the flags override them
        monkeypatch.setattr(engine, "explain", lambda eng, x, config: None)
        monkeypatch.setattr(engine, "fourier_attack", fake_attack)
        for flags, expected in (([], (3, 50)), (["--budget", "2", "--query-budget", "9"], (2, 9))):
            with pytest.raises(Seen):
                main([command, str(tmp_path / "spec.yaml"), str(tmp_path / "data" / "loud" / "000.wav"),
                      "--out", str(tmp_path / "out"), "--device", "cpu", *flags])
            assert seen["attack"] == expected


@pytest.mark.parametrize("value", ["0", "-2", "two"])
def test_a_bad_thread_count_is_a_usage_error_in_both_front_ends(value, capsys):
    from freqrex_audit.plugin.options import _checked
    from freqrex_audit.runtime.values import positive_int

    with pytest.raises(pytest.UsageError, match="freqrex-threads.*integer ≥ 1"):
        _checked(positive_int, value, "--freqrex-threads / freqrex_threads")
    with pytest.raises(SystemExit) as stop:
        main(["audit", "--threads", value, "nothing.yaml"])
    assert stop.value.code == 2 and "--threads" in capsys.readouterr().err


def test_threads_flag_sets_torch_threads_for_the_run(tmp_path, monkeypatch):
    import torch

    seen = []
    monkeypatch.setattr(torch, "set_num_threads", seen.append)
    assert main(["audit", "--threads", "1", str(tmp_path / "none")]) == 2  # no specs: exit 2, after the setting
    assert seen == [1]


@pytest.mark.parametrize("argv, cli_argv, problem", [
    (["--freqrex-samples", "-3"], ["--samples", "-3"], "must be an integer ≥ 1, got -3"),
    (["--freqrex-seed", "x"], ["--seed", "x"], "must be an integer in [0, 4294967295], got 'x'"),
    (["--freqrex-deadline", "inf"], ["--deadline", "inf"], "must be a finite number > 0, got 'inf'"),
])
def test_both_front_ends_refuse_a_bad_value_with_the_same_words(pytester, capsys, argv, cli_argv, problem):
    """One check per value (runtime.values): pytest's usage error and the CLI's argparse error say the same."""
    result = pytester.runpytest(*argv)
    assert result.ret == pytest.ExitCode.USAGE_ERROR and problem in result.stderr.str()
    with pytest.raises(SystemExit) as stop:
        main(["audit", *cli_argv, "nothing.yaml"])
    assert stop.value.code == 2 and problem in capsys.readouterr().err
