"""dmx.out: lights driven straight over the network, sACN (E1.31) or Art-Net.

Inputs are named in the patch: ``ch37`` is DMX channel 37 of the universe, and with a
``fixtures`` file (nodes/dmx/fixtures.py) ``front/dimmer``, ``front/rgb`` or
``spot/pan`` address a light's attributes wherever it is patched (16-bit where the type
has a ``_fine`` channel).  Values are 0..1 (``values: dmx`` takes 0-255 as they are),
clamped.  The universe goes out ``rate`` times a second (44 by default, DMX's own
refresh) with sACN ``priority``, from a thread of the node's own on absolute deadlines
(``Pacer`` in engine/clock.py): the latest values the control ticks left, at the
universe's rate whatever the patch's fps and however long a frame takes to draw.  When
the show stops, one blackout frame (all zero) goes out first unless ``blackout`` is off.  The ``frame`` output holds the 512
channel values sent last, for recording or a preview.

``host`` is where it goes: a node or a desk by address (default 127.0.0.1, this
machine); empty sends sACN to its multicast group (239.255.<universe>) or Art-Net as a
broadcast, which only a user asks for: to the directed broadcast address of every IPv4
network the machine is on (looked up again every few seconds, so a network that comes
up later is used), since a lighting LAN often has no default route and the limited
broadcast 255.255.255.255 then cannot leave (given as ``host``, it is taken to mean the
same).  A subnet's broadcast address as ``host`` works too (the socket may broadcast).  In an offline run nothing is sent.

``announce`` (off by default) makes the node findable: with Art-Net it answers desks'
ArtPoll with an ArtPollReply naming its universe (listening on UDP 6454 on every
interface, nodes/dmx/artnet.py); with sACN it sends E1.31 universe discovery every 10 s
to the discovery group (239.255.250.214).

sACN ``sync`` (off by default) names an E1.31 synchronization universe: each frame then
says so and is followed by a sync packet, sent where the data goes (to ``host``, or to
the sync universe's group when multicasting), so receivers that support it change
their universes together.  When the node closes (the show stops, a reload removes it)
sACN sends E1.31's three stream-terminated packets, and a receiver lets the universe go
at once instead of after its timeout.

Packets are built by the ``sacn`` library (E1.31) and ``stupidArtnet`` (Art-Net) and
sent from a non-blocking UDP socket of the node's own (no library thread).  A failed send never raises and never stalls the show: it is reported
once, with the reason, and once more when frames go out again.
"""

from __future__ import annotations

import logging
import math
import re
import socket
import uuid

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.clock import Pacer
from tonegraph.engine.errors import NodeError, display_path
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import PortType

from . import fixtures as fx

log = logging.getLogger("tonegraph.dmx")

CHANNEL = re.compile(r"^ch([1-9][0-9]{0,2})$")
SACN_PORT = 5568      # UDP port E1.31 receivers listen on
MULTICAST_TTL = 8     # [hops] a multicast frame may travel (the sacn library's default)
TERMINATED = 3        # stream-terminated packets sent on close (E1.31 6.2.6)
DISCOVERY_EVERY = 10.0   # [s] between E1.31 universe discovery packets (E1.31 6.5)
DISCOVERY_UNIVERSE = 64214
BROADCAST_LOOKUP = 5.0   # [s] between looks at which networks Art-Net broadcasts reach


class Link:
    """The node's UDP socket: sends a frame's datagrams without blocking, and reports a
    failure once per episode and its end once, never a traceback per frame."""

    def __init__(self, node_id: str, to: str, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.node_id, self.to, self.sock = node_id, to, sock
        self.problem, self.lost = "", 0

    def send(self, datagrams: list[tuple[bytes, tuple[str, int]]]) -> bool:
        try:
            for data, addr in datagrams:
                self.sock.sendto(data, addr)
        except (BlockingIOError, InterruptedError):
            return self.trouble("the network buffer is full")
        except OSError as exc:
            return self.trouble(exc.strerror or str(exc))
        if self.problem:
            log.warning("node '%s': DMX to %s sent again (%d frames not sent)", self.node_id, self.to,
                        self.lost)
            self.problem, self.lost = "", 0
        return True

    def trouble(self, why: str) -> bool:
        """A frame not sent, and why: reported if it is the first of an episode."""
        self.lost += 1
        if not self.problem:
            self.problem = why
            log.warning("node '%s': DMX to %s not sent: %s; reported again when it recovers",
                        self.node_id, self.to, why)
        return False

    def close(self) -> None:
        self.sock.close()


class DmxOut(Node):
    type_name = "dmx.out"
    extra, extra_modules = "dmx", ("sacn", "stupidArtnet")
    description = "Drive lights over sACN (E1.31) or Art-Net: channels or fixture attributes, 0..1."
    params = {
        "protocol": P.choice("sacn", ("sacn", "artnet"), "sACN (E1.31) or Art-Net.", restart=True,
                             route=True),
        "host": P.text("127.0.0.1", "Destination address; empty: sACN multicast / Art-Net broadcast.",
                       restart=True, route=True),
        "universe": P.integer(1, "Universe (sACN 1-63999, Art-Net 0-32767).", min=0, max=63999,
                              restart=True, route=True),
        "rate": P.number(44.0, "Frames sent per second.", unit="Hz", min=1.0, max=100.0),
        "priority": P.integer(100, "sACN priority (0-200; a desk at a higher one wins).", min=0, max=200),
        "sync": P.integer(0, "sACN sync universe (1-63999): each frame is followed by a sync packet, "
                             "sent where the data goes; 0: off.", min=0, max=63999, route=True),
        "fixtures": P.path(None, "Fixture file (YAML: types and fixtures), relative to the patch."),
        "values": P.choice("unit", ("unit", "dmx"), "Inputs in 0..1, or in 0-255 as they are."),
        "blackout": P.boolean(True, "Send one all-zero frame when the show stops."),
        "source_name": P.text("tonegraph", "sACN source name (what a desk shows).", restart=True),
        "announce": P.boolean(False, "Be findable: Art-Net answers desks' ArtPoll (listening on UDP "
                                     "6454 on every interface); sACN sends universe discovery every "
                                     "10 s.", restart=True, route=True),
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
        if proto == "artnet" and params.get("sync", 0):
            problems.append(("sync", "sync is an sACN sync universe; Art-Net sends none (set it to 0)"))
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
        self.latest = bytes(512)          # the frame the sends take, whole (never torn)
        self.sent = 0
        self.link: Link | None = None
        self.pacer: Pacer | None = None
        self.responder = None
        self.broadcast = False
        self.broadcasts: list[str] = []           # Art-Net broadcast: where it goes
        self.looked = self.announced = -math.inf
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
            from sacn.messages.data_packet import DataPacket, calculate_multicast_addr

            self.cid = tuple(uuid.uuid4().bytes)            # this source, for receivers
            self.packet = DataPacket(cid=self.cid, sourceName=p.source_name[:63], universe=p.universe,
                                     priority=p.priority, sync_universe=p.sync)
            self.sync_sequence = 0
            self.dest = (p.host or calculate_multicast_addr(p.universe), SACN_PORT)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if not p.host:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        else:
            from stupidArtnet import StupidArtnet

            self.broadcast = p.host in ("", "255.255.255.255")   # on every network the machine is on
            self.artnet = StupidArtnet(p.host or "255.255.255.255", p.universe, 512, int(p.rate), True, True)
            self.dest = (self.artnet.target_ip, self.artnet.port)
            sock = self.artnet.socket_client           # may broadcast: a subnet's address works
            if p.announce:
                from .artnet import PollResponder

                self.responder = PollResponder()
        if p.announce and p.protocol == "sacn":
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        self.link = Link(self.id, "each network's broadcast address" if self.broadcast else self.dest[0], sock)

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
        self.latest = frame.tobytes()
        if self.pacer is None and self.link is not None:      # sends from the first frame on
            self.pacer = Pacer(f"dmx {self.id}", lambda: self.p.rate, self._send_latest,
                               self.ctx.clock).start()

    def _send_latest(self) -> None:
        """The pacer's send: the frame the last tick left, and what ``announce`` says."""
        now = self.ctx.clock.now()
        if self.responder is not None:
            self.responder.answer(self._poll_reply)
        if self.p.announce and self.p.protocol == "sacn" and now - self.announced >= DISCOVERY_EVERY:
            self.announced = now
            self._discovery()
        if self.broadcast and now - self.looked >= BROADCAST_LOOKUP:
            from .artnet import broadcast_addresses

            self.looked = now
            self.broadcasts = broadcast_addresses()
        self._send(self.latest)

    def _poll_reply(self, ip: str) -> bytes:
        from .artnet import poll_reply

        p = self.p
        return poll_reply(ip, p.universe, short_name=p.source_name, long_name=f"tonegraph {self.id}",
                          report=f"#0001 [{self.responder.polls % 10000:04d}] sending universe "
                                 f"{p.universe} at {p.rate:g} Hz", rate=p.rate, priority=p.priority)

    def _discovery(self) -> None:
        from sacn.messages.universe_discovery import UniverseDiscoveryPacket

        from sacn.messages.data_packet import calculate_multicast_addr

        packets = UniverseDiscoveryPacket.make_multiple_uni_disc_packets(
            cid=self.cid, sourceName=self.p.source_name[:63], universes=[self.p.universe])
        to = (calculate_multicast_addr(DISCOVERY_UNIVERSE), SACN_PORT)
        self.link.send([(bytes(packet.getBytes()), to) for packet in packets])

    def _send(self, frame: bytes) -> None:
        if self.p.protocol == "artnet":
            data = bytes(self.artnet.packet_header) + frame
            if not self.broadcast:
                datagrams = [(data, self.dest)]
            elif self.broadcasts:
                datagrams = [(data, (address, self.dest[1])) for address in self.broadcasts]
            else:
                self.sent += self.link.trouble("no IPv4 network to broadcast on (only loopback is up)")
                return
        else:
            self.packet.priority = self.p.priority
            self.packet.syncAddr = self.p.sync
            self.packet.dmxData = tuple(frame)
            datagrams = [self._sacn_data()]
            if self.p.sync:
                datagrams.append(self._sacn_sync())
        self.sent += self.link.send(datagrams)

    def _sacn_data(self) -> tuple[bytes, tuple[str, int]]:
        data = bytes(self.packet.getBytes())
        self.packet.sequence_increase()
        return data, self.dest

    def _sacn_sync(self) -> tuple[bytes, tuple[str, int]]:
        from sacn.messages.data_packet import calculate_multicast_addr
        from sacn.messages.sync_packet import SyncPacket

        sync = SyncPacket(cid=self.cid, syncAddr=self.p.sync, sequence=self.sync_sequence)
        self.sync_sequence = (self.sync_sequence + 1) % 256
        return bytes(sync.getBytes()), (self.p.host or calculate_multicast_addr(self.p.sync), SACN_PORT)

    def close(self) -> None:
        if getattr(self, "pacer", None) is not None:
            self.pacer.stop()            # its last send is over before the blackout
            self.pacer = None
        link, self.link = getattr(self, "link", None), None
        if link is None:
            return
        self.link = link
        if self.p.blackout:
            self._send(bytes(512))
        if self.p.protocol == "sacn":
            self.packet.option_StreamTerminated = True
            for _ in range(TERMINATED):
                link.send([self._sacn_data()])
        self.link = None
        link.close()
        if self.responder is not None:
            self.responder.close()
            self.responder = None
