"""Live control over OSC: the ``/tonegraph/<node>/<param>`` namespace and ``osc.in`` nodes.

Addresses may be OSC patterns (``/tonegraph/*/decay``, ``/tonegraph/{front,back}/gain``,
``/tonegraph/lfo[12]/rate``): the value goes to every node param the pattern matches.

A controller that sends ``/tonegraph/listen`` (no arguments) is told of every param
change made over OSC from then on, as ``/tonegraph/<node>/<param> value`` sent to the
port it listened from, so two surfaces (or a surface and a script) stay in step;
``/tonegraph/unlisten`` stops it.

Messages reach the control thread between two ticks (see :mod:`engine.osc.server`).  A
param value is checked exactly like the patch's own (type, range, choices, the node's
cross-param checks) and is applied where the node runs, in place; a value that needs
set-up (a model, an FFT size) goes to the reloader, which builds the node anew off the
hot path and swaps it in, as a save would.  A message with no arguments asks for the
current value, which is answered at the same address.

What OSC may not do: set an output file (``io.record``'s ``path``: only the patch and
the command line name where data is written), or point an input file (sound, image,
model, shader, map) outside the patch's folder.  A rejected message is answered to its
sender at ``/tonegraph/error`` and logged at most once per address every
``REJECT_LOG_INTERVAL`` seconds (and ``REJECT_LINES`` lines in all), its value cut
short; nothing is applied.
"""

from __future__ import annotations

import logging
from pathlib import Path

from .errors import ParamError, describe
from .osc import encode
from .osc.pattern import compile_pattern
from .osc.server import Incoming, OscServer
from .params import shown

log = logging.getLogger("tonegraph.control")

PREFIX = "/tonegraph/"
LISTEN, UNLISTEN = "/tonegraph/listen", "/tonegraph/unlisten"
REJECT_LOG_INTERVAL = 5.0   # [s] between two log lines about rejections at one address
REJECT_ADDRESSES = 256      # addresses remembered for that
REJECT_LINES = 10           # log lines about rejections per interval, all addresses together
REPLY_CHARS = 300           # longest reason sent back
PATTERN_CHARS = "*?[{"      # an address with one of these is an OSC pattern
MAX_LISTENERS = 32          # senders of /tonegraph/listen kept at once


class Control:
    def __init__(self, runtime, server: OscServer) -> None:
        self.rt = runtime
        self.server = server
        self._runner = None
        self.receivers: list = []
        #: address -> (clock time of the last log line, rejections since)
        self._rejected: dict[str, list] = {}
        self._window = (-1e9, 0)   # (start of the current interval, lines logged in it)
        self._unlogged = 0         # rejections not logged since the last line
        self.rejections = 0
        self.listeners: dict[tuple, None] = {}   # senders of /tonegraph/listen, in order

    def apply(self) -> None:
        """Route everything that arrived since the last tick (control thread only)."""
        run = self.rt.current
        if run is not self._runner:
            self._runner = run
            self.receivers = [n for n in run.nodes.values() if hasattr(n, "receive_osc")]
        for msg in self.server.drain():
            try:
                if msg.address in (LISTEN, UNLISTEN):
                    self._listen(msg)
                    continue
                if msg.address.startswith(PREFIX):
                    parts = msg.address[len(PREFIX):].split("/")
                    if len(parts) == 2 and all(parts):
                        if any(c in msg.address for c in PATTERN_CHARS):
                            self._matching(msg, run, parts[0], parts[1])
                        else:
                            self._param(msg, run, parts[0], parts[1])
                for node in self.receivers:
                    node.receive_osc(msg.address, msg.args)
            except Exception as exc:  # no message may stop the control thread
                self._reject(msg, f"cannot apply it: {describe(exc)}")

    def _reject(self, msg: Incoming, reason: str) -> None:
        self.rejections += 1
        self.server.reply(msg.sender, encode.message(
            "/tonegraph/error", [("s", f"{_cut(msg.address, 80)}: {reason}"[:REPLY_CHARS])]))
        now = self.rt.clock.now()
        seen = self._rejected.get(msg.address)
        if seen is None:
            if len(self._rejected) >= REJECT_ADDRESSES:
                self._rejected.clear()
            seen = self._rejected[msg.address] = [-1e9]
        start, lines = self._window
        if now - start >= REJECT_LOG_INTERVAL:
            start, lines = now, 0
        self._window = (start, lines)
        if now - seen[0] < REJECT_LOG_INTERVAL or lines >= REJECT_LINES:
            self._unlogged += 1
            return
        seen[0] = now
        self._window = (start, lines + 1)
        more = f" ({self._unlogged} more rejected since the last report)" if self._unlogged else ""
        self._unlogged = 0
        log.warning("OSC %s from %s:%s rejected: %s%s", _cut(msg.address, 80),
                    msg.sender[0], msg.sender[1], reason[:REPLY_CHARS], more)

    def _listen(self, msg: Incoming) -> None:
        if msg.address == UNLISTEN:
            self.listeners.pop(msg.sender, None)
            return
        if msg.sender not in self.listeners and len(self.listeners) >= MAX_LISTENERS:
            self._reject(msg, f"{MAX_LISTENERS} listeners already; send /tonegraph/unlisten from one")
            return
        self.listeners[msg.sender] = None

    def _echo(self, msg: Incoming, node_id: str, name: str, value) -> None:
        """Tell every listener but the sender that a param changed."""
        if not self.listeners:
            return
        packet = encode.message(f"{PREFIX}{node_id}/{name}", _args_of(value))
        for who in self.listeners:
            if who != msg.sender:
                self.server.reply(who, packet)

    def _matching(self, msg: Incoming, run, node_pattern: str, param_pattern: str) -> None:
        """An OSC address pattern (``/tonegraph/*/decay``, ``/tonegraph/{a,b}/gain``):
        every node param it matches, each as if addressed on its own."""
        try:
            nodes, params = compile_pattern(node_pattern), compile_pattern(param_pattern)
        except ValueError as exc:
            self._reject(msg, str(exc))
            return
        hits = [(nid, name) for nid, node in run.nodes.items() if nodes.match(nid)
                for name in node.params if params.match(name)]
        if not hits:
            self._reject(msg, "the pattern matches no node param in the running patch")
            return
        for nid, name in hits:
            self._param(msg, run, nid, name)

    def _param(self, msg: Incoming, run, node_id: str, name: str) -> None:
        node = run.nodes.get(node_id)
        if node is None:
            self._reject(msg, f"no node {shown(node_id, 40)} in the running patch")
            return
        decl = node.params.get(name)
        if decl is None:
            self._reject(msg, f"{node.type_name} has no param {shown(name, 40)}")
            return
        if not msg.args:
            self.server.reply(msg.sender, encode.message(f"{PREFIX}{node_id}/{name}",
                                                         _args_of(getattr(node.p, name))))
            return
        if decl.kind == "outpath":
            self._reject(msg, f"'{name}' is an output file: only the patch or the command line "
                              f"set where data is written, never OSC")
            return
        value = msg.args[0] if len(msg.args) == 1 else list(msg.args)
        try:
            coerced = node.validate_params({name: value})
        except ParamError as exc:
            self._reject(msg, str(exc))
            return
        new = coerced[name]
        if decl.kind == "path" and new is not None and new != getattr(node.p, name):
            folder = node.ctx.patch_dir.resolve()
            if not Path(node.ctx.resolve_input(new)).resolve().is_relative_to(folder):
                self._reject(msg, f"{shown(new)} is outside the patch's folder; OSC may only "
                                  f"name files inside it")
                return
        if new == getattr(node.p, name):
            return
        outputs = type(node).outputs_for(vars(node.p) | coerced)
        if decl.restart or list(outputs) != list(node.out):
            self.rt.reloader.request_params(node_id, coerced)
        else:
            self.rt.in_domain(node_id, lambda: node.apply_params(coerced))
        self._echo(msg, node_id, name, new)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


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
