"""audio.pitch: fundamental frequency with aubio (yin, yinfft, mcomb, schmitt)."""

from __future__ import annotations

import aubio

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from .base import Analyzer
from .dsp import midi_of


class Pitch(Analyzer):
    type_name = "audio.pitch"
    description = "Pitch in Hz and as a MIDI note, with confidence, with aubio."
    default_output = "hz"
    params = {
        "method": P.choice("yinfft", ("yin", "yinfft", "yinfast", "mcomb", "schmitt", "fcomb"),
                           "Pitch detection method.", restart=True),
        "buf_size": P.integer(2048, "Analysis window.", unit="samples", min=64, max=16384,
                              restart=True),
        "tolerance": P.number(0.85, "Detection tolerance (yin methods).", min=0.0, max=1.0),
        "silence": P.number(-50.0, "Quieter than this reports 0 Hz.", unit="dB", min=-120.0, max=0.0),
        "min_confidence": P.number(0.0, "Below this confidence the last pitch is held.",
                                   min=0.0, max=1.0),
    }
    outputs = {
        "hz": ports.number("Fundamental frequency [Hz], 0 when none."),
        "midi": ports.number("The same as a MIDI note number (69 = A4), 0 when none."),
        "confidence": ports.number("How sure the detector is, 0..1."),
    }

    def setup(self) -> None:
        p = self.p
        self.det = aubio.pitch(p.method, p.buf_size, self.ctx.hop, self.ctx.samplerate)
        self.det.set_unit("Hz")
        self.params_changed({"tolerance", "silence"})

    def params_changed(self, changed: set[str]) -> None:
        self.det.set_tolerance(self.p.tolerance)
        self.det.set_silence(self.p.silence)

    def process(self, tick: Tick) -> None:
        hz = float(self.det(self.samples(tick))[0])
        conf = float(self.det.get_confidence())
        self.out["confidence"] = conf
        if conf >= self.p.min_confidence:
            self.out["hz"] = hz
            self.out["midi"] = midi_of(hz)
