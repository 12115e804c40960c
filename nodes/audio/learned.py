"""The learned onset detector: small causal networks over log-mel frames, run hop by
hop in numpy (no torch at run time).

A network (trained by ``tonegraph train onsets``, see tools/onsettrain.py) reads
each log-mel frame standardised, with its rise over the previous frame, through two
causal convolutions (5 and 3 frames), a GRU and a linear layer; its output after frame
``t`` is the onset activation of frame ``t - lookahead``, and a peak is seen one frame
after it.  So an onset is known ``lookahead + 1`` frames after its own frame ends: with
the shipped settings (22,050 Hz, hop 256, look-ahead 1) 23 ms, plus whatever hop the
patch buffers.  A weights file may hold several such networks of one shape, each
trained on its own songs (``--members``), their activations averaged (an ensemble, as
madmom's onset and beat detectors are).

Weights are an ``.npz`` file read with ``allow_pickle=False``: arrays and a JSON
config, nothing executable.  The file is read within bounds (engine/files.py: at most
64 MiB, each array's shape checked before it is inflated), and the config's counts
(``members``, ``lookahead``, the front end's sizes) within :data:`LIMITS`, so no file
makes the detector allocate more than its arrays hold; each refusal is one line naming
the file.

The onset detector hears its input levelled (:class:`Leveller`): each frame's band
magnitudes are scaled so that the loudest frame of the last few seconds sits LEVEL_DB
below a full-scale sine (band magnitudes added up), whatever the input's level.  The network was trained on clips
peaking 1-25 dB below full scale, and heard mastered records and close-miked stems at
their own level it missed most notes of dense, loud parts (distorted guitars: F 0.09
where aubio scores 0.25); heard 45 dB down it finds them (likely because what lies 75
dB or more below the peaks, reverb tails, amp hiss, bleed, then sinks under the log's
floor).
The level and audio.onset's threshold for the method were chosen on make eval's dev set
with a metronome's clicks in mind (docs/accuracy.md has the figures).
"""

from __future__ import annotations

import copy
import functools
import json
import math
from collections import deque
from pathlib import Path

import numpy as np

from tonegraph.engine.files import TEXT_LIMIT, FileError, parse_json, read_npz, written_whole

#: The shipped weights.
SHIPPED = Path(__file__).resolve().parents[1] / "ml" / "models" / "onsets.npz"

#: The front end the shipped detector is trained with (recorded in every weights file).
FRONT = {"samplerate": 22050, "n_fft": 1024, "hop": 256, "bands": 64, "fmin": 30.0, "fmax": 11000.0}

#: The whole numbers of a weights file's config and their ranges: ``members`` as the
#: trainer's ``--members`` allows (0: a single network), and the front end's sizes.
LIMITS = {"members": (0, 64), "lookahead": (0, 64), "samplerate": (8000, 384000),
          "n_fft": (16, 65536), "hop": (1, 65536), "bands": (1, 512)}

_cache: dict[tuple, "Weights"] = {}


class WeightsError(ValueError):
    """A weights file that cannot be used (one line)."""


class Net:
    """One network's arrays, the convolutions as matrices over their stacked windows."""

    def __init__(self, a: dict[str, np.ndarray]) -> None:
        self.mean, self.std = a["mean"], a["std"]
        w1 = a["conv1_w"]                           # (hidden, features, k)
        self.k1, self.features = w1.shape[2], w1.shape[1]
        self.w1 = w1.transpose(0, 2, 1).reshape(w1.shape[0], -1)      # oldest frame first
        self.b1 = a["conv1_b"]
        w2 = a["conv2_w"]
        self.k2 = w2.shape[2]
        self.w2 = w2.transpose(0, 2, 1).reshape(w2.shape[0], -1)
        self.b2 = a["conv2_b"]
        self.wi, self.wh, self.bi, self.bh = a["gru_wi"], a["gru_wh"], a["gru_bi"], a["gru_bh"]
        self.hidden = self.wh.shape[1]
        self.out_w, self.out_b = a["out_w"].ravel(), float(a["out_b"].ravel()[0])

    def shape(self) -> tuple:
        return (self.mean.shape, self.w1.shape, self.w2.shape, self.wh.shape, self.k1, self.k2)


class Weights:
    """A detector's networks and config, shared by every node that loads the same file.

    A file holds one network (arrays named as ``NAMES``) or an ensemble of ``members``
    networks of one shape (``m0_mean``, ``m0_std``, ... ``m1_mean``, ...), each trained
    on its own data from its own seed; the detector's activation is the mean of theirs
    (as madmom averages its eight onset and beat networks)."""

    NAMES = ("mean", "std", "conv1_w", "conv1_b", "conv2_w", "conv2_b", "gru_wi", "gru_wh",
             "gru_bi", "gru_bh", "out_w", "out_b")

    def __init__(self, arrays: dict[str, np.ndarray], config: dict) -> None:
        self.config = config
        self.front = dict(config["frontend"])
        for key in ("samplerate", "n_fft", "hop", "bands"):
            _whole(self.front, key)
        self.lookahead = _whole(config, "lookahead")
        count = _whole(config, "members", 0)
        prefixes = [f"m{i}_" for i in range(count)] if count else [""]
        self.nets = [Net({k: np.asarray(arrays[p + k], dtype=np.float64) for k in self.NAMES})
                     for p in prefixes]
        if len({n.shape() for n in self.nets}) > 1:
            raise ValueError("its networks differ in shape")
        first = self.nets[0]
        self.hidden, self.features = first.hidden, first.features
        if first.mean.shape != (self.front["bands"],):
            raise ValueError(f"its networks read {first.mean.shape} bands, its front end makes "
                             f"{self.front['bands']}")

    def network(self, i: int) -> "Weights":
        """The ``i``-th network alone, as a detector of its own."""
        one = copy.copy(self)
        one.nets = [self.nets[i]]
        return one

    @classmethod
    def load(cls, path: Path) -> "Weights":
        path = Path(path)
        try:
            st = path.stat()
        except OSError as exc:
            raise WeightsError(f"cannot read {path}: {exc.strerror or exc}") from None
        key = (str(path.resolve()), st.st_mtime_ns, st.st_size)
        if key not in _cache:
            try:
                _cache[key] = cls(*read(path))
            except FileError as exc:
                raise WeightsError(str(exc)) from None
            except (OSError, ValueError, KeyError, TypeError) as exc:
                raise WeightsError(f"{path.name} is not a learned detector's weights file ({exc})") from None
        return _cache[key]


def read(path: Path) -> tuple[dict[str, np.ndarray], dict]:
    """A weights file's arrays and config (no pickles), within engine/files.py's bounds."""
    arrays = read_npz(path, "weights file")
    config = str(arrays.pop("config"))
    if len(config) > TEXT_LIMIT:
        raise ValueError(f"its config is longer than {TEXT_LIMIT} characters")
    return arrays, parse_json(config)


def _whole(config: dict, key: str, default: int | None = None) -> int:
    """``config[key]``, a whole number within its :data:`LIMITS`; ValueError if not."""
    value = config.get(key, default)
    lo, hi = LIMITS[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise ValueError(f"'{key}' must be a whole number {lo}..{hi}, got {value!r}")
    return value


def save(path: Path, arrays: dict[str, np.ndarray], config: dict) -> None:
    """Write a weights file (arrays and a JSON config; no pickles)."""
    with written_whole(Path(path), ".part.npz") as tmp:
        np.savez(tmp, config=np.array(json.dumps(config)),
                 **{k: np.asarray(v, np.float32) for k, v in arrays.items()})


def save_ensemble(path: Path, members: list[tuple[dict[str, np.ndarray], dict]]) -> None:
    """Write one weights file holding several networks' (arrays, config), in order; the
    config is the first's, with each member's ``trained`` listed."""
    config = dict(members[0][1])
    config["trained"] = [c.get("trained") for _, c in members]
    config["members"] = len(members)
    save(path, {f"m{i}_{k}": v for i, (a, _) in enumerate(members) for k, v in a.items()}, config)


def _sigmoid(x: float) -> float:
    if x >= 0.0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


#: The level the loudest recent frame is heard at [dB against a full-scale 1 kHz sine,
#: both as the front end's band magnitudes added up]; how fast a loud passage lets go
#: [s, to 1/e: after a hit 30 dB above the rest, the rest is heard at its level again
#: about 10 s later]; the most a quiet one is lifted [dB: so "any input level" means
#: down to about 85 dB below full scale].
LEVEL_DB, LEVEL_RELEASE_S, LEVEL_MOST_DB = -45.0, 3.0, 40.0


@functools.lru_cache(maxsize=8)
def _full_scale(config: tuple) -> float:
    from tonegraph.nodes.ml.frontend import MelFrontEnd

    front = dict(config)
    sr = int(front["samplerate"])
    sine = np.sin(2 * np.pi * 1000 * np.arange(sr // 4) / sr).astype(np.float32)
    mags = MelFrontEnd(front, sr, log=False).push(sine)
    return float(np.median([m.sum() for m in mags[len(mags) // 2:]]))


def full_scale(front: dict) -> float:
    """A front end's band magnitudes of a full-scale 1 kHz sine, added up (0 dB)."""
    return _full_scale(tuple(sorted(front.items())))


class Leveller:
    """The onset detector's front end, levelled: ``push`` samples at ``input_rate`` (the
    front end's own rate if None), get each frame they complete as the network reads it
    (log-mel of the band magnitudes scaled so the loudest frame of the last moments,
    instant attack, a release of LEVEL_RELEASE_S, sits at LEVEL_DB, lifted by at most
    LEVEL_MOST_DB) and how loud the frame really is (its magnitudes added up, before
    levelling).  Frames are the same at any patch hop, so the streaming and
    whole-signal paths agree."""

    def __init__(self, front: dict, input_rate: int | None = None) -> None:
        from tonegraph.nodes.ml.frontend import FLOOR, MelFrontEnd

        self.front = MelFrontEnd(front, input_rate, log=False)
        fps = float(front["samplerate"]) / float(front["hop"])
        self.release = math.exp(-1.0 / (LEVEL_RELEASE_S * fps))
        self.target = full_scale(front) * 10 ** (LEVEL_DB / 20)
        self.most = 10 ** (LEVEL_MOST_DB / 20)
        self.floor = np.float32(FLOOR)
        self.loudest = 0.0

    def push(self, samples: np.ndarray) -> list[tuple[np.ndarray, float]]:
        return [self.level(mag) for mag in self.front.push(samples)]

    def level(self, mag: np.ndarray) -> tuple[np.ndarray, float]:
        """One frame's band magnitudes: its levelled log-mel, and their sum."""
        loud = float(mag.sum())
        self.loudest = max(loud, self.loudest * self.release)
        gain = self.most if self.loudest * self.most <= self.target else self.target / self.loudest
        f = mag * np.float32(gain)
        f += self.floor
        np.log(f, out=f)
        return f, loud


class Stream:
    """A detector's running state: push log-mel frames, get activations (0..1) of
    frames ``lookahead`` back (None until there is one).

    It runs on the audio thread, so a frame is a couple of dozen numpy calls into
    buffers made once, in float32 as the network was trained, all of an ensemble's
    networks in each call (a leading axis): the features are written straight into
    the first convolution's window, each layer into the next one's, and the GRU's gates
    come from one matrix product over [convolution out, state] (its sigmoids as tanh of
    half the input, the halves folded into the weights)."""

    def __init__(self, weights: Weights) -> None:
        self.w = weights
        f32 = np.float32
        nets = weights.nets
        n = weights.hidden
        c = nets[0].b2.shape[0]
        stack = lambda f: np.stack([f(x) for x in nets]).astype(f32)  # noqa: E731
        bands = nets[0].mean.shape[0]
        self.scale = stack(lambda x: 1.0 / x.std)
        self.offset = stack(lambda x: -x.mean / x.std)
        self.w1, self.b1 = stack(lambda x: x.w1), stack(lambda x: x.b1)
        self.w2, self.b2 = stack(lambda x: x.w2), stack(lambda x: x.b2)

        def gates(x: Net) -> np.ndarray:
            # Rows: r and z (halved for tanh) over [c2, h]; the candidate's input part
            # over c2; its recurrent part over h.
            m = np.zeros((4 * n, c + n))
            m[:2 * n, :c], m[:2 * n, c:] = 0.5 * x.wi[:2 * n], 0.5 * x.wh[:2 * n]
            m[2 * n:3 * n, :c], m[3 * n:, c:] = x.wi[2 * n:], x.wh[2 * n:]
            return m
        self.gates_w = stack(gates)
        self.gates_b = stack(lambda x: np.concatenate([0.5 * (x.bi[:2 * n] + x.bh[:2 * n]), x.bi[2 * n:],
                                                       x.bh[2 * n:]]))
        self.out_w = stack(lambda x: x.out_w[None, :])               # (k, 1, hidden)
        self.out_b = [x.out_b for x in nets]
        k = len(nets)
        k1, k2 = nets[0].k1, nets[0].k2
        self.window1 = np.zeros((k, k1, weights.features), f32)
        self.window2 = np.zeros((k, k2, self.b1.shape[1]), f32)
        self.v = np.zeros((k, c + n), f32)              # [conv2 out, GRU state]
        self.g = np.zeros((k, 4 * n), f32)
        self.tmp = np.zeros((k, n), f32)
        self.z, self.rise = self.window1[:, -1, :bands], self.window1[:, -1, bands:]
        self.c1 = self.window2[:, -1]
        self.c2, self.h = self.v[:, :c], self.v[:, c:]
        # Matrix-vector products as (k, rows, cols) @ (k, cols, 1), into (k, rows, 1) views.
        self.flat1 = self.window1.reshape(k, -1, 1)
        self.flat2 = self.window2.reshape(k, -1, 1)
        self.c1_col, self.c2_col = self.c1[:, :, None], self.c2[:, :, None]
        self.v_col, self.g_col = self.v[:, :, None], self.g[:, :, None]
        self.h_col, self.logits = self.h[:, :, None], np.zeros((k, 1, 1), f32)
        self.n = n
        self.frames = 0

    def push(self, mel: np.ndarray) -> float | None:
        w1, w2 = self.window1, self.window2
        # Features: the standardised frame and its rise over the last one (none at first).
        w1[:, :-1] = w1[:, 1:]
        np.multiply(mel, self.scale, out=self.z)
        self.z += self.offset
        if self.frames:
            np.subtract(self.z, w1[:, -2, :self.z.shape[1]], out=self.rise)
            np.maximum(self.rise, 0.0, out=self.rise)
        else:
            self.rise[:] = 0.0
        w2[:, :-1] = w2[:, 1:]
        c1 = self.c1
        np.matmul(self.w1, self.flat1, out=self.c1_col)
        c1 += self.b1
        np.maximum(c1, 0.0, out=c1)
        np.matmul(self.w2, self.flat2, out=self.c2_col)
        self.c2 += self.b2
        np.maximum(self.c2, 0.0, out=self.c2)
        n, g, h, tmp = self.n, self.g, self.h, self.tmp
        np.matmul(self.gates_w, self.v_col, out=self.g_col)
        g += self.gates_b
        rz = g[:, :2 * n]
        np.tanh(rz, out=rz)
        rz *= 0.5
        rz += 0.5                                     # r, z: sigmoids
        cand = g[:, 2 * n:3 * n]
        np.multiply(g[:, :n], g[:, 3 * n:], out=tmp)
        cand += tmp
        np.tanh(cand, out=cand)
        np.subtract(h, cand, out=tmp)                 # h = cand + z (h - cand)
        tmp *= g[:, n:2 * n]
        np.add(cand, tmp, out=h)
        self.frames += 1
        if self.frames <= self.w.lookahead:
            return None
        np.matmul(self.out_w, self.h_col, out=self.logits)
        return sum(_sigmoid(float(x) + b) for x, b in zip(self.logits.flat, self.out_b)) / len(self.out_b)


class Picker:
    """Causal peak picking on an activation, one frame late: after each frame, whether
    the frame before it was an onset: a peak (larger than the ``pre`` frames before it,
    not smaller than the frame after it) of at least ``threshold``, at most one per
    ``minioi`` frames."""

    def __init__(self, threshold: float, pre: int, minioi: int) -> None:
        self.threshold, self.pre, self.minioi = threshold, max(1, pre), max(1, minioi)
        self.recent: deque[float] = deque(maxlen=self.pre + 1)   # the candidate last
        self.last = -10 ** 9
        self.index = -1                                            # frames taken

    def __call__(self, a: float) -> bool:
        self.index += 1
        r = self.recent
        fired = False
        if len(r) and r[-1] >= self.threshold and r[-1] >= a and self.index - 1 - self.last >= self.minioi:
            before = list(r)[:-1]
            if not before or r[-1] > max(before):
                self.last = self.index - 1
                fired = True
        r.append(a)
        return fired


def activations(weights: Weights, mel_frames: np.ndarray) -> np.ndarray:
    """The activation of every frame of a whole signal (as the stream gives them, the
    last ``lookahead`` frames flushed with copies of the last frame)."""
    s = Stream(weights)
    out = [a for m in mel_frames if (a := s.push(m)) is not None]
    for _ in range(min(weights.lookahead, len(mel_frames))):
        out.append(s.push(mel_frames[-1]))
    return np.array(out[:len(mel_frames)])


def signal_activation(x: np.ndarray, sr: int, model: Path | None = None) -> tuple[np.ndarray, float]:
    """The activation of every frame of a whole signal at ``sr``, as audio.onset computes
    it live (the shipped weights unless ``model``), and its frames per second."""
    w = Weights.load(model or SHIPPED)
    frames = [m for m, _ in Leveller(w.front, sr).push(x)]
    mel = np.stack(frames) if frames else np.zeros((0, int(w.front["bands"])))
    return activations(w, mel), float(w.front["samplerate"]) / float(w.front["hop"])
