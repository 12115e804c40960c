"""Live control over OSC: the ``/tonegraph/<node>/<param>`` namespace and ``osc.in`` nodes.

Addresses may be OSC patterns (``/tonegraph/*/decay``, ``/tonegraph/{front,back}/gain``,
``/tonegraph/lfo[12]/rate``): the value goes to every node param the pattern matches,
and the message is answered once at most (refusals summed up in one reply). Patterns are
matched in time linear in the address (:mod:`engine.osc.pattern`), and the control
thread spends at most ``APPLY_BUDGET`` seconds a tick on messages: the rest wait for the
next tick, so no flood or crafted datagram can hold a show.

A controller that sends ``/tonegraph/listen`` (no arguments) is told of every param
change made over OSC from then on, as ``/tonegraph/<node>/<param> value`` sent to the
port it listened from (one datagram per change, a bundle when a pattern changed
several), so two surfaces (or a surface and a script) stay in step;
``/tonegraph/unlisten`` stops it. At most ``MAX_LISTENERS`` listen at once, and one that
sends nothing for ``LISTEN_TTL`` seconds is forgotten (sending ``/tonegraph/listen``
again, any time, keeps it; a trusted listener is kept by anything it sends). Trusted and
untrusted listeners have places of their own, an untrusted host ``PER_HOST`` at most.

Trusted senders (``--osc-allow``: loopback by default) are answered in full. Any other
sender may set params (by a pattern only those applied in place, and nodes rebuilt at
most at ``REBUILDS``' rate: no datagram or stream of them keeps a show rebuilding), but
what is sent back to it never outweighs what it sent: each answer must fit in the bytes
of its own datagram (an error reason is cut to fit, or not sent), a query by pattern is
refused, and ``/tonegraph/listen`` registers it only once it has echoed a token: the
engine answers ``/tonegraph/listen s TOKEN`` (so the request must carry a string of 12
characters or more, any text, for the answer to fit) and the sender registers by sending
``/tonegraph/listen s TOKEN`` back within ``CHALLENGE_TTL`` seconds. A forged sender
address therefore neither amplifies traffic towards a victim nor enrols it as a
listener.

Messages reach the control thread between two ticks (see :mod:`engine.osc.server`). A
param value is checked exactly like the patch's own (type, range, choices, the node's
cross-param checks) and is applied where the node runs, in place; a value that needs
set-up (a model, an FFT size) goes to the reloader, which builds the node anew off the
hot path and swaps it in, as a save would (one request per node, however many of its
params a pattern set). A message with no arguments asks for the current value, which is
answered at the same address.

What OSC may not do: set an output file (``io.record``'s ``path``) or anything that says
where output goes (a host, a port, a universe, a file format: the params marked
``route``; only the patch and the command line set those), or point an input file
(sound, image, model, shader, map) outside the patch's folder. A rejected message is
answered to its sender at ``/tonegraph/error`` (within the rule above) and logged at
most once per address every ``REJECT_LOG_INTERVAL`` seconds (and ``REJECT_LINES`` lines
in all), its value cut short; nothing is applied.
"""

from __future__ import annotations

import ipaddress
import logging
import math
import secrets
import time
from collections import deque
from pathlib import Path

from .errors import ParamError, describe
from .osc import encode
from .osc.pattern import MAX_LENGTH, compile_pattern
from .osc.server import QUEUE, Incoming, OscServer
from .params import shown

log = logging.getLogger("tonegraph.control")

PREFIX = "/tonegraph/"
LISTEN, UNLISTEN = "/tonegraph/listen", "/tonegraph/unlisten"
REJECT_LOG_INTERVAL = 5.0   # [s] between two log lines about rejections at one address
REJECT_ADDRESSES = 256      # addresses remembered for that
REJECT_LINES = 10           # log lines about rejections per interval, all addresses together
REPLY_CHARS = 300           # longest reason sent back
PATTERN_CHARS = "*?[{"      # an address with one of these is an OSC pattern
MAX_LISTENERS = 32          # senders of /tonegraph/listen kept at once, trusted and not each
PER_HOST = 4                # listeners and waiting tokens per untrusted host
REBUILDS = (4, 1.0)         # untrusted senders' node rebuilds: a burst of 4, then 1 a second
LISTEN_TTL = 600.0          # [s] a listener that sends nothing for this long is forgotten
CHALLENGE_TTL = 10.0        # [s] an untrusted sender has to echo its listen token
MAX_CHALLENGES = 256        # listen tokens waiting for their echo
APPLY_BUDGET = 0.004        # [s] of the control thread's time for messages per tick
BUNDLE_BYTES = 8192         # [bytes] largest bundle of answers to a trusted sender
TRUSTED = ("127.0.0.0/8", "::1")   # --osc-allow's default: this machine


def trusted_networks(text: str) -> tuple:
    """``--osc-allow``'s value (addresses and networks, comma-separated, or ``none``) as
    networks; raises ValueError naming the part it cannot read."""
    if text.strip().lower() == "none":
        return ()
    nets = []
    for part in (p.strip() for p in text.split(",")):
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ValueError(f"'{part}' is not an address or network (such as 192.168.1.20 "
                             f"or 192.168.1.0/24)") from None
    return tuple(nets)


class Control:
    def __init__(self, runtime, server: OscServer, allow: tuple | None = None) -> None:
        self.rt = runtime
        self.server = server
        self.allow = trusted_networks(",".join(TRUSTED)) if allow is None else allow
        self._trust: dict[str, bool] = {}
        self._runner = None
        self.receivers: list = []
        #: address -> (clock time of the last log line, rejections since)
        self._rejected: dict[str, list] = {}
        self._window = (-1e9, 0)   # (start of the current interval, lines logged in it)
        self._unlogged = 0         # rejections not logged since the last line
        self.rejections = 0
        #: senders of /tonegraph/listen, in order -> clock time they are forgotten at
        self.listeners: dict[tuple, float] = {}
        self._challenges: dict[tuple, tuple[str, float]] = {}   # sender -> (token, until)
        self._backlog: deque[Incoming] = deque()
        self.withheld = 0          # answers not sent: larger than an untrusted request
        self.deferred = 0          # ticks whose time budget left messages for later ones
        self.dropped = 0           # messages dropped from a full backlog (the oldest)
        #: Values sent to the reloader since the running patch last changed, per node: the
        #: same values again (the running node changes only at the swap) ask nothing more.
        self._asked: dict[str, dict] = {}
        self._rebuild_tokens, self._rebuild_time = float(REBUILDS[0]), -1e9
        self._reloads: dict[str, dict] = {}
        self._echoes: list[bytes] = []

    @property
    def pending(self) -> int:
        """Messages left for a later tick by the time budget."""
        return len(self._backlog)

    def trusted(self, sender: tuple) -> bool:
        host = sender[0]
        known = self._trust.get(host)
        if known is None:
            try:
                ip = ipaddress.ip_address(host.split("%")[0])
                if ip.version == 6 and ip.ipv4_mapped is not None:
                    ip = ip.ipv4_mapped
                known = any(ip in net for net in self.allow)
            except ValueError:
                known = False
            if len(self._trust) >= 4096:
                self._trust.clear()
            self._trust[host] = known
        return known

    def apply(self) -> None:
        """Route what arrived since the last tick (control thread only), for at most
        ``APPLY_BUDGET`` seconds; what is left waits for the next tick."""
        run = self.rt.current
        if run is not self._runner:
            self._runner = run
            self.receivers = [n for n in run.nodes.values() if hasattr(n, "receive_osc")]
            self._asked = {}
        backlog = self._backlog
        backlog.extend(self.server.drain())
        if not backlog:
            return
        if len(backlog) > QUEUE:                   # a flood outran the budget: oldest go
            for _ in range(len(backlog) - QUEUE):
                backlog.popleft()
                self.dropped += 1
        now = self.rt.clock.now()
        if self.listeners:
            self.listeners = {who: until for who, until in self.listeners.items() if until > now}
        deadline = time.perf_counter() + APPLY_BUDGET
        while backlog:
            if time.perf_counter() > deadline:
                self.deferred += 1
                return
            self._one(backlog.popleft(), run, now)

    def _one(self, msg: Incoming, run, now: float) -> None:
        try:
            if msg.sender in self.listeners and self.trusted(msg.sender):
                self.listeners[msg.sender] = now + LISTEN_TTL   # others renew by listening
            if len(msg.address) > MAX_LENGTH:
                self._reject(msg, f"address of {len(msg.address)} characters (at most {MAX_LENGTH})")
                return
            if msg.address in (LISTEN, UNLISTEN):
                self._listen(msg, now)
                return
            if msg.address.startswith(PREFIX):
                parts = msg.address[len(PREFIX):].split("/")
                if len(parts) == 2 and all(parts):
                    if any(c in msg.address for c in PATTERN_CHARS):
                        self._matching(msg, run, parts[0], parts[1])
                    else:
                        self._single(msg, run, parts[0], parts[1])
                    self._flush(msg)
            for node in self.receivers:
                node.receive_osc(msg.address, msg.args)
        except Exception as exc:  # no message may stop the control thread
            self._reloads.clear()
            self._echoes.clear()
            self._reject(msg, f"cannot apply it: {describe(exc)}")

    def _answer(self, msg: Incoming, packet: bytes) -> bool:
        """Send ``packet`` to the sender of ``msg``: always to a trusted sender, to any
        other only within what its datagram weighed."""
        if not self.trusted(msg.sender):
            if len(packet) > msg.budget:
                self.withheld += 1
                return False
            msg.budget -= len(packet)
        self.server.reply(msg.sender, packet)
        return True

    def _reject(self, msg: Incoming, reason: str) -> None:
        self.rejections += 1
        text = f"{_cut(msg.address, 80)}: {reason}"[:REPLY_CHARS]
        if not self.trusted(msg.sender):
            text = _fit("/tonegraph/error", text, msg.budget)
        if text:
            self._answer(msg, encode.message("/tonegraph/error", [("s", text)]))
        else:
            self.withheld += 1
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

    def _listen(self, msg: Incoming, now: float) -> None:
        who = msg.sender
        if msg.address == UNLISTEN:
            self.listeners.pop(who, None)
            return
        trusted = self.trusted(who)
        if who in self.listeners:
            self.listeners[who] = now + LISTEN_TTL
            return
        # Trusted and untrusted listeners have places of their own, so strangers cannot
        # take the desk's; one untrusted host holds at most PER_HOST of theirs.
        kin = [w for w in self.listeners if self.trusted(w) == trusted]
        if len(kin) >= MAX_LISTENERS or (not trusted and
                                          sum(w[0] == who[0] for w in kin) >= PER_HOST):
            self._reject(msg, "too many listeners already; send /tonegraph/unlisten from one")
            return
        if trusted:
            self.listeners[who] = now + LISTEN_TTL
            return
        token = msg.args[0] if len(msg.args) == 1 and isinstance(msg.args[0], str) else None
        waiting = self._challenges.get(who)
        if waiting is not None and now > waiting[1]:
            waiting = None
        if waiting is not None and token == waiting[0]:
            del self._challenges[who]
            self.listeners[who] = now + LISTEN_TTL
            return
        # A token waiting for this sender is sent again, not replaced: a forged request
        # cannot spoil the real sender's echo.
        fresh = waiting[0] if waiting is not None else secrets.token_hex(4)
        if waiting is None:
            self._challenges = {k: v for k, v in self._challenges.items() if v[1] >= now}
            if (len(self._challenges) >= MAX_CHALLENGES
                    or sum(k[0] == who[0] for k in self._challenges) >= PER_HOST):
                self._reject(msg, "too many listen tokens waiting; try again in a few seconds")
                return
        if not self._answer(msg, encode.message(LISTEN, [("s", fresh)])):
            self._reject(msg, "from an address not in --osc-allow, send it with a string of "
                              "12 characters or more, then echo the token it is answered")
            return
        self._challenges[who] = (fresh, now + CHALLENGE_TTL)

    def _flush(self, msg: Incoming) -> None:
        """After one message: one reload request per node, one datagram per listener."""
        reloads, self._reloads = self._reloads, {}
        for node_id, values in reloads.items():
            self.rt.reloader.request_params(node_id, values)
        echoes, self._echoes = self._echoes, []
        if echoes and self.listeners:
            for packet in _bundles(echoes):
                for who in self.listeners:
                    if who != msg.sender:
                        self.server.reply(who, packet)

    def _may_rebuild(self) -> bool:
        """A token of the untrusted senders' rebuild budget (a burst, then a rate)."""
        burst, rate = REBUILDS
        now = self.rt.clock.now()
        self._rebuild_tokens = min(burst, self._rebuild_tokens + (now - self._rebuild_time) * rate)
        self._rebuild_time = now
        if self._rebuild_tokens < 1.0:
            return False
        self._rebuild_tokens -= 1.0
        return True

    def _single(self, msg: Incoming, run, node_id: str, name: str) -> None:
        answers: list[bytes] = []
        reason = self._param(msg, run, node_id, name, answers)
        if reason is not None:
            self._reject(msg, reason)
        for packet in answers:
            self._answer(msg, packet)

    def _matching(self, msg: Incoming, run, node_pattern: str, param_pattern: str) -> None:
        """An OSC address pattern (``/tonegraph/*/decay``, ``/tonegraph/{a,b}/gain``):
        every node param it matches, each as if addressed on its own, answered once."""
        if not msg.args and not self.trusted(msg.sender):
            self._reject(msg, "queries by pattern are answered only to --osc-allow addresses")
            return
        try:
            nodes, params = compile_pattern(node_pattern), compile_pattern(param_pattern)
        except ValueError as exc:
            self._reject(msg, str(exc))
            return
        names: dict[str, bool] = {}
        hits = []
        for nid, node in run.nodes.items():
            if nodes.match(nid):
                for name in node.params:
                    hit = names.get(name)
                    if hit is None:
                        hit = names[name] = params.match(name)
                    if hit:
                        hits.append((nid, name))
        if not hits:
            self._reject(msg, "the pattern matches no node param in the running patch")
            return
        answers: list[bytes] = []
        refused = []
        stranger = not self.trusted(msg.sender)
        for nid, name in hits:
            try:
                reason = self._param(msg, run, nid, name, answers, in_place=stranger)
            except Exception as exc:  # one param that cannot take it: the others still do
                reason = f"cannot apply it: {describe(exc)}"
            if reason is not None:
                refused.append(f"{nid}/{name}: {reason}")
        if refused:
            self._reject(msg, f"{len(refused)} of {len(hits)} refused; {refused[0]}")
        for packet in _bundles(answers):
            self._answer(msg, packet)

    def _param(self, msg: Incoming, run, node_id: str, name: str, answers: list,
               in_place: bool = False) -> str | None:
        """Apply one param (or, with no arguments, add its value to ``answers``); the
        reason it was refused, or None.  ``in_place``: refuse a value that would build
        the node anew."""
        node = run.nodes.get(node_id)
        if node is None:
            return f"no node {shown(node_id, 40)} in the running patch"
        decl = node.params.get(name)
        if decl is None:
            return f"{node.type_name} has no param {shown(name, 40)}"
        if not msg.args:
            answers.append(encode.message(f"{PREFIX}{node_id}/{name}",
                                          _args_of(getattr(node.p, name))))
            return None
        if decl.kind == "outpath":
            return (f"'{name}' is an output file: only the patch or the command line "
                    f"set where data is written, never OSC")
        if decl.route:
            return (f"'{name}' says where {node_id}'s output goes: only the patch or the "
                    f"command line set it, never OSC")
        value = msg.args[0] if len(msg.args) == 1 else list(msg.args)
        try:
            coerced = node.validate_params({name: value})
        except ParamError as exc:
            return str(exc)
        new = coerced[name]
        if decl.kind == "path" and new is not None and new != getattr(node.p, name):
            folder = node.ctx.patch_dir.resolve()
            if not Path(node.ctx.resolve_input(new)).resolve().is_relative_to(folder):
                return (f"{shown(new)} is outside the patch's folder; OSC may only "
                        f"name files inside it")
        if new == getattr(node.p, name):
            return None
        outputs = type(node).outputs_for(vars(node.p) | coerced)
        rebuild = decl.restart or list(outputs) != list(node.out)
        if rebuild and in_place:
            return "it rebuilds the node: set it by its own address, not by a pattern"
        if rebuild and self._asked.get(node_id, {}).get(name, _NOTHING) == new:
            return None                                      # already on its way
        if rebuild and not self.trusted(msg.sender) and not self._may_rebuild():
            return ("it rebuilds the node, and addresses outside --osc-allow may rebuild "
                    "at most one a second")
        if rebuild:
            self._asked.setdefault(node_id, {})[name] = new
            self._reloads.setdefault(node_id, {}).update(coerced)
        else:
            self.rt.in_domain(node_id, lambda: node.apply_params(coerced))
        if self.listeners:
            self._echoes.append(encode.message(f"{PREFIX}{node_id}/{name}", _args_of(new)))
        return None


_NOTHING = object()


def _bundles(packets: list[bytes]) -> list[bytes]:
    """One packet as it is; several as bundles of at most ``BUNDLE_BYTES``."""
    if len(packets) <= 1:
        return packets
    out, part, size = [], [], 16
    for p in packets:
        if part and size + 4 + len(p) > BUNDLE_BYTES:
            out.append(encode.bundle(0, part))
            part, size = [], 16
        part.append(p)
        size += 4 + len(p)
    out.append(encode.bundle(0, part))
    return out


def _fit(address: str, text: str, budget: int) -> str:
    """``text`` cut so that the message ``address s text`` weighs at most ``budget``
    bytes; empty when not even a few words fit."""
    room = budget - len(encode.message(address, [("s", "")])) - 3   # padding, at most
    if room < 12:
        return ""
    raw = text.encode()[:room]
    return raw.decode("utf-8", "ignore")


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 3] + "..."


def _args_of(value) -> list[encode.Arg]:
    if isinstance(value, bool):
        return [("T" if value else "F", value)]
    if isinstance(value, int):
        return [("i" if -2**31 <= value < 2**31 else "h", value)]
    if isinstance(value, float):
        small = value == 0.0 or not math.isfinite(value) or 1e-38 < abs(value) < 3.4e38
        return [("f" if small else "d", value)]
    if isinstance(value, list):
        return [a for v in value for a in _args_of(v)]
    return [("s", str(value))]
