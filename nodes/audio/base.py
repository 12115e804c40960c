"""The common shape of audio-domain analysis nodes."""

from __future__ import annotations

from collections import deque
from typing import ClassVar

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

from .dsp import mono


#: How far back event strengths look for the loudest they are measured against.
RECENT = P.number(8.0, "Strengths are 0..1 against the loudest of the last this many seconds.",
                  unit="s", min=0.1, max=600.0)


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


class Strength:
    """A detector's values as 0..1 against its own recent history: the value over the
    largest of the last ``seconds``, so after a quiet passage begins its own hits read
    near 1 again once the loud ones are that far behind.  The window moves in eighths
    (the largest of each eighth is kept), so taking a hop costs two comparisons: this
    runs every hop of every analyser."""

    PARTS = 8

    def __init__(self, seconds: float, hop_s: float) -> None:
        self.part = max(1, round(seconds / hop_s / self.PARTS))   # hops per eighth
        self.parts: deque[float] = deque([0.0] * (self.PARTS - 1), maxlen=self.PARTS - 1)
        self.before = 0.0          # the largest of the finished eighths
        self.current = 0.0         # the largest of the eighth being filled
        self.count = 0

    @property
    def peak(self) -> float:
        return self.before if self.before > self.current else self.current

    def __call__(self, value: float) -> float:
        """Take this hop's value; return it as 0..1."""
        if value > self.current:
            self.current = value
        self.count += 1
        if self.count == self.part:
            self.parts.append(self.current)
            self.before = max(self.parts)
            self.current, self.count = 0.0, 0
        return self.of(value)

    def of(self, value: float) -> float:
        """A value of the last few hops as 0..1 against the largest of the window."""
        peak = self.peak
        if peak <= 1e-12 or value <= 0.0:
            return 0.0
        return 1.0 if value >= peak else value / peak


#: aubio's detectors analyse sound at this rate, in hops of this many samples, whatever
#: the patch's rate: the rate and hop their thresholds were chosen at.
ANALYSIS_RATE, ANALYSIS_HOP = 44100, 512


class AnalysisRate:
    """Sound at a patch's rate cut into ANALYSIS_HOP hops at ANALYSIS_RATE, for an aubio
    detector: an 8 kHz recording or a 48 kHz interface is heard as at 44.1 kHz.

    soxr, streaming, at its 'QQ' (cubic) quality: its output comes in steady chunks as
    input arrives, where its better qualities hold a hop or more back (a hop of delay
    live), and 'LQ''s passband cut the 3-4 kHz left of an 8 kHz recording's hi-hats.
    soxr keeps the output aligned with the input, so analysis sample ``k`` is patch
    sample ``k * rate / ANALYSIS_RATE``."""

    def __init__(self, rate: int) -> None:
        import soxr

        self.rate = rate
        self.resampler = soxr.ResampleStream(rate, ANALYSIS_RATE, 1, dtype="float32", quality="QQ")
        self.waiting = np.zeros(0, dtype=np.float32)

    def hops(self, x: np.ndarray) -> list[np.ndarray]:
        """The analysis hops that ``x`` (the next sound at the patch's rate) completes."""
        sound = np.concatenate([self.waiting, self.resampler.resample_chunk(x)])
        n = len(sound) // ANALYSIS_HOP
        self.waiting = sound[n * ANALYSIS_HOP:]
        return [sound[i * ANALYSIS_HOP:(i + 1) * ANALYSIS_HOP] for i in range(n)]

    def patch_samples(self, analysis_samples: float) -> float:
        return analysis_samples * self.rate / ANALYSIS_RATE
