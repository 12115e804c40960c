"""Song-library analysis (`tonegraph analyze DIR`) on a local Dask cluster: the songs per
minute one worker process describes (cut at onsets, features per chunk), and two
workers' speed-up over one, on songs of the built-in groove at other tempi and
timbres.  The clusters are started before the clock starts; each describes every song
afresh (no cache).  Goal: >= 1.7x with 2 workers on 2 cores.

Then the whole of `tonegraph analyze DIR` (cluster start, description, the t-SNE layout,
the plot) with 1 and 2 workers, each stage timed: the layout runs once, in the calling
process, whatever the workers; and that layout at scikit-learn's own settings (1,000
iterations, angle 0.5) against the shipped ones, with how well each keeps neighbours.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import soundfile as sf

from tonegraph.nodes.audio.synth import Timbre
from tonegraph.tools import library
from tonegraph.tools.library import dask_client, describe_song, describe_songs, songs_in

from .common import cpu_name, quick, table


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
            per_minute = 60 * count / took[workers]
            rows.append([f"{workers}", f"{took[workers]:.2f} s", f"{per_minute:.1f}",
                         f"{per_minute / workers:.1f}", f"{took[1] / took[workers]:.2f}x"])
        table(f"Library analysis on a local Dask cluster: {count} songs, {minutes:.1f} minutes of music, "
              f"described afresh ({cpu_name()})",
              ["workers", "wall time", "songs per minute", "per worker", "speed-up over 1"], rows)
        run_whole(Path(d), count, minutes)


def run_whole(folder: Path, count: int, minutes: float) -> None:
    """`tonegraph analyze` of the folder, stage by stage, with 1 and 2 workers."""
    import contextlib

    stages: dict[str, float] = {}

    def timed(name, fn):
        def wrapper(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                stages[name] = stages.get(name, 0.0) + time.perf_counter() - t0
        return wrapper

    saved = library.dask_client, library.describe_songs, library.embed

    @contextlib.contextmanager
    def client(*args, **kwargs):
        t0 = time.perf_counter()
        with saved[0](*args, **kwargs) as c:
            stages["cluster start"] = time.perf_counter() - t0
            yield c

    rows, whole, best = [], {}, {}
    library.dask_client, library.describe_songs = client, timed("description", saved[1])
    library.embed = timed("layout", saved[2])
    try:
        for workers in (1, 2, 1, 2):              # alternating, the better of two (imports warm)
            with tempfile.TemporaryDirectory() as d:
                stages.clear()
                t0 = time.perf_counter()
                doc, _ = library.analyse_library(folder, Path(d) / "cache", workers)
                timed("plot", library.plot_library)(doc, Path(d) / "map.png")
                took = time.perf_counter() - t0
            if took < whole.get(workers, float("inf")):
                whole[workers] = took
                best[workers] = dict(stages)
        for workers in (1, 2):
            rows.append([workers, f"{whole[workers]:.2f} s", f"{whole[1] / whole[workers]:.2f}x",
                         *(f"{best[workers].get(k, 0.0):.2f} s"
                           for k in ("cluster start", "description", "layout", "plot"))])
    finally:
        library.dask_client, library.describe_songs, library.embed = saved
    table(f"tonegraph analyze of the same {count} songs ({minutes:.1f} min), whole, by stage ({cpu_name()})",
          ["workers", "wall time", "speed-up over 1", "cluster start", "description", "layout", "plot"], rows)
    layouts(doc)


def layouts(doc: dict) -> None:
    """The t-SNE layout of a library's chunks (their features as analyze lays them out) at
    scikit-learn's settings and the shipped ones: time, and trustworthiness at 10
    neighbours (on 3,000 chunks drawn at random)."""
    import numpy as np
    from sklearn.manifold import trustworthiness

    from tonegraph.nodes.ml.chunks import TSNE_ANGLE, TSNE_ITERATIONS, embed, standardise

    z = library.reduced(standardise(np.array([c["features"] for c in doc["chunks"]]))[0])   # as analyze
    sub = np.random.default_rng(0).choice(len(z), min(3000, len(z)), replace=False)
    rows, took = [], {}
    for name, (iterations, angle) in {"scikit-learn's (1000 iterations, angle 0.5)": (1000, 0.5),
                                      f"shipped ({TSNE_ITERATIONS}, angle {TSNE_ANGLE})":
                                      (TSNE_ITERATIONS, TSNE_ANGLE)}.items():
        t0 = time.perf_counter()
        xy = embed(z, 2, 0, iterations, angle)[0]
        took[name] = time.perf_counter() - t0
        rows.append([name, f"{took[name]:.2f} s", f"{next(iter(took.values())) / took[name]:.2f}x",
                     f"{trustworthiness(z[sub], xy[sub], n_neighbors=10):.4f}"])
    table(f"t-SNE layout of {len(z)} chunks ({cpu_name()})", ["settings", "time", "speed-up",
                                                               "trustworthiness at 10"], rows)
