"""Render the zoo's recordings: a 4-class General-MIDI instrument task and speech / music clips for the VAD.

Run ``python -m freqrex_audit.zoo.make_data`` (add ``--seed N`` for another draw). The committed FLAC
files are what this script wrote with the default seed; users of the package never need to run it.

It needs three Debian packages (Debian 12 / Ubuntu)::

    apt-get install -y fluidsynth fluid-soundfont-gm espeak-ng

- ``fluidsynth`` renders MIDI files (written by the tiny writer below) with the ``FluidR3_GM.sf2``
  SoundFont from ``fluid-soundfont-gm`` (MIT licence, Frank Wen);
- ``espeak-ng`` synthesises the speech clips (GPL-3+ program; its output is our generated data).

What it writes (16 kHz mono, 16-bit FLAC), replacing what was there:

- ``instruments/train/<class>/*.flac`` and ``instruments/eval/<class>/*.flac``: 1-second clips of
  random melodies (pitch, note lengths, rests, dyads, velocity and start offset all drawn from the
  seeded generator); train and eval use disjoint generator streams, and eval melodies are checked
  not to repeat any train melody. ``--train`` / ``--eval`` clips per class (default 40 / 10).
- ``vad/eval/speech/*.flac``: espeak-ng sentences in several voices, 1.5 s;
  ``vad/eval/non_speech/music_*.flac``: instrumental MIDI phrases (no voice-like patches), 1.5 s.
  The folder names are the silero-vad classifier's labels, so the folder-of-class-dirs dataset
  matches the model's ``non_speech`` / ``speech`` classes by name.

Rendering is deterministic for a given seed, FluidSynth and SoundFont version (reverb and chorus
are switched off so nothing depends on the synth's internal state).
"""

from __future__ import annotations

import argparse
import shutil
import struct
import subprocess
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf
from scipy.signal import resample_poly

from . import ZOO_ROOT

SAMPLE_RATE = 16000
SOUNDFONT_CANDIDATES = ("/usr/share/sounds/sf2/FluidR3_GM.sf2", "/usr/share/soundfonts/FluidR3_GM.sf2")

# class name -> (General MIDI program (0-based), lowest MIDI note, highest MIDI note)
INSTRUMENTS: dict[str, tuple[int, int, int]] = {
    "piano": (0, 48, 84),     # Acoustic Grand Piano
    "violin": (40, 55, 88),   # Violin
    "trumpet": (56, 54, 82),  # Trumpet
    "flute": (73, 60, 93),    # Flute
}

# instrumental patches for the VAD task's non-speech clips (no choir / voice / synth-voice patches)
VAD_MUSIC_PROGRAMS = {
    "guitar": 24, "organ": 19, "strings": 48, "marimba": 12, "saxophone": 65, "harp": 46,
}

SPEECH_LINES = (
    "The quick brown fox jumps over the lazy dog.",
    "Please call me back when you get home tonight.",
    "It is going to rain again tomorrow morning.",
    "Seven hundred people attended the meeting.",
    "Turn left at the second traffic light.",
    "She sells sea shells by the sea shore.",
)
SPEECH_VOICES = ("en-us", "en-gb", "en-us+f3", "en-gb-scotland+m3", "en+f2", "en-029+m5")


# ---------------------------------------------------------------------------------------------
# MIDI: a minimal Standard MIDI File (format 0) writer


def _varlen(value: int) -> bytes:
    out = [value & 0x7F]
    value >>= 7
    while value:
        out.append(0x80 | (value & 0x7F))
        value >>= 7
    return bytes(reversed(out))


def write_midi(path: Path, program: int, notes: list[tuple[float, float, int, int]], channel: int = 0,
               tempo_us: int = 500_000, ticks_per_beat: int = 480) -> None:
    """Write ``notes`` = [(start s, duration s, MIDI note, velocity)] on one channel with one program."""
    ticks_per_second = ticks_per_beat * 1_000_000 / tempo_us
    events: list[tuple[int, int, bytes]] = []  # (tick, order: note-offs first, message)
    for start, duration, note, velocity in notes:
        on = int(round(start * ticks_per_second))
        off = int(round((start + duration) * ticks_per_second))
        events.append((on, 1, bytes([0x90 | channel, note, velocity])))
        events.append((max(off, on + 1), 0, bytes([0x80 | channel, note, 0])))
    events.sort(key=lambda e: (e[0], e[1]))
    track = bytearray()
    track += b"\x00\xff\x51\x03" + tempo_us.to_bytes(3, "big")
    track += b"\x00" + bytes([0xC0 | channel, program])
    now = 0
    for tick, _, message in events:
        track += _varlen(tick - now) + message
        now = tick
    track += b"\x00\xff\x2f\x00"
    header = b"MThd" + struct.pack(">IHHH", 6, 0, 1, ticks_per_beat)
    path.write_bytes(header + b"MTrk" + struct.pack(">I", len(track)) + bytes(track))


def find_soundfont() -> Path:
    for candidate in SOUNDFONT_CANDIDATES:
        if Path(candidate).is_file():
            return Path(candidate)
    raise SystemExit("FluidR3_GM.sf2 not found: apt-get install -y fluidsynth fluid-soundfont-gm")


def render_midi(midi: Path, soundfont: Path, workdir: Path) -> np.ndarray:
    """FluidSynth → float32 mono at 16 kHz (reverb and chorus off)."""
    wav = workdir / (midi.stem + ".wav")
    subprocess.run(["fluidsynth", "-ni", "-q", "-g", "0.6", "-r", str(SAMPLE_RATE),
                    "-o", "synth.reverb.active=0", "-o", "synth.chorus.active=0",
                    "-F", str(wav), "-T", "wav", str(soundfont), str(midi)],
                   check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    audio, rate = sf.read(wav, dtype="float32", always_2d=True)
    assert rate == SAMPLE_RATE, rate
    return audio.mean(axis=1)


# ---------------------------------------------------------------------------------------------
# melodies


def random_melody(rng: np.random.Generator, low: int, high: int, seconds: float) -> list[tuple[float, float, int, int]]:
    """A phrase of notes covering ``seconds``: steps and leaps, varied lengths, rests and dyads."""
    notes = []
    t = float(rng.uniform(0.0, 0.12))
    pitch = int(rng.integers(low + 4, high - 4))
    base_velocity = int(rng.integers(55, 120))
    while t < seconds:
        duration = float(rng.choice([0.12, 0.18, 0.25, 0.33, 0.5, 0.75]))
        velocity = int(np.clip(base_velocity + rng.integers(-15, 16), 30, 127))
        notes.append((t, duration * float(rng.uniform(0.7, 1.0)), pitch, velocity))
        if rng.random() < 0.15:  # a dyad: a third, fourth, fifth or sixth above
            upper = pitch + int(rng.choice([3, 4, 5, 7, 9]))
            if upper <= high:
                notes.append((t, duration * 0.9, upper, max(30, velocity - 10)))
        t += duration + (float(rng.choice([0.0, 0.05, 0.1])) if rng.random() < 0.3 else 0.0)
        step = int(rng.choice([-7, -5, -4, -3, -2, -1, 1, 2, 3, 4, 5, 7, 12, -12]))
        pitch = int(np.clip(pitch + step, low, high))
    return notes


def fit_clip(audio: np.ndarray, n: int, peak: float) -> np.ndarray:
    """First ``n`` samples (zero-padded), scaled to the given peak."""
    out = np.zeros(n, dtype=np.float32)
    out[: min(n, len(audio))] = audio[:n]
    top = float(np.abs(out).max())
    if top < 1e-4:
        raise RuntimeError("rendered a silent clip")
    return (out * (peak / top)).astype(np.float32)


def write_flac(path: Path, audio: np.ndarray) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, audio, SAMPLE_RATE, format="FLAC", subtype="PCM_16")


def make_instruments(root: Path, soundfont: Path, workdir: Path, seed: int, n_train: int, n_eval: int) -> None:
    for split in ("train", "eval"):
        shutil.rmtree(root / split, ignore_errors=True)
    for class_index, (name, (program, low, high)) in enumerate(INSTRUMENTS.items()):
        seen: set[tuple] = set()
        for split, count, stream in (("train", n_train, 0), ("eval", n_eval, 1)):
            rng = np.random.default_rng([seed, class_index, stream])
            made = 0
            while made < count:
                notes = random_melody(rng, low, high, seconds=1.1)
                key = tuple(n[2] for n in notes)
                if key in seen:  # keep eval melodies out of train (and no duplicates within a split)
                    continue
                seen.add(key)
                midi = workdir / f"{name}_{split}_{made:03d}.mid"
                write_midi(midi, program, notes)
                clip = fit_clip(render_midi(midi, soundfont, workdir), SAMPLE_RATE, float(rng.uniform(0.3, 0.9)))
                write_flac(root / split / name / f"{name}_{made:03d}.flac", clip)
                made += 1
        print(f"instruments/{name}: {n_train} train, {n_eval} eval")


def make_vad(root: Path, soundfont: Path, workdir: Path, seed: int) -> None:
    n = int(1.5 * SAMPLE_RATE)
    for kind in ("speech", "non_speech"):
        shutil.rmtree(root / "eval" / kind, ignore_errors=True)
    for i, (voice, line) in enumerate(zip(SPEECH_VOICES, SPEECH_LINES)):
        wav = workdir / f"speech_{i}.wav"
        subprocess.run(["espeak-ng", "-v", voice, "-s", "175", "-w", str(wav), line], check=True,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        audio, rate = sf.read(wav, dtype="float32", always_2d=True)
        audio = resample_poly(audio.mean(axis=1), SAMPLE_RATE, rate).astype(np.float32)
        start = int(np.argmax(np.abs(audio) > 0.01))  # skip espeak's leading silence
        write_flac(root / "eval" / "speech" / f"speech_{i:02d}_{voice.replace('+', '_')}.flac",
                   fit_clip(audio[start:], n, 0.7))
    rng = np.random.default_rng([seed, 99])
    for i, (name, program) in enumerate(VAD_MUSIC_PROGRAMS.items()):
        notes = random_melody(rng, 55, 84, seconds=1.6)
        midi = workdir / f"music_{i}.mid"
        write_midi(midi, program, notes)
        write_flac(root / "eval" / "non_speech" / f"music_{i:02d}_{name}.flac",
                   fit_clip(render_midi(midi, soundfont, workdir), n, 0.7))
    print(f"vad: {len(SPEECH_VOICES)} speech, {len(VAD_MUSIC_PROGRAMS)} music")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train", type=int, default=40, help="training clips per class")
    parser.add_argument("--eval", type=int, default=10, help="held-out clips per class")
    parser.add_argument("--out", type=Path, default=ZOO_ROOT, help="zoo root to write into")
    args = parser.parse_args(argv)
    for tool in ("fluidsynth", "espeak-ng"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} not found: apt-get install -y fluidsynth fluid-soundfont-gm espeak-ng")
    soundfont = find_soundfont()
    with tempfile.TemporaryDirectory() as tmp:
        make_instruments(args.out / "instruments", soundfont, Path(tmp), args.seed, args.train, args.eval)
        make_vad(args.out / "vad", soundfont, Path(tmp), args.seed)


if __name__ == "__main__":
    main()
