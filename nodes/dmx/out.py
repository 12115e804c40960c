"""dmx.out: lights driven straight over the network, sACN (E1.31) or Art-Net.

Inputs are named in the patch: ``ch37`` is DMX channel 37 of the universe, and with a
``fixtures`` file (nodes/dmx/fixtures.py) ``front/dimmer``, ``front/rgb`` or
``spot/pan`` address a light's attributes wherever it is patched (16-bit where the type
has a ``_fine`` channel).  Values are 0..1 (``values: dmx`` takes 0-255 as they are),
clamped.  The universe goes out ``rate`` times a second (44 by default, DMX's own
refresh) with sACN ``priority``; and when the show stops, one blackout frame (all
zero) goes out first unless ``blackout`` is off.  The ``frame`` output holds the 512
channel values sent last, for recording or a preview.

``host`` is where it goes: a node or a desk by address (default 127.0.0.1, this
machine); empty sends sACN to its multicast group (239.255.<universe>) or Art-Net as a
broadcast, which only a user asks for.  In an offline run nothing is sent.
Through the ``sacn`` library (sACN) and ``stupidArtnet`` (Art-Net).
"""

from __future__ import annotations

import logging
import math
import re

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import NodeError, display_path
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import PortType

from . import fixtures as fx

log = logging.getLogger("tonegraph.dmx")

CHANNEL = re.compile(r"^ch([1-9][0-9]{0,2})$")


class DmxOut(Node):
    type_name = "dmx.out"
    extra, extra_modules = "dmx", ("sacn", "stupidArtnet")
    description = "Drive lights over sACN (E1.31) or Art-Net: channels or fixture attributes, 0..1."
    params = {
        "protocol": P.choice("sacn", ("sacn", "artnet"), "sACN (E1.31) or Art-Net.", restart=True),
        "host": P.text("127.0.0.1", "Destination address; empty: sACN multicast / Art-Net broadcast.",
                       restart=True),
        "universe": P.integer(1, "Universe (sACN 1-63999, Art-Net 0-32767).", min=0, max=63999,
                              restart=True),
        "rate": P.number(44.0, "Frames sent per second.", unit="Hz", min=1.0, max=100.0),
        "priority": P.integer(100, "sACN priority (0-200; a desk at a higher one wins).", min=0, max=200),
        "fixtures": P.path(None, "Fixture file (YAML: types and fixtures), relative to the patch."),
        "values": P.choice("unit", ("unit", "dmx"), "Inputs in 0..1, or in 0-255 as they are."),
        "blackout": P.boolean(True, "Send one all-zero frame when the show stops."),
        "source_name": P.text("tonegraph", "sACN source name (what a desk shows).", restart=True),
    }
    outputs = {"frame": ports.vector("The 512 channel values sent last (0-255).")}
    variadic = ports.any_port("ch<N>, or fixture/attribute with a fixtures file.")

    @classmethod
    def check(cls, params, wired, ctx):
        problems = []
        proto, uni = params.get("protocol", "sacn"), params.get("universe", 1)
        if proto == "sacn" and not 1 <= uni <= 63999:
            problems.append(("universe", f"an sACN universe is 1-63999, got {uni}"))
        if proto == "artnet" and not 0 <= uni <= 32767:
            problems.append(("universe", f"an Art-Net universe is 0-32767, got {uni}"))
        attrs: dict = {}
        if params.get("fixtures"):
            path = ctx.resolve_input(params["fixtures"])
            try:
                attrs = fx.read(path)
            except fx.FixtureError as exc:
                return problems + [("fixtures", f"{display_path(path)}: {exc}")]
        for name, typ in wired.items():
            m = CHANNEL.match(name)
            if m and not 1 <= int(m.group(1)) <= 512:
                problems.append(("", f"input '{name}': channels are ch1-ch512"))
            elif not m and name not in attrs:
                hint = (f" (the fixtures file has: {', '.join(sorted(attrs)[:12])}...)" if attrs
                        else " (name a channel ch1-ch512, or give a 'fixtures' file)")
                problems.append(("", f"input '{name}' is no channel or fixture attribute{hint}"))
            elif name in attrs and attrs[name].width > 1 and typ not in (PortType.VECTOR, PortType.ANY):
                problems.append(("", f"input '{name}' takes a vector of {attrs[name].width}, not {typ.value}"))
            elif (m or (name in attrs and attrs[name].width == 1)) and typ not in (PortType.NUMBER, PortType.ANY):
                problems.append(("", f"input '{name}' takes a number, not {typ.value}"))
        return problems

    def files(self):
        return [self.ctx.resolve_input(self.p.fixtures)] if self.p.fixtures else []

    def configure(self) -> None:
        self.frame = np.zeros(512, dtype=np.uint8)
        self.out["frame"] = self.frame.astype(np.float32)
        self.targets: dict[str, tuple[tuple[int, ...], ...]] = {}
        attrs = fx.read(self.ctx.resolve_input(self.p.fixtures)) if self.p.fixtures else {}
        for name in self.wired:
            m = CHANNEL.match(name)
            self.targets[name] = ((int(m.group(1)) - 1,),) if m else attrs[name].channels
        self.next_send = 0.0
        self.sent = 0
        self.sender = None
        if self.ctx.offline:
            log.warning("node '%s': DMX goes out in real time only; an offline run sends none", self.id)
            return
        try:
            self._open()
        except Exception as exc:  # noqa: BLE001 - socket and library errors alike
            raise NodeError(self.id, f"cannot send {self.p.protocol} to {self.p.host or 'the network'}: "
                                     f"{exc}") from None

    def _open(self) -> None:
        p = self.p
        if p.protocol == "sacn":
            import sacn

            s = sacn.sACNsender(bind_port=0, fps=int(min(p.rate, 100)), source_name=p.source_name[:63],
                                universeDiscovery=False)
            s.manual_flush = True
            s.start()
            s.activate_output(p.universe)
            out = s[p.universe]
            out.multicast = not p.host
            if p.host:
                out.destination = p.host
            out.priority = p.priority
            self.sender = s
        else:
            from stupidArtnet import StupidArtnet

            self.sender = StupidArtnet(p.host or "255.255.255.255", p.universe, 512, int(p.rate), True,
                                       not p.host)

    def params_changed(self, changed: set[str]) -> None:
        if "priority" in changed and self.sender is not None and self.p.protocol == "sacn":
            self.sender[self.p.universe].priority = self.p.priority

    def process(self, tick: Tick) -> None:
        scale = 255.0 if self.p.values == "unit" else 1.0
        frame = self.frame
        for name, targets in self.targets.items():
            value = self.inp.get(name)
            if value is None:
                continue
            values = np.atleast_1d(np.asarray(value, dtype=np.float64))
            for chans, v in zip(targets, values):
                v = float(v) * scale
                if not math.isfinite(v):
                    continue
                v = min(max(v, 0.0), 255.0)
                if len(chans) == 2:                       # 16-bit: coarse, fine
                    word = int(round(v / 255.0 * 65535))
                    frame[chans[0]], frame[chans[1]] = word >> 8, word & 0xFF
                else:
                    frame[chans[0]] = int(round(v))
        self.out["frame"] = frame.astype(np.float32)
        if self.sender is not None and tick.t >= self.next_send:
            self.next_send = tick.t + 1.0 / self.p.rate - 1e-6
            self._send(frame)

    def _send(self, frame: np.ndarray) -> None:
        data = tuple(int(v) for v in frame)
        try:
            if self.p.protocol == "sacn":
                self.sender[self.p.universe].dmx_data = data
                self.sender.flush()
            else:
                self.sender.set(list(data))
                self.sender.show()
            self.sent += 1
        except OSError as exc:
            log.warning("node '%s': DMX not sent: %s", self.id, exc.strerror or exc)

    def close(self) -> None:
        sender, self.sender = getattr(self, "sender", None), None
        if sender is None:
            return
        self.sender = sender
        if self.p.blackout:
            self._send(np.zeros(512, dtype=np.uint8))
        self.sender = None
        try:
            if self.p.protocol == "sacn":
                sender.stop()
            else:
                sender.close() if hasattr(sender, "close") else None
        except Exception:  # noqa: BLE001 - leaving the network quietly
            pass
