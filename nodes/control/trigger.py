"""control.trigger: a number crossing a threshold becomes an event.

After firing, the trigger re-arms only once the value has moved back past the threshold
by ``hysteresis`` (so a noisy value hovering at the threshold fires once), and never
fires again within ``holdoff`` seconds.
"""

from __future__ import annotations

import math

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick


class Trigger(Node):
    type_name = "control.trigger"
    description = "Threshold crossing to event, with hysteresis and hold-off."
    params = {
        "threshold": P.number(0.5, "Level to cross."),
        "direction": P.choice("rising", ("rising", "falling", "both"), "Which crossings fire."),
        "hysteresis": P.number(0.05, "How far back past the threshold the value must go to re-arm.",
                               min=0.0),
        "holdoff": P.number(0.0, "Least time between two events.", unit="s", min=0.0),
    }
    inputs = {"value": ports.number("The value to watch.")}
    outputs = {"out": ports.event("Fires on each crossing; strength is the value.")}

    def configure(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.high: bool | None = None  # side of the threshold, None before the first value
        self.last_fire = -math.inf

    def process(self, tick: Tick) -> None:
        p = self.p
        v = self.inp["value"]
        # The band between `up` and `down` is where the state does not change: for
        # rising triggers it lies below the threshold, for falling ones above it.
        if p.direction == "falling":
            up, down = p.threshold + p.hysteresis, p.threshold
        else:
            up, down = p.threshold, p.threshold - p.hysteresis
        if self.high is None:
            self.high = v > up
            return
        fired = False
        if not self.high and v > up:
            self.high = True
            fired = p.direction != "falling"
        elif self.high and v < down:
            self.high = False
            fired = p.direction != "rising"
        if fired and tick.t - self.last_fire >= p.holdoff:
            self.last_fire = tick.t
            self.out["out"] = (ports.Event(tick.t, float(v)),)

    def state(self) -> dict:
        return {"high": self.high, "last_fire": self.last_fire}

    def restore(self, state: dict) -> None:
        self.high = state.get("high")
        self.last_fire = state.get("last_fire", -math.inf)
