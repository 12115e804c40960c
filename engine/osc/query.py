"""OSCQuery (Vidvox's OSCQueryProposal): the running patch's params as an HTTP JSON tree.

TouchOSC, Chataigne and ossia score discover every param under
``/tonegraph/<node>/<param>`` with its TYPE, VALUE, RANGE, DESCRIPTION and ACCESS, and
then set them over OSC at the engine's UDP port.  ``?HOST_INFO`` tells them that port.
Output files are listed read-only (ACCESS 1): OSC never sets them.  Each node's current
outputs (numbers, vectors, text) are listed read-only too, under
``/tonegraph/<node>/outputs/<port>``.  Every leaf has a TYPE and a VALUE of that type (a
param with no value yet reads as an empty string), as strict clients such as
python-oscquery require; a list param that is empty is left out.  A client that opens
a WebSocket on the same port may ``LISTEN`` to any leaf and is sent its changes
(:mod:`engine.osc.listen`).  ``HOST_INFO``'s
``OSC_IP`` is the address the client reached, when the OSC port listens on every
interface.

The server answers each client on a thread of its own, at most ``MAX_CLIENTS`` at once
(more are turned away at once), and gives up on an HTTP client that sends nothing for
``READ_TIMEOUT`` seconds, so half-open connections cannot pile threads up (a WebSocket
listener stays until it closes: see :mod:`engine.osc.listen` for its own limits); a
client that goes away mid-answer is not an error.
"""

from __future__ import annotations

import json
import logging
import threading
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlparse

from ..errors import describe
from ..params import Param
from .listen import Hub

log = logging.getLogger("tonegraph.oscquery")

MAX_CLIENTS = 16     # connections served at once
READ_TIMEOUT = 5.0   # [s] a client may stay silent before it is dropped

TYPES = {"float": "f", "int": "i", "bool": "T", "choice": "s", "str": "s", "path": "s",
         "outpath": "s", "expr": "s"}


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
    node = {"FULL_PATH": path, "TYPE": typ, "VALUE": vals, "ACCESS": 1 if p.kind == "outpath" else 3,
            "DESCRIPTION": p.description + (f" [{p.unit}]" if p.unit else "")}
    if p.kind == "choice":
        node["RANGE"] = [{"VALS": list(p.choices)}]
    elif p.min is not None or p.max is not None:
        rng = {k: v for k, v in (("MIN", p.min), ("MAX", p.max)) if v is not None}
        node["RANGE"] = [rng] * len(typ)
    if p.unit:
        node["UNIT"] = [p.unit] * len(typ)
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


class _Server(ThreadingHTTPServer):
    """A thread per client, at most MAX_CLIENTS of them; quiet about clients that leave."""

    daemon_threads = True
    request_queue_size = 128   # a burst of connections waits to be accepted, not refused

    def __init__(self, *args, **kw) -> None:
        super().__init__(*args, **kw)
        self.slots = threading.BoundedSemaphore(MAX_CLIENTS)

    def process_request(self, request, client_address) -> None:
        if not self.slots.acquire(blocking=False):
            self.shutdown_request(request)     # busy: this client may try again
            return
        try:
            super().process_request(request, client_address)
        except Exception:
            self.slots.release()
            raise

    def process_request_thread(self, request, client_address) -> None:
        try:
            super().process_request_thread(request, client_address)
        finally:
            self.slots.release()

    def handle_error(self, request, client_address) -> None:
        log.debug("OSCQuery client %s:%s: connection ended early", *client_address[:2])


class OscQueryServer:
    def __init__(self, nodes: Callable[[], dict], name: str, osc_host: str, osc_port: int,
                 host: str = "127.0.0.1", port: int = 0) -> None:
        """``nodes`` gives the running graph's nodes (id -> node) when asked."""
        self.nodes, self.name, self.osc_host, self.osc_port = nodes, name, osc_host, osc_port
        self.host, self.requested_port, self.port = host, port, 0
        self._httpd: ThreadingHTTPServer | None = None
        self.hub = Hub(leaf_at, nodes)

    def host_info(self, reached: str | None = None) -> dict:
        """``reached``: the local address the asking client connected to, given as
        OSC_IP when the OSC port listens on every interface (0.0.0.0 is no address
        a client can send to)."""
        ip = self.osc_host
        if ip in ("0.0.0.0", "::", "") and reached:
            ip = reached
        return {"NAME": f"tonegraph {self.name}", "OSC_IP": ip, "OSC_PORT": self.osc_port,
                "OSC_TRANSPORT": "UDP",
                "EXTENSIONS": {"ACCESS": True, "VALUE": True, "RANGE": True, "DESCRIPTION": True,
                               "TYPE": True, "UNIT": True, "LISTEN": True, "PATH_CHANGED": True}}

    def start(self) -> None:
        server = self

        class Handler(BaseHTTPRequestHandler):
            timeout = READ_TIMEOUT

            def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
                if self.headers.get("Upgrade", "").lower() == "websocket":
                    return server.hub.serve(self)
                try:
                    url = urlparse(self.path)
                    if url.query == "HOST_INFO":
                        return self._json(server.host_info(self.connection.getsockname()[0]))
                    node = find(tree(server.nodes()), url.path)
                except Exception as exc:  # a node that cannot describe itself: one line, a 500
                    log.error("OSCQuery: cannot answer %s: %s", self.path[:200], describe(exc))
                    return self._json({"error": "the namespace could not be read"}, 500)
                if node is None:
                    return self._json({"error": f"no such path {url.path[:200]}"}, 404)
                if url.query and url.query in node:
                    return self._json({url.query: node[url.query]})
                return self._json(node)

            def _json(self, body: dict, status: int = 200) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def log_message(self, fmt, *args) -> None:  # quiet: no line per request
                pass

        self._httpd = _Server((self.host, self.requested_port), Handler)
        self.port = self._httpd.server_address[1]
        threading.Thread(target=self._httpd.serve_forever, daemon=True, name="oscquery").start()

    def stop(self) -> None:
        self.hub.stop()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
