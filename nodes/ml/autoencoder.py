"""ml.autoencoder: a low-dimensional code of the sound, from a spectrogram autoencoder.

Seed 002's pipeline as one node.  On the audio thread, every hop of ``audio`` goes
through the front end the model was trained with (log-mel frames; its settings are in
the weights file, and a patch at another samplerate is resampled to the model's), and
the last ``context`` frames are queued as one model input.  Once per frame, every input
queued since the previous frame runs through the encoder in one batch, together with
those of other autoencoder nodes that share the weights (engine/batch.py).

``out`` is the code of the newest hop, each dimension scaled by the range it took over
the training data (1st to 99th percentile) to 0..1, so it maps with ``control.map``
like any 0..1 signal.  ``error`` is how badly the newest hops were reconstructed,
relative to the training data's median (1 is typical; sounds unlike the training
data read higher): the largest over the hops since the previous frame, so a short
novel sound is not missed.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from engine import ports
from engine.node import Tick

from nodes.audio.dsp import mono

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
    params = dict(MODEL_PARAMS)
    inputs = {"audio": ports.audio("The sound (mixed to mono); analysed as the model was trained.",
                                   required=True)}
    outputs = {
        "out": ports.vector("The code, one value per dimension in 0..1."),
        "error": ports.number("Reconstruction error relative to the training median (novelty)."),
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
        out["out"] = rows[-1, :-1]
        out["error"] = float(rows[:, -1].max())
        out["hops"] = len(rows)

    def close(self) -> None:
        self.front = None          # soxr's stream must not outlive the run
        super().close()
