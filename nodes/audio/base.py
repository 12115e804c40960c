"""The common shape of audio-domain analysis nodes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from engine import ports
from engine.node import Node, Tick

from .dsp import mono


class Analyzer(Node):
    """An audio-domain node that reads one ``audio`` input, mixed to mono, per hop.

    ``self.t_start`` is the media time at which the node was configured: aubio objects
    count samples from their creation, so event times are ``t_start + samples / rate``.
    """

    domain: ClassVar[str] = "audio"
    inputs = {"audio": ports.audio("The sound to analyse (mixed to mono).", required=True)}
    #: The param holding the analysis window [samples]; it must cover the patch's hop.
    window: ClassVar[str | None] = "buf_size"

    @classmethod
    def check(cls, params, wired, ctx):
        key = cls.window
        if key and params[key] < ctx.hop:
            return [(key, f"{key} {params[key]} is smaller than the patch's hop {ctx.hop}: "
                          f"the window must cover at least one hop (raise {key} or lower patch hop)")]
        return []

    def configure(self) -> None:
        self.t_start: float | None = None
        self.setup()

    def setup(self) -> None:
        """Create the analysis objects (aubio, buffers) from ``self.p`` and ``self.ctx``."""

    def samples(self, tick: Tick) -> np.ndarray:
        if self.t_start is None:
            self.t_start = tick.t
        return mono(self.inp["audio"], self.ctx.hop)

