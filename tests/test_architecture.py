"""The house rules hold: imports run down the layers of docs/ARCHITECTURE.md with no circles, every package is
in a layer, and the pytest plugin costs nothing in a project without specs."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "freqrex_audit"
HEAVY = ("torch", "transformers", "scipy", "matplotlib", "numpy", "pydantic", "jinja2", "soundfile")


def _contracts() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]


def test_import_linter_contracts_hold():
    """The layers contract (no import from a lower package up) and the acyclic contract (no circle between the
    modules of any package), as import-linter checks them, imports inside functions included."""
    lint = pytest.importorskip("importlinter.cli", reason="pip install import-linter (the [dev] extra)")
    assert lint.lint_imports(config_filename=str(ROOT / "pyproject.toml"), no_cache=True, no_logo=True) == 0


def test_every_top_level_module_sits_in_a_layer():
    """A new package or top-level module outside the layer list would escape the layers contract."""
    layers = next(c for c in _contracts()["contracts"] if c["type"] == "layers")["layers"]
    named = {name.strip() for layer in layers for name in layer.split("|")}
    present = {p.stem if p.is_file() else p.name for p in PACKAGE.iterdir()
               if (p.suffix == ".py" and p.stem not in ("__init__", "__main__"))
               or (p.is_dir() and (p / "__init__.py").exists())}
    assert present - named == set(), f"add these to the layers in pyproject.toml: {sorted(present - named)}"
    assert named - present == set(), f"the layers name packages that do not exist: {sorted(named - present)}"


def test_the_layer_contract_sees_a_circle_inside_a_function(tmp_path: Path):
    """The check is real: a copy of the package with one upward import inside a function breaks it."""
    lint = pytest.importorskip("importlinter.cli", reason="pip install import-linter (the [dev] extra)")
    copy = tmp_path / "freqrex_audit"
    import shutil

    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("zoo", "__pycache__", "templates"))
    (copy / "zoo").mkdir()
    (copy / "zoo" / "__init__.py").write_text("")
    with open(copy / "runtime" / "deadline.py", "a") as handle:
        handle.write("\n\ndef _upward():\n    from ..audit.run import run_spec  # noqa: F401\n")
    (tmp_path / "pyproject.toml").write_text((ROOT / "pyproject.toml").read_text())
    code = ("import sys; sys.path.insert(0, sys.argv[1]); from importlinter.cli import lint_imports; "
            "sys.exit(lint_imports(config_filename=sys.argv[2], no_cache=True, no_logo=True))")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path), str(tmp_path / "pyproject.toml")],
                          capture_output=True, text=True, cwd=tmp_path)
    assert lint is not None and done.returncode == 1, done.stdout[-2000:]
    assert "freqrex_audit.runtime.deadline -> freqrex_audit.audit.run" in done.stdout


def test_importing_the_package_imports_nothing_heavy():
    """``import freqrex_audit`` is lazy (PEP 562); the public names still resolve on first use."""
    code = ("import sys, freqrex_audit as fa; heavy = [m for m in sys.argv[1:] if m in sys.modules]; "
            "print(heavy); assert not heavy, heavy; assert callable(fa.explain) and fa.QueryEngine; "
            "assert 'torch' in sys.modules")
    done = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_cli_s_help_imports_nothing_heavy():
    """``freqrex-audit --help`` (and every usage error) answers without torch, matplotlib or transformers: the
    commands that need them import their modules when they run (it took 3 s, 2.5 of them torch's import)."""
    code = ("import sys\nfrom freqrex_audit.cli.main import main\ntry:\n    main(['--help'])\nexcept SystemExit:\n"
            "    pass\nheavy = [m for m in sys.argv[1:] if m in sys.modules]\nprint('HEAVY', heavy)\n")
    slow = [m for m in HEAVY if m != "numpy"]  # numpy takes ~0.1 s (audio.io's errors need it)
    done = subprocess.run([sys.executable, "-c", code, *slow], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "HEAVY []" in done.stdout and "audit" in done.stdout, done.stdout + done.stderr


def test_reading_a_run_and_the_spec_schema_import_no_torch():
    """``freqrex-audit tables``, ``compare`` and ``schema`` read results and settings, never a model: the settings
    live in ``engine.configs``, ``engine/__init__`` is lazy, and the run's records name the results' types for
    annotations only (each command paid ~2.5 s of torch's import before)."""
    run = str(ROOT / "docs" / "demo-run")
    code = ("import sys, io, contextlib\nfrom freqrex_audit.cli.main import main\n"
            "for argv in (['tables', sys.argv[1]], ['compare', sys.argv[1], sys.argv[1]], ['schema']):\n"
            "    with contextlib.redirect_stdout(io.StringIO()) as out:\n"
            "        try:\n            main(argv)\n        except SystemExit as exc:\n"
            "            assert not exc.code, (argv, exc.code)\n"
            "    assert len(out.getvalue()) > 1000, argv\n"
            "print('HEAVY', [m for m in ('torch', 'transformers', 'matplotlib') if m in sys.modules])\n")
    done = subprocess.run([sys.executable, "-c", code, run], capture_output=True, text=True, cwd=ROOT)
    assert done.returncode == 0 and "HEAVY []" in done.stdout, done.stdout[-2000:] + done.stderr[-2000:]


def test_pytest_in_a_project_without_specs_never_imports_the_audit_stack(tmp_path: Path):
    """A real pytest session (configure, collect, run, finish) in an unrelated project, with a YAML file that is
    no spec: the plugin loads, and no heavy module is imported."""
    (tmp_path / "pyproject.toml").write_text("[tool.pytest.ini_options]\n")
    (tmp_path / "config").mkdir()
    (tmp_path / "config" / "settings.yaml").write_text("debug: true\n")
    (tmp_path / "test_plain.py").write_text("def test_one():\n    assert 1 + 1 == 2\n")
    code = textwrap.dedent("""
        import sys, pytest
        code = pytest.main(["-q", "-p", "no:cacheprovider", "config", "test_plain.py"])
        loaded = "freqrex_audit.plugin.hooks" in sys.modules
        heavy = [m for m in sys.argv[1:] if m in sys.modules]
        print("PLUGIN", loaded, "HEAVY", heavy)
        sys.exit(0 if code == 0 and loaded and not heavy else 3)
    """)
    done = subprocess.run([sys.executable, "-c", code, *HEAVY], capture_output=True, text=True, cwd=tmp_path)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "1 passed" in done.stdout and "PLUGIN True HEAVY []" in done.stdout


def test_the_cache_key_hashes_the_moved_engine_sources_and_never_skips_one(tmp_path: Path):
    """After a move the engine version must still cover the files results depend on; a pattern that matches
    nothing is an error (a stale cache passing for a fresh one is worse than a miss)."""
    from freqrex_audit.audit.cache import engine_sources

    names = {p.relative_to(PACKAGE).as_posix() for p in engine_sources(PACKAGE)}
    assert {"engine/explanation.py", "engine/attacks.py", "audio/spectrum.py", "models/classifier.py",
            "models/padding.py"} <= names
    (tmp_path / "engine").mkdir()
    (tmp_path / "engine" / "explain.py").write_text("")
    with pytest.raises(RuntimeError, match="audio/spectrum.py"):
        engine_sources(tmp_path)
