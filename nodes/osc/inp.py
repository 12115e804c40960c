"""osc.in: OSC messages to graph values. Faders from TouchOSC, skeleton points from a
pose tracker, a tap tempo: each output is named in ``addresses`` with the OSC address
pattern that feeds it and its type.

.. code-block:: yaml

    faders: {type: osc.in, params: {addresses: {
        fader1: /1/fader1,                               # a number (the first argument)
        hand:   {address: "/pose/*/hand", type: vector}, # all numeric arguments
        tap:    {address: /tap, type: event}}}}          # one event per message
"""

from __future__ import annotations

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.osc.pattern import compile_pattern
from tonegraph.engine.ports import Event, Port

TYPES = {"number": ports.number, "vector": ports.vector, "event": ports.event, "text": ports.text}


def _entries(params: dict) -> dict[str, tuple[str, str]]:
    """output name -> (address pattern, type), from the ``addresses`` param."""
    out = {}
    for name, spec in params.get("addresses", {}).items():
        if isinstance(spec, str):
            out[name] = (spec, "number")
        elif isinstance(spec, dict):
            out[name] = (spec.get("address", ""), spec.get("type", "number"))
    return out


class OscIn(Node):
    type_name = "osc.in"
    description = "Values, vectors, events and text from incoming OSC messages (by address pattern)."
    params = {
        "addresses": P.mapping({}, "Output name -> address pattern, or {address, type} with type "
                                   "number, vector, event or text.",
                               keys={"pattern": r"^[A-Za-z_][A-Za-z0-9_]*$"},
                               values={"oneOf": [
                                   {"type": "string", "pattern": "^/"},
                                   {"type": "object", "additionalProperties": False, "required": ["address"],
                                    "properties": {"address": {"type": "string", "pattern": "^/"},
                                                   "type": {"enum": list(TYPES)}}}]}),
        "scale": P.number(1.0, "Multiplies numbers and vectors."),
    }

    @classmethod
    def outputs_for(cls, params) -> dict[str, Port]:
        return {name: TYPES.get(typ, ports.number)(f"from OSC {addr}")
                for name, (addr, typ) in _entries(params).items()}

    @classmethod
    def check(cls, params, wired, ctx):
        problems = []
        if not params["addresses"]:
            problems.append(("addresses", "osc.in needs at least one output in 'addresses'"))
        for name, spec in params["addresses"].items():
            if isinstance(spec, dict):
                extra = set(spec) - {"address", "type"}
                if extra:
                    problems.append(("addresses", f"unknown setting(s) {sorted(extra)} for '{name}' "
                                                  f"(settings: address, type)"))
                if not isinstance(spec.get("type", "number"), str) or spec.get("type", "number") not in TYPES:
                    problems.append(("addresses", f"type of '{name}' must be one of {', '.join(TYPES)}"))
            elif not isinstance(spec, str):
                problems.append(("addresses", f"'{name}' needs an address pattern"))
                continue
        for name, (addr, _) in _entries(params).items():
            if not isinstance(addr, str) or not addr.startswith("/"):
                problems.append(("addresses", f"address of '{name}' must start with '/', got {addr!r}"))
                continue
            try:
                compile_pattern(addr)
            except ValueError as exc:
                problems.append(("addresses", str(exc)))
        return problems

    def configure(self) -> None:
        self.routes = [(compile_pattern(addr), name, typ)
                       for name, (addr, typ) in _entries(vars(self.p)).items()]
        self.inbox: list[tuple[str, str, list]] = []
        self.received = 0

    def receive_osc(self, address: str, args: list) -> bool:
        """Called by the engine (its own thread) for every incoming message."""
        hit = False
        for regex, name, typ in self.routes:
            if regex.match(address):
                self.inbox.append((name, typ, args))
                hit = True
        return hit

    def process(self, tick: Tick) -> None:
        inbox, self.inbox = self.inbox, []
        scale = self.p.scale
        events: dict[str, list] = {}
        for name, typ, args in inbox:
            self.received += 1
            nums = [float(a) for a in args if isinstance(a, (int, float))]
            if typ == "event":
                events.setdefault(name, []).append(Event(tick.t, nums[0] if nums else 1.0))
            elif typ == "number" and nums:
                self.out[name] = nums[0] * scale
            elif typ == "vector" and nums:
                self.out[name] = np.array(nums, dtype=np.float32) * np.float32(scale)
            elif typ == "text" and args:
                self.out[name] = str(args[0])
        for name, evs in events.items():
            self.out[name] = tuple(evs)
