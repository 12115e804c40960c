"""Seed 003 at library scale: ``tonegraph analyze DIR`` maps every chunk of every song in
a folder at once.

Each song is cut at its onsets and described (:class:`.chunks.Chunker`, the same
features as one song's map and the live ``ml.chunkmap``) as a task of its own on a Dask
cluster: by default a ``LocalCluster`` of one single-threaded worker process per core,
on 127.0.0.1, or an existing cluster named by its scheduler's address (its workers need
tonegraph with the ``analyze`` extra installed and must see the same absolute paths, as
on a shared filesystem).  Such an address is first checked within one deadline for
connecting and Dask's handshake (:data:`SCHEDULER_DEADLINE`, in all): a peer that
accepts and never answers, or answers with anything but Dask's handshake (bounded to
:data:`HANDSHAKE_BYTES`), is a one-line :class:`SchedulerError` (Dask's own client
waits for the handshake without a timeout and reads a frame of any length it is
told).  What a song gave is kept in a cache
keyed by a hash of the file's bytes (and of the features' version), so a second run
analyses only new or changed songs.  Then all chunks of all songs are laid out together
(z-scored features, PCA, then t-SNE) into one map, coloured by song, and a JSON that
``ml.chunkmap`` loads like a one-song map.
"""

from __future__ import annotations

import contextlib
import hashlib
import logging
import os
import socket
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tonegraph.engine.files import read_npz, written_whole
from tonegraph.nodes.audio.sound import SUFFIXES as AUDIO
from tonegraph.nodes.ml.chunks import FEATURES, SAMPLERATE, Chunker, embed, read_mono, standardise

#: Raised whenever what a song's analysis gives changes, so older cache entries are not used.
FEATURE_VERSION = 1
PCA_DIMS = 16   # chunks are reduced to this many dimensions before t-SNE
SCHEDULER_DEADLINE = 10.0   # [s] to connect to a --scheduler and finish Dask's handshake, in all
HANDSHAKE_BYTES = 1 << 16   # [bytes] a Dask handshake is a few hundred


class SchedulerError(Exception):
    """A --scheduler address that is not a Dask scheduler answering in time (one line)."""


def songs_in(folder: Path) -> list[Path]:
    """Every sound file under ``folder``, in a stable order."""
    return sorted(p for p in Path(folder).rglob("*") if p.is_file() and p.suffix.lower() in AUDIO)


def content_key(path: Path) -> str:
    """The cache key of a song: its bytes and the features' version."""
    h = hashlib.sha256(f"tonegraph-chunks-v{FEATURE_VERSION}\n".encode())
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def describe_song(path: str) -> dict:
    """One song's chunks (a Dask task, run in a worker process): start and end times
    [s] and the feature rows, or the one-line reason it could not be read."""
    try:
        x = read_mono(Path(path))
    except Exception as exc:  # soundfile raises several types for unreadable files
        return {"error": f"cannot read it as sound ({type(exc).__name__}: {exc})"}
    chunker = Chunker()
    chunks = []
    for i in range(0, len(x), 65536):
        chunks += chunker.push(x[i:i + 65536])
    chunks += chunker.finish()
    return {"duration": len(x) / SAMPLERATE,
            "starts": np.array([c.start for c in chunks], dtype=np.float64),
            "ends": np.array([c.end for c in chunks], dtype=np.float64),
            "features": (np.stack([c.features for c in chunks]).astype(np.float32) if chunks
                         else np.zeros((0, len(FEATURES)), np.float32))}


class Cache:
    """What each song gave, one ``.npz`` file (plain arrays, no pickles) per content key,
    read within engine/files.py's bounds; an entry that cannot be read is analysed anew."""

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def get(self, key: str) -> dict | None:
        path = self.folder / f"{key}.npz"
        try:
            f = read_npz(path, "cache entry")
            return {"duration": float(f["duration"]), "starts": f["starts"], "ends": f["ends"],
                    "features": f["features"]}
        except (OSError, KeyError, ValueError):
            return None

    def put(self, key: str, song: dict) -> None:
        self.folder.mkdir(parents=True, exist_ok=True)
        with written_whole(self.folder / f"{key}.npz", ".part.npz") as tmp:
            np.savez(tmp, duration=song["duration"], starts=song["starts"], ends=song["ends"],
                     features=song["features"])


@dataclass
class LibraryReport:
    songs: int
    analysed: int                   # songs described in this run
    cached: int                     # songs taken from the cache
    chunks: int
    failed: list[str] = field(default_factory=list)   # "path: reason"


@contextlib.contextmanager
def dask_client(workers: int | None = None, scheduler: str | None = None):
    """A Dask client: to the cluster at ``scheduler``, or to a LocalCluster of
    ``workers`` single-threaded processes (default: one per core) on 127.0.0.1."""
    from distributed import Client, LocalCluster

    quiet = logging.getLogger("distributed")    # its INFO lines (workers, comms) are its own business
    level = quiet.level
    quiet.setLevel(logging.WARNING)
    try:
        with _client(Client, LocalCluster, workers, scheduler) as client:
            yield client
    finally:
        quiet.setLevel(level)


@contextlib.contextmanager
def _client(Client, LocalCluster, workers, scheduler):  # noqa: N803 (classes passed in)
    if scheduler:
        end = time.monotonic() + SCHEDULER_DEADLINE
        check_scheduler(scheduler, end)
        try:
            client = Client(scheduler, timeout=max(0.1, end - time.monotonic()))
        except OSError as exc:
            raise SchedulerError(f"no Dask scheduler answered within {SCHEDULER_DEADLINE:g} s ({exc})") from None
        except Exception as exc:  # a Dask peer that is no scheduler (a worker) fails its requests
            raise SchedulerError(f"not a Dask scheduler ({type(exc).__name__}: {exc})"[:300]) from None
        try:
            yield client
        finally:
            client.close()
        return
    with LocalCluster(n_workers=workers or os.cpu_count() or 1, threads_per_worker=1, processes=True,
                      host="127.0.0.1", dashboard_address=None, scheduler_kwargs={"dashboard": False},
                      silence_logs=logging.ERROR) as cluster, \
            Client(cluster) as client:
        yield client


def check_scheduler(address: str, end: float) -> None:
    """Connect to a TCP scheduler address and read its side of Dask's handshake (a Dask
    server speaks first: one frame of a few hundred bytes), all by ``end`` (a
    ``time.monotonic()`` time); raises SchedulerError.  Other transports (tls, ucx)
    are left to Dask."""
    from distributed.comm.addressing import parse_address, parse_host_port
    from distributed.protocol.core import loads
    from distributed.protocol.utils import unpack_frames

    try:
        scheme, loc = parse_address(address)
        host, port = parse_host_port(loc) if scheme == "tcp" else (None, None)
    except ValueError as exc:
        raise SchedulerError(f"not a scheduler address like tcp://host:8786 ({exc})") from None
    if scheme != "tcp":
        return
    not_dask = "not a Dask scheduler (what it sent is not Dask's handshake)"
    try:
        with socket.create_connection((host, port), timeout=max(0.01, end - time.monotonic())) as sock:
            (size,) = struct.unpack("<Q", _receive(sock, 8, end))
            if not 8 <= size <= HANDSHAKE_BYTES:
                raise SchedulerError(not_dask)
            frames, missing = unpack_frames(_receive(sock, size, end), partial=True)
            message = loads(frames, deserialize=False)
    except socket.timeout:
        raise SchedulerError(f"no answer within {SCHEDULER_DEADLINE:g} s") from None
    except OSError as exc:
        raise SchedulerError(f"cannot connect ({exc.strerror or exc})") from None
    except SchedulerError:
        raise
    except Exception:  # whatever Dask's decoders make of bytes that are not its own
        raise SchedulerError(not_dask) from None
    if missing or not isinstance(message, dict) or "pickle-protocol" not in message:
        raise SchedulerError(not_dask)


def _receive(sock: socket.socket, n: int, end: float) -> bytes:
    """Exactly ``n`` bytes from ``sock`` by ``end``; SchedulerError if not."""
    data = b""
    while len(data) < n:
        left = end - time.monotonic()
        if left <= 0:
            break
        sock.settimeout(left)
        try:
            chunk = sock.recv(n - len(data))
        except socket.timeout:
            break
        if not chunk:
            raise SchedulerError("not a Dask scheduler (it closed the connection without Dask's handshake)")
        data += chunk
    if len(data) < n:
        what = "sent nothing" if not data else "sent only part of a handshake"
        raise SchedulerError(f"not a Dask scheduler (it accepted the connection but {what} "
                             f"within {SCHEDULER_DEADLINE:g} s)")
    return data


def describe_songs(paths: list[Path], client, progress: Callable[[int, int, str], None] | None = None,
                   each: Callable[[Path, dict], None] | None = None) -> dict[Path, dict]:
    """Every song described on the cluster; ``each(path, song)`` is called as each
    result comes back (so what is done is kept if the run stops).  A task that fails on
    its worker (a lost worker, a worker without tonegraph) is that song's error."""
    from distributed import as_completed

    futures = {client.submit(describe_song, str(p.resolve()), pure=False): p for p in paths}
    done: dict[Path, dict] = {}
    for fut in as_completed(futures):
        path = futures[fut]
        try:
            song = fut.result()
        except Exception as exc:  # whatever the worker raised, for this song alone
            song = {"error": f"its task failed on the cluster ({type(exc).__name__}: {exc})"[:300]}
        done[path] = song
        if each:
            each(path, song)
        if progress:
            progress(len(done), len(paths), path.name)
    return done


def analyse_library(folder: Path, cache_dir: Path, workers: int | None = None,
                    scheduler: str | None = None, seed: int = 0,
                    progress: Callable[[int, int, str], None] | None = None) -> tuple[dict, LibraryReport]:
    """The map of every chunk of every song under ``folder`` (the JSON document), and
    what the run did."""
    songs = songs_in(folder)
    if not songs:
        raise ValueError(f"{folder}: no sound files ({' '.join(AUDIO)}) under it")
    cache = Cache(cache_dir)
    keys = {p: content_key(p) for p in songs}
    found = {p: cache.get(keys[p]) for p in songs}
    todo = [p for p in songs if found[p] is None]
    def keep(path: Path, song: dict) -> None:
        found[path] = song
        if "error" not in song:
            cache.put(keys[path], song)
    if todo:
        with dask_client(workers, scheduler) as client:
            describe_songs(todo, client, progress, keep)
    report = LibraryReport(len(songs), len(todo), len(songs) - len(todo), 0)
    rows, chunks, listed = [], [], []
    for path in songs:
        song = found[path]
        if "error" in song:
            report.failed.append(f"{path}: {song['error']}")
            continue
        index = len(listed)
        listed.append({"audio": str(path.relative_to(folder)), "duration": round(song["duration"], 4),
                       "chunks": len(song["starts"])})
        rows.append(song["features"].astype(np.float64))
        chunks += [(index, float(s), float(e)) for s, e in zip(song["starts"], song["ends"])]
    feats = np.concatenate(rows) if rows else np.zeros((0, len(FEATURES)))
    report.chunks = len(feats)
    if len(feats) < 3:
        raise ValueError(f"{folder}: only {len(feats)} chunks in all its songs; a map needs at least 3")
    z, mean, std = standardise(feats)
    if progress:
        progress(0, 1, "laying out by similarity")
    z_low = reduced(z, seed)
    xy, method = embed(z_low, 2, seed)
    if progress:
        progress(1, 1, "laying out by similarity")
    doc = {"tonegraph": "chunkmap", "version": 3, "library": Path(folder).name,
           "samplerate": SAMPLERATE, "method": f"PCA + {method}" if z_low is not z else method,
           "features": FEATURES, "mean": mean.tolist(), "std": std.tolist(), "sections": [],
           "songs": listed,
           "chunks": [{"song": song, "start": round(s, 4), "end": round(e, 4),
                       "features": [round(float(v), 5) for v in f], "xy": [round(float(v), 4) for v in p]}
                      for (song, s, e), f, p in zip(chunks, feats, xy)]}
    return doc, report


def reduced(z: np.ndarray, seed: int = 0) -> np.ndarray:
    """Standardised features as the layout takes them: PCA to PCA_DIMS when wider."""
    if z.shape[1] > PCA_DIMS and len(z) > PCA_DIMS:
        from sklearn.decomposition import PCA

        return PCA(n_components=PCA_DIMS, random_state=seed).fit_transform(z)
    return z


def plot_library(doc: dict, path: Path) -> None:
    """One dot per chunk, coloured by its song (the legend names up to 20 songs)."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    xy = np.array([c["xy"] for c in doc["chunks"]])
    song = np.array([c["song"] for c in doc["chunks"]])
    names = [s["audio"] for s in doc["songs"]]
    cmap = plt.cm.tab20 if len(names) <= 20 else plt.cm.turbo
    fig, ax = plt.subplots(figsize=(10, 7.5), dpi=100)
    for i, name in enumerate(names):
        mine = song == i
        colour = cmap(i % 20) if len(names) <= 20 else cmap(i / max(1, len(names) - 1))
        ax.scatter(xy[mine, 0], xy[mine, 1], s=10, color=colour, alpha=0.8, edgecolors="none",
                   label=name if len(names) <= 20 else None)
    ax.set_title(f"{doc['library']}: {len(xy)} chunks of {len(names)} songs by {doc['method']}")
    ax.set_xticks([])
    ax.set_yticks([])
    if len(names) <= 20:
        ax.legend(fontsize=7, markerscale=2, loc="upper left", bbox_to_anchor=(1.0, 1.0))
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
