"""OSCQuery (Vidvox's OSCQueryProposal): the running patch's params as an HTTP JSON tree.

TouchOSC, Chataigne and ossia score discover every param under
``/tonegraph/<node>/<param>`` with its TYPE, VALUE, RANGE, DESCRIPTION and ACCESS, and
then set them over OSC at the engine's UDP port.  ``?HOST_INFO`` tells them that port.
Output files and the params that say where output goes (hosts, ports, universes)
are listed read-only (ACCESS 1): OSC never sets them.  Each node's current
outputs (numbers, vectors, text) are listed read-only too, under
``/tonegraph/<node>/outputs/<port>``.  Every leaf has a TYPE and a VALUE of that type (a
param with no value yet reads as an empty string), as strict clients such as
python-oscquery require; a list param that is empty is left out.  A client that opens
a WebSocket on the same port may ``LISTEN`` to any leaf and is sent its changes, and
may send OSC packets as binary frames, taken as the engine's UDP port takes them
(:mod:`engine.osc.listen`).  ``HOST_INFO``'s
``OSC_IP`` is the address the client reached, when the OSC port listens on every
interface.

Answers follow the proposal (Vidvox's OSCQueryProposal):

* ``GET /path``: the node at that path with all below it; 404 where there is none.
* ``GET /path?ATTR``: ``{"ATTR": value}`` alone, for FULL_PATH, CONTENTS, TYPE, ACCESS,
  VALUE, RANGE, DESCRIPTION and UNIT; ``{}`` when the node has no such attribute (a
  container's TYPE, a param's RANGE when it has none).  ``?VALUE`` of a node with no
  value to read (ACCESS 0: the root, a node, ``outputs``) is answered 204, no content.
  Any other name, the proposal's optional attributes this server does not keep (TAGS,
  EXTENDED_TYPE, CRITICAL, CLIPMODE, OVERLOADS, HTML) included, is answered 400.
* ``GET /any/path?HOST_INFO``: the HOST_INFO object alone, whose ``EXTENSIONS`` name
  what is kept (ACCESS, VALUE, RANGE, DESCRIPTION, UNIT, LISTEN, PATH_CHANGED).

A switch (a bool param) has the TYPE ``T`` and a VALUE of JSON ``true`` or ``false``; an
OSC ``T`` or ``F`` sets it.  UNIT uses the proposal's names (``time.hz``,
``time.second``, ``gain.db`` ...).

Limits, so that no client (nor a few hundred) can keep the others out:

* A request's line and headers must all arrive within ``HEAD_TIMEOUT`` seconds of its
  connection, however the bytes trickle in, and come to at most ``MAX_HEAD`` bytes;
  otherwise the connection is closed (408 or 431).  Heads are read by one thread for all
  connections, so a client still sending one holds no thread; at most ``MAX_PENDING``
  do at once, and a new connection beyond that closes the oldest of them (a client that
  sends its request at once is read long before it is the oldest).
* One address holds at most ``MAX_PER_SOURCE`` connections at once (still sending its
  head, being answered or listening on a WebSocket).  A new one beyond that closes the
  oldest of that address's connections still sending a head, or, when it has none, is
  answered 503 and closed at once.  Loopback is one address: every local app shares its
  allowance, and a prompt GET still gets in beside local tricklers.
* A request whose head is in is answered on a thread of its own, at most
  ``MAX_CLIENTS`` at once (more are answered 503).  WebSocket listeners may take all but
  ``RESERVED`` of them (and ``listen.MAX_SOCKETS`` at most), so a plain GET always finds
  a place; an idle listener is pinged and closed if it does not answer (see
  :mod:`engine.osc.listen`).  An answer that the client does not take within
  ``SEND_TIMEOUT`` is abandoned.

A client that goes away mid-answer is not an error.  Each kind of trouble a client can
cause is logged at most once every ``listen.REPORT_EVERY`` seconds, with a count of the
times in between; the deadlines run on the injected clock.
"""

from __future__ import annotations

import contextlib
import io
import json
import logging
import queue
import re
import selectors
import socket
import threading
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from socketserver import ThreadingMixIn
from urllib.parse import unquote, urlparse

from ..clock import SYSTEM, Clock
from ..errors import describe
from ..params import Param, shown
from .listen import POLL, Hub, Throttled
from .server import OscServer

log = logging.getLogger("tonegraph.oscquery")

MAX_CLIENTS = 16      # requests answered at once, each on a thread (listeners included)
RESERVED = 2          # of them kept for requests that are not WebSocket upgrades
HEAD_TIMEOUT = 5.0    # [s] from connecting to the end of the request's headers
MAX_HEAD = 16384      # [bytes] the longest request line and headers together
MAX_PENDING = 64      # connections still sending their heads at once
MAX_PER_SOURCE = 12   # connections from one address at once
SEND_TIMEOUT = 5.0    # [s] a client must take each part of an answer within this

_END = re.compile(rb"\r?\n\r?\n")    # the blank line that ends a request's head


def _status(code: int, reason: str) -> bytes:
    return f"HTTP/1.0 {code} {reason}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n".encode()


BUSY = _status(503, "Service Unavailable")
LATE = _status(408, "Request Timeout")
TOO_LARGE = _status(431, "Request Header Fields Too Large")

#: OSC type tags of param kinds.  A switch is "T" whatever its value: the proposal takes
#: T and F as one type (either sets it) whose VALUE is a JSON true or false.
TYPES = {"float": "f", "int": "i", "bool": "T", "choice": "s", "str": "s", "path": "s",
         "outpath": "s", "expr": "s"}

#: The proposal's names (its units.md) for the units params declare; any other unit is
#: given as the param spells it.
UNITS = {"s": "time.second", "ms": "time.ms", "Hz": "time.hz", "samples": "time.samples",
         "BPM": "time.bpm", "dB": "gain.db", "px": "distance.pixels", "deg": "angle.degree"}

#: Attributes a query may name.  The proposal names others (TAGS, EXTENDED_TYPE,
#: CRITICAL, CLIPMODE, OVERLOADS, HTML), which this server does not keep: a query for
#: them, like one for a name the proposal does not know, is answered 400.
ATTRIBUTES = ("FULL_PATH", "CONTENTS", "TYPE", "HOST_INFO", "ACCESS", "VALUE", "RANGE",
              "DESCRIPTION", "UNIT")
#: HOST_INFO's EXTENSIONS: the optional attributes kept, and the WebSocket's commands.
EXTENSIONS = {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True, "UNIT": True,
              "LISTEN": True, "PATH_CHANGED": True}


#: Longest vector output listed (a spectrum of a few hundred bands is fine).
MAX_VECTOR = 1024


def _leaf(path: str, p: Param, value) -> dict | None:
    if p.kind == "floats":
        vals = [float(v) for v in (value or [])]
        typ = "f" * len(vals)
        if not vals:
            return None      # an empty list has no OSC type to set it with
    elif p.kind in TYPES:
        typ = TYPES[p.kind]
        if value is None:
            if typ != "s":
                return None  # unset ('the default'): nothing to show
            value = ""
        vals = [value]
    else:
        return None  # mappings and lists are set in the patch, not over OSC
    node = {"FULL_PATH": path, "TYPE": typ, "VALUE": vals, "ACCESS": 1 if p.kind == "outpath" or p.route else 3,
            "DESCRIPTION": p.description + (f" [{p.unit}]" if p.unit else "")}
    if p.kind == "choice":
        node["RANGE"] = [{"VALS": list(p.choices)}]
    elif p.min is not None or p.max is not None:
        rng = {k: v for k, v in (("MIN", p.min), ("MAX", p.max)) if v is not None}
        node["RANGE"] = [rng] * len(typ)
    if p.unit:
        node["UNIT"] = [UNITS.get(p.unit, p.unit)] * len(typ)
    return node


def _output(path: str, port, value) -> dict | None:
    """A read-only leaf for an output's current value (numbers, vectors, text)."""
    kind = port.type.value
    try:
        if kind == "number" and value is not None:
            vals = [float(value)]
        elif kind == "vector" and value is not None and len(value):
            vals = [float(v) for v in list(value)[:MAX_VECTOR]]
        elif kind == "text" and value is not None:
            vals = [str(value)]
        else:
            return None
    except (TypeError, ValueError):
        return None
    return {"FULL_PATH": path, "TYPE": ("s" if kind == "text" else "f" * len(vals)), "VALUE": vals,
            "ACCESS": 1, "DESCRIPTION": f"output ({kind}): {port.description}"}


def tree(nodes: dict) -> dict:
    """The namespace of a running graph: ``nodes`` maps id to node instance."""
    contents = {}
    for nid, node in nodes.items():
        params = {}
        for name, decl in node.params.items():
            leaf = _leaf(f"/tonegraph/{nid}/{name}", decl, getattr(node.p, name))
            if leaf is not None:
                params[name] = leaf
        outputs = {}
        for name, port in type(node).outputs_for(vars(node.p)).items():
            leaf = _output(f"/tonegraph/{nid}/outputs/{name}", port, node.out.get(name))
            if leaf is not None:
                outputs[name] = leaf
        if outputs and "outputs" not in params:
            params["outputs"] = {"FULL_PATH": f"/tonegraph/{nid}/outputs", "ACCESS": 0,
                                 "DESCRIPTION": "the node's current outputs", "CONTENTS": outputs}
        contents[nid] = {"FULL_PATH": f"/tonegraph/{nid}", "DESCRIPTION": node.type_name,
                         "ACCESS": 0, "CONTENTS": params}
    return {"FULL_PATH": "/", "ACCESS": 0, "CONTENTS": {
        "tonegraph": {"FULL_PATH": "/tonegraph", "ACCESS": 0, "CONTENTS": contents}}}


def leaf_at(nodes: dict, path: str) -> dict | None:
    """The one leaf at ``path`` (a param or an output), as :func:`tree` would list it,
    without building the rest of the tree."""
    parts = [p for p in path.split("/") if p]
    if len(parts) < 3 or parts[0] != "tonegraph" or (node := nodes.get(parts[1])) is None:
        return None
    if len(parts) == 3 and parts[2] in node.params:
        return _leaf(path, node.params[parts[2]], getattr(node.p, parts[2]))
    if len(parts) == 4 and parts[2] == "outputs":
        port = type(node).outputs_for(vars(node.p)).get(parts[3])
        return _output(path, port, node.out.get(parts[3])) if port is not None else None
    return None


def find(root: dict, path: str) -> dict | None:
    node = root
    for part in [p for p in path.split("/") if p]:
        node = node.get("CONTENTS", {}).get(part)
        if node is None:
            return None
    return node


def answer(nodes: dict, target: str, host_info: Callable[[], dict]) -> tuple[int, dict | None]:
    """The status and JSON body (None: no body) of ``GET target`` (see the module
    docstring); ``host_info`` gives HOST_INFO when it is asked for."""
    url = urlparse(target)
    names = [unquote(part.split("=", 1)[0]) for part in url.query.split("&") if part]
    unknown = next((n for n in names if n not in ATTRIBUTES), None)
    if unknown is not None:
        return 400, {"error": f"no attribute {shown(unknown, 40)} is kept here "
                              f"(there are {', '.join(ATTRIBUTES)})"}
    if "HOST_INFO" in names:             # whatever the path
        return 200, host_info()
    path = unquote(url.path)
    node = leaf_at(nodes, path) or find(tree(nodes), path)
    if node is None:
        return 404, {"error": f"no such path {shown(path, 200)}"}
    if not names:
        return 200, node
    if "VALUE" in names and not node.get("ACCESS", 3) & 1:
        return 204, None                 # no value to read
    return 200, {name: node[name] for name in names if name in node}


@dataclass
class _Pending:
    """A connection still sending its request's head."""

    address: tuple
    deadline: float                  # clock time by which the head must be in
    head: bytearray = field(default_factory=bytearray)


class _Server(ThreadingHTTPServer):
    """Heads gathered on one thread, answers on a thread each (see the module docstring);
    quiet about clients that leave."""

    daemon_threads = True
    request_queue_size = 128   # a burst of connections waits to be accepted, not refused

    def __init__(self, address, handler, clock: Clock) -> None:
        super().__init__(address, handler)
        self.clock = clock
        self.lock = threading.Lock()     # sources and busy
        self.sources: Counter = Counter()      # address -> connections open
        self.busy = 0                          # requests being answered
        self.heads: dict[socket.socket, bytes] = {}   # whole heads for the answering threads
        self._pending: dict[socket.socket, _Pending] = {}   # oldest first (gatherer only)
        self._arrivals: queue.SimpleQueue = queue.SimpleQueue()
        self._wake_r, self._wake_w = socket.socketpair()
        self._wake_w.setblocking(False)
        self._stopping = threading.Event()
        self.report = {kind: Throttled(log, level, clock) for kind, level in (
            ("late", logging.INFO), ("large", logging.INFO), ("crowded", logging.WARNING),
            ("evicted", logging.WARNING), ("refused", logging.WARNING), ("busy", logging.WARNING),
            ("namespace", logging.ERROR), ("fault", logging.ERROR))}
        self._gatherer = threading.Thread(target=self._gather, daemon=True, name="oscquery-heads")
        self._gatherer.start()

    def connections(self) -> int:
        with self.lock:
            return sum(self.sources.values())

    # -- the accepting thread hands each connection to the gatherer ---------------------

    def process_request(self, request, client_address) -> None:
        self._arrivals.put((request, client_address))
        self._wake()

    def _wake(self) -> None:
        try:
            self._wake_w.send(b"\0")
        except OSError:              # full: the gatherer has been woken already
            pass

    # -- the gatherer: heads, deadlines, caps -------------------------------------------

    def _gather(self) -> None:
        sel = selectors.DefaultSelector()
        sel.register(self._wake_r, selectors.EVENT_READ)
        try:
            while not self._stopping.is_set():
                try:
                    self._gather_once(sel)
                except Exception as exc:     # never seen; the server must go on all the same
                    self.report["fault"]("OSCQuery: %s", describe(exc))
                    self._stopping.wait(POLL)
        finally:
            for sock in list(self._pending):
                self._drop(sel, sock)
            while not self._arrivals.empty():
                self._arrivals.get_nowait()[0].close()
            sel.close()

    def _gather_once(self, sel) -> None:
        """Read what has come, take new connections, close those whose heads are late."""
        wait = POLL
        if self._pending:
            oldest = next(iter(self._pending.values()))
            wait = min(POLL, max(0.0, oldest.deadline - self.clock.now()))
        for key, _ in sel.select(wait):
            if key.fileobj is self._wake_r:
                self._wake_r.recv(4096)
            else:
                self._guarded(self._read, sel, key.fileobj)
        while True:
            try:
                sock, address = self._arrivals.get_nowait()
            except queue.Empty:
                break
            self._guarded(self._arrive, sel, sock, address)
        now = self.clock.now()
        while self._pending:
            sock, pending = next(iter(self._pending.items()))
            if pending.deadline > now:
                break
            self._drop(sel, sock, LATE)
            self.report["late"]("OSCQuery: closed %s:%s, whose request was not in within %g s",
                                *pending.address[:2], HEAD_TIMEOUT)

    def _guarded(self, step, sel, sock, *args) -> None:
        """One connection's step; whatever goes wrong ends that connection only."""
        try:
            step(sel, sock, *args)
        except Exception as exc:
            self.report["fault"]("OSCQuery: dropped a connection: %s", describe(exc))
            if sock in self._pending:
                self._drop(sel, sock)

    def _arrive(self, sel, sock: socket.socket, address: tuple) -> None:
        source = address[0]
        if not self._admit(source):
            mine = next((s for s, p in self._pending.items() if p.address[0] == source), None)
            if mine is None:             # all its connections are answered or listening
                _refuse(sock, BUSY)
                self.report["refused"]("OSCQuery: turned away %s:%s, which has %d "
                                       "connections open already", *address[:2], MAX_PER_SOURCE)
                return
            self._evict(sel, mine, "crowded")
            self._admit(source)
        elif len(self._pending) >= MAX_PENDING:
            self._evict(sel, next(iter(self._pending)), "evicted")
        try:
            sock.setblocking(False)
            sel.register(sock, selectors.EVENT_READ)
        except (OSError, ValueError):    # gone already
            self._release(source)
            sock.close()
            return
        self._pending[sock] = _Pending(address, self.clock.now() + HEAD_TIMEOUT)

    def _admit(self, source: str) -> bool:
        """Count one more connection from ``source``, if it has room for one."""
        with self.lock:
            if self.sources[source] >= MAX_PER_SOURCE:
                return False
            self.sources[source] += 1
            return True

    def _evict(self, sel, sock: socket.socket, why: str) -> None:
        """Close the oldest connection still sending its head (of all, or of one address)
        to make room for a new one."""
        address = self._pending[sock].address
        self._drop(sel, sock, LATE)
        most = MAX_PENDING if why == "evicted" else MAX_PER_SOURCE
        self.report[why]("OSCQuery: closed %s:%s, the oldest of %d connections still sending "
                         "requests%s, to make room", *address[:2], most,
                         "" if why == "evicted" else " from one address")

    def _read(self, sel, sock: socket.socket) -> None:
        pending = self._pending[sock]
        try:
            data = sock.recv(MAX_HEAD)
        except (BlockingIOError, InterruptedError):
            return
        except OSError:
            data = b""
        if not data:                     # gone before its request was in
            return self._drop(sel, sock)
        seen = len(pending.head)
        pending.head += data
        end = _END.search(pending.head, max(0, seen - 3))
        if end is None:
            if len(pending.head) > MAX_HEAD:
                self._drop(sel, sock, TOO_LARGE)
                self.report["large"]("OSCQuery: closed %s:%s, whose request head passed %d "
                                     "bytes", *pending.address[:2], MAX_HEAD)
            return
        sel.unregister(sock)
        del self._pending[sock]
        self._answer(sock, pending.address, bytes(pending.head[:end.end()]))

    def _answer(self, sock: socket.socket, address: tuple, head: bytes) -> None:
        """A thread for a request whose head is in, if one of MAX_CLIENTS is free."""
        with self.lock:
            busy = self.busy >= MAX_CLIENTS
            if not busy:
                self.busy += 1
        if busy:
            self._release(address[0])
            _refuse(sock, BUSY)
            self.report["busy"]("OSCQuery: turned away %s:%s: all %d places are busy",
                                *address[:2], MAX_CLIENTS)
            return
        sock.setblocking(True)
        self.heads[sock] = head
        try:
            ThreadingMixIn.process_request(self, sock, address)
        except Exception:                # no thread to be had
            self.heads.pop(sock, None)
            with self.lock:
                self.busy -= 1
            self._release(address[0])
            _refuse(sock, BUSY)
            raise

    def _drop(self, sel, sock: socket.socket, answer: bytes = b"") -> None:
        with contextlib.suppress(KeyError, ValueError):
            sel.unregister(sock)
        self._release(self._pending.pop(sock).address[0])
        _refuse(sock, answer)

    def _release(self, source: str) -> None:
        with self.lock:
            self.sources[source] -= 1
            if self.sources[source] <= 0:
                del self.sources[source]

    # -- answering threads ---------------------------------------------------------------

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            with self.lock:
                self.busy -= 1
            self._release(client_address[0])

    def handle_error(self, request, client_address) -> None:
        log.debug("OSCQuery client %s:%s: connection ended early", *client_address[:2])

    def server_close(self) -> None:
        self._stopping.set()
        self._wake()
        self._gatherer.join(timeout=2)
        super().server_close()
        self._wake_r.close()
        self._wake_w.close()


def _refuse(sock: socket.socket, answer: bytes) -> None:
    """Answer ``answer`` (if there is room for it at once) and close."""
    sock.setblocking(False)
    try:
        sock.recv(MAX_HEAD)              # what was sent, so that closing sends no reset
    except OSError:
        pass
    try:
        if answer:
            sock.send(answer)
    except OSError:
        pass
    sock.close()


class OscQueryServer:
    def __init__(self, nodes: Callable[[], dict], name: str, osc_host: str, osc_port: int,
                 host: str = "127.0.0.1", port: int = 0, clock: Clock = SYSTEM,
                 osc: OscServer | None = None) -> None:
        """``nodes`` gives the running graph's nodes (id -> node) when asked; ``clock``
        times the deadlines on clients; ``osc``, the engine's OSC listener, takes the
        OSC packets WebSocket clients send (without it they are ignored)."""
        self.nodes, self.name, self.osc_host, self.osc_port = nodes, name, osc_host, osc_port
        self.host, self.requested_port, self.port = host, port, 0
        self.clock = clock
        self._httpd: _Server | None = None
        self.hub = Hub(leaf_at, nodes, clock, osc)

    def host_info(self, reached: str | None = None) -> dict:
        """``reached``: the local address the asking client connected to, given as
        OSC_IP when the OSC port listens on every interface (0.0.0.0 is no address
        a client can send to)."""
        ip = self.osc_host
        if ip in ("0.0.0.0", "::", "") and reached:
            ip = reached
        return {"NAME": f"tonegraph {self.name}", "OSC_IP": ip, "OSC_PORT": self.osc_port,
                "OSC_TRANSPORT": "UDP",
                "EXTENSIONS": dict(EXTENSIONS)}

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            def setup(self) -> None:
                self.timeout = SEND_TIMEOUT
                super().setup()
                self.rfile.close()       # the head was read already, by the gatherer
                self.rfile = io.BytesIO(self.server.heads.pop(self.connection, b""))

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    return server.hub.serve(self, MAX_CLIENTS - RESERVED)
                reached = self.connection.getsockname()[0]
                try:
                    status, body = answer(server.nodes(), self.path,
                                          lambda: server.host_info(reached))
                except Exception as exc:  # a node that cannot describe itself: one line, a 500
                    self.server.report["namespace"]("OSCQuery: cannot answer %s: %s",
                                                    self.path[:200], describe(exc))
                    return self._json({"error": "the namespace could not be read"}, 500)
                if body is None:
                    self.send_response(status)
                    return self.end_headers()
                return self._json(body, status)

            def _json(self, body: dict, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args) -> None:  # quiet: no line per request
                pass

        self._httpd = _Server((self.host, self.requested_port), Handler, self.clock)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="oscquery").start()

    def connections(self) -> int:
        """Connections open now: sending their heads, being answered or listening."""
        return self._httpd.connections() if self._httpd is not None else 0

    def stop(self) -> None:
        self.hub.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
