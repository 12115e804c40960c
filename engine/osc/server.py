"""The engine's OSC listener: UDP, parsed on its own thread, handed to the engine thread.

The listener thread only parses and queues; the engine drains the queue between two
ticks, so the graph is only ever changed by the thread that runs it.  Malformed and
oversized packets are dropped and counted (and reported, at most every few seconds),
never raised: a fuzzer must not be able to stop a show.

Packets that OSCQuery clients send over their WebSocket are handed to :meth:`OscServer.handle`
too, from ``(host, port, WEBSOCKET)``: they are taken exactly as datagrams from that
host, and what is sent back to them goes through the connection (``streams``), never
over UDP, and nowhere once it has closed.
"""

from __future__ import annotations

import logging
import socket
import threading
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from .encode import decode

log = logging.getLogger("tonegraph.osc")

MAX_PACKET = 16384   # [bytes] larger datagrams are dropped as oversized
QUEUE = 10000        # messages waiting for the engine; the oldest go first when full
REPORT_EVERY = 10.0  # [s] between two reports of dropped packets
WEBSOCKET = "ws"     # the third part of a WebSocket peer's sender address


@dataclass
class Incoming:
    address: str
    args: list[Any]
    sender: tuple
    received: float
    #: [bytes] what answers to a sender that is not trusted may take (see
    #: :mod:`engine.control`): the datagram's size, shared among its messages.
    budget: int = 0


class OscServer:
    """Listens on ``host:port`` (port 0 picks a free one; see ``port`` after start)."""

    def __init__(self, host: str = "127.0.0.1", port: int = 9000, max_packet: int = MAX_PACKET) -> None:
        self.host, self.requested_port, self.max_packet = host, port, max_packet
        self.port = 0
        self.queue: deque[Incoming] = deque(maxlen=QUEUE)
        #: WebSocket peers' senders -> what takes packets sent back to them (never blocks)
        self.streams: dict[tuple, Callable[[bytes], None]] = {}
        self.received = self.malformed = self.oversized = 0
        self._reported = 0
        self._next_report = 0.0
        self._sock: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        """Bind and listen; raises OSError (address in use, ...) for the caller to report."""
        family = socket.AF_INET6 if ":" in self.host else socket.AF_INET
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.bind((self.host, self.requested_port))
        sock.settimeout(0.2)
        self._sock = sock
        self.port = sock.getsockname()[1]
        self._thread = threading.Thread(target=self._loop, daemon=True, name="osc-server")
        self._thread.start()

    def _loop(self) -> None:
        sock = self._sock
        assert sock is not None
        while not self._stop.is_set():
            try:
                data, sender = sock.recvfrom(65536)
            except socket.timeout:
                continue
            except OSError:
                if self._stop.is_set():
                    return
                continue
            self.handle(data, sender)

    def handle(self, data: bytes, sender: tuple) -> None:
        """Parse one datagram and queue its messages (public for tests and fuzzing)."""
        self.received += 1
        if len(data) > self.max_packet:
            self.oversized += 1
            self._report()
            return
        try:
            messages = decode(data)
        except ValueError:
            self.malformed += 1
            self._report()
            return
        now = time.monotonic()
        share = len(data) // max(1, len(messages))
        for _, msg in messages:
            self.queue.append(Incoming(msg.address, list(msg.params), sender, now, share))

    def _report(self) -> None:
        dropped = self.malformed + self.oversized
        if time.monotonic() >= self._next_report and dropped > self._reported:
            log.warning("OSC: dropped %d malformed and %d oversized packet(s) so far",
                        self.malformed, self.oversized)
            self._reported = dropped
            self._next_report = time.monotonic() + REPORT_EVERY

    def reply(self, sender: tuple, packet: bytes) -> None:
        """Send a packet back to whoever sent us something (never raises)."""
        if sender[2:3] == (WEBSOCKET,):
            send = self.streams.get(sender)
            if send is not None:
                send(packet)
            return
        try:
            if self._sock is not None:
                self._sock.sendto(packet, sender)
        except OSError:
            pass

    def drain(self) -> list[Incoming]:
        out = []
        q = self.queue
        for _ in range(len(q)):
            out.append(q.popleft())
        return out

    def stop(self) -> None:
        self._stop.set()
        if self._sock is not None:
            self._sock.close()
        if self._thread is not None:
            self._thread.join(timeout=2)
