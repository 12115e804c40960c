"""OSCQuery ``LISTEN``: values pushed to clients over a WebSocket on the OSCQuery port.

A client upgrades a connection to the OSCQuery HTTP port to a WebSocket (the proposal's
same-port arrangement) and sends text commands::

    {"COMMAND": "LISTEN", "DATA": "/tonegraph/lfo/frequency"}
    {"COMMAND": "IGNORE", "DATA": "/tonegraph/lfo/frequency"}

From ``LISTEN`` on, the value at that path is sent as a binary OSC message, at once and
then whenever it changes: a param set over OSC, by a save or by another surface, or an
output as the patch runs, each path at most ``PUSH_RATE`` times a second.  A path that a
save removes goes quiet and speaks again if a later save brings it back.  When a save
changes which nodes run, every client is sent ``{"COMMAND": "PATH_CHANGED", "DATA":
"/tonegraph"}`` so it can read the tree again.

A client may also send raw OSC packets as binary frames (the proposal's streaming): they
are handed to the engine's OSC listener as datagrams from the client's address
(:mod:`engine.osc.server`), so they set params exactly as over UDP, under the same
``--osc-allow`` trust (a loopback client is trusted as a loopback sender is) and with
the same params read-only.  What the engine answers them (a query's value, an
``/tonegraph/error``) comes back as binary frames on the same connection, at most
``MAX_REPLIES`` waiting at once.

The WebSocket protocol itself (handshake, framing, pings, close) is the ``websockets``
library's, used without its I/O: this module only moves bytes.  At most ``MAX_SOCKETS``
clients are served (fewer if the HTTP server keeps places for plain requests: see
:mod:`engine.osc.query`; more are answered 503), each may listen to ``MAX_PATHS`` paths,
and a client that cannot take its messages within ``SEND_TIMEOUT`` is dropped, and one
push sends a client at most ``PUSH_BYTES`` (what is left goes at the next).  A client
that sends no frame for ``PING_IDLE`` seconds is pinged, and closed (code 1011) if it
then sends nothing for ``PONG_TIMEOUT`` seconds more, so idle sockets do not keep their
places forever.  Nothing a client sends can stop the server or slow the engine much.

Clients coming and going are logged at debug level only (the library's own "connection
open" and "connection closed" lines too); every other line a client can cause is logged
at most once every ``REPORT_EVERY`` seconds (:class:`Throttled`), with a count of the
ones held back.
"""

from __future__ import annotations

import json
import logging
import select
import threading
from collections import deque
from collections.abc import Callable
from http import HTTPStatus

from websockets.frames import CloseCode, Frame, Opcode
from websockets.protocol import State
from websockets.server import ServerProtocol

from ..clock import SYSTEM, Clock
from ..errors import describe
from . import encode
from .server import WEBSOCKET, OscServer

log = logging.getLogger("tonegraph.oscquery")

PUSH_RATE = 30.0       # [1/s] how often listened values are checked and sent
MAX_SOCKETS = 8        # WebSocket clients at once
MAX_PATHS = 1024       # listened paths per client
MAX_MESSAGE = 65536    # [bytes] the longest message a client may send
SEND_TIMEOUT = 1.0     # [s] a client must take a message within this
PUSH_BYTES = 262144    # [bytes] sent to all clients per push at most; the rest waits
POLL = 0.25            # [s] how often an idle connection looks for the server's stop
PING_IDLE = 20.0       # [s] a client that sends no frame this long is pinged
PONG_TIMEOUT = 10.0    # [s] and closed if it then sends nothing this long
MAX_REPLIES = 256      # OSC answers waiting for a client (the oldest go first when full)
REPORT_EVERY = 10.0    # [s] between two log lines of one kind of trouble


class Throttled:
    """One kind of trouble a peer can cause, logged at most once every ``REPORT_EVERY``
    seconds; the times in between are counted into the next line.  Safe to share
    between threads."""

    def __init__(self, logger: logging.Logger, level: int, clock: Clock = SYSTEM) -> None:
        self.logger, self.level, self.clock = logger, level, clock
        self._lock = threading.Lock()
        self._next = -float("inf")     # clock time from which the next line may go out
        self._held = 0                 # times not logged since the last line

    def __call__(self, msg: str, *args) -> None:
        now = self.clock.now()
        with self._lock:
            if now < self._next:
                self._held += 1
                return
            held, self._held, self._next = self._held, 0, now + REPORT_EVERY
        if held:
            msg += f" ({held} more like it since the last report)"
        self.logger.log(self.level, msg, *args)


class _Quiet(logging.LoggerAdapter):
    """The websockets library's own lines ("connection open", "connection closed",
    "connection rejected") at debug level: a peer makes as many as it opens connections."""

    def log(self, level, msg, *args, **kwargs) -> None:
        super().log(logging.DEBUG, msg, *args, **kwargs)


_LIBRARY_LOG = _Quiet(logging.getLogger("websockets.server"))


def osc_args(leaf: dict) -> list[encode.Arg]:
    """A namespace leaf's value as OSC arguments (its TYPE string, one tag per value)."""
    args: list[encode.Arg] = []
    for tag, value in zip(leaf["TYPE"], leaf["VALUE"]):
        if tag == "T":
            args.append(("T" if value else "F", bool(value)))
        else:
            args.append((tag, value))
    return args


class Client:
    """One WebSocket connection: what it listens to, and what it was last sent."""

    def __init__(self, sock, proto: ServerProtocol, clock: Clock = SYSTEM) -> None:
        self.sock, self.proto, self.clock = sock, proto, clock
        self.lock = threading.Lock()          # the protocol and the socket's writing side
        self.paths: dict[str, tuple | None] = {}   # path -> (TYPE, VALUE) last sent
        self.cursor = 0                        # where the next push starts among the paths
        self.alive = True
        self.heard = clock.now()               # when the client last sent a whole frame
        self.pinged: float | None = None       # when it was pinged and has not answered since
        self.osc: OscServer | None = None      # takes the OSC packets it sends, if any does
        self.sender: tuple = ()                # its address as the OSC listener knows it
        self.replies: deque[bytes] = deque(maxlen=MAX_REPLIES)   # OSC answers to send it

    def _flush(self) -> None:
        data = b"".join(self.proto.data_to_send())
        if data:
            self.sock.sendall(data)

    def send(self, binary: bytes | None = None, text: str | None = None) -> None:
        with self.lock:
            self._send(binary, text)

    def sent(self, path: str, value: tuple, packet: bytes) -> None:
        """Send a listened value and remember it, unless the path was ignored meanwhile."""
        with self.lock:
            if path in self.paths:
                self._send(packet, None)
                self.paths[path] = value

    def _send(self, binary: bytes | None, text: str | None) -> None:
        if not self.alive or self.proto.state is not State.OPEN:
            return
        try:
            if binary is not None:
                self.proto.send_binary(binary)
            else:
                self.proto.send_text(text.encode())
            self._flush()
        except OSError:
            self.alive = False             # gone, or too slow to take its messages

    def command(self, text: bytes) -> None:
        try:
            msg = json.loads(text)
            what, path = msg["COMMAND"], msg["DATA"]
        except (ValueError, TypeError, KeyError):
            return
        if not isinstance(path, str) or not path.startswith("/") or len(path) > 1024:
            return
        path = "/" + "/".join(p for p in path.split("/") if p)   # one spelling per leaf
        with self.lock:
            if what == "LISTEN" and (path in self.paths or len(self.paths) < MAX_PATHS):
                self.paths[path] = None            # sent at the next push
            elif what == "IGNORE":
                self.paths.pop(path, None)

    def run(self, stopping: threading.Event) -> None:
        """Read the client's frames until it closes, goes away, leaves a ping
        unanswered or the server stops."""
        while self.alive and not stopping.is_set():
            now = self.clock.now()
            if self.pinged is None and now - self.heard >= PING_IDLE:
                self.pinged = now
                with self.lock:
                    if self.proto.state is State.OPEN:
                        self.proto.send_ping(b"tonegraph")
                    try:
                        self._flush()
                    except OSError:
                        break
            elif self.pinged is not None and now - self.pinged >= PONG_TIMEOUT:
                with self.lock:
                    self.proto.fail(CloseCode.INTERNAL_ERROR, "keepalive ping timeout")
                    try:
                        self._flush()
                    except OSError:
                        pass
                break
            readable, _, _ = select.select([self.sock], [], [], POLL)
            if not readable:
                continue
            try:
                data = self.sock.recv(65536)
            except OSError:
                break
            with self.lock:
                if data:
                    self.proto.receive_data(data)
                else:
                    self.proto.receive_eof()
                events = self.proto.events_received()
                try:
                    self._flush()              # pongs, the closing handshake
                except OSError:
                    break
            if events:                         # a pong, or anything else: still there
                self.heard, self.pinged = self.clock.now(), None
            for event in events:
                if not isinstance(event, Frame):
                    continue
                if event.opcode is Opcode.TEXT:
                    self.command(event.data)
                elif event.opcode is Opcode.BINARY and self.osc is not None:
                    self.osc.handle(event.data, self.sender)
            if not data or self.proto.state is State.CLOSED or self.proto.close_expected():
                break
        with self.lock:
            if self.alive and self.proto.state is State.OPEN:
                self.proto.send_close()
                try:
                    self._flush()
                except OSError:
                    pass
            self.alive = False


class Hub:
    """The WebSocket clients of one OSCQuery server and the thread that pushes to them."""

    def __init__(self, leaf_at: Callable[[dict, str], dict | None],
                 nodes: Callable[[], dict], clock: Clock = SYSTEM,
                 osc: OscServer | None = None) -> None:
        """``osc``: the engine's OSC listener, which takes what clients send as OSC."""
        self.leaf_at, self.nodes, self.clock, self.osc = leaf_at, nodes, clock, osc
        self.clients: set[Client] = set()
        self.slots = 0                 # connections holding a place, answered or not
        self.lock = threading.Lock()
        self.stopping = threading.Event()
        self._pusher: threading.Thread | None = None
        self._shape: tuple | None = None
        self._turn = 0
        self._unsendable = Throttled(log, logging.WARNING, clock)
        self._failing = Throttled(log, logging.ERROR, clock)

    def serve(self, handler, most: int | None = None) -> None:
        """Take over an HTTP request that asks for a WebSocket (on the handler's thread);
        ``most``: how many listeners the HTTP server has places for (MAX_SOCKETS at most)."""
        most = MAX_SOCKETS if most is None else min(most, MAX_SOCKETS)
        proto = ServerProtocol(max_size=MAX_MESSAGE, logger=_LIBRARY_LOG)
        head = handler.raw_requestline + b"".join(
            f"{k}: {v}\r\n".encode("latin-1", "replace") for k, v in handler.headers.items())
        proto.receive_data(head + b"\r\n")
        events = proto.events_received()
        sock = handler.connection
        handler.close_connection = True
        if not events:                               # not a request websockets can read
            sock.sendall(b"".join(proto.data_to_send()))
            return
        with self.lock:                   # a slot is taken before the answer, so no
            full = self.slots >= most     # burst of handshakes gets past the limit
            if not full:
                self.slots += 1
        try:
            if full:
                response = proto.reject(HTTPStatus.SERVICE_UNAVAILABLE,
                                        f"{most} listeners already\n")
            else:
                response = proto.accept(events[0])
            proto.send_response(response)
            sock.settimeout(SEND_TIMEOUT)
            sock.sendall(b"".join(proto.data_to_send()))
            if full or response.status_code != HTTPStatus.SWITCHING_PROTOCOLS:
                return
            client = Client(sock, proto, self.clock)
            peer = handler.client_address[:2]
            log.debug("OSCQuery: listener %s:%s opened", *peer)
            if self.osc is not None:
                client.osc, client.sender = self.osc, (*peer, WEBSOCKET)
                self.osc.streams[client.sender] = client.replies.append
            with self.lock:
                self.clients.add(client)
                if self._pusher is None:
                    self._pusher = threading.Thread(target=self._push_forever, daemon=True,
                                                    name="oscquery-listen")
                    self._pusher.start()
            try:
                client.run(self.stopping)
            finally:
                with self.lock:
                    self.clients.discard(client)
                if self.osc is not None:
                    self.osc.streams.pop(client.sender, None)
                log.debug("OSCQuery: listener %s:%s closed", *peer)
        finally:
            if not full:
                with self.lock:
                    self.slots -= 1

    def _push_forever(self) -> None:
        while not self.stopping.wait(1.0 / PUSH_RATE):
            try:
                self.push()
            except Exception as exc:  # a node that cannot describe itself: say so, go on
                self._failing("OSCQuery listen: %s", describe(exc))
                self.stopping.wait(1.0)

    def push(self) -> None:
        """Send the engine's OSC answers, every listened value that changed since it
        was last sent, and PATH_CHANGED when the running nodes changed."""
        with self.lock:
            clients = list(self.clients)
        if not clients:
            self._shape = None        # the next client is told nothing about earlier saves
            return
        nodes = self.nodes()
        shape = tuple((nid, node.type_name) for nid, node in nodes.items())
        if self._shape is not None and shape != self._shape:
            note = json.dumps({"COMMAND": "PATH_CHANGED", "DATA": "/tonegraph"})
            for client in clients:
                client.send(text=note)
        self._shape = shape
        budget = PUSH_BYTES
        turn = self._turn % len(clients)
        self._turn += 1
        for client in clients[turn:] + clients[:turn]:       # who goes first takes turns
            while client.replies and budget > 0:             # the engine's OSC answers
                packet = client.replies.popleft()
                client.send(binary=packet)
                budget -= len(packet)
            with client.lock:
                listened = list(client.paths.items())
            start = client.cursor % len(listened) if listened else 0
            for j, (path, last) in enumerate(listened[start:] + listened[:start]):
                if budget <= 0:                              # the rest waits for the next push,
                    client.cursor = start + j                # and goes first then
                    return
                try:
                    leaf = self.leaf_at(nodes, path)
                    if leaf is None:
                        continue
                    now = (leaf["TYPE"], leaf["VALUE"])
                    if now == last:
                        continue
                    packet = encode.message(path, osc_args(leaf))
                except Exception as exc:  # a value OSC cannot carry: that path goes quiet
                    self._unsendable("OSCQuery listen: %s: %s; not sent again", path[:200],
                                     describe(exc))
                    with client.lock:
                        client.paths.pop(path, None)
                    continue
                client.sent(path, now, packet)
                budget -= len(packet)

    def stop(self) -> None:
        self.stopping.set()
        if self._pusher is not None:
            self._pusher.join(timeout=2)
