"""OSC benchmarks.

Event to datagram: an audio-domain node fires an event every hop; osc.out sends it
from the audio thread; a receiver thread stamps its arrival. Baseline in the same run:
the same node sending a prebuilt datagram with a bare sendto. Target: p99 <= 0.5 ms.

Throughput: 10,000 messages per second (167 addresses changing every frame at 60 Hz,
plain messages, no bundles) to one destination counted by a receiver process, with
frame-clock lateness compared with the same patch without osc.out.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.osc import encode
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime

from .common import best_of, percentile, quick, table


class Pulse(Node):
    """Fires one event per hop whose strength is its sequence number, stamping when."""

    type_name = "bench.pulse"
    description = "event source"
    domain = "audio"
    params = {"bare_port": P.integer(0, min=0)}
    outputs = {"out": ports.event()}

    def configure(self) -> None:
        self.n = 0
        self.stamps: dict[int, float] = {}
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM) if self.p.bare_port else None

    def process(self, tick: Tick) -> None:
        self.n += 1
        self.stamps[self.n] = time.perf_counter()
        if self.sock is not None:
            self.sock.sendto(encode.message("/hit", [("f", float(self.n))]),
                             ("127.0.0.1", self.p.bare_port))
        else:
            self.out["out"] = (ports.Event(tick.t, float(self.n)),)


def _receiver(sock: socket.socket, arrivals: dict[int, float], stop: threading.Event) -> None:
    sock.settimeout(0.2)
    while not stop.is_set():
        try:
            data = sock.recv(65536)
        except socket.timeout:
            continue
        t = time.perf_counter()
        for _, m in encode.decode(data):
            arrivals[int(m.params[0])] = t


def _run(patch_text: str, seconds: float, reg) -> Runtime:
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "p.yaml"
        path.write_text(patch_text)
        graph, errors = load_graph(path, reg)
        assert not errors, errors
        rt = Runtime(graph, reg, duration=seconds)
        rt.control_clock.record = []
        rt.run()
    return rt


def event_latency() -> dict:
    reg = default_registry(plugins=False)
    reg.add(Pulse, __name__)
    seconds = 3 if quick() else 10
    rows, result = [], {}
    for name, bare in (("bare sendto", True), ("osc.out", False)):
        sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        arrivals: dict[int, float] = {}
        stop = threading.Event()
        threading.Thread(target=_receiver, args=(sock, arrivals, stop), daemon=True).start()
        patch = f"""
patch: {{fps: 60, samplerate: 48000, hop: 256}}
nodes:
  pulse: {{type: bench.pulse, params: {{bare_port: {port if bare else 0}}}}}
  {"" if bare else f"out: {{type: osc.out, params: {{port: {port}, bundle: false}}, in: {{/hit: pulse}}}}"}
"""
        rt = _run(patch, seconds, reg)
        time.sleep(0.3)
        stop.set()
        stamps = rt.runner.nodes["pulse"].stamps
        lat = [(arrivals[k] - stamps[k]) * 1e3 for k in stamps if k in arrivals]
        lost = len(stamps) - len(lat)
        rows.append([name, len(lat), lost, f"{percentile(lat, 50):.3f}", f"{percentile(lat, 99):.3f}",
                     f"{max(lat):.3f}"])
        result[name] = percentile(lat, 99)
    ratio = result["osc.out"] / max(result["bare sendto"], 1e-9)
    rows.append(["p99 ratio", "", "", "", f"{ratio:.2f}",
                 "PASS" if result["osc.out"] <= 0.5 else "FAIL"])
    table("OSC event -> datagram received on loopback [ms] (target p99 <= 0.5 ms)",
          ["sender", "events", "lost", "p50", "p99", "max"], rows)
    return {"osc_event_p99_ms": result["osc.out"]}


RECEIVER = """
import socket, sys, time
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
s.bind(("127.0.0.1", 0))
print(s.getsockname()[1], flush=True)
s.settimeout(120.0)
n, first, last = 0, None, None
try:
    while True:
        s.recv(65536)
        last = time.monotonic()
        if first is None:
            first = last
            s.settimeout(2.0)   # the sender is done when nothing comes for 2 s
        n += 1
except socket.timeout:
    pass
print(n, (last - first) if first else 0.0, flush=True)
"""


def throughput() -> dict:
    reg = default_registry(plugins=False)
    seconds = 5 if quick() else 30
    addresses = 167  # x 60 fps = 10,020 messages per second
    lines = ["patch: {fps: 60}", "nodes:",
             "  lfo: {type: control.lfo, params: {shape: saw, frequency: 0.37}}"]
    wires = []
    for i in range(addresses):
        lines.append(f"  m{i}: {{type: control.map, params: {{in_range: [-1, 1], out_range: [0, {i + 1}]}},"
                     f" in: {{value: lfo}}}}")
        wires.append(f"/fixture/{i}/level: m{i}")
    base = "\n".join(lines) + "\n"
    rows, late = [], {}
    recv = subprocess.Popen([sys.executable, "-c", RECEIVER], stdout=subprocess.PIPE, text=True)
    port = int(recv.stdout.readline())
    for name, text in (("without OSC", base),
                       ("10k msg/s", base + f"  out: {{type: osc.out, params: {{port: {port}, bundle: false, "
                                              f"policy: every-frame}}, in: {{{', '.join(wires)}}}}}\n")):
        rt = _run(text, seconds, reg)
        ms = [x * 1e3 for x in rt.control_clock.record]
        late[name] = percentile(ms, 99)
        rows.append([name, rt.frames, f"{percentile(ms, 50):.3f}", f"{late[name]:.3f}",
                     f"{max(ms):.3f}", rt.control_clock.skipped])
    n, span = recv.stdout.readline().split()
    recv.wait(timeout=10)
    rate = int(n) / float(span) if float(span) else 0.0
    ratio = late["10k msg/s"] / max(late["without OSC"], 1e-9)
    rows.append(["p99 ratio", "", "", f"{ratio:.2f}", "", ""])
    table(f"OSC throughput: {addresses} addresses every frame at 60 Hz, plain messages, over {seconds} s: "
          f"frame-clock lateness [ms]", ["run", "frames", "p50", "p99", "max", "skipped"], rows)
    ok = rate >= 9500 and late["10k msg/s"] <= 2.0
    print(f"  receiver counted {int(n)} datagrams at {rate:,.0f} per second; "
          f"{'PASS' if ok else 'FAIL'} (target: 10,000/s with lateness p99 within the clock's 1-2 ms budget)")
    return {"osc_rate": rate, "osc_lateness_ratio": ratio}


class _Replies:
    """Stands in for the UDP listener: the benchmark hands the control path its messages."""

    def __init__(self) -> None:
        self.inbox: list = []
        self.sent = 0

    def drain(self) -> list:
        out, self.inbox = self.inbox, []
        return out

    def reply(self, sender, packet: bytes) -> None:
        self.sent += len(packet)


def hostile_patterns() -> dict:
    """Address patterns from the network against graphs/demo.yaml's namespace, through
    the control path (match, check, answer), per message; baseline in the same run: a
    plain set of one param.  Beside them, the regex matcher it replaced on a 20-star
    pattern against the same node ids.  Target: <= 1 ms each."""
    import re

    from tonegraph.engine.clock import FakeClock
    from tonegraph.engine.control import Control
    from tonegraph.engine.osc.server import Incoming

    graph, errors = load_graph(Path("graphs/demo.yaml"), default_registry())
    assert not errors, errors
    rt = Runtime(graph, default_registry(), clock=FakeClock(), headless=True)
    rt.current.configure()
    server = _Replies()
    control = Control(rt, server)
    stranger = Control(rt, server, allow=())
    cases = [
        ("plain set /tonegraph/hit/decay f (baseline)", control, "/tonegraph/hit/decay", [0.25]),
        ("200 stars + Q/x f", control, "/tonegraph/" + "*" * 200 + "Q/x", [1.0]),
        ("1,000-char [...] list /value", control, "/tonegraph/[" + "abcdefghij" * 100 + "]/decay",
         [0.25]),
        ("16 x '*a' (the most wildcards) + Q/x", control, "/tonegraph/" + "*a" * 16 + "Q/x", [1.0]),
        ("/tonegraph/*/* s (every param, refused)", control, "/tonegraph/*/*", ["x" * 40]),
        ("/tonegraph/*/* query, trusted (one bundle)", control, "/tonegraph/*/*", []),
        ("/tonegraph/*/* query, stranger (refused)", stranger, "/tonegraph/*/*", []),
    ]
    repeat = 20 if quick() else 200
    rows, times = [], {}
    try:
        for label, ctl, address, args in cases:
            def once(ctl=ctl, address=address, args=args):
                server.inbox.append(Incoming(address, list(args), ("127.0.0.1", 9), 0.0, 64))
                ctl.apply()
            once()
            per = [best_of(once, 1) for _ in range(repeat)]
            times[label] = percentile(per, 50)
            rows.append([label, f"{percentile(per, 50) * 1e3:.3f}", f"{max(per) * 1e3:.3f}"])
    finally:
        rt.current.close()
    ids = list(rt.current.nodes)
    old = re.compile("[^/]*" * 20 + "Q" + r"\Z")
    t0 = time.perf_counter()
    for nid in ids:
        old.match(nid)
    before = time.perf_counter() - t0
    rows.append(["the regex matcher it replaced, 20 stars", f"{before * 1e3:.3f}", ""])
    worst = max(times[c[0]] for c in cases[1:4])       # the patterns the target is for
    base = times[cases[0][0]]
    table("OSC patterns from the network, per message through the control path [ms] "
          "(target <= 1 ms each)", ["message", "median", "max"], rows)
    print(f"  worst hostile pattern {worst * 1e3:.3f} ms, {worst / base:.1f}x a plain set: "
          f"{'PASS' if worst <= 1e-3 else 'FAIL'}")
    return {"osc_hostile_pattern_ms": worst * 1e3}


def run() -> dict:
    return hostile_patterns() | event_latency() | throughput()


if __name__ == "__main__":
    run()
