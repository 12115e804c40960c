"""Song-library analysis (`tonegraph analyze DIR`) on a local Dask cluster: the songs per
minute one worker process describes (cut at onsets, features per chunk), and two
workers' speed-up over one, on songs of the built-in groove at other tempi and
timbres.  The clusters are started before the clock starts; each describes every song
afresh (no cache).  Goal: >= 1.7x with 2 workers on 2 cores.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import soundfile as sf

from tonegraph.nodes.audio.synth import Timbre
from tonegraph.tools.library import dask_client, describe_song, describe_songs, songs_in

from .common import quick, table


def _songs(folder: Path, count: int, bars: int) -> None:
    from tonegraph.nodes.audio.synth import render_groove

    waves = ("sine", "saw", "square")
    for i in range(count):
        timbre = Timbre(kick_hz=40 + 3 * i, pad_wave=waves[i % 3], hat_gain=0.1 + 0.1 * (i % 5),
                        lowpass_hz=0.0 if i % 2 else 2000.0)
        x, _, _ = render_groove(44100, 90 + 7 * i, bars, i, timbre)
        sf.write(folder / f"song{i:02d}.flac", x, 44100)


def run() -> None:
    count, bars = (4, 8) if quick() else (12, 32)
    with tempfile.TemporaryDirectory() as d:
        _songs(Path(d), count, bars)
        songs = songs_in(Path(d))
        minutes = sum(sf.info(str(p)).duration for p in songs) / 60
        rows, took = [], {}
        for workers in (1, 2):
            with dask_client(workers) as client:
                client.run(describe_song, str(songs[0]))     # warm every worker up
                t0 = time.perf_counter()
                describe_songs(songs, client)
                took[workers] = time.perf_counter() - t0
            rows.append([f"{workers}", f"{took[workers]:.2f} s", f"{60 * count / took[workers]:.1f}",
                         f"{took[1] / took[workers]:.2f}x"])
    table(f"Library analysis on a local Dask cluster: {count} songs, {minutes:.1f} minutes of music, "
          f"described afresh", ["workers", "wall time", "songs per minute", "speed-up over 1"], rows)
