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
more = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {"a": "", "b": ""}
lead = ("  lead: {type: control.constant, params: {value: 132}}\n"
        "  play: {type: control.lfo, params: {shape: saw, frequency: 0.2}}\n")
for name, extra in (("a", lead), ("b", "")):
    wire = "tempo: lead, play: play" if extra else ""
    bpm = 100 if extra else 90
    path = f"{sys.argv[1]}/{name}.yaml"
    open(path, "w").write(
        "patch: {fps: 60}\nnodes:\n"
        f"{extra}"
        f"  link: {{type: sync.link, params: {{bpm: {bpm}{more[name]}}}, in: {{{wire}}}}}\n"
        f"  out: {{type: osc.out, params: {{port: {port}, profile: generic, bundle: true, timetag: media,\n"
        f"        release: false}},\n"
        f"        in: {{/{name}/beat: link.beat, /{name}/bpm: link.bpm, /{name}/peers: link.peers,\n"
        f"              /{name}/playing: link.playing, /{name}/start: link.start}}}}\n")
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
        elif what == "start":
            last[f"{who}/start"] = last.get(f"{who}/start", 0) + 1
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


def test_a_follower_sends_its_beats_ahead_and_follows_the_leaders_transport(tmp_path):
    """Two engines in one session, both in Link's start/stop sync: the leader starts and
    stops the transport from its play input (a saw above 0.5 for the last quarter of each
    5 s), and the follower's transport starts with it (Link shares changes of the
    transport, not its state at joining);
    the follower, with delay -0.06, sends each beat 60 ms before the leader's (to cover a
    fixture's latency), and a delay of more than a beat ahead is held to one beat."""
    more = {"a": ", start_stop: true", "b": ", start_stop: true, delay: -0.06"}
    res = in_network_namespace(sys.executable, "-c", SESSION_PROBE, str(tmp_path), "10", json.dumps(more),
                               timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    for log in got["logs"]:
        assert "Traceback" not in log and "ERROR" not in log, log
    assert got["last"]["a/start"] >= 1 and got["last"]["b/start"] >= 1
    a, b = np.array(got["beats"]["a"]), np.array(got["beats"]["b"])
    late = b[(b > a[0] + 4.0) & (b < a.max() - 0.5)]
    assert len(late) >= 8
    ahead = np.array([a[np.abs(a - t - 0.06).argmin()] - t for t in late])
    assert ahead == pytest.approx(0.06, abs=0.002)


@pytest.mark.parametrize("delay,first", [(-0.1, 0.4), (0.05, 0.05), (-2.0, 0.5)])
def test_delay_moves_the_timeline_and_ahead_is_at_most_a_beat(delay, first):
    """Offline at 120 BPM: beats and bars move by 'delay' (-2 s is held to one beat, 0.5 s
    ahead: the same grid, its count one beat on)."""
    d = NodeDriver(Link, {"bpm": 120.0, "quantum": 4, "delay": delay}, fps=60.0)
    beats, bars = [], []
    for _ in range(int(4.2 * 60)):
        out = d.tick()
        beats += [e.t for e in out["beat"]]
        bars += [e.t for e in out["bar"]]
    assert beats[:3] == pytest.approx([first, first + 0.5, first + 1.0], abs=1e-9)
    assert np.diff(beats) == pytest.approx(0.5, abs=1e-9)
    assert len(bars) >= 2 and np.diff(bars) == pytest.approx(2.0, abs=1e-9)
    assert min(abs(b - 2.0 - max(delay, -0.5)) for b in bars) < 1e-9      # the bar moves alike
