"""ml.autoencoder: a low-dimensional code of the sound, from a spectrogram autoencoder.

Seed 002's pipeline as one node.  On the audio thread, every hop of ``audio`` goes
through the front end the model was trained with (log-mel frames; its settings are in
the weights file, and a patch at another samplerate is resampled to the model's), and
the last ``context`` frames are queued as one model input.  Once per frame, every input
queued since the previous frame runs through the encoder in one batch, together with
those of other autoencoder nodes that share the weights (engine/batch.py).

``raw`` is the code of the newest hop, each dimension scaled by the range it took over
the training data (1st to 99th percentile) to 0..1.  ``out`` is the same code scaled
against its own recent history instead (``normalize`` seconds: a running mean and
spread per dimension, +-2 spreads mapped to about 0..1), so that a mapping spans its
range on any music, not only music like the training data; ``normalize: 0`` makes
``out`` the training-range code.  ``error`` is how badly the newest hops were
reconstructed, the largest over the hops since the previous tick (so a short novel
sound is not missed), relative to its own recent average (1 is usual; a sound new to
the last ``normalize`` seconds reads higher), or with ``normalize: 0`` to the training
data's median.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from tonegraph.nodes.audio.dsp import mono

from .base import MODEL_PARAMS, ModelNode
from .frontend import MelFrontEnd

#: Inputs kept when frames stall (about 1.5 s at the default front end).
MAX_QUEUED = 64


class AutoEncoder(ModelNode):
    type_name = "ml.autoencoder"
    description = "Spectrogram autoencoder: a 0..1 code of the sound and a novelty error, batched."
    kind = "autoencoder"
    shipped = "autoencoder.pt"
    domain = "both"
    params = {
        **MODEL_PARAMS,
        "normalize": P.number(20.0, "Scale the code and the novelty against the last this many "
                                    "seconds of the music (0: the training data's ranges).",
                              unit="s", min=0.0, max=3600.0),
        "smooth": P.number(0.25, "Time constant smoothing the scaled code (0: every hop as it is).",
                           unit="s", min=0.0, max=60.0),
    }
    inputs = {"audio": ports.audio("The sound (mixed to mono); analysed as the model was trained.",
                                   required=True)}
    outputs = {
        "out": ports.vector("The code, one value per dimension in 0..1 (scaled to its recent range)."),
        "raw": ports.vector("The code scaled by the training data's ranges."),
        "error": ports.number("Novelty: reconstruction error relative to its recent average."),
        "hops": ports.number("Inputs encoded this frame (0 when no audio arrived)."),
    }

    def setup(self) -> None:
        m = self.model
        self.front = MelFrontEnd(m.front, self.ctx.samplerate)
        self.context = m.context
        self.bands = int(m.front["bands"])
        self.history: deque = deque(maxlen=self.context)
        self.queue: deque = deque(maxlen=MAX_QUEUED)
        self.out["out"] = np.full(m.code, 0.5, dtype=np.float32)
        self.out["raw"] = self.out["out"].copy()
        #: Seconds of sound per model input (one front-end hop).
        self.hop_s = float(m.front["hop"]) / float(m.front["samplerate"])
        self.mean: np.ndarray | None = None   # running mean and variance of the raw code
        self.var: np.ndarray | None = None
        self.err_mean = 1.0                   # running mean of the raw error
        self.smoothed: np.ndarray | None = None

    def process_audio(self, tick: Tick) -> None:
        """Audio thread: analyse the hop and queue the model inputs it completes."""
        block = self.inp["audio"]
        if block is None:
            return
        for frame in self.front.push(mono(block, self.ctx.hop)):
            if not self.history:
                self.history.extend([frame] * (self.context - 1))
            self.history.append(frame)
            self.queue.append(np.concatenate(self.history))

    def requests(self, tick: Tick) -> list[np.ndarray]:
        q = self.queue
        return [q.popleft() for _ in range(len(q))]

    def deliver(self, tick: Tick, rows: np.ndarray | None) -> None:
        out = self.out
        if rows is None:
            out["hops"] = 0
            return
        codes, errors = rows[:, :-1].astype(np.float64), rows[:, -1].astype(np.float64)
        out["raw"] = rows[-1, :-1]
        out["hops"] = len(rows)
        if self.p.normalize <= 0:
            out["out"] = rows[-1, :-1]
            out["error"] = float(errors.max())
            return
        n = len(codes)
        a = 1.0 - np.exp(-self.hop_s / self.p.normalize)
        if self.mean is None:
            self.mean, self.var = codes[0].copy(), np.full(len(codes[0]), 0.1 ** 2)
        # Every hop's running mean, variance and error mean at once: x_k = (1 - a) x_k-1
        # + a u_k is x_k = (1 - a)^k x_0 + sum_j L[k, j] u_j, with L[k, j] = a (1 - a)^(k - j).
        decay, weights = _recursion(a, n)
        means = decay[:, None] * self.mean + weights @ codes
        d = codes - np.vstack([self.mean, means[:-1]])
        variances = decay[:, None] * self.var + weights @ (d * d)
        err_means = decay * self.err_mean + weights @ errors
        before = np.concatenate([[self.err_mean], err_means[:-1]])
        novelty = float((errors / np.maximum(before, 1e-6)).max())
        self.mean, self.var, self.err_mean = means[-1], variances[-1], float(err_means[-1])
        spread = np.sqrt(np.maximum(variances, 1e-6))
        scaled = 0.5 + 0.5 * np.tanh((codes - means) / (2.0 * spread))
        if self.smoothed is None or self.p.smooth <= 0:
            self.smoothed, scaled = scaled[0], scaled[1:]
        if len(scaled) and self.p.smooth > 0:
            g = 1.0 - np.exp(-self.hop_s / self.p.smooth)
            keep, add = _recursion(g, len(scaled))
            self.smoothed = keep[-1] * self.smoothed + add[-1] @ scaled
        elif len(scaled):
            self.smoothed = scaled[-1]
        out["out"] = self.smoothed.astype(np.float32)
        out["error"] = novelty

    def state(self) -> dict:
        return {"mean": self.mean, "var": self.var, "err_mean": self.err_mean}

    def restore(self, state: dict) -> None:
        mean = state.get("mean")
        if mean is not None and len(mean) == len(self.out["out"]):
            self.mean, self.var = mean, state["var"]
            self.err_mean = state.get("err_mean", 1.0)

    def close(self) -> None:
        self.front = None          # soxr's stream must not outlive the run
        super().close()


_recursions: dict[tuple[float, int], tuple[np.ndarray, np.ndarray]] = {}


def _recursion(a: float, n: int) -> tuple[np.ndarray, np.ndarray]:
    """For x_k = (1 - a) x_k-1 + a u_k over n steps: ((1 - a)^k for k = 1..n, and the
    n x n lower-triangular L[k, j] = a (1 - a)^(k - j)), so x = decay x_0 + L u."""
    key = (a, n)
    got = _recursions.get(key)
    if got is None:
        k = np.arange(1, n + 1)
        lag = k[:, None] - k[None, :]
        weights = np.where(lag >= 0, a * (1.0 - a) ** np.maximum(lag, 0), 0.0)
        got = (1.0 - a) ** k, weights
        if len(_recursions) > 256:
            _recursions.clear()
        _recursions[key] = got
    return got
