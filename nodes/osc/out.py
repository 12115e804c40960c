"""osc.out: send graph values and events as OSC, shaped by a receiver profile.

Inputs are named by their OSC address (``in: {/cue/go: onsets, /dmx/universe/0/1: dim}``);
an address with ``{i}`` fed a vector sends one message per element (``/fixture/{i}/dim``
-> ``/fixture/1/dim``, ``/fixture/2/dim``, ...).  Values are sent on change (beyond
``threshold``) or every frame, events when they fire, each address at most ``max_rate``
times per second; ``addresses`` overrides any of these, and the argument type, per
address.  Events that come from the audio domain (onsets, beats) are sent on the audio
thread as soon as their hop is processed.  With bundles, the timetag is either
"immediately" or the media time of what caused the message plus ``delay``, so
receivers that honour timetags can line cues up with the sound.

Events are buttons: each press (the profile's event value) is followed by a release (0
in the press's type) ``hold`` seconds later, at the first control tick after the press
when ``hold`` is 0, so a desk's Flash button lets go and a Toggle toggles once per
event (``release: false`` sends presses only).  A press at an address still held sends
its release first; closing the node (the show stops, a reload) releases whatever is
held.  Profiles whose events carry no argument (ETC Eos: an argument-less key message
is a press and its release) send no release.
"""

from __future__ import annotations

import logging
import math
import re
import struct
import threading
from typing import Any

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.osc import encode
from tonegraph.engine.osc.transport import parse_destination
from tonegraph.engine.ports import PortType

from .profiles import PROFILES

log = logging.getLogger("tonegraph.osc")

ADDRESS_RE = re.compile(r"^/[^\s#*,?\[\]{}]*(\{i\}[^\s#*,?\[\]{}]*)*$")
ARG_TYPES = ("auto", "float", "int", "bool", "string", "blob")
POLICIES = ("on-change", "every-frame", "on-event")
SENDABLE = (PortType.NUMBER, PortType.VECTOR, PortType.EVENT, PortType.TEXT, PortType.ANY)
MAX_BUNDLE = 8192  # [bytes] larger frames are split over several bundles
OVERRIDE_KEYS = {"policy": POLICIES, "threshold": None, "max_rate": None, "type": ARG_TYPES,
                 "vector": ("args", "blob")}


def released(args: list[encode.Arg]) -> list[encode.Arg]:
    """A button's release: each of its press's arguments at zero, in the same type."""
    zero = {"f": ("f", 0.0), "i": ("i", 0), "T": ("F", False), "F": ("F", False), "s": ("s", "0")}
    return [zero.get(t, (t, bytes(len(v)) if isinstance(v, bytes) else v)) for t, v in args]


class OscOut(Node):
    type_name = "osc.out"
    description = "Send values and events as OSC to lighting desks and VJ software (profiles, bundles, TCP)."
    domain = "both"
    params = {
        "host": P.text("127.0.0.1", "Receiver host name or address.", restart=True,
                        route=True),
        "port": P.integer(0, "Receiver port; 0 uses the profile's usual port.", min=0, max=65535,
                          restart=True, route=True),
        "destinations": P.strings([], "More receivers as host:port (each gets every message).",
                                  restart=True, route=True),
        "profile": P.choice("generic", tuple(PROFILES), "The receiver's conventions (see docs).",
                            restart=True, route=True),
        "protocol": P.choice("auto", ("auto", "udp", "tcp"), "auto: the profile's (tcp: SLIP).",
                             restart=True, route=True),
        "bundle": P.Param("bool", None, "Send bundles with timetags; empty: the profile's choice.",
                          nullable=True),
        "timetag": P.choice("media", ("media", "immediate"),
                            "Bundle timetag: media time of the cause plus delay, or immediately."),
        "delay": P.number(0.0, "Added to media timetags.", unit="s", min=0.0, max=10.0),
        "release": P.boolean(True, "Events are buttons: each press is followed by a release (0)."),
        "hold": P.number(0.0, "How long an event's button stays pressed; 0: until the next control tick.",
                         unit="s", min=0.0, max=60.0),
        "policy": P.choice("on-change", POLICIES[:2], "When values are sent (events always when they fire)."),
        "threshold": P.number(0.0, "Least change that counts for on-change.", min=0.0),
        "max_rate": P.number(0.0, "Most messages per second per address; 0 is unlimited.",
                             unit="Hz", min=0.0, max=10000.0),
        "vectors": P.choice("args", ("args", "blob"), "Vectors as several float arguments or a blob."),
        "addresses": P.mapping({}, "Per-address overrides: {/addr: {policy, threshold, max_rate, type, vector}}.",
                               keys={"pattern": "^/"},
                               values={"type": "object", "additionalProperties": False, "properties": {
                                   k: {"enum": list(v)} if v else {"type": "number", "minimum": 0}
                                   for k, v in OVERRIDE_KEYS.items()}}),
    }
    variadic = ports.any_port("Named by OSC address: numbers, vectors, events or text.")

    @classmethod
    def check(cls, params, wired, ctx):
        problems = []
        for name, typ in wired.items():
            if not ADDRESS_RE.match(name):
                problems.append(("", f"input '{name}' is not an OSC address (it starts with '/' and "
                                     f"has no spaces or # * , ? [ ] {{ }} except a {{i}} template)"))
            elif "{i}" in name and typ not in (PortType.VECTOR, PortType.ANY):
                problems.append(("", f"address template '{name}' needs a vector input, not {typ.value}"))
            if typ not in SENDABLE:
                problems.append(("", f"osc.out cannot send {typ.value} input '{name}'"))
        for addr, over in params["addresses"].items():
            if addr not in wired:
                problems.append(("addresses", f"addresses has settings for '{addr}', which is not an input"))
                continue
            if not isinstance(over, dict):
                problems.append(("addresses", f"settings for '{addr}' must be a mapping"))
                continue
            for key, val in over.items():
                if key not in OVERRIDE_KEYS:
                    problems.append(("addresses", f"unknown setting '{key}' for '{addr}' "
                                                  f"(settings: {', '.join(OVERRIDE_KEYS)})"))
                elif OVERRIDE_KEYS[key] and val not in OVERRIDE_KEYS[key]:
                    problems.append(("addresses", f"'{key}' for '{addr}' must be one of "
                                                  f"{', '.join(OVERRIDE_KEYS[key])}, got {val!r}"))
                elif not OVERRIDE_KEYS[key] and (isinstance(val, bool) or not isinstance(val, (int, float))
                                                 or val < 0):
                    problems.append(("addresses", f"'{key}' for '{addr}' must be a number >= 0"))
        for d in params["destinations"]:
            try:
                parse_destination(d)
            except ValueError as exc:
                problems.append(("destinations", str(exc)))
        return problems

    # -- set-up -------------------------------------------------------------------------

    def configure(self) -> None:
        p = self.p
        self.profile = PROFILES[p.profile]
        protocol = self.profile.protocol if p.protocol == "auto" else p.protocol
        targets = [(p.host, p.port or self.profile.port)] if p.host else []
        targets += [parse_destination(d, self.profile.port) for d in p.destinations]
        self.dests = [self.ctx.osc.acquire(h, port, protocol) for h, port in targets]
        self.params_changed(set(self.params))

    def params_changed(self, changed: set[str]) -> None:
        p = self.p
        self.use_bundles = self.profile.bundles if p.bundle is None else p.bundle
        self.settings: dict[str, dict[str, Any]] = {}
        for name, typ in self.wired.items():
            over = p.addresses.get(name, {})
            self.settings[name] = {
                "policy": over.get("policy", "on-event" if typ == PortType.EVENT else p.policy),
                "threshold": float(over.get("threshold", p.threshold)),
                "period": 1.0 / float(over.get("max_rate", p.max_rate) or math.inf),
                "type": over.get("type", "auto"),
                "vector": over.get("vector", p.vectors),
            }
        if not hasattr(self, "last"):
            self.last: dict[str, Any] = {}       # last value sent, per address
            self.last_t: dict[str, float] = {}   # media time of the last send, per address
            self.sent = 0
            self.rate_dropped = 0
            self.warned_unit: set[str] = set()
            self.held: dict[str, tuple[float, int, list]] = {}   # address: (due, after tick, args)
            self.held_lock = threading.Lock()        # presses come from the audio thread too
            self.ticks = 0                           # control ticks so far

    def close(self) -> None:
        if getattr(self, "held", None):
            with self.held_lock:
                held, self.held = self.held, {}
            self._send([self._wrap(encode.message(a, args), 0.0) for a, (_, _, args) in held.items()])
        for d in getattr(self, "dests", []):
            self.ctx.osc.release(d)
        self.dests = []

    # -- encoding -----------------------------------------------------------------------

    def _number_args(self, value: float, kind: str) -> list[encode.Arg]:
        if kind == "float" or (kind == "auto" and self.profile.number == "float"):
            return [("f", float(value))]
        if kind == "int":
            return [("i", int(round(value)))]
        if kind == "bool":
            return [("T" if value else "F", bool(value))]
        if kind == "string":
            return [("s", f"{value:g}")]
        if kind == "blob":
            return [("b", struct.pack(">f", value))]
        if self.profile.number == "int255":
            return [("i", int(min(255, max(0, round(value)))))]
        return [("f", float(min(1.0, max(0.0, value))))]  # unit

    def _vector_args(self, vec: np.ndarray, mode: str) -> list[encode.Arg]:
        if self.profile.vector == "bytes":
            return [("b", np.clip(np.rint(vec), 0, 255).astype(np.uint8).tobytes())]
        if mode == "blob":
            return [("b", np.asarray(vec, dtype=">f4").tobytes())]
        return [("f", float(v)) for v in vec]

    def _event_args(self, strength: float, kind: str) -> list[encode.Arg]:
        ev = self.profile.event
        if kind != "auto":
            return self._number_args(strength if kind in ("float", "string") else 1, kind)
        if ev == "strength":
            return [("f", float(strength))]
        if ev == "one":
            return [("f", 1.0)]
        if ev == "int1":
            return [("i", 1)]
        if ev == "full":
            return [("i", 255)]
        return []

    def _messages_for(self, name: str, value: Any, typ: PortType, t: float) -> list[bytes]:
        """Messages for one input's current value, honouring its policy and rate."""
        st = self.settings[name]
        if st["policy"] == "on-event":
            return []
        if isinstance(value, np.ndarray) and "{i}" in name:
            out = []
            for i, v in enumerate(value.ravel(), 1):
                out += self._scalar(name.replace("{i}", str(i)), float(v), st, t)
            return out
        if isinstance(value, np.ndarray):
            last = self.last.get(name)
            if st["policy"] == "on-change" and last is not None and last.shape == value.shape and (
                    np.max(np.abs(last - value)) <= st["threshold"] if value.size else True):
                return []
            if t - self.last_t.get(name, -math.inf) < st["period"]:
                return []
            self.last[name], self.last_t[name] = value.copy(), t
            return [encode.message(name, self._vector_args(value, st["vector"]))]
        if isinstance(value, str):
            if st["policy"] == "on-change" and self.last.get(name) == value:
                return []
            self.last[name], self.last_t[name] = value, t
            return [encode.message(name, [("s", value)])]
        if isinstance(value, (int, float, np.floating)):
            return self._scalar(name, float(value), st, t)
        return []

    def _scalar(self, address: str, value: float, st: dict, t: float) -> list[bytes]:
        last = self.last.get(address)
        if st["policy"] == "on-change" and last is not None and abs(value - last) <= st["threshold"]:
            return []
        if t - self.last_t.get(address, -math.inf) < st["period"]:
            return []  # rate-limited: the newest value goes out when the address may send again
        self.last[address], self.last_t[address] = value, t
        if self.profile.number == "int255" and st["type"] == "auto" and 0.0 < value < 1.0:
            self._warn_unit(address, value)
        return [encode.message(address, self._number_args(value, st["type"]))]

    def _warn_unit(self, address: str, value: float) -> None:
        """A 0..1 value into a 0-255 channel is almost always a missing scale: say so once."""
        warned = self.warned_unit
        if address in warned:
            return
        warned.add(address)
        log.warning("node '%s': %s gets %.3g, a value in 0..1, but the %s profile sends DMX 0-255 "
                    "(it goes out as %d); scale it with control.map's out_range: [0, 255]",
                    self.id, address, value, self.p.profile, int(round(value)))

    # -- sending ------------------------------------------------------------------------

    def _send(self, packets: list[bytes]) -> None:
        for packet in packets:
            for d in self.dests:
                d.send(packet)
        self.sent += len(packets)

    def _timetag(self, t: float) -> float:
        return self.ctx.clock_origin + t + self.p.delay if self.p.timetag == "media" else 0.0

    def _wrap(self, msg: bytes, t: float) -> bytes:
        return encode.bundle(self._timetag(t), [msg]) if self.use_bundles else msg

    def _send_events(self, name: str, events) -> None:
        st = self.settings[name]
        out = []
        with self.held_lock:     # the presses leave before the control tick can send their release
            for ev in events:
                if ev.t - self.last_t.get(name, -math.inf) < st["period"]:
                    self.rate_dropped += 1
                    continue
                self.last_t[name] = ev.t
                args = self._event_args(ev.value, st["type"])
                if self.p.release and args:
                    before = self.held.pop(name, None)
                    self.held[name] = (ev.t + self.p.hold, self.ticks, released(args))
                    if before is not None:                # still pressed: let go first
                        out.append(self._wrap(encode.message(name, before[2]), ev.t))
                out.append(self._wrap(encode.message(name, args), ev.t))
            self._send(out)

    def _release_due(self, t: float) -> None:
        """Send the release of every button whose hold is over by control tick ``t``."""
        with self.held_lock:
            due = [(a, at, args) for a, (at, after, args) in self.held.items() if at <= t and after < self.ticks]
            for a, _, _ in due:
                del self.held[a]
            if due:     # timetagged no earlier than its press's hold
                self._send([self._wrap(encode.message(a, args), max(t, at)) for a, at, args in due])

    def process_audio(self, tick: Tick) -> None:
        """Audio thread: cues from onsets and beats leave as soon as their hop is done."""
        inp = self.inp
        for name in self.audio_inputs:
            if inp[name]:
                self._send_events(name, inp[name])

    def process(self, tick: Tick) -> None:
        inp, wired = self.inp, self.wired
        audio_side = self.audio_inputs  # read here, not cached: a reload recompiles it
        self.ticks += 1
        if self.held:
            self._release_due(tick.t)
        messages: list[bytes] = []
        for name, typ in wired.items():
            if name in audio_side:
                continue
            value = inp[name]
            if typ == PortType.EVENT:
                if value:
                    self._send_events(name, value)
            elif value is not None:
                messages += self._messages_for(name, value, typ, tick.t)
        if not messages:
            return
        if not self.use_bundles:
            self._send(messages)
            return
        # Bundle this frame's messages, splitting very large frames.
        tag, batch, size = self._timetag(tick.t), [], 16
        packets = []
        for m in messages:
            if batch and size + len(m) + 4 > MAX_BUNDLE:
                packets.append(encode.bundle(tag, batch))
                batch, size = [], 16
            batch.append(m)
            size += len(m) + 4
        packets.append(encode.bundle(tag, batch))
        self._send(packets)

