"""control.envelope: attack-decay-sustain-release, triggered by events.

The envelope is computed from the media time of each trigger event, not from the tick
that first sees it, so a pulse looks the same at any rate and lines up with the onset
that caused it.  A peak reached between two ticks is what the tick after it outputs:
an 80 ms strobe sampled at 60 Hz still reaches the desk at full level, whatever the
phase of the sampling.  Without a ``gate`` input, the sustain stage lasts ``hold``
seconds; with one, it lasts while the gate is above 0.5.
"""

from __future__ import annotations

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

IDLE, ATTACK, DECAY, SUSTAIN, RELEASE = range(5)
STAGE_NAMES = ("idle", "attack", "decay", "sustain", "release")


class Envelope(Node):
    type_name = "control.envelope"
    description = "ADSR envelope triggered by events (onsets, beats), with a retrigger rule."
    params = {
        "attack": P.number(0.01, "Rise time to the peak.", unit="s", min=0.0),
        "decay": P.number(0.1, "Fall time from the peak to the sustain level.", unit="s", min=0.0),
        "sustain": P.number(0.0, "Sustain level as a fraction of the peak.", min=0.0, max=1.0),
        "hold": P.number(0.0, "Sustain time when no gate is wired.", unit="s", min=0.0),
        "release": P.number(0.2, "Fall time to zero.", unit="s", min=0.0),
        "retrigger": P.choice("restart", ("restart", "legato", "ignore"),
                              "On a trigger while active: restart from 0, rise from the current "
                              "level (legato), or ignore it."),
        "velocity": P.boolean(False, "Scale the peak by the trigger event's strength."),
    }
    inputs = {
        "trigger": ports.event("Events that start the envelope."),
        "gate": ports.number("Optional: sustain while above 0.5, release when it falls."),
    }
    outputs = {
        "out": ports.number("Envelope level, 0..peak; the peak itself for the tick after a peak "
                            "that fell between two ticks."),
        "done": ports.event("Fires when the release reaches zero."),
    }

    def configure(self) -> None:
        self.gated = "gate" in self.wired
        self.reset()

    def reset(self) -> None:
        self.stage = IDLE
        self.t0 = 0.0       # media time the current stage started
        self.level0 = 0.0   # level when the current stage started
        self.peak = 1.0
        self.level = 0.0
        self.peaked = False  # the attack ended since the last tick

    def _trigger(self, t: float, strength: float) -> None:
        if self.stage != IDLE and self.p.retrigger == "ignore":
            return
        start = self._level_at(t) if self.stage != IDLE else 0.0
        self.peak = strength if self.p.velocity else 1.0
        self.stage, self.t0 = ATTACK, t
        self.level0 = start if self.p.retrigger == "legato" else 0.0

    def _level_at(self, t: float) -> float:
        saved = (self.stage, self.t0, self.level0, self.level, self.peaked)
        self._advance(t, gate=True, fire=False)
        level = self.level
        self.stage, self.t0, self.level0, self.level, self.peaked = saved
        return level

    def _advance(self, t: float, gate: bool, fire: bool = True) -> None:
        """Move through stages up to time ``t`` and set ``self.level``."""
        p = self.p
        while True:
            # A trigger a hair after the tick that sees it (sound and clock meet within
            # a hop) counts as just now.
            e = max(0.0, t - self.t0)
            if self.stage == ATTACK:
                if e < p.attack:
                    self.level = self.level0 + (self.peak - self.level0) * (e / p.attack)
                    return
                self.stage, self.t0, self.level0 = DECAY, self.t0 + p.attack, self.peak
                self.peaked = self.peaked or fire
            elif self.stage == DECAY:
                floor = self.peak * p.sustain
                if e < p.decay:
                    self.level = self.peak + (floor - self.peak) * (e / p.decay)
                    return
                self.stage, self.t0, self.level0 = SUSTAIN, self.t0 + p.decay, floor
            elif self.stage == SUSTAIN:
                self.level = self.level0
                if self.gated:
                    if gate:
                        return
                    self.stage, self.t0 = RELEASE, t
                elif e < p.hold:
                    return
                else:
                    self.stage, self.t0 = RELEASE, self.t0 + p.hold
            elif self.stage == RELEASE:
                if e < p.release and self.level0 > 0.0:
                    self.level = self.level0 * (1.0 - e / p.release)
                    return
                self.stage, self.level = IDLE, 0.0
                if fire:
                    self.out["done"] = (*self.out["done"], ports.Event(self.t0 + p.release))
                return
            else:
                self.level = 0.0
                return

    def process(self, tick: Tick) -> None:
        gate = (not self.gated) or self.inp["gate"] > 0.5
        self.peaked = False
        peak = 0.0
        for ev in self.inp["trigger"]:
            self._advance(ev.t, gate)
            if self.peaked:      # an earlier trigger of this tick peaked already
                peak, self.peaked = max(peak, self.peak), False
            self._trigger(ev.t, ev.value)
        self._advance(tick.t, gate)
        if self.peaked:
            peak = max(peak, self.peak)
        self.out["out"] = max(self.level, peak)

    def state(self) -> dict:
        return {"stage": self.stage, "t0": self.t0, "level0": self.level0,
                "peak": self.peak, "level": self.level}

    def restore(self, state: dict) -> None:
        for k in ("stage", "t0", "level0", "peak", "level"):
            if k in state:
                setattr(self, k, state[k])
