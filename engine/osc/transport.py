"""Where OSC goes: one shared, non-blocking destination per (protocol, host, port).

``send`` never blocks and never raises: the clock and the graph must not wait for a
lighting desk.  UDP datagrams go out on a non-blocking socket; a TCP destination (SLIP
framing, OSC 1.1, for consoles such as ETC Eos) has its own sender thread fed through
a bounded queue, and reconnects on its own.  Host names are resolved off the hot path.
Problems are reported once per episode, and their end is reported too.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from dataclasses import dataclass, field

from .encode import slip_frame

log = logging.getLogger("tonegraph.osc")

RETRY = 1.0          # [s] between attempts to resolve or connect
TCP_QUEUE = 4096     # packets waiting for a TCP destination before new ones are dropped


@dataclass
class Stats:
    sent: int = 0
    dropped: int = 0
    problem: str = ""
    problems: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)


class Destination:
    """Base of UDP and TCP destinations."""

    def __init__(self, host: str, port: int) -> None:
        self.host, self.port = host, port
        self.name = f"{host}:{port}"
        self.stats = Stats()
        self.users = 0

    def send(self, packet: bytes) -> bool:  # pragma: no cover - overridden
        raise NotImplementedError

    def close(self) -> None:
        pass

    def _trouble(self, what: str, dropped: bool = True) -> None:
        st = self.stats
        st.dropped += dropped
        if not st.problem:
            st.problem = what
            st.problems += 1
            log.warning("OSC destination %s: %s; dropping messages until it recovers",
                        self.name, what)

    def _fine(self) -> None:
        st = self.stats
        st.sent += 1
        if st.problem:
            log.warning("OSC destination %s works again (%d messages dropped)", self.name,
                        st.dropped)
            st.problem = ""


class UdpDestination(Destination):
    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.addr: tuple | None = None
        self.sock: socket.socket | None = None
        self._resolver: threading.Thread | None = None
        self._closed = threading.Event()
        if not self._resolve():
            self._resolver = threading.Thread(target=self._keep_resolving, daemon=True,
                                              name=f"osc-resolve-{self.name}")
            self._resolver.start()

    def _resolve(self) -> bool:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_DGRAM)
        except OSError as exc:
            self._trouble(f"cannot resolve host '{self.host}' ({exc.strerror or exc})", dropped=False)
            return False
        family, _, _, _, addr = infos[0]
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self.addr, self.sock = addr, sock
        return True

    def _keep_resolving(self) -> None:
        while not self._closed.wait(RETRY):
            if self._resolve():
                return

    def send(self, packet: bytes) -> bool:
        sock = self.sock
        if sock is None:
            self._trouble(f"host '{self.host}' is not resolved yet")
            return False
        try:
            sock.sendto(packet, self.addr)
        except (BlockingIOError, InterruptedError):
            self._trouble("the network buffer is full")
            return False
        except OSError as exc:
            self._trouble(exc.strerror or str(exc))
            return False
        self._fine()
        return True

    def close(self) -> None:
        self._closed.set()
        if self.sock is not None:
            self.sock.close()


class TcpDestination(Destination):
    """OSC over TCP with SLIP framing; a sender thread owns the connection."""

    def __init__(self, host: str, port: int) -> None:
        super().__init__(host, port)
        self.queue: queue.Queue[bytes | None] = queue.Queue(TCP_QUEUE)
        self.connected = threading.Event()
        self._closed = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True, name=f"osc-tcp-{self.name}")
        self._thread.start()

    def send(self, packet: bytes) -> bool:
        if not self.connected.is_set():
            self._trouble("not connected")
            return False
        try:
            self.queue.put_nowait(slip_frame(packet))
        except queue.Full:
            self._trouble("the receiver is too slow (send queue full)")
            return False
        return True

    def _run(self) -> None:
        while not self._closed.is_set():
            try:
                sock = socket.create_connection((self.host, self.port), timeout=2.0)
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            except OSError as exc:
                self._trouble(f"cannot connect ({exc.strerror or exc})", dropped=False)
                self._closed.wait(RETRY)
                continue
            self.connected.set()
            try:
                while not self._closed.is_set():
                    try:
                        data = self.queue.get(timeout=0.2)
                    except queue.Empty:
                        continue
                    if data is None:
                        break
                    sock.sendall(data)
                    self._fine()
            except OSError as exc:
                self._trouble(f"connection lost ({exc.strerror or exc})", dropped=False)
            finally:
                self.connected.clear()
                sock.close()

    def close(self) -> None:
        self._closed.set()
        try:
            self.queue.put_nowait(None)
        except queue.Full:
            pass


class Transports:
    """The shared destinations of one engine, by (protocol, host, port)."""

    def __init__(self) -> None:
        self._dests: dict[tuple[str, str, int], Destination] = {}
        self._lock = threading.Lock()

    def acquire(self, host: str, port: int, protocol: str = "udp") -> Destination:
        key = (protocol, host, port)
        with self._lock:
            dest = self._dests.get(key)
            if dest is None:
                dest = (TcpDestination if protocol == "tcp" else UdpDestination)(host, port)
                self._dests[key] = dest
            dest.users += 1
            return dest

    def release(self, dest: Destination) -> None:
        with self._lock:
            dest.users -= 1
            if dest.users <= 0:
                self._dests = {k: d for k, d in self._dests.items() if d is not dest}
                dest.close()

    def all(self) -> list[Destination]:
        with self._lock:
            return list(self._dests.values())


def parse_destination(text: str, default_port: int | None = None) -> tuple[str, int]:
    """``host:port`` (or ``[v6]:port``) to a pair; raises ValueError with the reason."""
    host, sep, port = text.rpartition(":")
    if not sep:
        host, port = text, str(default_port) if default_port else ""
    host = host.strip("[]")
    if not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"'{text}' is not host:port")
    return host, int(port)

