"""README examples are copied from files that exist: a ```yaml block headed ``# <path>`` is that file
verbatim (and a valid spec), and every ``freqrex-audit`` command in a ```bash block parses with the CLI's
own parser and names files that exist (placeholders like ``<run>`` aside). The commands are not run here
(the demo models take minutes); the spec example is loaded and validated."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

from freqrex_audit.cli.main import build_parser
from freqrex_audit.specs.loader import load_spec

REPO = Path(__file__).resolve().parents[1]
README = (REPO / "README.md").read_text(encoding="utf-8")


def blocks(language: str) -> list[str]:
    return re.findall(rf"```{language}\n(.*?)```", README, flags=re.S)


def test_yaml_examples_are_the_files_they_name():
    headed = [b for b in blocks("yaml") if re.match(r"# [\w./-]+\.ya?ml", b)]
    assert headed, "the worked example names its file"
    for block in headed:
        path = REPO / block.split()[1]
        assert path.is_file(), f"README names {path}, which does not exist"
        assert path.read_text(encoding="utf-8") == block, f"README's copy of {path} differs from the file"
        load_spec(path)  # a valid spec, not just text


def test_cli_commands_parse_and_name_existing_files():
    parser = build_parser()
    commands = []
    for block in blocks("bash"):
        for line in block.splitlines():
            for part in line.split("&&"):
                part = part.split("  #", 1)[0].strip()
                if part.startswith("freqrex-audit "):
                    commands.append(shlex.split(part)[1:])
    assert len(commands) >= 4
    for argv in commands:
        args = parser.parse_args(argv)  # SystemExit here: an option or subcommand the README invents
        for value in argv:
            if "<" not in value and value.endswith((".yaml", ".yml", ".flac", ".wav")):
                found = any(REPO.glob(value)) if "*" in value else (REPO / value).exists()  # a shell glob: ≥ 1 file
                assert found, f"README command {' '.join(argv)} names {value}, which does not exist"
        if args.command == "audit":
            assert all((REPO / s).exists() for s in args.specs)


def test_readme_defines_every_metric_as_the_engine_does():
    """One meaning per metric name: README's table is the engine's METRICS, row for row (a changed definition
    that README does not follow fails here)."""
    from freqrex_audit.engine.summaries import DENOMINATORS, METRICS

    for name, (counts, over) in METRICS.items():
        assert f"| `{name}` | {counts} | {over} |" in README, f"README lacks or misstates {name}"
    for name, text in DENOMINATORS.items():
        assert f"| {name} | {text} |" in README, f"README lacks or misstates the denominator {name!r}"


def test_readme_tables_are_what_the_command_prints_on_the_committed_demo_run():
    """Numbers from commands: README's attack table and α matrix are `freqrex-audit tables docs/demo-run`,
    pasted; a hand-edited cell, or a demo run replaced without pasting again, fails here."""
    from freqrex_audit.report.tables import alpha_matrix, table3
    from freqrex_audit.runs.read import load_run

    doc, arrays = load_run(REPO / "docs" / "demo-run" / "results.json", arrays=False)
    assert "freqrex-audit tables docs/demo-run" in README
    for block in (table3(doc), alpha_matrix(doc, arrays)):
        assert block in README, f"README lacks this output of freqrex-audit tables docs/demo-run:\n{block}"


def test_readme_peer_tables_are_what_the_bench_printed():
    """Numbers from commands: "Attack strength against the field" pastes `freqrex-audit bench --peers
    benchmarks/peers/*.yaml --json docs/peers-bench.json` (the default attack) whole, and the summaries of the same
    command with `--attack-seed 1` and at `--attack-budget 1000`; each must be what its file formats to."""
    import json

    from freqrex_audit.bench.peers import format_peer_table, rows_from_json

    from freqrex_audit.engine.attack_config import AttackConfig

    for command, name, part, budget in (
            (" --json docs/peers-bench.json", "peers-bench.json", slice(None), AttackConfig().query_budget),
            (" --attack-seed 1 --json docs/peers-bench-seed1.json", "peers-bench-seed1.json", slice(1, 2),
             AttackConfig().query_budget),
            (" --attack-budget 1000 --json docs/peers-bench-1000.json", "peers-bench-1000.json", slice(1, 2), 1000)):
        doc = json.loads((REPO / "docs" / name).read_text())
        spent = [row["queries"] - row["explain_queries"] for row in doc["rows"]]
        assert max(spent) == budget, f"docs/{name} was not measured at {budget} attack queries"
        assert f"freqrex-audit bench --peers benchmarks/peers/*.yaml{command}" in README
        table = "\n\n".join(format_peer_table(rows_from_json(doc), doc["snr_db"]).split("\n\n")[part])
        assert table in README, f"README lacks this table of docs/{name}:\n{table}"


def test_readme_explainer_tables_are_what_the_bench_printed():
    """Numbers from commands: "Other explainers" pastes `freqrex-audit bench --explainers --latent-paper --clips 20
    --json docs/explainers-bench.json`; each table must be what that file formats to, and the codec's stated
    held-out SNR what its results.json records (which test_explainers_zoo measures again)."""
    import json

    from freqrex_audit.bench.explainers import format_latent_paper, format_methods

    bench = json.loads((REPO / "docs" / "explainers-bench.json").read_text())
    assert "freqrex-audit bench --explainers --latent-paper --clips 20 --json docs/explainers-bench.json" in README
    assert set(bench) == {f"zoo://instruments/{m}" for m in ("ast", "wav2vec2", "hubert", "whisper")} | {"latent_paper"}
    for name, table in bench.items():
        block = format_latent_paper(table) if name == "latent_paper" else format_methods(name, table)
        assert block in README, f"README lacks this table of docs/explainers-bench.json:\n{block}"
    snr = json.loads((REPO / "freqrex_audit" / "zoo" / "instruments" / "codec" / "results.json").read_text())
    assert f"held-out SNR **{snr['held_out_snr_db']['continuous']:.2f} dB**" in " ".join(README.split())
