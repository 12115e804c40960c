"""audio.mfcc: mel-frequency cepstral coefficients with aubio (timbre, for seed 003)."""

from __future__ import annotations

import aubio
import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from .base import Analyzer


class Mfcc(Analyzer):
    type_name = "audio.mfcc"
    description = "Mel-frequency cepstral coefficients (timbre), with aubio."
    params = {
        "buf_size": P.integer(1024, "Analysis window.", unit="samples", min=64, max=16384,
                              restart=True),
        "filters": P.integer(40, "Mel filters.", min=1, max=256, restart=True),
        "coeffs": P.integer(13, "Coefficients out.", min=1, max=128, restart=True),
    }
    outputs = {"out": ports.vector("The coefficients.")}

    @classmethod
    def check(cls, params, wired, ctx):
        problems = super().check(params, wired, ctx)
        if params["coeffs"] > params["filters"]:
            problems.append(("coeffs", "coeffs cannot exceed filters"))
        return problems

    def setup(self) -> None:
        p, sr = self.p, self.ctx.samplerate
        self.pv = aubio.pvoc(p.buf_size, self.ctx.hop)
        self.mf = aubio.mfcc(p.buf_size, p.filters, p.coeffs, sr)

    def process(self, tick: Tick) -> None:
        self.out["out"] = np.array(self.mf(self.pv(self.samples(tick))), dtype=np.float32)
