"""control.lfo: a low-frequency oscillator, free-running or locked to a phase input."""

from __future__ import annotations

import math
import zlib

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick

SHAPES = ("sine", "triangle", "saw", "square", "random-smooth")


def wave(shape: str, pos: float, duty: float = 0.5) -> float:
    """Value in -1..1 of a periodic shape at cycle position ``pos`` in 0..1."""
    if shape == "sine":
        return math.sin(2.0 * math.pi * pos)
    if shape == "triangle":
        return 1.0 - 4.0 * abs(pos - 0.5)
    if shape == "saw":
        return 2.0 * pos - 1.0
    if shape == "square":
        return 1.0 if pos < duty else -1.0
    raise ValueError(shape)


def _hash_unit(seed: int, index: int) -> float:
    """A repeatable pseudo-random number in -1..1 for cycle ``index``."""
    h = zlib.crc32(index.to_bytes(8, "little", signed=True), seed & 0xFFFFFFFF)
    return h / 0x7FFFFFFF - 1.0


class Lfo(Node):
    type_name = "control.lfo"
    description = "Low-frequency oscillator: sine, triangle, saw, square or smooth random."
    params = {
        "shape": P.choice("sine", SHAPES, "Wave shape; every shape spans -1..1 before amplitude."),
        "frequency": P.number(1.0, "Cycles per second (free-running) or per sync cycle.",
                              unit="Hz", min=0.0, max=1000.0),
        "phase": P.number(0.0, "Offset added to the cycle position.", unit="cycles", min=0.0, max=1.0),
        "amplitude": P.number(1.0, "Scale of the wave."),
        "offset": P.number(0.0, "Added after scaling: out = offset + amplitude * wave."),
        "duty": P.number(0.5, "Fraction of the cycle a square wave is high.", min=0.0, max=1.0),
        "seed": P.integer(-1, "Seed of random-smooth; -1 derives it from the node id.",
                          min=-1, max=2**31 - 1),
    }
    inputs = {
        "sync": ports.number("A phase 0..1 (e.g. audio.tempo's beat phase); when wired the LFO "
                             "runs 'frequency' cycles per sync cycle instead of free-running."),
        "reset": ports.event("Restart the cycle at 0."),
    }
    outputs = {"out": ports.number("offset + amplitude * wave")}

    def configure(self) -> None:
        # Free-running position is pos_base + frequency * (t - t_base), computed from
        # media time rather than summed frame by frame, so it never drifts; the base
        # moves only when the frequency changes or a reset arrives.
        self.pos_base = 0.0
        self.t_base = 0.0
        self.t = 0.0
        self.pos = 0.0
        self.sync_wired = "sync" in self.wired
        self.reset_wired = "reset" in self.wired
        self._seed = self.p.seed if self.p.seed >= 0 else zlib.crc32(self.id.encode())
        self.out["out"] = self._value(self.p.phase)

    def params_changed(self, changed: set[str]) -> None:
        if "frequency" in changed:
            self.pos_base, self.t_base = self.pos, self.t
        if "seed" in changed:
            self._seed = self.p.seed if self.p.seed >= 0 else zlib.crc32(self.id.encode())

    def process(self, tick: Tick) -> None:
        p = self.p
        self.t = tick.t
        if self.reset_wired and self.inp["reset"]:
            self.pos_base, self.t_base = 0.0, self.inp["reset"][-1].t
        if self.sync_wired:
            self.pos = self.inp["sync"] * p.frequency
        else:
            self.pos = self.pos_base + p.frequency * (tick.t - self.t_base)
        self.out["out"] = self._value(self.pos + p.phase)

    def _value(self, pos: float) -> float:
        p = self.p
        if p.shape == "random-smooth":
            i = math.floor(pos)
            f = pos - i
            a, b = _hash_unit(self._seed, i), _hash_unit(self._seed, i + 1)
            f = f * f * (3.0 - 2.0 * f)
            w = a + (b - a) * f
        else:
            w = wave(p.shape, pos - math.floor(pos), p.duty)
        return p.offset + p.amplitude * w

    def reset(self) -> None:
        self.pos_base, self.t_base, self.pos = 0.0, self.t, 0.0

    def state(self) -> dict:
        return {"pos": self.pos, "t": self.t}

    def restore(self, state: dict) -> None:
        self.pos = self.pos_base = float(state.get("pos", 0.0))
        self.t = self.t_base = float(state.get("t", 0.0))
