"""sync.link: Ableton Link through aalink, for real, inside a network namespace the
test makes itself (Link discovers peers by UDP multicast); offline, its own grid."""

from __future__ import annotations

import json
import sys

import numpy as np
import pytest

from tonegraph.nodes.sync.link import Link

from ..conftest import NodeDriver
from ..netns import in_network_namespace


def test_offline_the_node_keeps_a_grid_at_its_tempo():
    d = NodeDriver(Link, {"bpm": 120.0, "quantum": 4}, fps=60.0)
    beats, bars, phases = [], [], []
    for _ in range(int(4.2 * 60)):
        out = d.tick()
        beats += [e.t for e in out["beat"]]
        bars += [e.t for e in out["bar"]]
        phases.append(out["phase"])
    assert beats == pytest.approx([0.5 * k for k in range(1, 9)], abs=1e-9)
    assert bars == pytest.approx([2.0, 4.0], abs=1e-9)
    assert out["bpm"] == 120.0 and out["count"] == 8.0
    assert 0.0 <= min(phases) and max(phases) < 1.0
    assert np.count_nonzero(np.diff(phases) < 0) == 8                 # wraps once per beat


SESSION_PROBE = r"""
import json, socket, sys, time
from tonegraph.engine.osc import encode
from tests.osc_peers import Engine

sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
sock.bind(("127.0.0.1", 0))
sock.settimeout(0.2)
port = sock.getsockname()[1]
engines = []
for name, extra in (("a", "  lead: {type: control.constant, params: {value: 132}}\n"), ("b", "")):
    wire = ", in: {tempo: lead}" if extra else ""
    bpm = 100 if extra else 90
    path = f"{sys.argv[1]}/{name}.yaml"
    open(path, "w").write(
        "patch: {fps: 60}\nnodes:\n"
        f"{extra}"
        f"  link: {{type: sync.link, params: {{bpm: {bpm}}}{wire}}}\n"
        f"  out: {{type: osc.out, params: {{port: {port}, profile: generic, bundle: true, timetag: media}},\n"
        f"        in: {{/{name}/beat: link.beat, /{name}/bpm: link.bpm, /{name}/peers: link.peers}}}}\n")
    engines.append(Engine(path))
got = {"a": [], "b": []}
last = {}
deadline = time.monotonic() + float(sys.argv[2])
while time.monotonic() < deadline:
    try:
        data = sock.recv(65536)
    except socket.timeout:
        continue
    for tag, msg in encode.decode(data):
        who, what = msg.address.split("/")[1:3]
        if what == "beat":
            got[who].append(tag)
        else:
            last[f"{who}/{what}"] = msg.params[0]
logs = [e.stop() for e in engines]
print(json.dumps({"beats": got, "last": last, "logs": logs}))
"""


def test_two_engines_in_one_link_session_agree_on_the_beat_and_follow_the_leader(tmp_path):
    """Two tonegraph processes join one session (one leads at 132 BPM from a tempo
    input); each sends its beats as OSC bundles timetagged with the moment the beat
    fell.  Their beats agree within 2 ms, and both play at the leader's tempo."""
    res = in_network_namespace(sys.executable, "-c", SESSION_PROBE, str(tmp_path), "10", timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    for log in got["logs"]:
        assert "Traceback" not in log and "ERROR" not in log, log
    assert got["last"]["a/peers"] == 1.0 and got["last"]["b/peers"] == 1.0
    assert got["last"]["a/bpm"] == pytest.approx(132, abs=0.01)
    assert got["last"]["b/bpm"] == pytest.approx(132, abs=0.01)
    a, b = np.array(got["beats"]["a"]), np.array(got["beats"]["b"])
    # Once both have joined and the tempo settled, and while both still ran.
    late = a[(a > a[0] + 4.0) & (a < b.max() - 0.1)]
    assert len(late) >= 8
    gaps = np.abs(late[:, None] - b[None, :]).min(axis=1)
    assert gaps.max() < 0.002, gaps
    assert np.diff(late) == pytest.approx(60 / 132, abs=0.002)
