"""audio.chroma: energy per pitch class (C, C#, ... B), for colour from harmony (seed 004)."""

from __future__ import annotations

import aubio
import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from .base import Analyzer
from .dsp import chroma_matrix

NAMES = ("C", "C#", "D", "D#", "E", "F", "F#", "G", "G#", "A", "A#", "B")


class Chroma(Analyzer):
    type_name = "audio.chroma"
    description = "12 pitch-class energies (C..B), normalised to a maximum of 1, and the strongest class."
    params = {
        "buf_size": P.integer(4096, "Analysis window (long windows resolve low notes).",
                              unit="samples", min=256, max=32768, restart=True),
        "fmin": P.number(55.0, "Lowest frequency counted.", unit="Hz", min=1.0, restart=True),
        "fmax": P.number(5000.0, "Highest frequency counted.", unit="Hz", min=10.0, restart=True),
        "smooth": P.number(0.0, "Averaging time.", unit="s", min=0.0),
    }
    outputs = {
        "out": ports.vector("Pitch-class energies C..B, the largest is 1."),
        "class": ports.number("Index of the strongest pitch class (0 = C)."),
        "name": ports.text("Name of the strongest pitch class."),
    }

    def setup(self) -> None:
        p = self.p
        self.pv = aubio.pvoc(p.buf_size, self.ctx.hop)
        self.m = chroma_matrix(p.buf_size, self.ctx.samplerate, p.fmin, p.fmax)
        self.avg = np.zeros(12, dtype=np.float32)

    def process(self, tick: Tick) -> None:
        mag = np.asarray(self.pv(self.samples(tick)).norm, dtype=np.float32)
        c = self.m @ (mag * mag)
        if self.p.smooth > 0 and tick.dt > 0:
            a = 1.0 - np.exp(-tick.dt / self.p.smooth)
            self.avg += (c - self.avg) * np.float32(a)
            c = self.avg
        top = float(c.max())
        norm = (c / top).astype(np.float32) if top > 1e-12 else np.zeros(12, dtype=np.float32)
        k = int(np.argmax(c)) if top > 1e-12 else 0
        self.out["out"] = norm
        self.out["class"] = float(k)
        self.out["name"] = NAMES[k] if top > 1e-12 else ""
