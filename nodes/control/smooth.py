"""control.smooth: one-pole low-pass or the One Euro filter (Casiez et al., CHI 2012).

The One Euro filter smooths jittery values (a pose tracker's points, a noisy level)
while following fast moves with little lag: its cutoff rises with the speed of change.
Both filters use the real time step, so they behave the same at any frame rate.
"""

from __future__ import annotations

import math

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

from .curves import one_pole_coeff


def _alpha(dt: float, cutoff: float) -> float:
    tau = 1.0 / (2.0 * math.pi * cutoff)
    return 1.0 / (1.0 + tau / dt) if dt > 0 else 1.0


class Smooth(Node):
    type_name = "control.smooth"
    description = "Smooth a value: one-pole low-pass or One Euro filter."
    params = {
        "filter": P.choice("one-pole", ("one-pole", "one-euro"), "Filter kind."),
        "time": P.number(0.1, "One-pole time constant.", unit="s", min=0.0),
        "min_cutoff": P.number(1.0, "One Euro: cutoff when the value is still.", unit="Hz", min=1e-4),
        "beta": P.number(0.0, "One Euro: how fast the cutoff rises with speed.", min=0.0),
        "d_cutoff": P.number(1.0, "One Euro: cutoff of the speed estimate.", unit="Hz", min=1e-4),
    }
    inputs = {"value": ports.number("The value to smooth.")}
    outputs = {"out": ports.number("The smoothed value.")}

    def configure(self) -> None:
        self.reset()

    def reset(self) -> None:
        self.y: float | None = None
        self.dx = 0.0

    def process(self, tick: Tick) -> None:
        x = self.inp["value"]
        p = self.p
        if self.y is None:
            self.y = x
        elif p.filter == "one-pole":
            self.y += (x - self.y) * one_pole_coeff(tick.dt, p.time)
        else:
            dt = tick.dt
            if dt > 0:
                dx = (x - self.y) / dt
                self.dx += _alpha(dt, p.d_cutoff) * (dx - self.dx)
                cutoff = p.min_cutoff + p.beta * abs(self.dx)
                self.y += _alpha(dt, cutoff) * (x - self.y)
        self.out["out"] = self.y

    def state(self) -> dict:
        return {"y": self.y, "dx": self.dx}

    def restore(self, state: dict) -> None:
        self.y = state.get("y")
        self.dx = state.get("dx", 0.0)
