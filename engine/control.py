"""Live control over OSC: the ``/tonegraph/<node>/<param>`` namespace and ``osc.in`` nodes.

Messages reach the engine thread between two ticks (see :mod:`engine.osc.server`).  A
param value is checked exactly like the patch's own (type, range, choices, the node's
cross-param checks); a rejected value is logged, answered to its sender at
``/tonegraph/error`` and never applied.  A message with no arguments asks for the
current value, which is answered at the same address.
"""

from __future__ import annotations

import logging

from .errors import ParamError
from .executor import Executor
from .osc import encode
from .osc.server import Incoming, OscServer

log = logging.getLogger("tonegraph.control")

PREFIX = "/tonegraph/"


class Control:
    def __init__(self, executor: Executor, server: OscServer) -> None:
        self.executor = executor
        self.server = server
        self.receivers = [n for n in executor.nodes.values() if hasattr(n, "receive_osc")]

    def use(self, executor: Executor) -> None:
        """After a hot reload: route to the new graph's nodes."""
        self.executor = executor
        self.receivers = [n for n in executor.nodes.values() if hasattr(n, "receive_osc")]

    def apply(self) -> None:
        """Route everything that arrived since the last tick (engine thread only)."""
        for msg in self.server.drain():
            if msg.address.startswith(PREFIX):
                parts = msg.address[len(PREFIX):].split("/")
                if len(parts) == 2 and all(parts):
                    self._param(msg, parts[0], parts[1])
            for node in self.receivers:
                node.receive_osc(msg.address, msg.args)

    def _reject(self, msg: Incoming, reason: str) -> None:
        host, port = msg.sender[0], msg.sender[1]
        log.warning("OSC %s from %s:%s rejected: %s", msg.address, host, port, reason)
        self.server.reply(msg.sender, encode.message("/tonegraph/error",
                                                     [("s", f"{msg.address}: {reason}")]))

    def _param(self, msg: Incoming, node_id: str, name: str) -> None:
        node = self.executor.nodes.get(node_id)
        if node is None:
            self._reject(msg, f"no node '{node_id}' in the running patch")
            return
        if not msg.args:
            value = getattr(node.p, name, None)
            if name not in node.params:
                self._reject(msg, f"{node.type_name} has no param '{name}'")
            else:
                self.server.reply(msg.sender, encode.message(msg.address, _args_of(value)))
            return
        value = msg.args[0] if len(msg.args) == 1 else list(msg.args)
        try:
            coerced = node.validate_params({name: value})
        except ParamError as exc:
            self._reject(msg, str(exc))
            return

        def apply() -> None:
            if node.apply_params(coerced):
                node.restart()

        self.executor.in_domain(node, apply)


def _args_of(value) -> list[encode.Arg]:
    if isinstance(value, bool):
        return [("T" if value else "F", value)]
    if isinstance(value, int):
        return [("i", value)]
    if isinstance(value, float):
        return [("f", value)]
    if isinstance(value, list):
        return [a for v in value for a in _args_of(v)]
    return [("s", str(value))]
