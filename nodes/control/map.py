"""control.map: range mapping with clamp, invert, curves, quantisation, rate limit and lag.

This is seed 002's mapping file (min/max/step/FPS per visual parameter) plus the
separate rise and fall smoothing of TouchDesigner's Lag CHOP.  Per tick:

1. normalise: ``x = (value - in_lo) / (in_hi - in_lo)``; ``invert`` makes it ``1 - x``
   (the value is the ``value`` input, or element ``index`` of the ``vector`` input)
2. ``clamp`` limits ``x`` to 0..1 (non-linear curves always work on 0..1)
3. ``curve`` shapes ``x``; the result is scaled to ``out_range``
4. ``rise`` / ``fall`` smooth upward / downward moves with those time constants [s]
5. ``step`` quantises to ``out_lo + k * step`` (seed 002's resolution), with
   ``hysteresis`` so that a value at a step's edge does not flicker
6. ``fps`` holds the output between updates, at most ``fps`` per second
"""

from __future__ import annotations

import math

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

from .curves import CURVES, one_pole_coeff, quantise, shape


class Map(Node):
    type_name = "control.map"
    description = "Map a range to a range: clamp, invert, curve, step, max update rate, rise/fall lag."
    params = {
        "in_range": P.numbers([0.0, 1.0], "Input values mapped to out_range's ends.", length=2),
        "out_range": P.numbers([0.0, 1.0], "Output range [lo, hi] (hi < lo flips).", length=2),
        "clamp": P.boolean(True, "Keep the output inside out_range."),
        "invert": P.boolean(False, "Map in_range's low end to out_range's high end."),
        "curve": P.choice("linear", CURVES, "Response curve over the normalised input."),
        "amount": P.number(3.0, "How strongly exponential and logarithmic curves bend.",
                           min=0.01, max=50.0),
        "step": P.number(0.0, "Quantise to out_lo + k * step; 0 is off.", min=0.0),
        "hysteresis": P.number(0.25, "How far past a step's midpoint, in steps, the value must go "
                                     "before the step changes.", min=0.0, max=0.5),
        "fps": P.number(0.0, "Most updates per second (0.1 = once every 10 s); 0 is every frame.",
                        unit="Hz", min=0.0, max=1000.0),
        "index": P.integer(0, "Which element of the 'vector' input to map.", min=0),
        "rise": P.number(0.0, "Time constant for rising values; 0 follows at once.", unit="s", min=0.0),
        "fall": P.number(0.0, "Time constant for falling values; 0 follows at once.", unit="s", min=0.0),
    }
    inputs = {
        "value": ports.number("The value to map."),
        "vector": ports.vector("A vector whose element 'index' is mapped (e.g. one dimension of "
                               "ml.autoencoder's code), instead of 'value'."),
    }
    outputs = {"out": ports.number("The mapped value.")}

    @classmethod
    def check(cls, params, wired, ctx):
        problems = []
        lo, hi = params["in_range"]
        if lo == hi:
            problems.append(("in_range", f"in_range [{lo:g}, {hi:g}] is empty: its ends must differ"))
        if "value" in wired and "vector" in wired:
            problems.append(("", "wire 'value' or 'vector', not both"))
        return problems

    def _input(self) -> float:
        if "vector" in self.wired:
            v = self.inp["vector"]
            i = self.p.index
            return float(v[i]) if i < len(v) else 0.0
        return self.inp["value"]

    def configure(self) -> None:
        self.level: float | None = None  # smoothed value
        self.held: float | None = None   # the step held (hysteresis)
        self.next_update = -math.inf
        self.out["out"] = self._target(self._input())

    def _target(self, v: float) -> float:
        p = self.p
        ilo, ihi = p.in_range
        olo, ohi = p.out_range
        x = (v - ilo) / (ihi - ilo)
        if p.invert:
            x = 1.0 - x
        if p.curve != "linear":
            x = shape(p.curve, 0.0 if x < 0.0 else 1.0 if x > 1.0 else x, p.amount)
        elif p.clamp:
            x = 0.0 if x < 0.0 else 1.0 if x > 1.0 else x
        return olo + (ohi - olo) * x

    def process(self, tick: Tick) -> None:
        p = self.p
        y = self._target(self._input())
        if p.rise > 0.0 or p.fall > 0.0:
            level = self.level
            if level is None:
                level = y
            else:
                tau = p.rise if y > level else p.fall
                level += (y - level) * one_pole_coeff(tick.dt, tau)
            self.level = level
            y = level
        if p.step > 0.0:
            olo, ohi = p.out_range
            y = self.held = quantise(y, olo, p.step, self.held, p.hysteresis)
            if p.clamp:
                lo, hi = (olo, ohi) if olo <= ohi else (ohi, olo)
                y = lo if y < lo else hi if y > hi else y
        if p.fps > 0.0:
            if tick.t + 1e-9 < self.next_update:
                return
            self.next_update = tick.t + 1.0 / p.fps
        self.out["out"] = y

    def reset(self) -> None:
        self.level = None
        self.held = None
        self.next_update = -math.inf

    def state(self) -> dict:
        return {"level": self.level, "held": self.held, "next_update": self.next_update,
                "out": self.out["out"]}

    def restore(self, state: dict) -> None:
        self.level = state.get("level")
        self.held = state.get("held")
        self.next_update = state.get("next_update", -math.inf)
        self.out["out"] = state.get("out", self.out["out"])
