"""Live control over OSC, from senders we did not write (liblo's oscsend, Pure Data),
plus osc.in routing, fuzzing, OSCQuery discovery and the status heartbeat."""

from __future__ import annotations

import json
import random
import re
import socket
import subprocess
import sys
import threading
import time
import urllib.request

import pytest

from engine.osc import encode
from engine.osc.pattern import compile_pattern
from engine.osc.server import OscServer

from ..conftest import ROOT, rows, wait_for
from ..osc_peers import free_port, need


class Engine:
    """tonegraph run in real time, listening for OSC on a free port."""

    def __init__(self, patch, *extra: str, seconds: float = 30) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "engine.cli", "run", str(patch), "--headless", "--duration",
             str(seconds), "--osc-port", "0", "--oscquery-port", "0", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.log: list[str] = []
        self.port = self.query_port = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"OSC control on [\d.]+:(\d+), OSCQuery on http://[\d.]+:(\d+)/", line)
            if m:
                self.port, self.query_port = int(m.group(1)), int(m.group(2))
                break
        assert self.port, "".join(self.log)
        threading.Thread(target=self._drain, daemon=True).start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def send(self, packet: bytes, sock: socket.socket | None = None) -> None:
        s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(packet, ("127.0.0.1", self.port))

    def stop(self) -> str:
        self.proc.terminate()
        self.proc.wait(timeout=20)
        time.sleep(0.1)
        return "".join(self.log)






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
            time.sleep(0.03)
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
        eng.send(encode.message("/tonegraph/c/value", [("f", 77.0)]))
        assert wait_for(lambda: any(r["name"] == "c" and r["value"] == 77.0 for r in rows(out)))
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


def test_heartbeat_and_errors_reach_the_status_address(write_patch, tmp_path):
    listener = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    listener.bind(("127.0.0.1", 0))
    listener.settimeout(5)
    out = tmp_path / "rec.jsonl"
    eng = Engine(write_patch(MAPPER.format(out=out)), "--status",
                 f"127.0.0.1:{listener.getsockname()[1]}", "--status-interval", "0.2")
    got = []
    try:
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline:
            got += encode.decode(listener.recv(65536))
        eng.send(encode.message("/tonegraph/dim/curve", [("s", "wobbly")]))
        deadline = time.monotonic() + 3
        while time.monotonic() < deadline and not any(m.address == "/tonegraph/error" for _, m in got):
            got += encode.decode(listener.recv(65536))
    finally:
        eng.stop()
    beats = [m for _, m in got if m.address == "/tonegraph/status"]
    assert len(beats) >= 8
    uptime, fps, late, skipped, overflows, faulted, faults, dropped = beats[-1].params
    assert uptime > 1.0 and 50 < fps < 70 and faulted == 0
    errors = [m.params[0] for _, m in got if m.address == "/tonegraph/error"]
    assert any("param 'curve' must be one of linear" in e for e in errors)
