"""audio.level: RMS, peak and dBFS per hop (the floor, silence, before the first)."""

from __future__ import annotations

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from .base import Analyzer
from .dsp import db, rms


class Level(Analyzer):
    type_name = "audio.level"
    description = "Loudness per hop: RMS, peak and RMS in dBFS."
    default_output = "rms"
    window = None  # no analysis window: one hop at a time
    params = {"floor": P.number(-120.0, "Lowest dBFS reported.", unit="dB", min=-200.0, max=0.0)}
    outputs = {
        "rms": ports.number("Root mean square, 0..1 for full scale."),
        "peak": ports.number("Largest absolute sample."),
        "db": ports.number("RMS in dB relative to full scale."),
    }

    def setup(self) -> None:
        # Until the first hop is heard: silence, not 0 dBFS (a dimmer or fader mapped
        # from the level flashed to full for a tick when a show started).
        self.out["db"] = self.p.floor

    def process(self, tick: Tick) -> None:
        x = self.samples(tick)
        level = rms(x)
        self.out["rms"] = level
        self.out["peak"] = float(np.abs(x).max()) if len(x) else 0.0
        self.out["db"] = db(level, self.p.floor)
