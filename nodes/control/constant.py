"""control.constant: a fixed number, settable live."""

from __future__ import annotations

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick


class Constant(Node):
    type_name = "control.constant"
    description = "A number set in the patch (or live over OSC)."
    params = {"value": P.number(0.0, "The output value.")}
    outputs = {"out": ports.number("The value.")}

    def configure(self) -> None:
        self.out["out"] = self.p.value

    def params_changed(self, changed: set[str]) -> None:
        self.out["out"] = self.p.value

    def process(self, tick: Tick) -> None:
        self.out["out"] = self.p.value
