"""A check held out beyond the dev set: Frets on Fire's songs and their charts
(tools/fofcharts.py reads them).

Eight rock and metal songs recorded by their bands (Debian's fretsonfire-songs-muldjord
and -sectoid), each as a lead-guitar stem and the rest of the band, with charts people
wrote for the game.  Nobody tuned a detector on them, they are not in
``../shared/data/mir``, and the shipped onset detector's training leaves them out
(docs/real-training-music.md), so they are real material held out by source.

- Onsets: the guitar stem against the hardest chart's notes (a chord is one onset;
  notes closer than 30 ms merged, as ``make eval`` merges annotations).  The chart's
  notes sit on its grid, a player's a few ms off it (a median 0-18 ms here), well
  inside the 50 ms window.
- Beats: the two stems mixed (the full band) against the chart's beats from its
  first to its last note (the tempo map, one beat per quarter note).  The Muldjord
  songs are charted at 170-190 BPM, a tempo often tapped at half, so AMLt (any
  metrical level) is printed beside F and CMLt.

``make charts`` fetches the two packages (``apt-get download``; about 60 MB) into
``CHARTS`` (default ``~/.cache/tonegraph/fretsonfire``) and unpacks them there; ``make
eval`` then prints these tables, or says how to get the songs.
``python -m tests.eval.charts [FOLDER]`` runs them alone (about two minutes).
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import numpy as np
import soundfile as sf

from tonegraph.tools import fofcharts
from tonegraph.tools.fofcharts import songs
from tonegraph.tools.pseudolabel import mono

from . import mir

FOLDER, SONGS = fofcharts.FOLDER, fofcharts.SONGS


def evaluate(table, root: Path = FOLDER) -> bool:
    """Print the held-out tables; False when the songs are not there."""
    found = songs(root)
    if not found:
        print(f"\nHeld-out songs (Frets on Fire charts): none in {root}; 'make charts' fetches "
              f"them (two Debian packages, about 60 MB).")
        return False
    onset_p, tempo_p = mir.node_defaults("audio.onset"), mir.node_defaults("audio.tempo")
    learned_p = onset_p | {"method": "learned", "threshold": None, "minioi": None}
    on_rows, beat_rows, scores = [], [], {"default": [], "learned": [], "aubio": []}
    beat_scores: dict[str, list] = {"default": [], "aubio": []}
    with tempfile.TemporaryDirectory() as tmp:
        for song in found:
            label = f"{song.pack}: {song.name}"
            guitar, sr = mono(song.folder / "guitar.ogg")
            band, _ = mono(song.folder / "song.ogg")
            n = min(len(guitar), len(band))
            mix = 0.5 * (guitar[:n] + band[:n])
            stem = Path(tmp) / "guitar.wav"
            sf.write(stem, guitar, sr)
            clip = mir.Clip(song.pack, song.name, stem, song.notes, None)
            row = {"default": mir.onset_f(song.notes, mir.engine_events(clip, sr, onset_p, tempo_p)[0]),
                   "learned": mir.onset_f(song.notes, mir.engine_events(clip, sr, learned_p, tempo_p)[0]),
                   "aubio": mir.onset_f(song.notes, mir.aubio_onsets(guitar, sr, None))}
            for k, v in row.items():
                scores[k].append(v)
            on_rows.append([label, str(len(song.notes)), *(f"{row[k]:.3f}" for k in scores)])
            full = Path(tmp) / "mix.wav"
            sf.write(full, mix, sr)
            ref = song.beats
            ours = mir.engine_events(mir.Clip(song.pack, song.name, full, None, ref), sr, None, tempo_p)[1]
            theirs = mir.aubio_beats(mix, sr, None)
            bpm = 60.0 / float(np.median(np.diff(ref)))
            cells = []
            for k, est in (("default", ours), ("aubio", theirs)):
                f, cml, aml = mir.beat_scores(ref, est)
                beat_scores[k].append((f, cml, aml, mir.metrical_level(ref, est)))
                cells += [f"{f:.3f}", f"{cml:.3f}", f"{aml:.3f}", mir.metrical_level(ref, est)]
            beat_rows.append([label, f"{bpm:.0f}", *cells])
    on_rows.append(["mean", "", *(f"{np.mean(v):.3f}" for v in scores.values())])
    table("Held out beyond the dev set: guitar stems of 8 Frets on Fire songs against their "
          "charts' hardest notes, onset F (50 ms)",
          ["song", "notes", "default", "learned", "aubio defaults"], on_rows)
    packs = sorted({s.pack for s in found})
    for pack in packs:
        idx = [i for i, s in enumerate(found) if s.pack == pack]
        print(f"  {pack}: default {np.mean([scores['default'][i] for i in idx]):.3f}, learned "
              f"{np.mean([scores['learned'][i] for i in idx]):.3f}, aubio "
              f"{np.mean([scores['aubio'][i] for i in idx]):.3f}")
    beat_rows.append(["mean", "", *(c for k in beat_scores for c in (
        f"{np.mean([s[0] for s in beat_scores[k]]):.3f}", f"{np.mean([s[1] for s in beat_scores[k]]):.3f}",
        f"{np.mean([s[2] for s in beat_scores[k]]):.3f}",
        f"{sum(s[3] == 'right' for s in beat_scores[k])}/{len(found)} right"))])
    table("Held out beyond the dev set: the same songs' full band against their charts' beats",
          ["song", "BPM", "default F", "CMLt", "AMLt", "level", "aubio F", "CMLt", "AMLt", "level"],
          beat_rows)
    return True


def main(argv: list[str]) -> int:
    from .__main__ import table

    root = Path(argv[0]) if argv else FOLDER
    return 0 if evaluate(table, root) else 2


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
