"""Downbeats heard from the sound (``audio.tempo``'s ``bars: sound``) against counting
from the first beat heard (``bars: count``), in the same run.

Three sets, each clip run through a real patch offline, scored by downbeat F (mir_eval,
70 ms) after its first seconds:

* the MDB Drums band mixes from their start (they start on a bar's first beat, so
  counting is right there and the sound should not move it);
* the same mixes heard from their 2nd, 3rd and 4th beat (counting is then wrong);
* the built-in groove at four tempi and timbres and two MIDI renders whose bars are
  known (Groove MIDI funk drums, a piano round; 4/4 from their first beat), each heard
  from every beat of a bar.

The cut clips are written to a temporary folder and removed; nothing is kept.
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import mir_eval
import numpy as np
import soundfile as sf

from tonegraph.engine.graph import load_graph
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.nodes.audio.synth import Timbre, render_groove

from .mir import DATA

MODES = ("sound", "count")
GROOVES = ((96, Timbre()), (124, Timbre(pad_wave="saw", drive=0.5)),
           (140, Timbre(transpose=3, lowpass_hz=3000)), (110, Timbre(pad_gain=0.04, bass_gain=0.4)))


def downbeats(path: Path, bars: str) -> np.ndarray:
    """The downbeat events of audio.tempo over a sound file."""
    reg = default_registry(plugins=False)
    with tempfile.TemporaryDirectory() as d:
        out, patch = Path(d) / "events.jsonl", Path(d) / "bars.yaml"
        patch.write_text(f"""
patch: {{name: bars, fps: 30, samplerate: 44100, hop: 512}}
nodes:
  f: {{type: audio.file, params: {{path: {json.dumps(str(path))}}}}}
  b: {{type: audio.tempo, params: {{bars: {bars}}}, in: {{audio: f}}}}
  r: {{type: io.record, params: {{path: {json.dumps(str(out))}}}, in: {{downbeat: b.downbeat}}}}
""")
        graph, errors = load_graph(patch, reg)
        assert not errors, errors
        Runtime(graph, reg, offline=True).run()
        return np.array([r["t"] for r in map(json.loads, out.read_text().splitlines())
                         if r["name"] == "downbeat"])


def _from_beat(x: np.ndarray, sr: int, beats: np.ndarray, k: int, folder: Path, name: str
               ) -> tuple[Path, np.ndarray]:
    """The clip heard from its ``k``-th beat, and its bars' first beats from then."""
    cut = beats[k]
    path = folder / f"{name}-{k}.wav"
    sf.write(path, x[int(round(cut * sr)):], sr)
    return path, beats[4 * ((k + 3) // 4)::4] - cut


def _mixes() -> list[tuple[str, np.ndarray, int, np.ndarray]]:
    out = []
    for f in sorted((DATA / "mdb_drums").glob("*mix.*")):
        if f.suffix in (".wav", ".flac") and f.with_suffix(".beats").is_file():
            x, sr = sf.read(f, dtype="float32", always_2d=True)
            out.append((f.stem, x.mean(axis=1), sr, np.loadtxt(f.with_suffix(".beats"))))
    return out


def _known_bars() -> list[tuple[str, np.ndarray, int, np.ndarray]]:
    out = []
    for name in ("groove_funk138", "pianobooster_FrereJacques"):
        f = DATA / "midi_render" / f"{name}.flac"
        if f.is_file():
            x, sr = sf.read(f, dtype="float32", always_2d=True)
            out.append((name, x.mean(axis=1), sr, np.loadtxt(f.with_suffix(".beats"))))
    for bpm, timbre in GROOVES:
        x, _, beats = render_groove(44100, bpm, 16, timbre=timbre)
        out.append((f"groove {bpm} BPM", x, 44100, np.array(beats)))
    return out


def evaluate(table) -> None:
    sets = {"band mixes from their start": (_mixes(), (0,), 4.0),
            "band mixes from their 2nd-4th beat": (_mixes(), (1, 2, 3), 4.0),
            "the built-in groove and two MIDI renders, from each beat of a bar":
                (_known_bars(), (0, 1, 2, 3), 5.0)}
    rows = []
    with tempfile.TemporaryDirectory() as d:
        for label, (clips, starts, skip) in sets.items():
            scores = {mode: [] for mode in MODES}
            for name, x, sr, beats in clips:
                for k in starts:
                    path, truth = _from_beat(x, sr, beats, k, Path(d), name.replace(" ", "-"))
                    for mode in MODES:
                        est = downbeats(path, mode)
                        scores[mode].append(mir_eval.beat.f_measure(truth[truth > skip],
                                                                    est[est > skip], 0.07))
            rows.append([label, str(len(scores["sound"]))]
                        + [f"{np.mean(scores[mode]):.3f}" for mode in MODES])
    table("Downbeats: where a bar starts, heard (bars: sound, the default) or counted from the "
          "first beat heard (bars: count); downbeat F (70 ms) after the first 4-5 s",
          ["clips", "runs", "sound", "count"], rows)
