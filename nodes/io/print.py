"""io.print: live values on the console, rate-limited by media time."""

from __future__ import annotations

import sys

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import PortType

from .values import short


class Print(Node):
    type_name = "io.print"
    description = "Print named inputs to the console, at most every 'interval' seconds."
    params = {
        "interval": P.number(0.25, "Least time between two lines.", unit="s", min=0.0),
        "label": P.text("", "Text at the start of each line (default: the node id)."),
    }
    variadic = ports.any_port("Any named inputs; events show the count since the last line.")

    def configure(self) -> None:
        self.names = list(self.wired)
        self.events = {n: 0 for n, t in self.wired.items() if t == PortType.EVENT}
        self.next_t = 0.0
        self.stream = sys.stdout

    def process(self, tick: Tick) -> None:
        for name in self.events:
            self.events[name] += len(self.inp[name])
        if tick.t + 1e-9 < self.next_t:
            return
        self.next_t = tick.t + self.p.interval
        parts = []
        for name in self.names:
            if name in self.events:
                n = self.events[name]
                parts.append(f"{name}={'*' * min(n, 8) if n else '-'}")
                self.events[name] = 0
            else:
                parts.append(f"{name}={short(self.inp[name])}")
        label = self.p.label or self.id
        self.stream.write(f"[{tick.t:8.3f}s] {label}: {'  '.join(parts)}\n")
        self.stream.flush()
