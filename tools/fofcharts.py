"""Frets on Fire's songs and their charts, as annotations and as training labels.

Debian's ``fretsonfire-songs-muldjord`` (CC BY-SA 3.0) and ``fretsonfire-songs-sectoid``
(MIT) hold eight rock and metal songs recorded by their bands, each as two stems of
the same length (``guitar.ogg``, the lead guitar; ``song.ogg``, the rest of the band)
and a chart, ``notes.mid``, that people wrote for the game: a tempo map the notes are
placed on, and the guitar's notes at four difficulties (the hardest, MIDI notes
96-100, plays nearly every note).  ``make charts`` fetches and unpacks the packages
(``apt-get download``, nothing installed).

    python -m tonegraph.tools.fofcharts FOLDER -o LABELS [--beats] [--packs muldjord]

writes the charts as labels that ``tonegraph train onsets|beats --real LABELS`` trains
on, in the form tools/pseudolabel.py writes (``summary.json`` naming the songs' folder,
one label file per song): the guitar stems with the hardest chart's notes as onsets,
or (``--beats``) the two stems mixed with the tempo map's beats.
"""

from __future__ import annotations

import argparse
import configparser
import json
import os
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .pseudolabel import merge      # notes closer than 30 ms are one onset (a chord, a flam)

#: Where ``make charts`` unpacks the packages (their songs under usr/share/games/...).
FOLDER = Path(os.environ.get("CHARTS") or Path.home() / ".cache" / "tonegraph" / "fretsonfire")
SONGS = Path("usr/share/games/fretsonfire/data/songs")
EXPERT = range(96, 101)       # the hardest difficulty's five frets


@dataclass
class Song:
    pack: str                 # muldjord, sectoid
    name: str
    folder: Path
    notes: np.ndarray         # [s] the hardest chart's note onsets, merged
    beats: np.ndarray         # [s] the tempo map's beats from the first note to the last
    title: str = ""           # as song.ini names it (the folder's name where it does not)


def read_chart(path: Path) -> tuple[np.ndarray, np.ndarray]:
    """(the hardest difficulty's note onsets, every beat of the tempo map) [s] of a
    Frets on Fire ``notes.mid``; tempo changes are followed."""
    import mido

    midi = mido.MidiFile(str(path))
    tpb = midi.ticks_per_beat
    tempo_changes: list[tuple[int, int]] = []        # (tick, microseconds a beat)
    note_ticks: list[int] = []
    end = 0
    for track in midi.tracks:
        tick = 0
        for msg in track:
            tick += msg.time
            if msg.type == "set_tempo":
                tempo_changes.append((tick, msg.tempo))
            elif msg.type == "note_on" and msg.velocity > 0 and msg.note in EXPERT:
                note_ticks.append(tick)
        end = max(end, tick)
    tempo_changes = sorted(tempo_changes) or [(0, 500_000)]
    if tempo_changes[0][0] > 0:
        tempo_changes.insert(0, (0, 500_000))        # MIDI's own default before the first

    def seconds(ticks: np.ndarray) -> np.ndarray:
        out = np.zeros(len(ticks))
        at = 0.0
        for i, (tick, tempo) in enumerate(tempo_changes):
            nxt = tempo_changes[i + 1][0] if i + 1 < len(tempo_changes) else np.inf
            inside = (ticks >= tick) & (ticks < nxt)
            out[inside] = at + (ticks[inside] - tick) * tempo / tpb / 1e6
            if nxt < np.inf:
                at += (nxt - tick) * tempo / tpb / 1e6
        return out

    notes = merge(np.unique(seconds(np.array(sorted(note_ticks), dtype=float))))
    beats = seconds(np.arange(0, end + 1, tpb, dtype=float))
    return notes, beats


def songs(root: Path = FOLDER) -> list[Song]:
    found = []
    for chart in sorted((root / SONGS).glob("*/*/notes.mid")):
        d = chart.parent
        if not ((d / "guitar.ogg").is_file() and (d / "song.ogg").is_file()):
            continue
        notes, beats = read_chart(chart)
        if len(notes) < 2:
            continue
        inside = beats[(beats >= notes[0] - 0.01) & (beats <= notes[-1] + 0.01)]
        found.append(Song(d.parent.name, d.name, d, notes, inside, _title(d)))
    return found


def _title(folder: Path) -> str:
    """The song's name from its song.ini, or its folder's name."""
    ini = configparser.ConfigParser(interpolation=None)
    try:
        ini.read(folder / "song.ini", encoding="utf-8")
    except (configparser.Error, UnicodeDecodeError):
        return folder.name
    return ini.get("song", "name", fallback="").strip() or folder.name


SNAP_HOP = 128                # [samples] the resolution notes are moved to the sound at


def snapped(notes: np.ndarray, x: np.ndarray, sr: int, window: float) -> np.ndarray:
    """Chart notes moved onto the stem's sound: each to the strongest rise of spectral
    flux (aubio's specflux, 1024-sample windows every SNAP_HOP samples) within
    ``window`` seconds of it.  A chart sits on its grid and a player a few ms off it,
    more than a training target's frame (11.6 ms)."""
    import aubio

    pv, desc = aubio.pvoc(1024, SNAP_HOP), aubio.specdesc("specflux", 1024)
    n = -(-len(x) // SNAP_HOP)
    padded = np.zeros(n * SNAP_HOP, dtype=np.float32)
    padded[:len(x)] = x
    odf = np.array([desc(pv(padded[i * SNAP_HOP:(i + 1) * SNAP_HOP]))[0] for i in range(n)])
    # A hit's flux peaks in the frame whose hop starts about a quarter window after it
    # (measured with decaying tones: 224-302 samples).
    times = (np.arange(n) * SNAP_HOP - 256) / sr
    out = []
    for t in notes:
        near = np.flatnonzero(np.abs(times - t) <= window)
        out.append(float(times[near[np.argmax(odf[near])]]) if len(near) else float(t))
    return merge(np.maximum(np.sort(out), 0.0))


def write_labels(root: Path, out: Path, beats: bool = False, packs: Sequence[str] = (),
                 snap: float = 0.0) -> dict:
    """The charts of the songs under ``root`` as a labels folder ``out``; ``snap`` > 0
    moves each note onto the guitar stem's sound (:func:`snapped`)."""
    out.mkdir(parents=True, exist_ok=True)
    songs_root = (root / SONGS).resolve()
    listed = []
    for song in songs(root):
        if packs and song.pack not in packs:
            continue
        rel = song.folder.resolve().relative_to(songs_root)
        name = "__".join(rel.parts).replace(" ", "_")
        if beats:
            times = song.beats                # the charted span: no beat is labelled outside it
            entry = {"file": [str(rel / "guitar.ogg"), str(rel / "song.ogg")], "labels": name + ".beats",
                     "span": [round(float(times[0]), 4), round(float(times[-1]), 4)]}
        else:
            entry = {"file": str(rel / "guitar.ogg"), "labels": name + "__guitar.onsets"}
            times = song.notes
            if snap > 0:
                from .pseudolabel import mono

                times = snapped(times, *mono(song.folder / "guitar.ogg"), snap)
        (out / entry["labels"]).write_text("".join(f"{t:.4f}\n" for t in times))
        listed.append(entry)
    summary = {"folder": str(songs_root), "from": "Frets on Fire charts", "songs": listed}
    (out / "summary.json").write_text(json.dumps(summary, indent=1) + "\n")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m tonegraph.tools.fofcharts",
                                 description="Frets on Fire's charts as training labels.")
    ap.add_argument("folder", type=Path, nargs="?", default=FOLDER,
                    help=f"where make charts unpacked the packages (default {FOLDER})")
    ap.add_argument("-o", "--output", type=Path, required=True, help="folder for the labels")
    ap.add_argument("--beats", action="store_true", help="the band's beats, not the guitar's notes")
    ap.add_argument("--snap", type=float, default=0.0, metavar="SECONDS",
                    help="move each note to the strongest rise of the stem's sound within this "
                         "many seconds of it (default 0: the chart's own times)")
    ap.add_argument("--packs", default="", help="comma-separated packs to keep (default: all)")
    args = ap.parse_args(argv)
    packs = [p.strip() for p in args.packs.split(",") if p.strip()]
    s = write_labels(args.folder, args.output, args.beats, packs, args.snap)
    if not s["songs"]:
        print(f"error: no Frets on Fire songs under {args.folder / SONGS} (make charts fetches them)",
              file=sys.stderr)
        return 1
    print(f"{len(s['songs'])} songs -> {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
