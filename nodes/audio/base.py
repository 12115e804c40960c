"""The common shape of audio-domain analysis nodes."""

from __future__ import annotations

from typing import ClassVar

import numpy as np

from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

from .dsp import mono


class Analyzer(Node):
    """An audio-domain node that reads one ``audio`` input, mixed to mono, per hop.

    aubio objects count samples from their creation; :meth:`time_of` turns such a
    count into media time relative to the current hop, so events keep their place when
    media time re-anchors (after a stall, see engine/audio.py).
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
        #: Samples fed to the analysis before the current hop.
        self.fed = 0
        self.setup()

    def setup(self) -> None:
        """Create the analysis objects (aubio, buffers) from ``self.p`` and ``self.ctx``."""

    def samples(self, tick: Tick) -> np.ndarray:
        return mono(self.inp["audio"], self.ctx.hop)

    def time_of(self, tick: Tick, sample: float) -> float:
        """Media time of ``sample`` (counted from the analysis' start), given that the
        current hop (at ``tick.t``) begins at sample ``self.fed``."""
        return tick.t + (sample - self.fed) / self.ctx.samplerate

