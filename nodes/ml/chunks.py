"""Seed 003, "what if machines can see music": a song cut at its onsets into chunks,
each described by MFCC and mel statistics, laid out in 2-D (and, asked, 3-D) by
similarity, with the song's sections found where its sound changes.

:class:`Chunker` does the cutting and the features, hop by hop, for both
``tonegraph analyze`` (a whole file) and the live ``ml.chunkmap`` node, so a live chunk
is described exactly as the analysed ones were.  Per chunk: the mean and standard
deviation of 13 MFCCs (the seed's 26 features) and the mean log energy of 8 mel bands.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace

import aubio
import numpy as np

from tonegraph.nodes.audio.onset import Onset, apply_onset_params

SAMPLERATE = 22050
HOP = 512
WINDOW = 1024
N_MFCC = 13
N_MEL = 40
N_GROUPS = 8
MIN_CHUNK = 0.05    # [s]: shorter chunks join the next one
FEATURES = ([f"mfcc{i}_mean" for i in range(N_MFCC)] + [f"mfcc{i}_std" for i in range(N_MFCC)]
            + [f"mel{i}_mean" for i in range(N_GROUPS)])


@dataclass
class Chunk:
    start: float
    end: float
    features: np.ndarray


class Chunker:
    """Push mono samples at ``samplerate``; get each chunk as the onset after it arrives."""

    def __init__(self, samplerate: int = SAMPLERATE) -> None:
        self.samplerate = samplerate
        self.frames: list[tuple[np.ndarray, np.ndarray]] = []   # (MFCC, log mel) per hop
        # The onset detector is audio.onset's aubio one (hfc) with its tuned settings
        # (five times faster than the learned detector, for a library of songs).
        defaults = SimpleNamespace(**{n: d.default for n, d in Onset.params.items()} | {"method": "hfc"})
        self.onset = aubio.onset(defaults.method, WINDOW, HOP, self.samplerate)
        apply_onset_params(self.onset, defaults)
        self.pv = aubio.pvoc(WINDOW, HOP)
        self.mfcc = aubio.mfcc(WINDOW, N_MEL, N_MFCC, self.samplerate)
        self.fb = aubio.filterbank(N_MEL, WINDOW)
        self.fb.set_mel_coeffs(float(self.samplerate), 30.0, min(11000.0, self.samplerate / 2 - 1))
        self.hops = 0
        self.start = 0.0
        self.pending = np.zeros(0, dtype=np.float32)

    def push(self, samples: np.ndarray) -> list[Chunk]:
        x = np.asarray(samples, dtype=np.float32)
        if self.pending.size:
            x = np.concatenate([self.pending, x])
        n = len(x) // HOP
        done = []
        for i in range(n):
            hop = x[i * HOP:(i + 1) * HOP]
            if self.onset(hop)[0]:
                t = self.onset.get_last() / self.samplerate
                if t - self.start >= MIN_CHUNK and self.frames:
                    done.append(self._close(t))
            spec = self.pv(hop)
            mel = np.log(np.asarray(self.fb(spec), dtype=np.float64) + 1e-6)
            self.frames.append((np.asarray(self.mfcc(spec), dtype=np.float64), mel))
            self.hops += 1
        self.pending = x[n * HOP:].copy()
        return done

    def finish(self) -> list[Chunk]:
        """The last chunk, up to the end of what was pushed."""
        end = self.hops * HOP / self.samplerate
        return [self._close(end)] if self.frames and end - self.start >= MIN_CHUNK else []

    def _close(self, t: float) -> Chunk:
        mf = np.stack([f[0] for f in self.frames])
        mel = np.stack([f[1] for f in self.frames])
        groups = np.array_split(np.arange(N_MEL), N_GROUPS)
        feats = np.concatenate([mf.mean(axis=0), mf.std(axis=0),
                                [mel[:, g].mean() for g in groups]])
        chunk = Chunk(self.start, t, feats)
        self.start = t
        self.frames = []
        return chunk


def read_mono(path: Path, samplerate: int = SAMPLERATE) -> np.ndarray:
    import soxr

    from tonegraph.nodes.audio.sound import read_sound

    data, rate = read_sound(path)
    x = data.mean(axis=1)
    return soxr.resample(x, rate, samplerate).astype(np.float32) if rate != samplerate else x


def analyse(path: Path, seed: int = 0, dims: int = 2, progress=None) -> dict:
    """Cut, describe and embed a song: the JSON document ``tonegraph analyze`` writes.
    ``dims`` 3 adds a 3-D layout (slower); ``progress(done, total, what)`` is told how
    far the work is."""
    x = read_mono(path)
    chunker = Chunker()
    chunks = []
    step = 65536
    for i in range(0, len(x), step):
        chunks += chunker.push(x[i:i + step])
        if progress:
            progress(min(i + step, len(x)), len(x), "cutting at onsets")
    chunks += chunker.finish()
    if len(chunks) < 3:
        raise ValueError(f"{path}: only {len(chunks)} chunks found; it needs at least 3 onsets")
    feats = np.stack([c.features for c in chunks])
    z, mean, std = standardise(feats)
    if progress:
        progress(0, 1, "laying out by similarity")
    xy, method = embed(z, 2, seed)
    xyz = embed(z, 3, seed)[0] if dims == 3 else None
    if progress:
        progress(1, 1, "laying out by similarity")
    starts = np.array([c.start for c in chunks])
    doc = {"tonegraph": "chunkmap", "version": 2, "audio": Path(path).name, "samplerate": SAMPLERATE,
           "method": method, "features": FEATURES, "duration": round(len(x) / SAMPLERATE, 4),
           "mean": mean.tolist(), "std": std.tolist(),
           "sections": [round(float(starts[i]), 4) for i in sections(z)],
           "chunks": [{"start": round(c.start, 4), "end": round(c.end, 4),
                       "features": [round(float(v), 5) for v in c.features],
                       "xy": [round(float(v), 4) for v in xy[i]]} for i, c in enumerate(chunks)]}
    if xyz is not None:
        for c, p in zip(doc["chunks"], xyz):
            c["xyz"] = [round(float(v), 4) for v in p]
    return doc


def standardise(feats: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Features as z-scores per column (a constant column stays 0), with the mean and
    spread a map keeps to place new chunks the same way."""
    mean, std = feats.mean(axis=0), feats.std(axis=0)
    std[std < 1e-9] = 1.0
    return (feats - mean) / std, mean, std


def sections(z: np.ndarray, width: int = 8) -> list[int]:
    """Indexes of chunks where a new section starts: peaks of a novelty curve (the
    distance between the mean features of the ``width`` chunks before and after each
    chunk) that stand out (above its mean plus one spread) and lie ``width`` apart."""
    n = len(z)
    if n < 2 * width + 1:
        return []
    nov = np.zeros(n)
    for i in range(width, n - width):
        nov[i] = np.linalg.norm(z[i - width:i].mean(axis=0) - z[i:i + width].mean(axis=0))
    cut = nov[width:n - width].mean() + nov[width:n - width].std()
    out: list[int] = []
    for i in range(width, n - width):
        if nov[i] > cut and nov[i] == nov[max(0, i - width):i + width + 1].max():
            if not out or i - out[-1] >= width:
                out.append(i)
    return out


#: t-SNE's iterations and Barnes-Hut angle: half scikit-learn's 1,000 iterations and a
#: coarser angle than its 0.5.  make bench library prints both settings on 2,840 chunks
#: of the groove's songs (time, trustworthiness at 10); a one-off run on 8 real songs
#: (10,792 chunks) took 12.7 s for 28.3 s, neighbours kept as well (0.976 for 0.977).
TSNE_ITERATIONS, TSNE_ANGLE = 500, 0.7


def embed(z: np.ndarray, dims: int, seed: int, iterations: int = TSNE_ITERATIONS,
          angle: float = TSNE_ANGLE) -> tuple[np.ndarray, str]:
    """t-SNE (scikit-learn) into ``dims`` dimensions, scaled to -1..1; PCA for very few chunks."""
    n = len(z)
    if n > dims + 5:
        from sklearn.manifold import TSNE

        out = TSNE(n_components=dims, perplexity=min(30.0, (n - 1) / 3), init="pca", max_iter=iterations,
                   angle=angle, random_state=seed).fit_transform(z)
        method = "t-SNE"
    else:
        from sklearn.decomposition import PCA

        out = PCA(n_components=min(dims, n), random_state=seed).fit_transform(z)
        out = np.pad(out, ((0, 0), (0, dims - out.shape[1])))
        method = "PCA"
    out = out - out.mean(axis=0)
    scale = np.abs(out).max() or 1.0
    return out / scale, method


def plot(doc: dict, path: Path) -> None:
    """The map, as a projector would show it: one dot per chunk, sized by its length
    and coloured by its time in the song (the colour bar is the legend), the chunks
    joined in time order (the song's track through its own map); under it, a time bar
    of the chunks with the section boundaries; beside it, the 3-D layout when there is
    one."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt
    from matplotlib.colors import Normalize

    chunks = doc["chunks"]
    n = len(chunks)
    duration = float(doc.get("duration") or (chunks[-1]["end"] if n else 1.0))
    starts = np.array([c["start"] for c in chunks])
    ends = np.array([c["end"] for c in chunks])
    norm = Normalize(0.0, duration)
    cmap = plt.cm.turbo
    colours = cmap(norm(starts))
    xy = np.array([c["xy"] for c in chunks])
    sizes = 12 + 160 * np.minimum(1.0, ends - starts)
    three = all("xyz" in c for c in chunks) and n > 0
    fig = plt.figure(figsize=(13 if three else 9, 7.5), dpi=100)
    grid = fig.add_gridspec(2, 2 if three else 1, height_ratios=[6, 1])
    ax = fig.add_subplot(grid[0, 0])
    ax.plot(xy[:, 0], xy[:, 1], color=(0.5, 0.5, 0.5, 0.35), linewidth=0.7, zorder=1)
    ax.scatter(xy[:, 0], xy[:, 1], s=sizes, c=colours, alpha=0.9, edgecolors="none", zorder=2)
    for t in doc.get("sections", []):
        i = int(np.searchsorted(starts, t))
        if i < n:
            ax.scatter([xy[i, 0]], [xy[i, 1]], s=220, facecolors="none", edgecolors="black",
                       linewidths=1.5, zorder=3)
    ax.set_title(f"{doc['audio']}: {n} chunks by {doc['method']}; the line follows the song, "
                 f"rings mark sections")
    ax.set_xticks([])
    ax.set_yticks([])
    bar = fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=ax, fraction=0.04, pad=0.01)
    bar.set_label("time in the song [s]")
    tb = fig.add_subplot(grid[1, 0])
    tb.broken_barh([(s0, e0 - s0) for s0, e0 in zip(starts, ends)], (0, 1), facecolors=colours)
    for t in doc.get("sections", []):
        tb.axvline(t, color="black", linewidth=1.5)
    tb.set_xlim(0, duration)
    tb.set_yticks([])
    tb.set_xlabel("time [s]: chunks, and section boundaries")
    if three:
        xyz = np.array([c["xyz"] for c in chunks])
        ax3 = fig.add_subplot(grid[:, 1], projection="3d")
        ax3.scatter(xyz[:, 0], xyz[:, 1], xyz[:, 2], s=sizes * 0.5, c=colours, alpha=0.8)
        ax3.set_title("3-D")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)


def place(doc: dict, features: np.ndarray, k: int = 5) -> tuple[np.ndarray, np.ndarray, int]:
    """Where a new chunk lies in a fitted map: the inverse-distance mean of the positions of
    its ``k`` nearest chunks in feature space.  Returns (xy, xyz, index of the nearest)."""
    z_map = doc["_z"]
    z = (features - doc["_mean"]) / doc["_std"]
    d = np.sqrt(((z_map - z) ** 2).sum(axis=1))
    order = np.argsort(d)[:max(1, min(k, len(d)))]
    w = 1.0 / (d[order] + 1e-6)
    w /= w.sum()
    return (w @ doc["_xy"][order], w @ doc["_xyz"][order], int(order[0]))


def load_map(path: Path) -> dict:
    """A map written by ``tonegraph analyze``, with arrays ready for :func:`place`; read
    within engine/files.py's bounds for data (a regular file of at most 64 MiB)."""
    from tonegraph.engine.files import DATA_LIMIT, read_json

    doc = read_json(path, "map", DATA_LIMIT)
    if not isinstance(doc, dict) or doc.get("tonegraph") != "chunkmap":
        raise ValueError(f"{path}: not a map written by 'tonegraph analyze'")
    feats = np.array([c["features"] for c in doc["chunks"]], dtype=np.float64)
    doc["_mean"], doc["_std"] = np.array(doc["mean"]), np.array(doc["std"])
    doc["_z"] = (feats - doc["_mean"]) / doc["_std"]
    doc["_xy"] = np.array([c["xy"] for c in doc["chunks"]])
    doc["_xyz"] = np.array([c.get("xyz", c["xy"] + [0.0]) for c in doc["chunks"]])
    return doc
