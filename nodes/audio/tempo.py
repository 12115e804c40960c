"""audio.tempo: beats, tempo and beat phase with aubio's beat tracker.

``phase`` rises from 0 at a beat to 1 at the next, so LFOs and latent walks can lock
to the music; between detected beats it runs on at the current tempo.  Tapping
(``tap`` events) or a ``bpm`` input above zero overrides the tracker: beats then come
from an internal clock at that tempo, aligned to the last tap.
"""

from __future__ import annotations

import statistics

import aubio

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick
from tonegraph.engine.ports import Event

from .base import RECENT, Analyzer, Strength
from .dsp import rms


class Tempo(Analyzer):
    type_name = "audio.tempo"
    description = "Beat events, BPM, confidence and a 0..1 beat phase, with aubio; tap or set to override."
    default_output = "beat"
    params = {
        "method": P.choice("complex", ("specdiff", "hfc", "complex", "energy", "specflux",
                                        "kl", "mkl", "phase"),
                           "Onset function the tracker follows.", restart=True),
        "buf_size": P.integer(1024, "Analysis window.", unit="samples", min=64, max=16384,
                              restart=True),
        "threshold": P.number(0.02, "Peak-picking threshold of the tracker's onset function.",
                              min=0.0, max=10.0),
        "silence": P.number(-90.0, "Quieter than this is silence.", unit="dB", min=-120.0, max=0.0),
        "tap_hold": P.number(30.0, "How long tapped tempo overrides the tracker after the last tap.",
                             unit="s", min=0.0),
        "recent": RECENT,
    }
    inputs = {
        **Analyzer.inputs,
        "tap": ports.event("Tap tempo: two or more taps set the tempo and the beat."),
        "bpm": ports.number("Tempo override while above 0."),
    }
    outputs = {
        "beat": ports.event("A beat, at its media time; strength 0..1: the sound's level then "
                            "against the recent loudest."),
        "bpm": ports.number("Current tempo [BPM]."),
        "confidence": ports.number("The tracker's confidence, 0..1 (1 when overridden)."),
        "phase": ports.number("Position between beats, 0..1."),
    }

    def setup(self) -> None:
        p = self.p
        self.det = aubio.tempo(p.method, p.buf_size, self.ctx.hop, self.ctx.samplerate)
        self.params_changed({"threshold", "silence"})
        self.last_beat: float | None = None
        self.period = 0.5
        self.taps: list[float] = []
        self.scale = Strength(p.recent, self.ctx.hop / self.ctx.samplerate)

    def params_changed(self, changed: set[str]) -> None:
        self.det.set_threshold(self.p.threshold)
        self.det.set_silence(self.p.silence)
        if "recent" in changed:
            self.scale = Strength(self.p.recent, self.ctx.hop / self.ctx.samplerate)

    def _manual_period(self, t: float) -> float | None:
        override = self.inp["bpm"]
        if override > 0:
            return 60.0 / override
        if len(self.taps) >= 2 and t - self.taps[-1] <= self.p.tap_hold:
            gaps = [b - a for a, b in zip(self.taps, self.taps[1:])]
            return statistics.median(gaps)
        return None

    def process(self, tick: Tick) -> None:
        sr = self.ctx.samplerate
        x = self.samples(tick)
        detected = self.det(x)[0]
        level = self.scale(rms(x))
        t_end = tick.t + self.ctx.hop / sr
        for tap in self.inp["tap"]:
            if self.taps and tap.t - self.taps[-1] > 2.0:
                self.taps = []  # a pause starts a new tapping
            self.taps = (self.taps + [tap.t])[-8:]
            if len(self.taps) >= 2:
                self.last_beat = tap.t
        manual = self._manual_period(tick.t)
        out = self.out
        if manual is not None:
            self.period = manual
            if self.last_beat is None:
                self.last_beat = tick.t
            # Internal clock: emit every beat that falls inside this hop.
            beats = []
            nxt = self.last_beat + self.period
            while nxt < t_end:
                if nxt >= tick.t:
                    beats.append(Event(nxt, level))
                self.last_beat = nxt
                nxt += self.period
            if beats:
                out["beat"] = tuple(beats)
            out["confidence"] = 1.0
        else:
            if detected:
                t = self.time_of(tick, self.det.get_last())
                self.last_beat = t
                out["beat"] = (Event(t, level),)
            period = self.det.get_period_s()
            if period > 0:
                self.period = period
            out["confidence"] = float(self.det.get_confidence())
        out["bpm"] = 60.0 / self.period if self.period > 0 else 0.0
        if self.last_beat is not None and self.period > 0:
            out["phase"] = ((t_end - self.last_beat) / self.period) % 1.0
        self.fed += self.ctx.hop

    def state(self) -> dict:
        return {"last_beat": self.last_beat, "period": self.period, "taps": list(self.taps)}

    def restore(self, state: dict) -> None:
        self.last_beat = state.get("last_beat")
        self.period = state.get("period", self.period)
        self.taps = list(state.get("taps", []))
