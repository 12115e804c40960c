"""fx.strobe: flash for a fixed time after each event, then go dark.

An example of a node type shipped as its own package: `pip install .` here, and
`tonegraph nodes` lists fx.strobe through the `tonegraph.nodes` entry point.
"""

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick


class Strobe(Node):
    type_name = "fx.strobe"
    description = "Full on for 'flash' seconds after each event, then off."
    params = {
        "flash": P.number(0.03, "How long each flash lasts.", unit="s", min=0.001, max=1.0),
        "level": P.number(1.0, "Output while flashing.", min=0.0),
    }
    inputs = {"trigger": ports.event("Events that fire a flash.")}
    outputs = {"out": ports.number("level while flashing, else 0.")}

    def configure(self) -> None:
        self.until = -1.0

    def process(self, tick: Tick) -> None:
        for ev in self.inp["trigger"]:
            self.until = ev.t + self.p.flash
        self.out["out"] = self.p.level if tick.t < self.until else 0.0

    def state(self) -> dict:
        return {"until": self.until}

    def restore(self, state: dict) -> None:
        self.until = state.get("until", -1.0)
