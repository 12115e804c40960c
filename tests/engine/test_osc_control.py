"""Live control over OSC, from senders we did not write (liblo's oscsend, Pure Data),
plus osc.in routing, fuzzing, OSCQuery discovery and the status heartbeat."""

from __future__ import annotations

import contextlib
import json
import random
import socket
import subprocess
import threading
import time
import urllib.request

import pytest

from tonegraph.engine.osc import encode
from tonegraph.engine.osc.pattern import compile_pattern
from tonegraph.engine.osc.server import OscServer

from ..conftest import rows, wait_for
from ..netns import in_network_namespace
from ..osc_peers import Engine, need


MAPPER = """
nodes:
  saw: {{type: control.lfo, params: {{shape: saw, frequency: 2, amplitude: 0.5, offset: 0.5}}}}
  dim: {{type: control.map, params: {{out_range: [0, 1]}}, in: {{value: saw}}}}
  c:   {{type: control.constant, params: {{value: 1}}}}
  rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{dim: dim, c: c}}}}
"""


def test_oscsend_fader_changes_a_mappers_range_live(write_patch, tmp_path):
    need("oscsend", "liblo-tools")
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)))
    try:
        assert wait_for(lambda: any(r["name"] == "dim" for r in rows(out)))
        assert max(r["value"] for r in rows(out) if r["name"] == "dim") <= 1.0
        subprocess.run(["oscsend", "localhost", str(eng.port), "/tonegraph/dim/out_range", "ff",
                        "0", "100"], check=True, timeout=10)
        assert wait_for(lambda: max(r["value"] for r in rows(out) if r["name"] == "dim") > 50)
        # A bad value is rejected, answered to the sender and never applied.
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        sock.settimeout(5)
        eng.send(encode.message("/tonegraph/dim/out_range", [("s", "loud")]), sock)
        [(_, reply)] = encode.decode(sock.recv(65536))
        assert reply.address == "/tonegraph/error"
        assert "param 'out_range' must be a list of numbers" in reply.params[0]
        eng.send(encode.message("/tonegraph/dim/out_range"), sock)        # no args: a query
        [(_, now)] = encode.decode(sock.recv(65536))
        assert now.address == "/tonegraph/dim/out_range" and now.params == [0.0, 100.0]
        eng.send(encode.message("/tonegraph/ghost/value", [("f", 1.0)]), sock)
        [(_, reply)] = encode.decode(sock.recv(65536))
        assert "no node 'ghost'" in reply.params[0]
    finally:
        log = eng.stop()
    assert "rejected: param 'out_range' must be a list of numbers" in log
    assert "Traceback" not in log


def test_pure_data_sets_a_param(write_patch, tmp_path):
    need("pd", "puredata-core")
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)))
    pd_patch = tmp_path / "send.pd"
    pd_patch.write_text(f"""#N canvas 0 50 450 300 12;
#X obj 20 20 loadbang;
#X msg 20 50 connect 127.0.0.1 {eng.port};
#X obj 20 200 netsend -u -b;
#X obj 200 20 loadbang;
#X obj 200 50 delay 800;
#X msg 200 80 42;
#X obj 200 110 oscformat tonegraph c value;
#X obj 300 20 loadbang;
#X obj 300 50 delay 2000;
#X msg 300 80 \\; pd quit;
#X connect 0 0 1 0;
#X connect 1 0 2 0;
#X connect 3 0 4 0;
#X connect 4 0 5 0;
#X connect 5 0 6 0;
#X connect 6 0 2 0;
#X connect 7 0 8 0;
#X connect 8 0 9 0;
""")
    try:
        subprocess.run(["pd", "-nogui", "-nosound", "-nomidi", "-open", str(pd_patch)],
                       timeout=30, capture_output=True)
        assert wait_for(lambda: any(r["name"] == "c" and r["value"] == 42.0 for r in rows(out)))
    finally:
        eng.stop()


def test_osc_in_routes_patterns_to_outputs(write_patch, tmp_path):
    out = tmp_path / "in.jsonl"
    eng = Engine(write_patch(f"""
        nodes:
          ctl: {{type: osc.in, params: {{addresses: {{
                   fader: /1/fader1,
                   tap: {{address: /tap, type: event}},
                   hand: {{address: "/pose/*/hand", type: vector}},
                   scene: {{address: "/scene/{{a,b}}", type: text}}}}}}}}
          rec: {{type: io.record, params: {{path: "{out}", flush: 0}},
                 in: {{fader: ctl.fader, tap: ctl.tap, hand: ctl.hand, scene: ctl.scene}}}}
        """))
    try:
        for m in (encode.message("/1/fader1", [("f", 0.75)]),
                  encode.message("/tap"), encode.message("/tap"),
                  encode.message("/pose/3/hand", [("f", 0.1), ("f", 0.2), ("i", 3)]),
                  encode.message("/pose/3/foot", [("f", 9.0)]),
                  encode.message("/scene/b", [("s", "chorus")])):
            eng.send(m)
        assert wait_for(lambda: any(r["name"] == "scene" for r in rows(out)))
    finally:
        eng.stop()
    got = {}
    for r in rows(out):
        got.setdefault(r["name"], []).append(r["value"])
    assert got["fader"][-1] == 0.75
    assert got["tap"] == [True, True]
    assert got["hand"][-1] == pytest.approx([0.1, 0.2, 3.0])
    assert got["scene"][-1] == "chorus"


def test_fuzzed_packets_never_stop_the_engine(write_patch, tmp_path):
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)))
    rng = random.Random(7)
    valid = encode.message("/tonegraph/c/value", [("f", 5.0)])
    try:
        for i in range(3000):
            kind = i % 5
            if kind == 0:
                data = rng.randbytes(rng.randint(0, 200))
            elif kind == 1:
                data = bytearray(valid)
                for _ in range(3):
                    data[rng.randrange(len(data))] = rng.randrange(256)
                data = bytes(data)
            elif kind == 2:
                data = valid[: rng.randrange(len(valid))]
            elif kind == 3:
                data = b"#bundle\x00" + rng.randbytes(rng.randint(0, 64))
            else:
                data = b"/x\x00\x00,f\x00\x00" + rng.randbytes(40000)     # oversized
            eng.send(data)
        # UDP under a flood drops datagrams in the kernel: the valid one is sent until it
        # lands, as a sender that wants an answer would.
        def applied() -> bool:
            eng.send(encode.message("/tonegraph/c/value", [("f", 77.0)]))
            return wait_for(lambda: any(r["name"] == "c" and r["value"] == 77.0 for r in rows(out)), 1)
        assert wait_for(applied, 30)
        assert eng.proc.poll() is None
    finally:
        log = eng.stop()
    assert "Traceback" not in log
    assert "dropped" in log and "oversized" in log


def test_server_counts_malformed_and_oversized_in_process():
    server = OscServer(max_packet=1024)
    rng = random.Random(3)
    for _ in range(5000):
        server.handle(rng.randbytes(rng.randint(0, 300)), ("127.0.0.1", 1))
    server.handle(b"\x00" * 5000, ("127.0.0.1", 1))
    server.handle(encode.message("/ok", [("i", 1)]), ("127.0.0.1", 1))
    assert server.oversized == 1
    assert server.malformed > 4000
    assert any(m.address == "/ok" for m in server.drain())


def test_osc_patterns():
    assert compile_pattern("/pose/*/hand").match("/pose/12/hand")
    assert not compile_pattern("/pose/*/hand").match("/pose/1/2/hand")
    assert compile_pattern("/ch/?").match("/ch/7") and not compile_pattern("/ch/?").match("/ch/17")
    assert compile_pattern("/ch/[1-3]").match("/ch/2") and not compile_pattern("/ch/[1-3]").match("/ch/4")
    assert compile_pattern("/ch/[!1-3]").match("/ch/4")
    assert compile_pattern("/s/{a,bb}").match("/s/bb") and not compile_pattern("/s/{a,bb}").match("/s/c")
    with pytest.raises(ValueError):
        compile_pattern("/bad/[x")


def test_oscquery_describes_and_follows_the_patch(write_patch, tmp_path):
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)))

    def get(path):
        with urllib.request.urlopen(f"http://127.0.0.1:{eng.query_port}{path}", timeout=5) as r:
            return json.loads(r.read())
    try:
        info = get("/?HOST_INFO")
        assert info["OSC_PORT"] == eng.port and info["OSC_TRANSPORT"] == "UDP"
        root = get("/")
        freq = root["CONTENTS"]["tonegraph"]["CONTENTS"]["saw"]["CONTENTS"]["frequency"]
        assert freq["FULL_PATH"] == "/tonegraph/saw/frequency"
        assert freq["TYPE"] == "f" and freq["VALUE"] == [2.0] and freq["ACCESS"] == 3
        assert freq["RANGE"] == [{"MIN": 0.0, "MAX": 1000.0}] and "Hz" in freq["DESCRIPTION"]
        shape = get("/tonegraph/saw/shape")
        assert shape["TYPE"] == "s" and "random-smooth" in shape["RANGE"][0]["VALS"]
        rng = get("/tonegraph/dim/out_range")
        assert rng["TYPE"] == "ff" and rng["VALUE"] == [0.0, 1.0]
        eng.send(encode.message("/tonegraph/saw/frequency", [("f", 0.5)]))
        assert wait_for(lambda: get("/tonegraph/saw/frequency?VALUE") == {"VALUE": [0.5]})
        with pytest.raises(urllib.error.HTTPError):
            get("/tonegraph/nope")
    finally:
        eng.stop()


def test_python_oscquery_walks_the_whole_tree(write_patch, tmp_path):
    """A client we did not write (python-oscquery) reads HOST_INFO and every node of the
    namespace, which it refuses whole if one leaf is out of spec (an empty TYPE, a
    missing VALUE).  The service is given to it by hand: no mDNS outside a namespace."""
    import socket as sk

    from pythonoscquery.osc_query_client import OSCQueryClient
    from zeroconf import ServiceInfo

    out = tmp_path / "rec.jsonl"
    patch = MAPPER.format(out=out) + """  mix: {type: control.math, params: {op: mix}, in: {a: saw, b: c}}
  sink: {type: osc.out, params: {port: 9, profile: generic}, in: {/x: mix}}
"""
    eng = Engine(write_patch(patch))
    try:
        info = ServiceInfo("_oscjson._tcp.local.", "tonegraph._oscjson._tcp.local.",
                           addresses=[sk.inet_aton("127.0.0.1")], port=eng.query_port)
        client = OSCQueryClient(info)
        host = client.get_host_info()
        assert host.osc_port == eng.port and host.osc_ip == "127.0.0.1"
        root = client.query_node("/")

        def leaves(node):
            if node.contents:
                for child in node.contents:
                    yield from leaves(child)
            elif node.value:
                yield node
        found = {n.full_path: n for n in leaves(root)}
        assert "/tonegraph/saw/frequency" in found and "/tonegraph/mix/op" in found
        assert "/tonegraph/mix/weights" not in found                 # empty list: no OSC type
        assert "/tonegraph/sink/bundle" not in found                 # an unset switch: no value
        assert wait_for(lambda: client.query_node("/tonegraph/dim/outputs/out") is not None)
        dim = client.query_node("/tonegraph/dim/outputs/out")
        assert dim.access.value == 1 and 0.0 <= dim.value[0] <= 1.0   # outputs: read-only, live
    finally:
        eng.stop()


def test_websocket_clients_listen_to_params_and_outputs(write_patch, tmp_path):
    """OSCQuery LISTEN with a WebSocket client we did not write (the websockets
    library's): values arrive as OSC at once and on every change, IGNORE stops them, a
    save that adds a node says PATH_CHANGED, and a ninth client is turned away."""
    from websockets.exceptions import InvalidStatus
    from websockets.sync.client import connect

    path = write_patch(MAPPER.format(out=tmp_path / "rec.jsonl"))
    eng = Engine(path)
    url = f"ws://127.0.0.1:{eng.query_port}/"

    def get(p):
        with urllib.request.urlopen(f"http://127.0.0.1:{eng.query_port}{p}", timeout=5) as r:
            return json.loads(r.read())

    def listen(ws, what, p):
        ws.send(json.dumps({"COMMAND": what, "DATA": p}))

    def next_osc(ws, seen, want=None):
        """The next OSC message (at ``want`` if given); text commands go to ``seen``."""
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            data = ws.recv(timeout=max(0.01, deadline - time.monotonic()))
            if isinstance(data, str):
                seen.append(json.loads(data))
                continue
            ((_, msg),) = encode.decode(data)
            address, args = msg.address, list(msg.params)
            seen.append((address, args))
            if want is None or address == want:
                return address, args
        raise AssertionError(f"no message at {want} in 10 s; saw {seen[-5:]}")
    try:
        assert get("/?HOST_INFO")["EXTENSIONS"]["LISTEN"] is True
        with connect(url, open_timeout=10) as ws:
            seen: list = []
            listen(ws, "LISTEN", "/tonegraph/saw/frequency")
            assert next_osc(ws, seen) == ("/tonegraph/saw/frequency", [2.0])     # at once
            eng.send(encode.message("/tonegraph/saw/frequency", [("f", 0.5)]))
            assert next_osc(ws, seen) == ("/tonegraph/saw/frequency", [0.5])     # on change
            listen(ws, "LISTEN", "/tonegraph/dim/outputs/out")                   # a live output
            outs = {next_osc(ws, seen, "/tonegraph/dim/outputs/out")[1][0] for _ in range(5)}
            assert len(outs) == 5 and all(0.0 <= v <= 1.0 for v in outs)

            listen(ws, "IGNORE", "/tonegraph/saw/frequency")
            listen(ws, "LISTEN", "/tonegraph/c/value")      # commands are taken in order
            next_osc(ws, seen, "/tonegraph/c/value")
            eng.send(encode.message("/tonegraph/saw/frequency", [("f", 0.25)]))
            assert wait_for(lambda: get("/tonegraph/saw/frequency?VALUE") == {"VALUE": [0.25]})
            listen(ws, "LISTEN", "/tonegraph/dim/out_range")
            next_osc(ws, seen, "/tonegraph/dim/out_range")
            assert ("/tonegraph/saw/frequency", [0.25]) not in seen
            listen(ws, "LISTEN", "not json")
            ws.send("{\"COMMAND\": [1, 2]")                  # nonsense: ignored, still served
            ws.send(b"\x00\x01")

            with contextlib.ExitStack() as others:
                for _ in range(7):
                    others.enter_context(connect(url, open_timeout=10))
                with pytest.raises(InvalidStatus, match="503"):
                    with connect(url, open_timeout=10):
                        pass

            path.write_text(path.read_text() + "  more: {type: control.constant, params: {value: 2}}\n")
            deadline = time.monotonic() + 15
            while {"COMMAND": "PATH_CHANGED", "DATA": "/tonegraph"} not in seen:
                assert time.monotonic() < deadline, seen[-5:]
                _recv_into(ws, seen)
            listen(ws, "LISTEN", "/tonegraph/more/value")
            assert next_osc(ws, seen, "/tonegraph/more/value")[1] == [2.0]
        assert eng.alive()
    finally:
        log = eng.stop()
    assert "Traceback" not in log


def _recv_into(ws, seen: list) -> None:
    data = ws.recv(timeout=10)
    if isinstance(data, str):
        seen.append(json.loads(data))
    else:
        msg = encode.decode(data)[0][1]
        seen.append((msg.address, list(msg.params)))


def test_listen_spellings_are_one_path_and_a_push_is_bounded():
    """However a path is spelled it is listened to once, and one push sends at most
    PUSH_BYTES in all, the paths left over going first at the next push."""
    from tonegraph.engine.osc import listen

    class Recorder(listen.Client):
        def __init__(self) -> None:
            super().__init__(None, None)
            self.got: list[str] = []

        def sent(self, path, value, packet) -> None:
            self.got.append(path)
            self.paths[path] = value

    one = Recorder()
    for spelling in ("/tonegraph/spec/bands", "/tonegraph//spec/bands", "//tonegraph/spec/bands/"):
        one.command(json.dumps({"COMMAND": "LISTEN", "DATA": spelling}).encode())
    assert list(one.paths) == ["/tonegraph/spec/bands"]

    tick = [0]
    vector = {"TYPE": "f" * 1024, "VALUE": None}

    def leaf_at(nodes, path):                        # every value changes every push
        return {**vector, "VALUE": [float(tick[0])] * 1024}
    hub = listen.Hub(leaf_at, lambda: {})
    clients = [Recorder(), Recorder()]
    for c in clients:
        for k in range(100):
            c.command(json.dumps({"COMMAND": "LISTEN", "DATA": f"/tonegraph/n{k}/outputs/v"}).encode())
    hub.clients = set(clients)
    per_message = len(encode.message("/tonegraph/n0/outputs/v", [("f", 0.0)] * 1024))
    for _ in range(4):
        tick[0] += 1
        before = sum(len(c.got) for c in clients)
        hub.push()
        sent = sum(len(c.got) for c in clients) - before
        assert 0 < sent * per_message <= listen.PUSH_BYTES + per_message
    seen = {p for c in clients for p in c.got}
    assert len(seen) == 100                          # nobody starves: the turns go round


def test_host_info_names_an_address_a_client_can_send_to():
    from tonegraph.engine.osc.query import OscQueryServer

    everywhere = OscQueryServer(lambda: {}, "t", "0.0.0.0", 9000)
    assert everywhere.host_info("10.1.2.3")["OSC_IP"] == "10.1.2.3"       # the address it reached
    assert OscQueryServer(lambda: {}, "t", "127.0.0.1", 9000).host_info("10.1.2.3")["OSC_IP"] == "127.0.0.1"


def test_heartbeat_and_errors_reach_the_status_address(write_patch, tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)), "--status",
                 f"127.0.0.1:{listener.getsockname()[1]}", "--status-interval", "0.2")
    got = []

    def receive_until(pred, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while not pred() and time.monotonic() < deadline:
            try:
                got.extend(encode.decode(listener.recv(65536)))
            except socket.timeout:
                pass
    try:
        receive_until(lambda: sum(m.address == "/tonegraph/status" for _, m in got) >= 8)
        eng.send(encode.message("/tonegraph/dim/curve", [("s", "wobbly")]))
        receive_until(lambda: any(m.address == "/tonegraph/error" for _, m in got))
    finally:
        eng.stop()
    beats = [m for _, m in got if m.address == "/tonegraph/status"]
    assert len(beats) >= 8
    uptime, fps, late, skipped, overflows, faulted, faults, dropped, missing = beats[-1].params
    assert uptime > 1.0 and 30 < fps < 90 and faulted == 0     # about 60: a rate, not a benchmark
    assert missing == 0
    errors = [m.params[0] for _, m in got if m.address == "/tonegraph/error"]
    assert any("param 'curve' must be one of linear" in e for e in errors)


def test_a_monitor_hears_of_an_input_missing_at_boot(write_patch):
    """The warning that an interface is missing came while the nodes set up, before the
    status reporter started, so a monitor never heard it; and no heartbeat field said so."""
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    patch = write_patch("""
        nodes:
          mic:  {type: audio.input, params: {device: NoSuchInterface}}
          lvl:  {type: audio.level, in: {audio: mic}}
        """)
    eng = Engine(patch, "--status", f"127.0.0.1:{listener.getsockname()[1]}", "--status-interval", "0.2")
    got = []
    deadline = time.monotonic() + 15
    try:
        while time.monotonic() < deadline and sum(m.address == "/tonegraph/status" for _, m in got) < 3:
            try:
                got.extend(encode.decode(listener.recv(65536)))
            except socket.timeout:
                pass
    finally:
        eng.stop()
    errors = [m.params[0] for _, m in got if m.address == "/tonegraph/error"]
    assert any("NoSuchInterface" in e for e in errors), errors
    beats = [m.params for _, m in got if m.address == "/tonegraph/status"]
    assert beats and beats[-1][-1] == 1, beats[-1:]


class StubServer:
    """Stands in for the UDP listener (a test feeds it parsed messages directly)."""

    def __init__(self) -> None:
        self.inbox: list = []
        self.replies: list = []
        self.sent_to: list = []

    def drain(self) -> list:
        out, self.inbox = self.inbox, []
        return out

    def reply(self, sender, packet: bytes) -> None:
        self.replies.append(packet)
        self.sent_to.append((sender, packet))


def apply_all(control) -> int:
    """Apply until nothing waits (the time budget may leave messages for later ticks);
    how many ticks it took."""
    ticks = 1
    control.apply()
    while control.pending:
        control.apply()
        ticks += 1
    return ticks


def control_of(write_patch, registry):
    from tonegraph.engine.clock import FakeClock
    from tonegraph.engine.control import Control
    from tonegraph.engine.runtime import Runtime

    from ..conftest import load_ok

    path = write_patch(MAPPER.format(out="rec.jsonl"))
    clock = FakeClock()
    rt = Runtime(load_ok(path, registry), registry, clock=clock)
    rt.current.configure()
    server = StubServer()
    return Control(rt, server), server, clock, rt


def test_control_addresses_may_be_osc_patterns(write_patch, registry, monkeypatch, tmp_path):
    from tonegraph.engine.osc.server import Incoming

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    nodes = rt.current.nodes

    def send(address, *args):
        server.replies.clear()
        server.inbox.append(Incoming(address, list(args), ("127.0.0.1", 9), 0.0))
        control.apply()
        return [encode.decode(r)[0][1] for r in server.replies]

    try:
        assert send("/tonegraph/*/value", 7.0) == [] and nodes["c"].p.value == 7.0
        assert send("/tonegraph/s?w/frequency", 3.0) == [] and nodes["saw"].p.frequency == 3.0
        assert send("/tonegraph/{saw,dim}/invert", True) == [] and nodes["dim"].p.invert is True
        [answer] = send("/tonegraph/[c]/val*")                     # a query, answered per match
        assert answer.address == "/tonegraph/c/value" and answer.params == [7.0]
        [reply] = send("/tonegraph/ghost*/value", 1.0)
        assert reply.address == "/tonegraph/error" and "matches no node param" in reply.params[0]
        [reply] = send("/tonegraph/[c/value", 1.0)
        assert "unclosed '['" in reply.params[0]
        assert nodes["c"].p.value == 7.0
    finally:
        rt.current.close()


def test_listeners_hear_changes_made_by_others(write_patch, registry, monkeypatch, tmp_path):
    from tonegraph.engine.osc.server import Incoming

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    surface, script = ("127.0.0.1", 9001), ("127.0.0.1", 9002)

    def send(sender, address, *args):
        server.sent_to.clear()
        server.inbox.append(Incoming(address, list(args), sender, 0.0))
        control.apply()
        return [(who, encode.decode(p)[0][1]) for who, p in server.sent_to]

    try:
        assert send(surface, "/tonegraph/listen") == []
        [(who, echo)] = send(script, "/tonegraph/saw/frequency", 4.0)      # the surface hears it
        assert who == surface and echo.address == "/tonegraph/saw/frequency" and echo.params == [4.0]
        assert send(surface, "/tonegraph/saw/frequency", 5.0) == []         # not its own change
        assert send(script, "/tonegraph/saw/frequency", 5.0) == []          # no change, no echo
        [(who, echo)] = send(script, "/tonegraph/*/value", 3.0)             # patterns too
        assert echo.address == "/tonegraph/c/value" and echo.params == [3.0]
        [(who, reply)] = send(script, "/tonegraph/saw/frequency", -1.0)     # refused: not echoed
        assert who == script and reply.address == "/tonegraph/error"
        send(surface, "/tonegraph/unlisten")
        assert send(script, "/tonegraph/saw/frequency", 6.0) == []
        for port in range(100):
            send(("127.0.0.1", 20000 + port), "/tonegraph/listen")
        assert len(control.listeners) == 32 and control.rejections >= 68
    finally:
        rt.current.close()


def test_rejections_are_logged_once_per_address_cut_short_and_bounded(write_patch, registry,
                                                                      caplog, monkeypatch, tmp_path):
    from tonegraph.engine.osc.server import Incoming

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    huge = "x" * 100_000
    try:
        for _ in range(1000):
            server.inbox.append(Incoming("/tonegraph/c/value", [huge], ("127.0.0.1", 9), 0.0))
        for i in range(1000):
            server.inbox.append(Incoming(f"/tonegraph/ghost{i}/value", [1.0], ("127.0.0.1", 9), 0.0))
        assert apply_all(control) > 1                   # the time budget spreads them over ticks
        lines = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()]
        assert len(lines) == 10 and max(map(len, lines)) < 500
        assert len(server.replies) == 2000 and max(map(len, server.replies)) < 400
        clock.advance(5.0)
        server.inbox.append(Incoming("/tonegraph/c/value", [huge], ("127.0.0.1", 9), 0.0))
        apply_all(control)
        last = [r.getMessage() for r in caplog.records if "rejected" in r.getMessage()][-1]
        assert "must be a number, got 'xxx" in last and "991 more rejected" in last
    finally:
        rt.current.close()


def test_fuzzed_control_messages_make_a_small_log(write_patch, registry, caplog, monkeypatch,
                                                   tmp_path):
    """30,000 fuzzed packets at the control namespace (python-osc parses them, the
    control path checks them): the log stays a few kilobytes."""
    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    listener = OscServer()
    listener.queue = server.inbox = type(listener.queue)()
    server.drain = listener.drain
    rng = random.Random(5)
    names = ["c", "dim", "saw", "rec", "ghost"]
    params = ["value", "out_range", "curve", "path", "frequency", "shape", "nope"]
    try:
        for i in range(30_000):
            kind = rng.randrange(4)
            address = f"/tonegraph/{rng.choice(names)}/{rng.choice(params)}"
            if kind == 0:
                args = [("s", "".join(rng.choice("abc/.{}[]*~") for _ in range(rng.randint(0, 3000))))]
            elif kind == 1:
                args = [("f", rng.uniform(-1e30, 1e30)) for _ in range(rng.randint(1, 5))]
            elif kind == 2:
                args = [("i", rng.randint(-2**31, 2**31 - 1))]
            else:
                args = [("b", rng.randbytes(rng.randint(1, 100)))]
            data = bytearray(encode.message(address, args))
            if i % 7 == 0:
                data[rng.randrange(len(data))] = rng.randrange(256)
            listener.handle(bytes(data), ("127.0.0.1", 9))
            if i % 100 == 0:
                apply_all(control)
                clock.advance(0.01)
        apply_all(control)
    finally:
        rt.current.close()
    logged = sum(len(r.getMessage()) for r in caplog.records)
    assert logged < 20_000, logged
    assert not [r for r in caplog.records if r.name == "root"]    # nothing from python-osc


def test_packets_python_osc_would_warn_about_are_counted_as_malformed(caplog):
    server = OscServer()
    server.handle(b"/x\x00\x00,q\x00\x00", ("127.0.0.1", 1))                  # unknown type tag
    server.handle(b"#bundle\x00" + bytes(8) + b"\x00\x00\x00\x08zzzzzzzz", ("127.0.0.1", 1))
    assert server.malformed == 2 and not server.drain()
    assert not [r for r in caplog.records if r.name == "root"]


def test_oscquery_bounds_its_threads_and_drops_silent_clients(capfd):
    from tonegraph.engine.osc import query

    server = query.OscQueryServer(lambda: {}, "t", "127.0.0.1", 9000)
    server.start()
    before = threading.active_count()
    socks = []
    try:
        for _ in range(300):                       # half-open: connect, never send a request
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            socks.append(s)
        assert wait_for(lambda: threading.active_count() <= before + query.MAX_CLIENTS)
        assert threading.active_count() <= before + query.MAX_CLIENTS
        for s in socks:
            s.close()

        def answers() -> bool:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{server.port}/", timeout=2) as r:
                    return json.loads(r.read())["FULL_PATH"] == "/"
            except OSError:
                return False
        assert wait_for(answers, 20)
        for _ in range(20):                        # clients that leave mid-answer
            s = socket.create_connection(("127.0.0.1", server.port), timeout=5)
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
            s.sendall(b"GET / HTTP/1.0\r\n\r\n")
            s.close()
        assert wait_for(answers, 20)
    finally:
        server.stop()
    assert "Traceback" not in capfd.readouterr().err


ZEROCONF_PROBE = r"""
import json, socket, sys, threading
from zeroconf import IPVersion, ServiceBrowser, Zeroconf
from pythonoscquery.osc_query_client import OSCQueryClient
from tests.osc_peers import Engine

patch, host = sys.argv[1], sys.argv[2]
eng = Engine(patch, "--osc-host", host)
zc = Zeroconf(interfaces=["127.0.0.1"], ip_version=IPVersion.V4Only)
found = {}
both = threading.Event()

class Listener:
    def add_service(self, z, kind, name):
        found[kind] = z.get_service_info(kind, name, timeout=3000)
        if len(found) == 2:
            both.set()
    update_service = remove_service = lambda *a: None

browsers = [ServiceBrowser(zc, k, Listener()) for k in ("_oscjson._tcp.local.", "_osc._udp.local.")]
both.wait(float(sys.argv[3]))                 # both services found, or the deadline
out = {"osc_port": eng.port, "query_port": eng.query_port,
       "found": {k: v.port for k, v in found.items() if v}}
info = found.get("_oscjson._tcp.local.")
if info:
    hi = OSCQueryClient(info).get_host_info()
    out["host_info"] = [hi.osc_ip, hi.osc_port]
    out["name"] = info.name
zc.close()
out["log"] = eng.stop()
print(json.dumps(out))
"""


def test_apps_find_tonegraph_over_zeroconf_when_it_listens_beyond_loopback(write_patch, tmp_path):
    import sys

    patch = write_patch(MAPPER.format(out=tmp_path / "rec.jsonl"))
    res = in_network_namespace(sys.executable, "-c", ZEROCONF_PROBE, str(patch), "0.0.0.0", "15")
    assert res.returncode == 0, res.stderr[-2000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert got["found"] == {"_oscjson._tcp.local.": got["query_port"], "_osc._udp.local.": got["osc_port"]}
    assert got["host_info"] == ["127.0.0.1", got["osc_port"]]     # the address it was reached at
    assert got["name"].startswith("tonegraph ")
    assert "advertised over zeroconf" in got["log"] and "Traceback" not in got["log"]
    # On loopback (the default) nothing goes on the network.
    res = in_network_namespace(sys.executable, "-c", ZEROCONF_PROBE, str(patch), "127.0.0.1", "0")
    got = json.loads(res.stdout.strip().splitlines()[-1])
    assert "advertised" not in got["log"] and "zeroconf" not in got["log"]


# -- datagrams from the network: linear patterns, no amplification, listeners who asked --

ROUTED = """
nodes:
  saw: {type: control.lfo, params: {shape: saw, frequency: 2}}
  c:   {type: control.constant, params: {value: 1}}
  beat: {type: audio.synth, params: {bpm: 120}}
  out: {type: osc.out, params: {host: 127.0.0.1, port: 9}, in: {/saw: saw}}
  rec: {type: io.record, params: {path: rec.jsonl, flush: 0}, in: {c: c}}
"""
STRANGER = ("127.0.0.1", 40000)     # loopback, but the tests below trust no one


def stranger_control(write_patch, registry, patch=ROUTED):
    from tonegraph.engine.clock import FakeClock
    from tonegraph.engine.control import Control
    from tonegraph.engine.runtime import Runtime

    from ..conftest import load_ok

    clock = FakeClock()
    rt = Runtime(load_ok(write_patch(patch), registry), registry, clock=clock)
    rt.current.configure()
    server = StubServer()
    return Control(rt, server, allow=()), server, clock, rt


def from_stranger(control, server, address, *args, sender=STRANGER):
    """Send one datagram as an untrusted sender; (bytes in, [(to, bytes out)])."""
    from tonegraph.engine.osc.server import Incoming

    packet = encode.message(address, list(args))
    server.sent_to.clear()
    server.inbox.append(Incoming(address, [v for _, v in args], sender, 0.0, len(packet)))
    apply_all(control)
    return len(packet), list(server.sent_to)


def test_a_pattern_of_200_stars_is_answered_at_once(write_patch, registry, monkeypatch, tmp_path):
    """The matcher once backtracked: 200 stars held the control thread for good."""
    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    from tonegraph.engine.osc.server import Incoming

    done = threading.Event()
    wide = "".join(f"{chr(lo)}-{chr(lo + 0x2FFF)}" for lo in range(0xE000, 0x10F000, 0x3000))

    def attack():
        for address in ("/tonegraph/" + "*" * 200 + "Q/x", "/tonegraph/" + "*a" * 16 + "Q/x",
                        "/tonegraph/[" + wide + "]/[" + wide + "]",
                        "/tonegraph/[" + "abdefghijc" * 100 + "]/value"):
            server.inbox.append(Incoming(address, [5.0], ("127.0.0.1", 9), 0.0))
            apply_all(control)
        done.set()

    try:
        threading.Thread(target=attack, daemon=True).start()
        assert done.wait(20), "the control thread is stuck matching a pattern"
        replies = [encode.decode(r)[0][1].params[0] for r in server.replies]
        assert len(replies) == 3 and all("matches no node param" in r for r in replies)
        bracket = compile_pattern("[" + wide + "]")
        assert len(bracket._tests[0][1][1]) <= 90       # kept as its ranges, not spelled out
        assert rt.current.nodes["c"].p.value == 5.0              # through the 1,000-char list
        assert compile_pattern("/" + "*" * 200 + "Q").match("/" + "a" * 300 + "Q")
        with pytest.raises(ValueError, match="wildcards"):
            compile_pattern("/" + "*a" * 40)
    finally:
        rt.current.close()


def test_a_star_datagram_does_not_stop_a_running_show(write_patch, tmp_path):
    """liblo's oscsend with a 200-star pattern against a running engine: the rows go on,
    and SIGTERM still ends it."""
    need("oscsend", "liblo-tools")
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)))
    try:
        assert wait_for(lambda: len(rows(out)) > 5)
        for _ in range(3):
            subprocess.run(["oscsend", "127.0.0.1", str(eng.port),
                            "/tonegraph/" + "*" * 200 + "Q/x", "f", "1"], check=True, timeout=10)
        before = len(rows(out))
        assert wait_for(lambda: len(rows(out)) > before + 20, timeout=15)
    finally:
        log = eng.stop()
    assert eng.proc.returncode == 0 and "Traceback" not in log


def test_no_answer_outweighs_an_untrusted_datagram(write_patch, registry, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = stranger_control(write_patch, registry)
    nodes = rt.current.nodes
    try:
        size, sent = from_stranger(control, server, "/tonegraph/*/*")      # 20 bytes, 60 params
        assert sum(len(p) for _, p in sent) <= size and control.withheld >= 1
        size, sent = from_stranger(control, server, "/tonegraph/*/*", ("s", "10.9.9.9"))
        assert len(sent) <= 1 and sum(len(p) for _, p in sent) <= size
        assert nodes["out"].p.host == "127.0.0.1"                 # where cues go is not OSC's
        rebuilt = []
        rt.reloader = type("Reloader", (), {"request_params": lambda self, nid, v: rebuilt.append(nid)})()
        from_stranger(control, server, "/tonegraph/*/*", ("f", 100.0))    # one datagram ...
        assert nodes["saw"].p.frequency == 100.0 and rebuilt == []        # ... rebuilds nothing
        from_stranger(control, server, "/tonegraph/beat/bpm", ("f", 100.0))
        assert rebuilt == ["beat"]                    # by its own address it may
        size, sent = from_stranger(control, server, "/tonegraph/saw/frequency")   # a query
        assert sum(len(p) for _, p in sent) <= size
        size, sent = from_stranger(control, server, "/tonegraph/saw/frequency", ("f", 3.0))
        assert sent == [] and nodes["saw"].p.frequency == 3.0    # strangers may still play
        rng = random.Random(7)
        for _ in range(300):
            address = "/tonegraph/" + rng.choice(["*", "saw", "c", "out", "{saw,c}", "ghost"]) \
                + "/" + rng.choice(["*", "host", "port", "value", "frequency", "f?e*", "nope"])
            args = rng.choice([(), (("f", 1.0),), (("s", "x" * rng.randint(0, 40)),),
                               (("i", 5), ("i", 6))])
            size, sent = from_stranger(control, server, address, *args)
            assert sum(len(p) for _, p in sent) <= size, (address, args)
    finally:
        rt.current.close()


def test_routing_params_are_read_only_over_osc_even_to_trusted_senders(write_patch, registry,
                                                                        monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    from tonegraph.engine.osc.server import Incoming

    rt.current.close()
    control, server, clock, rt = stranger_control(write_patch, registry)
    control.allow = ()
    try:
        for address, arg in (("/tonegraph/out/host", "10.0.0.1"), ("/tonegraph/out/port", 7),
                             ("/tonegraph/out/profile", "qlcplus"), ("/tonegraph/rec/format", "csv")):
            server.replies.clear()
            server.inbox.append(Incoming(address, [arg], ("127.0.0.1", 9), 0.0, 1000))
            control.trusted = lambda sender: True
            apply_all(control)
            [reply] = [encode.decode(r)[0][1] for r in server.replies]
            assert "never OSC" in reply.params[0], reply
        nodes = rt.current.nodes
        assert (nodes["out"].p.host, nodes["out"].p.port, nodes["rec"].p.format) == \
            ("127.0.0.1", 9, "jsonl")
        from tonegraph.engine.osc.query import tree

        listed = tree(nodes)["CONTENTS"]["tonegraph"]["CONTENTS"]
        assert listed["out"]["CONTENTS"]["host"]["ACCESS"] == 1            # read-only there too
        assert listed["saw"]["CONTENTS"]["frequency"]["ACCESS"] == 3
    finally:
        rt.current.close()


def test_a_stranger_listens_only_after_echoing_its_token(write_patch, registry, monkeypatch,
                                                          tmp_path):
    from tonegraph.engine import control as control_module

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = stranger_control(write_patch, registry)
    victim = ("127.0.0.1", 40001)
    try:
        _, sent = from_stranger(control, server, "/tonegraph/listen", sender=victim)
        assert sent == [] and victim not in control.listeners           # too small to answer
        size, sent = from_stranger(control, server, "/tonegraph/listen", ("s", "my-surface-1"),
                                   sender=victim)
        [(to, packet)] = sent
        assert to == victim and len(packet) <= size and victim not in control.listeners
        token = encode.decode(packet)[0][1].params[0]
        from_stranger(control, server, "/tonegraph/listen", ("s", "guessed!"), sender=victim)
        assert victim not in control.listeners                           # a wrong echo
        _, sent = from_stranger(control, server, "/tonegraph/listen", ("s", "my-surface-1"),
                                sender=victim)
        token = encode.decode(sent[0][1])[0][1].params[0]
        from_stranger(control, server, "/tonegraph/listen", ("s", token), sender=victim)
        assert victim in control.listeners
        # One datagram per change for each listener, however many params a pattern set.
        _, sent = from_stranger(control, server, "/tonegraph/{saw,c}/*", ("f", 0.25))
        to_victim = [p for who, p in sent if who == victim]
        assert len(to_victim) == 1 and to_victim[0].startswith(encode.BUNDLE_HEAD)
        changed = {m.address for _, m in encode.decode(to_victim[0])}
        assert {"/tonegraph/saw/frequency", "/tonegraph/c/value"} <= changed
        # Listeners that go quiet are forgotten.
        clock.advance(control_module.LISTEN_TTL + 1)
        from_stranger(control, server, "/tonegraph/saw/frequency", ("f", 2.0))
        assert victim not in control.listeners
    finally:
        rt.current.close()


def test_osc_allow_names_trusted_networks():
    from tonegraph.engine.control import trusted_networks

    nets = trusted_networks("192.168.1.0/24, 10.0.0.7,::1")
    assert [str(n) for n in nets] == ["192.168.1.0/24", "10.0.0.7/32", "::1/128"]
    assert trusted_networks("none") == ()
    with pytest.raises(ValueError, match="'lan' is not an address or network"):
        trusted_networks("lan")


def test_a_running_show_answers_strangers_no_more_than_they_sent(write_patch, tmp_path):
    """A real engine trusting no one (--osc-allow none): pattern queries and sets from a
    UDP socket bring back no more bytes than went in; a refusal whose reason fits still
    arrives, cut short, as the marker that everything before it was handled."""
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)), "--osc-allow", "none")
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sock.settimeout(10)
    try:
        assert wait_for(lambda: len(rows(out)) > 2)
        sent = received = 0
        for packet in (encode.message("/tonegraph/*/*"), encode.message("/tonegraph/*/*", [("s", "x")]),
                       encode.message("/tonegraph/listen"), encode.message("/tonegraph/dim/out_range"),
                       encode.message("/tonegraph/*/*", [("s", "a-long-string-" * 4)])):
            eng.send(packet, sock)
            sent += len(packet)
        marker = encode.message("/tonegraph/dim/out_range", [("s", "loud-" * 12)])
        eng.send(marker, sock)
        while True:
            data = sock.recv(65536)
            [(_, reply)] = encode.decode(data)
            if "out_range" in reply.params[0] and "must be a list" in reply.params[0]:
                assert len(data) <= len(marker)
                break
            received += len(data)
        assert received <= sent
    finally:
        sock.close()
        log = eng.stop()
    assert "Traceback" not in log


def test_a_stranger_cannot_rebuild_the_show_by_bundles_or_repeats(write_patch, registry, monkeypatch,
                                                                   tmp_path):
    """Params that rebuild a node: the same value again asks nothing more, and senders
    outside --osc-allow get a burst of four rebuilds, then one a second."""
    from tonegraph.engine.osc.server import Incoming

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = stranger_control(write_patch, registry)
    rebuilt = []
    rt.reloader = type("Reloader", (), {"request_params": lambda self, nid, v: rebuilt.append(v)})()
    try:
        for bpm in [100.0] * 50:
            server.inbox.append(Incoming("/tonegraph/beat/bpm", [bpm], STRANGER, 0.0, 28))
        apply_all(control)
        assert rebuilt == [{"bpm": 100.0}]                      # 50 asks, one rebuild
        for k in range(20):
            server.inbox.append(Incoming("/tonegraph/beat/bpm", [101.0 + k], STRANGER, 0.0, 28))
        apply_all(control)
        assert len(rebuilt) == 4                                # the rest of the burst
        clock.advance(2.0)
        server.inbox.append(Incoming("/tonegraph/beat/bpm", [150.0], STRANGER, 0.0, 28))
        apply_all(control)
        assert rebuilt[-1] == {"bpm": 150.0} and len(rebuilt) == 5
    finally:
        rt.current.close()


def test_values_beyond_32_bits_are_applied_and_echoed_whole(write_patch, registry, monkeypatch,
                                                            tmp_path):
    from tonegraph.engine.osc.server import Incoming

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = control_of(write_patch, registry)
    listener = ("127.0.0.1", 9100)
    try:
        server.inbox.append(Incoming("/tonegraph/listen", [], listener, 0.0))
        server.inbox.append(Incoming("/tonegraph/c/value", [1e300], ("127.0.0.1", 9), 0.0))
        apply_all(control)
        [(who, echo)] = [(w, encode.decode(p)[0][1]) for w, p in server.sent_to]
        assert who == listener and echo.params == [1e300]
        assert rt.current.nodes["c"].p.value == 1e300
        server.sent_to.clear()
        server.inbox.append(Incoming("/tonegraph/c/value", [], ("127.0.0.1", 9), 0.0))
        apply_all(control)
        [(_, answer)] = [(w, encode.decode(p)[0][1]) for w, p in server.sent_to]
        assert answer.address == "/tonegraph/c/value" and answer.params == [1e300]
    finally:
        rt.current.close()


def test_strangers_cannot_take_the_desks_listening_places(write_patch, registry, monkeypatch,
                                                          tmp_path):
    from tonegraph.engine import control as control_module

    monkeypatch.chdir(tmp_path)
    control, server, clock, rt = stranger_control(write_patch, registry)
    desk = ("127.0.0.1", 8000)
    try:
        for port in range(41000, 41032):                      # one host, 32 ports
            who = ("127.0.0.1", port)
            _, sent = from_stranger(control, server, "/tonegraph/listen", ("s", "a-name-long-enough"),
                                    sender=who)
            if sent:
                token = encode.decode(sent[0][1])[0][1].params[0]
                from_stranger(control, server, "/tonegraph/listen", ("s", token), sender=who)
        assert len(control.listeners) == control_module.PER_HOST
        control.allow = (__import__("ipaddress").ip_network("127.0.0.1/32"),)
        control._trust.clear()
        from_stranger(control, server, "/tonegraph/listen", sender=desk)
        assert desk in control.listeners                        # the desk still gets in
    finally:
        rt.current.close()
