"""audio.onset: note and hit onsets with aubio's onset detector, as events.

Each ``onset`` event carries the media time of the onset (aubio's own estimate, which
accounts for its detection delay) and its strength in 0..1: the detection function's
value against the largest of the last few seconds (``recent``), so a desk or a MIDI
velocity can use it as it is on any material.  ``strength`` gives the same scaled
value every hop.
The detector is the same aubio object a whole-file analysis uses, fed the same hops,
so streaming and whole-file results are identical.
"""

from __future__ import annotations

import aubio

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick
from tonegraph.engine.ports import Event

from .base import RECENT, Analyzer, Strength

METHODS = ("hfc", "energy", "complex", "phase", "specdiff", "kl", "mkl", "specflux")


class Onset(Analyzer):
    type_name = "audio.onset"
    description = "Onsets (note starts, drum hits) as events, with aubio."
    default_output = "onset"
    params = {
        "method": P.choice("hfc", METHODS, "Onset detection function.", restart=True),
        "buf_size": P.integer(1024, "Analysis window.", unit="samples", min=64, max=16384,
                              restart=True),
        "threshold": P.number(0.15, "Peak-picking threshold: higher finds fewer onsets.",
                              min=0.0, max=10.0),
        "silence": P.number(-70.0, "Quieter than this is silence: no onsets.", unit="dB",
                            min=-120.0, max=0.0),
        "minioi": P.number(0.02, "Least time between two onsets.", unit="s", min=0.0, max=5.0),
        "whitening": P.boolean(False, "Adaptive spectral whitening (helps soft onsets)."),
        "compression": P.number(0.0, "Logarithmic magnitude compression; 0 is off.", min=0.0),
        "recent": RECENT,
    }
    outputs = {
        "onset": ports.event("An onset, at its media time; strength 0..1 against the recent loudest."),
        "strength": ports.number("The onset detection function every hop, 0..1 against the recent loudest."),
    }

    def setup(self) -> None:
        p = self.p
        self.det = make_onset(p.method, p.buf_size, self.ctx.hop, self.ctx.samplerate)
        self.params_changed({"threshold", "silence", "minioi", "whitening", "compression"})

        self._descriptor = self.det.get_descriptor
        self.scale = Strength(self.p.recent, self.ctx.hop / self.ctx.samplerate)
        self.last = [0.0, 0.0, 0.0]       # the detection function's last three values
        self._rate = float(self.ctx.samplerate)
        self._hop = self.ctx.hop

    def params_changed(self, changed: set[str]) -> None:
        apply_onset_params(self.det, self.p)
        if "recent" in changed and hasattr(self, "scale"):
            self.scale = Strength(self.p.recent, self.ctx.hop / self.ctx.samplerate)

    def process(self, tick: Tick) -> None:
        block = self.inp["audio"]
        if block is not None and block.mono is not None and len(block.mono) == self._hop:
            x = block.mono  # the common case, inlined: this runs every hop
        else:
            x = self.samples(tick)
        fired = self.det(x)[0]
        value = self._descriptor()
        self.out["strength"] = self.scale(value)
        last = self.last
        last[0], last[1], last[2] = last[1], last[2], value
        if fired:
            # aubio fires a hop or two after the detection function's peak: the event's
            # strength is that peak.
            t = tick.t + (self.det.get_last() - self.fed) / self._rate
            self.out["onset"] = (Event(t, self.scale.of(max(last))),)
        self.fed += self._hop


def make_onset(method: str, buf_size: int, hop: int, samplerate: int) -> "aubio.onset":
    return aubio.onset(method, buf_size, hop, samplerate)


def apply_onset_params(det, p) -> None:
    """Set the tunable parameters of an aubio onset object from a params namespace."""
    det.set_threshold(p.threshold)
    det.set_silence(p.silence)
    det.set_minioi_s(p.minioi)
    det.set_awhitening(1 if p.whitening else 0)
    det.set_compression(p.compression)
