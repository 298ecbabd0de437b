#!/usr/bin/env bash
# The benchmark's own clips (#29), 1.5 s at 16 kHz, FLAC: espeak-ng speech in three languages and
# "hey jarvis", FluidSynth music (FluidR3_GM). Needs: apt-get install espeak-ng fluidsynth fluid-soundfont-gm sox
set -euo pipefail
cd "$(dirname "$0")/clips"
rm -rf vad jarvis && mkdir -p vad/speech vad/non_speech jarvis/hey_jarvis jarvis/other
tmp=$(mktemp -d)
say() {  # voice text out.flac [rate]
  espeak-ng -v "$1" -s "${4:-150}" -w "$tmp/s.wav" "$2"
  sox "$tmp/s.wav" -r 16000 -c 1 -b 16 "$3" norm -3 trim 0 1.5 pad 0 1.5 trim 0 1.5 2>/dev/null
}
say de "Guten Morgen, wie geht es dir heute?" vad/speech/speech_de.flac
say fr "Bonjour, comment allez-vous aujourd'hui?" vad/speech/speech_fr.flac
say es "Buenos días, ¿cómo estás hoy?" vad/speech/speech_es.flac
say en-us "hey jarvis" jarvis/hey_jarvis/jarvis_en-us.flac 140
say fr "Bonjour, comment allez-vous aujourd'hui?" jarvis/other/speech_fr.flac
python3 - "$tmp/m.mid" <<'PY'
import struct, sys
ev = bytes([0x00, 0xC0, 19])  # General MIDI program 19: church organ
for n in (60, 64, 67, 72, 67, 64):
    ev += bytes([0x00, 0x90, n, 100, 0x78, 0x80, n, 0])
ev += bytes([0x00, 0xFF, 0x2F, 0x00])
open(sys.argv[1], "wb").write(b"MThd" + struct.pack(">IHHH", 6, 0, 1, 480) + b"MTrk" + struct.pack(">I", len(ev)) + ev)
PY
fluidsynth -ni -F "$tmp/m.wav" -r 16000 /usr/share/sounds/sf2/FluidR3_GM.sf2 "$tmp/m.mid" >/dev/null 2>&1
sox "$tmp/m.wav" -c 1 -b 16 vad/non_speech/music_organ.flac norm -3 trim 0.05 1.5
rm -rf "$tmp"
