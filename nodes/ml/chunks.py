"""Seed 003, "what if machines can see music": a song cut at its onsets into chunks,
each described by MFCC and mel statistics, laid out in 2-D and 3-D by similarity.

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

from nodes.audio.onset import Onset, apply_onset_params

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
        # The onset detector is audio.onset with its tuned defaults.
        defaults = SimpleNamespace(**{n: d.default for n, d in Onset.params.items()})
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
    import soundfile as sf
    import soxr

    data, rate = sf.read(str(path), dtype="float32", always_2d=True)
    x = data.mean(axis=1)
    return soxr.resample(x, rate, samplerate).astype(np.float32) if rate != samplerate else x


def analyse(path: Path, seed: int = 0) -> dict:
    """Cut, describe and embed a song: the JSON document ``tonegraph analyze`` writes."""
    x = read_mono(path)
    chunker = Chunker()
    chunks = []
    for i in range(0, len(x), 65536):
        chunks += chunker.push(x[i:i + 65536])
    chunks += chunker.finish()
    if len(chunks) < 3:
        raise ValueError(f"{path}: only {len(chunks)} chunks found; it needs at least 3 onsets")
    feats = np.stack([c.features for c in chunks])
    mean, std = feats.mean(axis=0), feats.std(axis=0)
    std[std < 1e-9] = 1.0
    z = (feats - mean) / std
    xy, method = embed(z, 2, seed)
    xyz, _ = embed(z, 3, seed)
    return {"tonegraph": "chunkmap", "version": 1, "audio": Path(path).name, "samplerate": SAMPLERATE,
            "method": method, "features": FEATURES,
            "mean": mean.tolist(), "std": std.tolist(),
            "chunks": [{"start": round(c.start, 4), "end": round(c.end, 4),
                        "features": [round(float(v), 5) for v in c.features],
                        "xy": [round(float(v), 4) for v in xy[i]],
                        "xyz": [round(float(v), 4) for v in xyz[i]]} for i, c in enumerate(chunks)]}


def embed(z: np.ndarray, dims: int, seed: int) -> tuple[np.ndarray, str]:
    """t-SNE (scikit-learn) into ``dims`` dimensions, scaled to -1..1; PCA for very few chunks."""
    n = len(z)
    if n > dims + 5:
        from sklearn.manifold import TSNE

        out = TSNE(n_components=dims, perplexity=min(30.0, (n - 1) / 3), init="pca",
                   random_state=seed).fit_transform(z)
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
    """The 2-D map: one dot per chunk, sized by its length, coloured first (red) to last
    (purple), as the seed drew it; beside it, the 3-D layout."""
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot as plt

    chunks = doc["chunks"]
    n = len(chunks)
    colours = plt.cm.rainbow_r(np.linspace(0.0, 1.0, n)) if n else []
    xy = np.array([c["xy"] for c in chunks])
    xyz = np.array([c["xyz"] for c in chunks])
    sizes = np.array([10 + 200 * min(1.0, c["end"] - c["start"]) for c in chunks])
    fig = plt.figure(figsize=(11, 5), dpi=100)
    ax = fig.add_subplot(1, 2, 1)
    ax.scatter(xy[:, 0], xy[:, 1], s=sizes, c=colours, alpha=0.8, edgecolors="none")
    ax.set_title(f"{doc['audio']}: {n} chunks, {doc['method']} 2-D")
    ax.set_xticks([])
    ax.set_yticks([])
    ax3 = fig.add_subplot(1, 2, 2, projection="3d")
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
    """A map written by ``tonegraph analyze``, with arrays ready for :func:`place`."""
    import json

    doc = json.loads(Path(path).read_text())
    if not isinstance(doc, dict) or doc.get("tonegraph") != "chunkmap":
        raise ValueError(f"{path}: not a map written by 'tonegraph analyze'")
    feats = np.array([c["features"] for c in doc["chunks"]], dtype=np.float64)
    doc["_mean"], doc["_std"] = np.array(doc["mean"]), np.array(doc["std"])
    doc["_z"] = (feats - doc["_mean"]) / doc["_std"]
    doc["_xy"] = np.array([c["xy"] for c in doc["chunks"]])
    doc["_xyz"] = np.array([c["xyz"] for c in doc["chunks"]])
    return doc
