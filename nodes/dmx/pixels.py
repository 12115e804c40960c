"""dmx.pixels: a picture mapped onto LED strips, matrices and rings, sent over sACN
(E1.31), Art-Net or DDP (the protocol WLED controllers speak).

``image`` is any picture: a gl node's frame (a texture), or a numpy image.  ``layout``
is a YAML file beside the patch naming the fixtures, where each pixel sits in the
picture, the order of its colours and its address (nodes/dmx/layout.py)::

    frame: [1280, 720]
    fixtures:
      bar:  {type: strip, from: [64, 648], to: [1216, 648], count: 300, order: GRB}
      wall: {type: matrix, rect: [320, 72, 640, 320], size: [32, 16], serpentine: true, universe: 3}
      halo: {type: ring, centre: [640, 360], radius: 216, count: 24, order: RGBW}

Each drawn frame the GPU samples the picture where the pixels are (each pixel the mean
of its share of the picture, 16 samples) into a small texture of one texel per pixel,
and only that is read back, a frame later, when the next frame's GL work starts, so
drawing never waits for it.  The colours are taken to light by ``gamma`` (2.2, what a
picture's values mean; 1 sends them as they are), a white channel gets the light the
three colours share, everything is scaled by ``brightness`` (a limit on the power the
LEDs draw), and each fixture gets its channels in its own order.

The pixels go out ``rate`` times a second (44 by default, DMX's refresh; a DDP
controller may take more) from a thread of the node's own on absolute deadlines
(``Pacer``, engine/clock.py), with the latest frame sampled, whatever the patch's fps.
``protocol``:

* ``sacn``: one E1.31 packet per universe (170 RGB or 128 RGBW pixels each), with
  ``priority``, to ``host`` (an sACN node, a pixel controller, OLA), or with ``host``
  empty to each universe's multicast group (239.255.<universe>).
* ``artnet``: one ArtDmx packet per universe, to ``host`` (Art-Net 4 asks for pixel
  data to be unicast: there is no broadcast here).
* ``ddp``: the layout as one buffer, pixel ``n`` at byte ``n * 3`` (or ``* 4``: every
  fixture RGB, or every one RGBW), in packets of 1440 bytes to ``host`` on port 4048,
  the last with DDP's PUSH flag so the controller shows the frame whole
  (nodes/dmx/ddp.py).  For WLED, leave ``order`` RGB: WLED puts colours in its LEDs'
  order itself.

When the show stops one all-black frame goes out (unless ``blackout`` is off), and over
sACN then E1.31's three stream-terminated packets per universe.  A failed send is
reported once with its reason and once when frames go out again (``Link``,
nodes/dmx/out.py); an offline run samples (the ``frame`` output) but sends nothing.
"""

from __future__ import annotations

import logging
import math
import socket
import uuid
from dataclasses import replace

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.clock import Pacer
from tonegraph.engine.errors import NodeError, display_path
from tonegraph.engine.node import Tick, missing_modules

from tonegraph.nodes.gl.base import GLNode

from . import ddp
from . import layout as lay
from .out import MULTICAST_TTL, SACN_PORT, TERMINATED, Link

log = logging.getLogger("tonegraph.dmx")

TARGET_WIDTH = 1024       # [texels] a row of the texture the pixels are sampled into
ARTNET_LAST = 32767       # the highest Art-Net universe (15-bit Port-Address)

#: One point per LED pixel: drawn at its texel (``cell``, clip space), it samples the
#: picture at ``at`` over ``span`` (fractions of the frame from its top left).
SAMPLE_VERTEX = """#version 330 core
in vec2 cell;
in vec2 at;
in vec2 span;
out vec2 centre;
out vec2 size;
void main() {
    centre = at;
    size = span;
    gl_Position = vec4(cell, 0.0, 1.0);
}
"""

#: The mean of TAPS x TAPS samples over the pixel's share of the picture (whose row 0,
#: as GL draws, is its bottom).
SAMPLE = """#version 330 core
in vec2 centre;
in vec2 size;
out vec4 color;
uniform sampler2D image;
const int TAPS = 4;
void main() {
    vec3 sum = vec3(0.0);
    for (int j = 0; j < TAPS; j++) {
        for (int i = 0; i < TAPS; i++) {
            vec2 p = centre + ((vec2(i, j) + 0.5) / float(TAPS) - 0.5) * size;
            sum += texture(image, vec2(p.x, 1.0 - p.y)).rgb;
        }
    }
    color = vec4(sum / float(TAPS * TAPS), 1.0);
}
"""


class Pixels(GLNode):
    type_name = "dmx.pixels"
    extra, extra_modules = "dmx", ("sacn", "stupidArtnet")
    description = "Map a picture onto LED strips, matrices and rings (a layout file) over sACN, Art-Net or DDP."
    params = {
        "layout": replace(P.path(None, "Layout file (YAML: fixtures, where their pixels sit in the picture, "
                                      "colour order, address), relative to the patch."), route=True),
        "protocol": P.choice("sacn", ("sacn", "artnet", "ddp"), "sACN (E1.31), Art-Net, or DDP (WLED).",
                             restart=True, route=True),
        "host": P.text("127.0.0.1", "Destination address; empty: sACN to each universe's multicast group.",
                       restart=True, route=True),
        "rate": P.number(44.0, "Frames sent per second.", unit="Hz", min=1.0, max=200.0),
        "gamma": P.number(2.2, "The picture's values to light (1: sent as they are).", min=1.0, max=4.0),
        "brightness": P.number(1.0, "Scales every channel: a limit on the LEDs' power.", min=0.0, max=1.0),
        "priority": P.integer(100, "sACN priority (0-200; a desk at a higher one wins).", min=0, max=200),
        "blackout": P.boolean(True, "Send one all-black frame when the show stops."),
        "source_name": P.text("tonegraph", "sACN source name (what a desk shows).", restart=True),
    }
    inputs = {"image": ports.image("The picture to map (a gl node's frame, or a numpy image).", required=True)}
    outputs = {"frame": ports.vector("Every fixture's channels as last sampled, in layout order (0-255).")}

    @classmethod
    def check(cls, params, wired, ctx):
        problems = []
        proto, host = params.get("protocol", "sacn"), params.get("host", "127.0.0.1")
        if proto == "ddp" and not host:
            problems.append(("host", "DDP goes to one controller: give its address as host"))
        if proto == "artnet" and not host:
            problems.append(("host", "Art-Net pixels go to one controller: give its address as host "
                                     "(Art-Net 4 asks for ArtDmx to be unicast)"))
        missing = missing_modules(cls.type_name, "gl", ("pyglet",))
        if missing:
            problems.append(("", missing))
        if not params.get("layout"):
            return problems + [("layout", "give a layout file (YAML: fixtures and where their pixels "
                                          "sit in the picture)")]
        path = ctx.resolve_input(params["layout"])
        try:
            leds = lay.read(path)
        except lay.LayoutError as exc:
            line = f":{exc.line}" if exc.line else ""
            return problems + [("layout", f"{display_path(path)}{line}: {exc}")]
        if proto == "ddp" and leds.ddp_type is None:
            problems.append(("layout", "DDP names one pixel format for a frame: make every fixture RGB "
                                       "(3 channels) or every one RGBW (4)"))
        if proto == "sacn" and leds.universes[0] < 1:
            problems.append(("layout", f"an sACN universe is 1-63999, got {leds.universes[0]}"))
        if proto == "artnet" and leds.universes[-1] > ARTNET_LAST:
            problems.append(("layout", f"an Art-Net universe is 0-{ARTNET_LAST}, got {leds.universes[-1]}"))
        return problems

    def files(self):
        return [self.ctx.resolve_input(self.p.layout)] if self.p.layout else []

    def setup(self) -> None:
        path = self.ctx.resolve_input(self.p.layout)
        try:
            self.layout = lay.read(path)
        except lay.LayoutError as exc:
            raise NodeError(self.id, f"{display_path(path)}: {exc}") from None
        self.out["frame"] = np.zeros(len(self.layout.source), np.float32)
        self.program = self.points = self.target = self.readback = None
        self.failed: Exception | None = None      # the last frame's read, put off, failed
        self.latest: np.ndarray | None = None     # what the sends take, whole (never torn)
        self.sent = 0
        self.pacer: Pacer | None = None
        self.link: Link | None = None if self.ctx.offline else self._open()
        if self.ctx.offline:
            log.warning("node '%s': pixels go out in real time only; an offline run sends none", self.id)

    def _open(self) -> Link:
        """The node's socket, and what its packets start with (a one-line NodeError when
        the socket or a packet cannot be made)."""
        try:
            sock = self._prepare()
        except Exception as exc:  # noqa: BLE001 - socket and library errors alike
            why = exc.strerror if isinstance(exc, OSError) and exc.strerror else exc
            raise NodeError(self.id, f"cannot send {self.p.protocol} to {self.p.host or 'the network'}: "
                                     f"{why}") from None
        return Link(self.id, self.p.host or "each universe's multicast group", sock)

    def _prepare(self) -> socket.socket:
        p, universes = self.p, self.layout.universes
        host = socket.gethostbyname(p.host) if p.host else ""   # a name is looked up once, not per packet
        if p.protocol == "ddp":
            self.sequence = 1
            self.dest = (host, ddp.PORT)
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        elif p.protocol == "artnet":
            from stupidArtnet import StupidArtnet

            self.artnet = StupidArtnet(host, universes[0], lay.CHANNELS, int(p.rate), True, False)
            self.headers = []
            for universe in universes:               # its ArtDmx header for each universe
                self.artnet.universe = universe
                self.artnet.make_artdmx_header()
                self.headers.append(bytes(self.artnet.packet_header))
            self.dest = (host, self.artnet.port)
            sock = self.artnet.socket_client
        else:
            from sacn.messages.data_packet import DataPacket, calculate_multicast_addr

            cid = tuple(uuid.uuid4().bytes)             # this source, for receivers
            self.packets = [DataPacket(cid=cid, sourceName=p.source_name[:63], universe=u, priority=p.priority)
                            for u in universes]
            self.dests = [(host or calculate_multicast_addr(u), SACN_PORT) for u in universes]
            sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            if not p.host:
                sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, MULTICAST_TTL)
        return sock

    def start(self) -> None:
        """The sampling pass: a point per LED pixel into a texture of a texel each."""
        from pyglet import gl

        from tonegraph.nodes.gl.context import Readback

        n = self.layout.count
        w = min(n, TARGET_WIDTH)
        h = math.ceil(n / w)
        k = np.arange(n)
        cell = np.stack([(k % w + 0.5) / w, (k // w + 0.5) / h], axis=1) * 2.0 - 1.0
        self.program = self.service.program(SAMPLE, SAMPLE_VERTEX)
        self.points = self.program.vertex_list(
            n, gl.GL_POINTS, cell=("f", cell.ravel().tolist()), at=("f", self.layout.at.ravel().tolist()),
            span=("f", self.layout.span.ravel().tolist()))
        self.target = self.service.target(w, h)
        self.readback = Readback(self.service, [(w, h, "rgb")], (h, w, 3), depth=1)

    def draw(self, tick: Tick) -> None:
        failed, self.failed = self.failed, None
        if failed is not None:
            raise failed
        img = self.texture_of("image", self.inp["image"])
        if img is None:
            return
        if self.readback is None:            # the first frame's start() failed: again
            self.start()
        from tonegraph.nodes.gl.context import bind_textures

        gl, target = self.service.gl, self.target
        target.fb.bind()
        gl.glViewport(0, 0, target.width, target.height)
        gl.glDisable(gl.GL_BLEND)
        self.program.use()
        bind_textures(self.program, {"image": img[0]})
        self.points.draw(gl.GL_POINTS)
        self.program.stop()
        target.fb.unbind()
        self.service.later(self._read)

    def _read(self) -> None:
        """Read the sampled pixels (run by whichever GL node works next: a failure is
        kept and raised by this node's next draw, so the fault is its own)."""
        try:
            self.readback.push([self.target])
            texels = next(self.readback.drain())
            self._take(texels.reshape(-1, 3)[:self.layout.count])
        except Exception as exc:  # noqa: BLE001 - raised again in draw
            self.failed = exc

    def _take(self, rgb: np.ndarray) -> None:
        """Sampled colours (pixels x 3) to the channels sent, and the sends started."""
        values = self.layout.channels(rgb, self.p.gamma, self.p.brightness)
        self.out["frame"] = values.astype(np.float32)
        self.latest = self._wire(values)
        if self.pacer is None and self.link is not None:      # sends from the first frame on
            self.pacer = Pacer(f"pixels {self.id}", lambda: self.p.rate, self._send_latest,
                               self.ctx.clock).start()

    def _wire(self, values: np.ndarray) -> np.ndarray:
        """Channel values as the protocol sends them: DDP's buffer, or 512 a universe."""
        return self.layout.ddp(values) if self.p.protocol == "ddp" else self.layout.dmx(values)

    def _send_latest(self) -> None:
        """The pacer's send: the frame sampled last."""
        self._send(self.latest)

    def _send(self, wire: np.ndarray) -> None:
        p = self.p
        if p.protocol == "ddp":
            frames, self.sequence = ddp.packets(wire.tobytes(), self.sequence, self.layout.ddp_type)
            datagrams = [(data, self.dest) for data in frames]
        elif p.protocol == "artnet":
            datagrams = [(header + row.tobytes(), self.dest) for header, row in zip(self.headers, wire)]
        else:
            datagrams = []
            for packet, dest, row in zip(self.packets, self.dests, wire):
                packet.priority = p.priority
                packet.dmxData = tuple(row.tobytes())
                datagrams.append((bytes(packet.getBytes()), dest))
                packet.sequence_increase()
        self.sent += self.link.send(datagrams)

    def close(self) -> None:
        try:
            if getattr(self, "service", None) is not None:
                self.service.settle()                 # the last frame's read, put off
        finally:
            self._close_link()
            for obj in (getattr(self, "readback", None), getattr(self, "target", None),
                        getattr(self, "points", None), getattr(self, "program", None)):
                if obj is not None:
                    obj.delete()
            self.readback = self.target = self.points = self.program = None
            super().close()

    def _close_link(self) -> None:
        if getattr(self, "pacer", None) is not None:
            self.pacer.stop()            # its last send is over before the blackout
            self.pacer = None
        link = getattr(self, "link", None)
        if link is None:
            return
        black = self._wire(np.zeros(len(self.layout.source), np.uint8))
        if self.p.blackout:
            self._send(black)
        if self.p.protocol == "sacn":
            for packet in self.packets:
                packet.option_StreamTerminated = True
            for _ in range(TERMINATED):
                self._send(black)
        self.link = None
        link.close()
