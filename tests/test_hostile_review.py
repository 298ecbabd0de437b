"""A fresh adversarial review (issue: hostile inputs): models that try to end the run, change their labels or
return numbers that are not real, and rates or label sets no audit can measure. Each fails its clip or its spec
with an error naming the model, and the rest of the audit keeps its results."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch

from freqrex_audit import Classifier, ClassifierError, QueryEngine
from freqrex_audit.adapters import load_classifier
from freqrex_audit.cli.main import main
from freqrex_audit.models.self_check import SELF_CHECK_CALLS
from tests import hostile_models as hm
from tests.audit_models import write_fragile_dataset

X = (0.3 * np.sin(2 * np.pi * 300 * np.arange(800) / hm.SR)).astype(np.float32)


def engine_for(fn, timeout_s: float | None, name: str = "m") -> QueryEngine:
    return QueryEngine(Classifier.from_callable(fn, hm.LABELS, hm.SR, name=name), timeout_s=timeout_s)


@pytest.mark.parametrize("timeout_s", [None, 30.0])  # the model runs in the caller's thread, or a worker thread
@pytest.mark.parametrize("how,shown", [("exit", "SystemExit: 3"), ("raise", "RuntimeError: boom on call 1")])
def test_a_model_that_exits_or_raises_is_a_classifier_error_naming_it(timeout_s, how, shown):
    engine = QueryEngine(hm.exits_on_call(call=1, how=how), timeout_s=timeout_s)
    with pytest.raises(ClassifierError, match=rf"{how}s-on-call-1: predict raised {shown} \((?:tests/)?hostile_models.py:\d+\)"):
        engine.query(X)
    assert engine.query(X).shape == (1, 2)  # later calls still work: one bad call is one bad call


def test_a_keyboard_interrupt_raised_by_the_model_in_its_worker_thread_is_the_models_error():
    engine = QueryEngine(hm.exits_on_call(call=1, how="interrupt"), timeout_s=30)
    with pytest.raises(ClassifierError, match="predict raised KeyboardInterrupt"):
        engine.query(X)


@pytest.mark.parametrize("out,problem", [
    (lambda x: torch.softmax(hm._logits(x), -1).to(torch.complex64), "returned complex numbers"),
    (lambda x: torch.softmax(hm._logits(x), -1).to("meta"), "returned Tensor, not a .* \\(NotImplementedError"),
    (lambda x: np.array([[1 + 0j, 0j]] * x.shape[0]), "returned complex numbers"),
])
def test_scores_that_are_not_real_numbers_are_refused_naming_the_model(out, problem):
    with pytest.raises(ClassifierError, match=f"m: predict {problem}"):
        engine_for(out, None).query(X)


def test_a_model_that_changes_its_labels_mid_run_is_refused():
    clf = hm.relabelling(after_calls=1)
    engine = QueryEngine(clf)
    engine.query(X)
    with pytest.raises(ClassifierError, match=r"relabelling: its labels changed during the run \(from \['low', "
                                              r"'high'\] to \['high', 'low'\]\)"):
        engine.query(X)


@pytest.mark.parametrize("options,problem", [
    ({"sample_rate": 10 ** 9}, "odd-rate: sample_rate 1000000000 Hz is outside the supported 1000–768000 Hz"),
    ({"sample_rate": 1}, "odd-rate: sample_rate 1 Hz is outside"),
    ({"labels": ["only"]}, "odd-rate: a classifier needs at least two labels, got 1"),
])
def test_a_factory_built_classifier_with_an_unmeasurable_rate_or_one_label_fails_to_load(options, problem):
    with pytest.raises(ClassifierError, match=problem):  # before the self-check would resample to 10⁹ Hz
        load_classifier({"target": "tests.hostile_models:odd_rate", "options": options}, device="cpu")
    with pytest.raises(ValueError, match="at least two labels"):
        Classifier.from_callable(lambda x: x, ["only"], hm.SR)
    with pytest.raises(ValueError, match="labels must be a list of class names, got str"):
        Classifier.from_callable(lambda x: x, "ab", hm.SR)


def test_a_factory_that_exits_is_a_load_error_naming_the_target():
    with pytest.raises(ClassifierError, match="'tests.hostile_models:factory_exits': the factory raised SystemExit: 1"):
        load_classifier({"target": "tests.hostile_models:factory_exits"}, device="cpu")


SPEC = """model: {{target: "tests.hostile_models:{target}", options: {options}}}
dataset: {{path: data, clip_seconds: 0.25, label_map: {{loud: low, quiet: high}}}}
freqrex: {{seed: 0, iterations: 2, grid_points: 16, refine_points: 4}}
attack: {{budget: 4, pool: ranking, query_budget: 40}}
checks: {{accuracy: {{min: 0.0}}, sufficiency: {{}}}}
"""


def test_a_model_exiting_mid_audit_fails_one_clip_and_the_audit_goes_on(tmp_path, capsys):
    write_fragile_dataset(tmp_path / "data", per_class=2)
    call = SELF_CHECK_CALLS + 2  # the self-check's calls, one clip's prediction, then a call mid-audit
    (tmp_path / "exits.yaml").write_text(SPEC.format(target="exits_on_call", options=f"{{call: {call}}}"))
    (tmp_path / "gone.yaml").write_text(SPEC.format(target="factory_exits", options="{}"))
    status = main(["audit", str(tmp_path / "exits.yaml"), str(tmp_path / "gone.yaml"), "--report",
                   str(tmp_path / "reports"), "--no-cache", "--device", "cpu"])
    assert status == 1, capsys.readouterr().out  # a gate failed; the process was not ended by the model
    doc = json.loads(next((tmp_path / "reports").glob("*/results.json")).read_text())
    samples = {s["id"]: s for s in doc["specs"]["exits"]["samples"]}
    errors = [s for s in samples.values() if s["status"] == "error"]
    assert len(errors) == 1 and f"exits-on-call-{call}: predict raised SystemExit: 3" in errors[0]["reason"]
    assert sum(s["status"] in ("ok", "misclassified") for s in samples.values()) == 3  # the others kept theirs
    assert "the factory raised SystemExit: 1" in doc["specs"]["gone"]["error"]


# --- audio -----------------------------------------------------------------------------------------------

def _tone(n: int = 2000, amplitude: float = 0.5) -> np.ndarray:
    return (amplitude * np.sin(2 * np.pi * 440 * np.arange(n) / hm.SR + 0.3)).astype(np.float64)


def test_clips_too_short_to_explain_are_refused_naming_the_file(tmp_path):
    import soundfile as sf

    from freqrex_audit.audio.io import MIN_SAMPLES, AudioError, read_audio, validate_waveform

    for n in (1, 2, MIN_SAMPLES - 1):
        sf.write(tmp_path / f"n{n}.wav", _tone(n), hm.SR, subtype="FLOAT")
        with pytest.raises(AudioError, match=rf"n{n}.wav: has only {n} sample\(s\); at least {MIN_SAMPLES}"):
            read_audio(tmp_path / f"n{n}.wav")
    sf.write(tmp_path / "ok.wav", _tone(MIN_SAMPLES), hm.SR, subtype="FLOAT")
    assert read_audio(tmp_path / "ok.wav").samples.size == MIN_SAMPLES
    with pytest.raises(AudioError, match="has only 3 sample"):
        validate_waveform(_tone(3).astype(np.float32))


def test_float64_samples_beyond_float32_or_above_full_scale_are_told_as_they_are(tmp_path):
    import soundfile as sf

    from freqrex_audit.audio.io import AudioError, read_audio

    sf.write(tmp_path / "huge.wav", _tone() * 1e300, hm.SR, subtype="DOUBLE")  # inf once read as float32
    with pytest.raises(AudioError, match=r"huge.wav: has samples up to 5e\+299, far beyond full scale"):
        read_audio(tmp_path / "huge.wav")
    sf.write(tmp_path / "hot.wav", _tone() * 50, hm.SR, subtype="DOUBLE")
    clip = read_audio(tmp_path / "hot.wav")
    assert clip.samples.dtype == np.float32 and abs(float(np.abs(clip.samples).max()) - 25) < 0.01
    assert any("peaks at 25, above full scale" in note for note in clip.notes)
    sf.write(tmp_path / "fine.wav", _tone(), hm.SR, subtype="PCM_16")
    assert read_audio(tmp_path / "fine.wav").notes == ()


def test_a_wav_header_declaring_less_audio_than_the_file_holds_is_refused(tmp_path):
    import struct

    import soundfile as sf

    from freqrex_audit.audio.io import AudioError, read_audio

    sf.write(tmp_path / "good.wav", _tone(), hm.SR, subtype="PCM_16")
    data = (tmp_path / "good.wav").read_bytes()
    assert data[36:40] == b"data"
    (tmp_path / "lying.wav").write_bytes(data[:40] + struct.pack("<I", 100) + data[44:])  # 50 of 2000 frames
    with pytest.raises(AudioError, match=r"lying.wav: declares less audio than it holds: its WAV header says 50 "
                                         r"frames \(0.00625 s\), but 3900 more bytes"):
        read_audio(tmp_path / "lying.wav")
    # what may lawfully follow the data chunk: another chunk, or zero padding
    (tmp_path / "list.wav").write_bytes(data + b"LIST" + struct.pack("<I", 4) + b"INFO")
    (tmp_path / "padded.wav").write_bytes(data + bytes(4096))
    for name in ("list.wav", "padded.wav"):
        assert read_audio(tmp_path / name).samples.size == 2000


# --- specs ------------------------------------------------------------------------------------------------

BASE = 'model: {target: "tests.audit_models:fragile"}\ndataset: {path: data%s}\n%s'


@pytest.mark.parametrize("extra,rest,problem", [
    (", sample_rate: 1000000000", "", r"dataset.sample_rate: must be in \[1000, 768000\], got 1000000000"),
    (", sample_rate: 1", "", r"dataset.sample_rate: must be in \[1000, 768000\], got 1 "),
    ("", "freqrex: {parts: 64}\n", r"freqrex.parts: must be in \[2, 12\], got 64"),
    ("", "freqrex: {refine_parts: 40}\n", r"freqrex.refine_parts: must be in \[2, 12\], got 40"),
    (", limit: 1" + "0" * 5000, "", "is not a valid spec: Exceeds the limit"),  # Python's int-from-text limit
])
def test_rates_parts_and_giant_integers_no_audit_could_run_are_spec_errors(tmp_path, extra, rest, problem):
    from freqrex_audit.specs.loader import SpecError, load_spec

    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "s.yaml").write_text(BASE % (extra, rest))
    with pytest.raises(SpecError, match=rf"s.yaml: {problem}"):
        load_spec(tmp_path / "s.yaml")


def test_an_engine_config_with_too_many_parts_is_refused():
    import freqrex_audit as fa

    with pytest.raises(ValueError, match="parts"):
        fa.FreqReXConfig(parts=13)
    assert fa.FreqReXConfig(parts=12).parts == 12


def test_a_peer_lookup_does_not_parse_an_oversized_neighbour(tmp_path, monkeypatch):
    from freqrex_audit.specs import safe_yaml as spec_yaml
    from freqrex_audit.specs.loader import SpecError, find_peer, load_spec

    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "data" / "a").mkdir(parents=True)
    (tmp_path / "s.yaml").write_text(BASE % ("", "checks: {}\n"))
    (tmp_path / "big.yaml").write_text("name: wanted\n" + "# padding\n" * 200)
    (tmp_path / "wanted2.yaml").write_text("name: wanted\n")
    monkeypatch.setattr(spec_yaml, "MAX_SPEC_BYTES", 1000)
    parsed = []
    real = spec_yaml.yaml_load
    monkeypatch.setattr(spec_yaml, "yaml_load", lambda text: parsed.append(len(text)) or real(text))
    spec = load_spec(tmp_path / "s.yaml")
    assert find_peer(spec, "wanted").name == "wanted2.yaml"
    assert max(parsed) < 1000  # the 2 KB neighbour was refused by size, never parsed
    with pytest.raises(SpecError, match="no spec named 'nobody'"):
        find_peer(spec, "nobody")


def test_a_looping_or_dangling_link_named_on_the_command_line_says_so(tmp_path, capsys):
    from freqrex_audit.audio.io import AudioError, read_audio

    (tmp_path / "a.wav").symlink_to("b.wav")
    (tmp_path / "b.wav").symlink_to("a.wav")
    (tmp_path / "gone.wav").symlink_to(tmp_path / "nothing.wav")
    with pytest.raises(AudioError, match="a.wav: is a symlink loop"):
        read_audio(tmp_path / "a.wav")
    with pytest.raises(AudioError, match="gone.wav: is a dangling symlink"):
        read_audio(tmp_path / "gone.wav")
    assert main(["classify", "tests.audit_models:fragile", str(tmp_path / "a.wav")]) == 1
    assert "a.wav\terror: is a symlink loop" in capsys.readouterr().err


# --- manifests --------------------------------------------------------------------------------------------

def _manifest_samples(tmp_path, text: str):
    from freqrex_audit.audit.datasets import list_samples
    from freqrex_audit.specs.loader import load_spec

    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "m.csv").write_text(text)
    (tmp_path / "s.yaml").write_text('model: {target: "tests.audit_models:fragile"}\ndataset: {path: m.csv}\n'
                                     'checks: {}\n')
    return list_samples(load_spec(tmp_path / "s.yaml").dataset)


def test_a_repeated_path_column_is_a_manifest_error_and_one_clip_under_two_spellings_is_skipped_once(tmp_path):
    from freqrex_audit.audit.datasets import DatasetError

    with pytest.raises(DatasetError, match="the header names the column\\(s\\) 'path' more than once"):
        _manifest_samples(tmp_path, "path,path,label\na.wav,b.wav,quiet\n")
    (tmp_path / "d" / "x").mkdir(parents=True)  # the file exists: only its spellings are in question
    (tmp_path / "d" / "q.wav").touch()
    samples = _manifest_samples(tmp_path, "path,label\nd/q.wav,quiet\n./d/q.wav,loud\nd/x/../q.wav,loud\n")
    problems = {s.id: s.problem for s in samples}
    assert problems["d/q.wav"] is None
    for spelling, line in (("./d/q.wav", 3), ("d/x/../q.wav", 4)):
        assert problems[spelling] == (f"{tmp_path / 'm.csv'}: line {line}: is the same file as 'd/q.wav' (line 2); "
                                      f"each clip gets one verdict, so list it once")


def test_a_manifest_row_without_a_label_is_skipped_with_its_line(tmp_path):
    # an unbalanced quote swallows the label column: the row has a path but no label
    samples = _manifest_samples(tmp_path, 'path,label\r\n"q.wav,quiet\r\n')
    assert [s.problem for s in samples] == [f"{tmp_path / 'm.csv'}: line 2: has no label"]


def test_a_spec_naming_itself_as_a_peer_is_a_spec_error_at_load(tmp_path):
    from freqrex_audit.specs.loader import SpecError, load_spec

    (tmp_path / "pyproject.toml").touch()
    (tmp_path / "data" / "a").mkdir(parents=True)
    for name, peers in (("me", "[other, me]"), ("stem", "[self_by_stem]")):
        text = (f"name: {name}\n" if name == "me" else "") + BASE % ("", f"peers: {peers}\nchecks: {{}}\n")
        (tmp_path / f"{'x' if name == 'me' else 'self_by_stem'}.yaml").write_text(text)
    with pytest.raises(SpecError, match=r"x.yaml: peers\[1\]: 'me' is this spec itself.*\(line 4\)"):
        load_spec(tmp_path / "x.yaml")
    with pytest.raises(SpecError, match=r"self_by_stem.yaml: peers\[0\]: 'self_by_stem' is this spec itself"):
        load_spec(tmp_path / "self_by_stem.yaml")


def test_in_a_subprocess_a_model_that_exits_or_returns_complex_scores_fails_that_call_only():
    call = SELF_CHECK_CALLS + 1  # the calls before it: the self-check's
    clf = load_classifier({"target": "tests.hostile_models:exits_on_call", "options": {"call": call},
                           "isolation": "subprocess", "timeout_s": 60}, device="cpu")
    try:
        engine = QueryEngine(clf)
        with pytest.raises(ClassifierError, match=rf"exits-on-call-{call}: predict raised SystemExit: 3 "
                                                  r"\((?:tests/)?hostile_models.py:\d+\)"):
            engine.query(X)
        assert engine.query(X).shape == (1, 2)  # the child process lives on
    finally:
        clf.close()
