"""The OSCQuery port held to the proposal (Vidvox's OSCQueryProposal README): each of
its documented request/response pairs, mapped onto a running patch's namespace, and the
rules it states for status codes, single attributes, HOST_INFO's EXTENSIONS, booleans
and raw OSC sent over the WebSocket.

The proposal's examples and what they stand for here:

* ``/`` (a two-level space): the whole namespace, containers with ``ACCESS`` 0 and
  ``CONTENTS``, methods with ``TYPE``, ``VALUE``, ``RANGE`` ...;
* ``/baz`` (a container): that container and all below it;
* ``/foo?VALUE`` and ``/baz/qux?RANGE``: that one attribute alone, ``{"ATTR": ...}``;
* ``/baz?TYPE`` (a pure container): ``{}``; ``/bazzzzz?TYPE``: 404;
* ``/foo?HOST_INFO``: the HOST_INFO object alone, whatever the path;
* ``{"COMMAND": "LISTEN"|"IGNORE", "DATA": path}`` over the WebSocket, and
  ``{"COMMAND": "PATH_CHANGED", "DATA": path}`` back;
* the "ff" structure example: ``VALUE``, ``RANGE`` and ``UNIT`` hold one item per type.

Real sockets on 127.0.0.1; the server in this process, the engine's control step
(:class:`engine.control.Control`) run by the test where it needs one, so every wait is
on a condition with a deadline.  One test runs the real engine to show the same
through its command line.
"""

from __future__ import annotations

import contextlib
import http.client
import json
import time

import pytest
from websockets.sync.client import connect

from tonegraph.engine.clock import FakeClock
from tonegraph.engine.control import Control, trusted_networks
from tonegraph.engine.osc import encode, query
from tonegraph.engine.osc.server import OscServer
from tonegraph.engine.runtime import Runtime

from ..conftest import load_ok, wait_for
from ..osc_peers import Engine

PATCH = """
nodes:
  c:    {type: control.constant, params: {value: 1}}
  dim:  {type: control.map, params: {out_range: [0, 1]}, in: {value: c}}
  saw:  {type: control.lfo, params: {shape: saw, frequency: 2}}
  sink: {type: osc.out, params: {host: 127.0.0.1, port: 9}, in: {/x: dim}}
"""

#: HOST_INFO's keys in the proposal
HOST_KEYS = {"NAME", "EXTENSIONS", "OSC_IP", "OSC_PORT", "OSC_TRANSPORT", "WS_IP", "WS_PORT"}
#: the optional attributes and the WebSocket commands the proposal names
OPTIONAL = {"ACCESS", "VALUE", "RANGE", "DESCRIPTION", "TAGS", "EXTENDED_TYPE", "UNIT",
            "CRITICAL", "CLIPMODE", "OVERLOADS", "HTML"}
COMMANDS = {"LISTEN", "IGNORE", "PATH_CHANGED", "PATH_RENAMED", "PATH_REMOVED", "PATH_ADDED"}


@contextlib.contextmanager
def serving(write_patch, registry, allow=None):
    """A patch's runtime, its control step on a real (unbound) OSC listener, and an
    OSCQuery server that hands the listener what WebSocket clients send."""
    rt = Runtime(load_ok(write_patch(PATCH), registry), registry, clock=FakeClock())
    rt.current.configure()
    osc = OscServer()
    control = Control(rt, osc, allow)
    nodes = dict(rt.current.nodes)
    server = query.OscQueryServer(lambda: nodes, "spec", "127.0.0.1", 9000, osc=osc,
                                  clock=FakeClock())
    server.start()
    try:
        yield server, control, nodes
    finally:
        server.stop()
        rt.current.close()


@pytest.fixture
def spec(write_patch, registry, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    with serving(write_patch, registry) as running:
        yield running


def ask(server, target: str) -> tuple[int, object, bytes, str | None]:
    """(status, JSON body or None, raw body, Content-Type) of ``GET target``."""
    conn = http.client.HTTPConnection("127.0.0.1", server.port, timeout=5)
    try:
        conn.request("GET", target)
        r = conn.getresponse()
        raw = r.read()
        body = json.loads(raw) if raw and r.status != 204 else None
        return r.status, body, raw, r.getheader("Content-Type")
    finally:
        conn.close()


def get(server, target: str):
    status, body, _, _ = ask(server, target)
    assert status == 200, (target, status, body)
    return body


def walk(node: dict):
    """Every node of a namespace, the given one first."""
    yield node
    for child in node.get("CONTENTS", {}).values():
        yield from walk(child)


# -- the proposal's examples, one by one ------------------------------------------------


def test_the_root_is_the_whole_namespace(spec, registry):
    """``http://ip:port/``: a full description of the root and all its contents."""
    server, _, nodes = spec
    status, root, _, kind = ask(server, "/")
    assert status == 200 and kind == "application/json"
    assert root["FULL_PATH"] == "/" and root["ACCESS"] == 0 and "TYPE" not in root
    saw = root["CONTENTS"]["tonegraph"]["CONTENTS"]["saw"]
    lfo = registry["control.lfo"]
    freq = lfo.params["frequency"]
    assert saw["CONTENTS"]["frequency"] == {
        "FULL_PATH": "/tonegraph/saw/frequency", "ACCESS": 3, "TYPE": "f",
        "VALUE": [nodes["saw"].p.frequency], "RANGE": [{"MIN": freq.min, "MAX": freq.max}],
        "UNIT": ["time.hz"], "DESCRIPTION": f"{freq.description} [Hz]"}
    # the proposal's /foo: read-only, its value may be read; /baz/qux: one of VALS
    assert saw["CONTENTS"]["outputs"]["CONTENTS"]["out"]["ACCESS"] == 1
    assert root["CONTENTS"]["tonegraph"]["CONTENTS"]["sink"]["CONTENTS"]["port"]["ACCESS"] == 1
    assert saw["CONTENTS"]["shape"]["RANGE"] == [{"VALS": list(lfo.params["shape"].choices)}]
    for node in walk(root):
        if "CONTENTS" in node:       # a container: no value, nothing to send it
            assert node["ACCESS"] == 0 and "TYPE" not in node and "VALUE" not in node
            assert all(child["FULL_PATH"] == node["FULL_PATH"].rstrip("/") + "/" + name
                       for name, child in node["CONTENTS"].items())
        else:                        # a method: one VALUE, RANGE and UNIT item per type
            assert node["ACCESS"] in (1, 3) and node["TYPE"]
            for attr in ("VALUE", "RANGE", "UNIT"):
                if attr in node:
                    assert len(node[attr]) == len(node["TYPE"]), node


def test_a_container_is_itself_and_all_below_it(spec):
    """``http://ip:port/baz``: that container and its contents, as in the whole tree."""
    server, _, _ = spec
    whole = get(server, "/")["CONTENTS"]["tonegraph"]["CONTENTS"]["saw"]
    assert get(server, "/tonegraph/saw") == whole
    assert get(server, "/tonegraph/saw/") == whole
    assert get(server, "/tonegraph/saw#fragment") == whole      # the fragment is dropped


def test_foo_value_is_the_value_alone(spec):
    """``http://ip:port/foo?VALUE`` -> ``{"VALUE": [0.5]}``."""
    server, _, nodes = spec
    assert get(server, "/tonegraph/saw/frequency?VALUE") == {"VALUE": [nodes["saw"].p.frequency]}
    nodes["saw"].apply_params({"frequency": 0.5})
    assert get(server, "/tonegraph/saw/frequency?VALUE") == {"VALUE": [0.5]}
    out = get(server, "/tonegraph/saw/outputs/out?VALUE")        # read-only: still readable
    assert list(out) == ["VALUE"] and len(out["VALUE"]) == 1


def test_baz_qux_range_is_the_range_alone(spec, registry):
    """``http://ip:port/baz/qux?RANGE`` -> ``{"RANGE": [{"VALS": [...]}]}``."""
    server, _, _ = spec
    choices = list(registry["control.lfo"].params["shape"].choices)
    assert get(server, "/tonegraph/saw/shape?RANGE") == {"RANGE": [{"VALS": choices}]}


@pytest.mark.parametrize("path, attr", [
    ("/tonegraph/saw/frequency", "VALUE"), ("/tonegraph/saw/frequency", "TYPE"),
    ("/tonegraph/saw/frequency", "RANGE"), ("/tonegraph/saw/frequency", "ACCESS"),
    ("/tonegraph/saw/frequency", "DESCRIPTION"), ("/tonegraph/saw/frequency", "UNIT"),
    ("/tonegraph/saw/frequency", "FULL_PATH"), ("/tonegraph/sink/port", "ACCESS"),
    ("/tonegraph/dim/out_range", "VALUE"), ("/tonegraph/dim/out_range", "TYPE"),
    ("/tonegraph/saw", "CONTENTS"), ("/tonegraph/saw", "ACCESS"),
    ("/tonegraph/saw", "DESCRIPTION"), ("/tonegraph/saw", "FULL_PATH"), ("/", "CONTENTS")])
def test_any_supported_attribute_is_answered_alone(spec, path, attr):
    """"The same technique can be used to request any attribute supported by the server
    from a given node": the answer is ``{ATTR: what the full node says}`` and no more."""
    server, _, _ = spec
    node = get(server, path)
    assert attr in node
    assert get(server, f"{path}?{attr}") == {attr: node[attr]}


def test_baz_type_is_an_empty_object(spec):
    """``http://ip:port/baz?TYPE`` -> ``{}``: "Some queries may return empty objects- /baz is
    a pure container object- it doesn't accept any OSC messages, so it doesn't have a
    type".  So for any supported attribute a node does not have (a RANGE on a param
    without one, CONTENTS on a method, UNIT on a count), never the whole node."""
    server, _, _ = spec
    for target in ("/tonegraph/saw?TYPE", "/?TYPE", "/tonegraph/saw/outputs?RANGE",
                   "/tonegraph/saw/amplitude?RANGE", "/tonegraph/saw/frequency?CONTENTS",
                   "/tonegraph/sink/port?UNIT"):
        status, body, _, kind = ask(server, target)
        assert (status, body, kind) == (200, {}, "application/json"), target


def test_bazzzzz_type_is_404(spec):
    """``http://ip:port/bazzzzz?TYPE``: "the following query would return a 404 error"."""
    server, _, _ = spec
    for target in ("/bazzzzz?TYPE", "/bazzzzz", "/tonegraph/saw/nope?VALUE",
                   "/tonegraph/saw/frequency/deeper"):
        assert ask(server, target)[0] == 404, target


def test_foo_host_info_is_the_host_info_alone_whatever_the_path(spec):
    """``http://ip:port/foo?HOST_INFO``: "the path component of the URL is ignored, and
    the server returns the HOST_INFO object"."""
    server, _, _ = spec
    info = get(server, "/?HOST_INFO")
    for target in ("/tonegraph/saw/frequency?HOST_INFO", "/bazzzzz?HOST_INFO"):
        assert get(server, target) == info
    assert set(info) <= HOST_KEYS
    assert info["OSC_PORT"] == 9000 and info["OSC_IP"] == "127.0.0.1"
    assert info["OSC_TRANSPORT"] == "UDP" and info["NAME"] == "tonegraph spec"
    assert "WS_PORT" not in info           # the WebSocket is on this same port
    extensions = info["EXTENSIONS"]
    assert set(extensions) <= OPTIONAL | COMMANDS
    assert all(v is True for v in extensions.values())
    assert {"ACCESS", "VALUE", "RANGE", "DESCRIPTION", "UNIT", "LISTEN",
            "PATH_CHANGED"} <= set(extensions)


def test_every_declared_attribute_is_answered_and_no_other(spec):
    """What EXTENSIONS declares, some node of the tree answers; an optional attribute it
    does not declare (TAGS, CLIPMODE, ...) is "a recognized attribute that isn't
    supported by the server": 400, as is a name the proposal does not know."""
    server, _, _ = spec
    extensions = get(server, "/?HOST_INFO")["EXTENSIONS"]
    tree = list(walk(get(server, "/")))
    for attr in set(extensions) & OPTIONAL:
        holder = next(n for n in tree if attr in n)
        assert get(server, f"{holder['FULL_PATH']}?{attr}") == {attr: holder[attr]}
    unsupported = OPTIONAL - set(extensions)
    assert {"TAGS", "EXTENDED_TYPE", "CRITICAL", "CLIPMODE", "OVERLOADS", "HTML"} <= unsupported
    for attr in sorted(unsupported) + ["FOO", "value", "VALUE2", "HOST_INFO_"]:
        for path in ("/", "/tonegraph/saw", "/tonegraph/saw/frequency"):
            status, body, _, _ = ask(server, f"{path}?{attr}")
            assert status == 400, (path, attr, status, body)
            assert attr in body["error"]


def test_value_of_a_node_that_has_no_value_is_204(spec):
    """ "204 (no content- ... querying VALUE when ACCESS returned 0, for example)"."""
    server, _, _ = spec
    for target in ("/?VALUE", "/tonegraph?VALUE", "/tonegraph/saw?VALUE",
                   "/tonegraph/saw/outputs?VALUE"):
        status, _, raw, _ = ask(server, target)
        assert (status, raw) == (204, b""), target
    assert ask(server, "/tonegraph/sink/port?VALUE")[0] == 200         # ACCESS 1: readable


def test_booleans_are_typed_t_and_valued_true_or_false(spec):
    """The proposal's table: OSC T and F are a JSON boolean, and the two tags are used
    interchangeably.  A switch has the one TYPE "T" and a VALUE of true or false."""
    server, _, nodes = spec
    for value in (True, False, True):
        nodes["dim"].apply_params({"clamp": value})
        status, body, raw, _ = ask(server, "/tonegraph/dim/clamp")
        assert status == 200 and body["TYPE"] == "T" and body["VALUE"] == [value]
        assert body["VALUE"][0] is value
        assert f'"VALUE": [{json.dumps(value)}]'.encode() in raw
        assert get(server, "/tonegraph/dim/clamp?VALUE") == {"VALUE": [value]}
    assert "RANGE" not in get(server, "/tonegraph/dim/clamp")


# -- the WebSocket: LISTEN, IGNORE, PATH_CHANGED, raw OSC -------------------------------


def ws_url(server) -> str:
    return f"ws://127.0.0.1:{server.port}/"


def command(ws, what: str, path: str) -> None:
    ws.send(json.dumps({"COMMAND": what, "DATA": path}))


def receive(ws, want, control=None, timeout: float = 10.0):
    """The first message for which ``want`` holds: (address, tags, args) for OSC, a dict
    for text; the engine's control step runs meanwhile when ``control`` is given."""
    deadline = time.monotonic() + timeout
    seen = []
    while time.monotonic() < deadline:
        if control is not None:
            control.apply()
        try:
            data = ws.recv(timeout=0.05)
        except TimeoutError:
            continue
        if isinstance(data, str):
            got = json.loads(data)
        else:
            ((_, msg),) = encode.decode(data)
            tags = msg.dgram[msg.dgram.index(b"\0,") + 2:].split(b"\0")[0].decode()
            got = (msg.address, tags, list(msg.params))
        seen.append(got)
        if want(got):
            return got
    raise AssertionError(f"nothing wanted within {timeout} s; saw {seen[-5:]}")


def test_listen_ignore_and_path_changed_as_the_proposal_writes_them(spec):
    """``{"COMMAND": "LISTEN", "DATA": "/foo"}`` streams /foo's value as binary OSC;
    ``IGNORE`` stops it; a node gone from the running patch says ``PATH_CHANGED``."""
    server, _, nodes = spec
    with connect(ws_url(server), open_timeout=5) as ws:
        command(ws, "LISTEN", "/tonegraph/saw/frequency")
        assert receive(ws, lambda m: True) == ("/tonegraph/saw/frequency", "f", [2.0])
        nodes["saw"].apply_params({"frequency": 0.5})
        assert receive(ws, lambda m: True) == ("/tonegraph/saw/frequency", "f", [0.5])
        command(ws, "LISTEN", "/tonegraph/dim/clamp")     # a boolean: its value is its tag
        assert receive(ws, lambda m: m[0] == "/tonegraph/dim/clamp")[1:] == ("T", [True])
        nodes["dim"].apply_params({"clamp": False})
        assert receive(ws, lambda m: m[0] == "/tonegraph/dim/clamp")[1:] == ("F", [False])
        command(ws, "IGNORE", "/tonegraph/saw/frequency")
        command(ws, "LISTEN", "/tonegraph/c/value")       # commands are taken in order
        receive(ws, lambda m: m[0] == "/tonegraph/c/value")
        nodes["saw"].apply_params({"frequency": 0.25})
        del nodes["sink"]
        assert receive(ws, lambda m: isinstance(m, dict)) == {"COMMAND": "PATH_CHANGED",
                                                             "DATA": "/tonegraph"}
        assert get(server, "/tonegraph/saw/frequency?VALUE") == {"VALUE": [0.25]}
        nodes["dim"].apply_params({"clamp": True})      # a later change still arrives,
        assert receive(ws, lambda m: m[0] != "/tonegraph/c/value")[0] == "/tonegraph/dim/clamp"


def test_binary_osc_over_the_websocket_sets_values(spec):
    """ "raw OSC packets are also sent over the websocket connection using the binary
    opcode": a client sets params with them as it would over UDP, booleans by an OSC
    T or F; routing params stay read-only, and the refusal comes back on the socket."""
    server, control, nodes = spec
    with connect(ws_url(server), open_timeout=5) as ws:
        ws.send(encode.message("/tonegraph/saw/frequency", [("f", 0.5)]))
        assert wait_for(lambda: (control.apply(), nodes["saw"].p.frequency)[1] == 0.5)
        assert get(server, "/tonegraph/saw/frequency?VALUE") == {"VALUE": [0.5]}
        for tag in ("T", "F", "T"):
            ws.send(encode.message("/tonegraph/dim/clamp", [(tag, tag == "T")]))
            assert wait_for(lambda: (control.apply(), nodes["dim"].p.clamp)[1] is (tag == "T"))
            assert get(server, "/tonegraph/dim/clamp?VALUE") == {"VALUE": [tag == "T"]}
        ws.send(encode.bundle(0, [encode.message("/tonegraph/saw/amplitude", [("f", 0.75)]),
                                  encode.message("/tonegraph/saw/offset", [("f", 0.125)])]))
        assert wait_for(lambda: (control.apply(), nodes["saw"].p.offset)[1] == 0.125)
        assert nodes["saw"].p.amplitude == 0.75
        ws.send(encode.message("/tonegraph/sink/port", [("i", 10)]))
        error = receive(ws, lambda m: m[0] == "/tonegraph/error", control)
        assert "says where sink's output goes" in error[2][0]
        assert nodes["sink"].p.port == 9
        ws.send(encode.message("/tonegraph/saw/frequency"))          # no arguments: a query
        assert receive(ws, lambda m: True, control) == ("/tonegraph/saw/frequency", "f", [0.5])
        ws.send(b"\x00\x01 not OSC")                                 # counted, dropped
        assert wait_for(lambda: control.server.malformed == 1)
        ws.send(encode.message("/tonegraph/saw/frequency", [("f", 0.25)]))
        assert wait_for(lambda: (control.apply(), nodes["saw"].p.frequency)[1] == 0.25)
        assert len(control.server.streams) == 1
    assert wait_for(lambda: not control.server.streams)        # its replies end with it


def test_a_websocket_peer_outside_osc_allow_is_a_stranger(write_patch, registry, monkeypatch,
                                                          tmp_path):
    """The UDP path's trust rules hold on the WebSocket: with ``--osc-allow none`` a
    loopback peer may still set params, but is asked to echo a token before it may
    listen, as any untrusted sender; routing params stay read-only to it too."""
    monkeypatch.chdir(tmp_path)
    with serving(write_patch, registry, allow=trusted_networks("none")) as (server, control,
                                                                            nodes):
        with connect(ws_url(server), open_timeout=5) as ws:
            ws.send(encode.message("/tonegraph/saw/frequency", [("f", 0.5)]))
            assert wait_for(lambda: (control.apply(), nodes["saw"].p.frequency)[1] == 0.5)
            ws.send(encode.message("/tonegraph/listen", [("s", "let me listen, please")]))
            token = receive(ws, lambda m: m[0] == "/tonegraph/listen", control)[2]
            assert len(token) == 1 and token[0] != "let me listen, please"
            assert not control.listeners
            ws.send(encode.message("/tonegraph/sink/port", [("i", 10)]))
            ws.send(encode.message("/tonegraph/saw/frequency", [("f", 0.25)]))
            assert wait_for(lambda: (control.apply(), nodes["saw"].p.frequency)[1] == 0.25)
            assert nodes["sink"].p.port == 9
    with serving(write_patch, registry) as (server, control, nodes):      # loopback trusted
        with connect(ws_url(server), open_timeout=5) as ws:
            ws.send(encode.message("/tonegraph/listen"))
            assert wait_for(lambda: (control.apply(), len(control.listeners))[1] == 1)
            (who,) = control.listeners
            assert who[0] == "127.0.0.1"


def test_python_oscquery_reads_every_node(spec):
    """A client we did not write: python-oscquery reads HOST_INFO, then each node of the
    tree by its own path, and accepts each (it refuses a method without a VALUE)."""
    import socket

    from pythonoscquery.osc_query_client import OSCQueryClient
    from zeroconf import ServiceInfo

    server, _, nodes = spec
    info = ServiceInfo("_oscjson._tcp.local.", "tonegraph._oscjson._tcp.local.",
                       addresses=[socket.inet_aton("127.0.0.1")], port=server.port)
    client = OSCQueryClient(info)
    host = client.get_host_info()
    assert (host.osc_ip, host.osc_port) == ("127.0.0.1", 9000)
    paths = [n["FULL_PATH"] for n in walk(get(server, "/"))]
    assert "/tonegraph/dim/clamp" in paths
    for path in paths:
        node = client.query_node(path)
        assert node is not None and node.full_path == path
    clamp = client.query_node("/tonegraph/dim/clamp")
    assert clamp.value == [nodes["dim"].p.clamp] and clamp.access.value == 3


def test_the_engine_takes_osc_over_its_oscquery_websocket(write_patch, tmp_path):
    """The command line's engine: binary OSC on the OSCQuery port's WebSocket sets a
    param, which HTTP then reads back; a malformed frame stops nothing."""
    eng = Engine(write_patch(PATCH))
    try:
        url = f"ws://127.0.0.1:{eng.query_port}/"

        def value(path):
            conn = http.client.HTTPConnection("127.0.0.1", eng.query_port, timeout=5)
            conn.request("GET", f"{path}?VALUE")
            body = json.loads(conn.getresponse().read())
            conn.close()
            return body

        with connect(url, open_timeout=10) as ws:
            ws.send(b"\x00garbage")
            ws.send(encode.message("/tonegraph/saw/frequency", [("f", 0.5)]))
            ws.send(encode.message("/tonegraph/dim/clamp", [("F", False)]))
            assert wait_for(lambda: value("/tonegraph/saw/frequency") == {"VALUE": [0.5]})
            assert wait_for(lambda: value("/tonegraph/dim/clamp") == {"VALUE": [False]})
            ws.send(encode.message("/tonegraph/sink/host", [("s", "10.9.9.9")]))
            error = receive(ws, lambda m: m[0] == "/tonegraph/error")
            assert "says where sink's output goes" in error[2][0]
        assert value("/tonegraph/sink/host") == {"VALUE": ["127.0.0.1"]}
        assert eng.alive()
    finally:
        log = eng.stop()
    assert "Traceback" not in log
