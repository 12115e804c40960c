"""dmx.out: the frame it builds (channels, fixtures, 16-bit), and for real against OLA's
E1.31 and Art-Net inputs, read back over OLA's HTTP API.

OLA listens only on a real interface (never loopback), so the real test makes two
network namespaces of its own joined by a veth pair (10.99.0.1 for OLA, 10.99.0.2 for
tonegraph): nothing leaves them."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ..conftest import ROOT, run_offline
from ..osc_peers import OLA_PLUGINS

FIXTURES = """
types:
  par:   [dimmer, red, green, blue, strobe]
  mover: [pan, pan_fine, tilt, tilt_fine, dimmer]
fixtures:
  front: {type: par, address: 1}
  spot:  {type: mover, address: 10}
"""


def test_channels_fixtures_and_16_bit_make_the_frame(write_patch, registry, tmp_path):
    (tmp_path / "rig.yaml").write_text(FIXTURES)
    patch = write_patch("""
        nodes:
          half: {type: control.constant, params: {value: 0.5}}
          full: {type: control.constant, params: {value: 1.0}}
          over: {type: control.constant, params: {value: 7}}
          dmx:  {type: dmx.out, params: {fixtures: rig.yaml},
                 in: {front/dimmer: full, spot/pan: half, spot/dimmer: over, ch100: half, ch512: full}}
        """, name="show.yaml")
    rt = run_offline(patch, registry, duration=0.1)
    frame = rt.runner.nodes["dmx"].out["frame"]
    assert frame[0] == 255                                   # front/dimmer, channel 1
    assert (frame[9], frame[10]) == (128, 0)                 # spot/pan 0.5 as 16-bit: 32768
    assert frame[13] == 255                                  # spot/dimmer, clamped
    assert frame[99] == 128 and frame[511] == 255            # raw channels
    assert frame[1:9].sum() == 0


def test_bad_fixture_files_and_names_are_patch_errors(write_patch, registry, tmp_path):
    from tonegraph.engine.graph import load_graph

    (tmp_path / "rig.yaml").write_text(FIXTURES.replace("address: 10", "address: 3"))
    patch = write_patch("nodes:\n  dmx: {type: dmx.out, params: {fixtures: rig.yaml}}\n")
    _, errors = load_graph(patch, registry)
    assert "fixture 'spot' overlaps 'front' at channel 3" in str(errors[0])
    (tmp_path / "rig.yaml").write_text(FIXTURES)
    patch = write_patch("""
        nodes:
          c:   {type: control.constant}
          dmx: {type: dmx.out, params: {fixtures: rig.yaml}, in: {front/rgb: c, back/dimmer: c, ch600: c}}
        """)
    errors = " | ".join(str(e) for e in load_graph(patch, registry)[1])
    assert "input 'front/rgb' takes a vector of 3, not number" in errors
    assert "input 'back/dimmer' is no channel or fixture attribute" in errors
    assert "input 'ch600': channels are ch1-ch512" in errors


#: Namespace A (this shell): OLA on tg0, 10.99.0.1.  Namespace B: tonegraph on tg1,
#: 10.99.0.2, running the patch given, then stopping (its blackout goes out).
HARNESS = r"""
set -e
ip link set lo up
ip link add tg0 type veth peer name tg1
ip addr add 10.99.0.1/24 dev tg0
ip link set tg0 up
ip route add 224.0.0.0/4 dev tg0
unshare -n sh -c 'ip link set lo up; touch "$DIR/ns-ready"
  while ! ip link show tg1 >/dev/null 2>&1; do sleep 0.05; done
  ip addr add 10.99.0.2/24 dev tg1; ip link set tg1 up; ip route add 224.0.0.0/4 dev tg1
  while [ ! -e "$DIR/go" ]; do sleep 0.05; done
  cd "$ROOT" && "$PY" -m tonegraph.engine.cli run "$DIR/patch.yaml" --headless --no-osc --duration 3 2> "$DIR/engine.log"
  touch "$DIR/done"' &
B=$!
while [ ! -e "$DIR/ns-ready" ]; do sleep 0.05; done
ip link set tg1 netns $B        # unshare runs the shell itself: $B is in the new namespace
runuser -u nobody -- olad -c "$DIR/ola" --http-port 9191 --rpc-port 9192 --no-register-with-dns-sd -l 1 &
OLA=$!
until curl -s localhost:9191/json/universe_plugin_list >/dev/null; do sleep 0.1; done
sleep 1
touch "$DIR/go"
while [ ! -e "$DIR/done" ] && [ ! -e "$DIR/playing" ]; do
  if curl -s "localhost:9191/get_dmx?u=$U" | grep -q '"dmx": \[[1-9]'; then
    curl -s "localhost:9191/get_dmx?u=$U" > "$DIR/playing"; fi
  sleep 0.1
done
wait $B
sleep 0.5
curl -s "localhost:9191/get_dmx?u=$U" > "$DIR/after"
kill $OLA
"""


def ola_config(folder: Path, protocol: str) -> int:
    """OLA with only the one input plugin on, its port 0 patched to an OLA universe;
    returns that universe."""
    ola = folder / "ola"
    ola.mkdir()
    for name in OLA_PLUGINS + ("osc",):
        (ola / f"ola-{name}.conf").write_text("enabled = false\n")
    if protocol == "sacn":
        (ola / "ola-e131.conf").write_text("enabled = true\ninput_ports = 1\noutput_ports = 0\n"
                                           "ignore_preview = true\n")
        (ola / "ola-port.conf").write_text("11-1-I-0 = 7\n")       # listens to sACN universe 7
        universe = 7
    else:
        (ola / "ola-artnet.conf").write_text("enabled = true\nnet = 0\nsubnet = 0\noutput_ports = 0\n")
        (ola / "ola-port.conf").write_text("2-1-I-0 = 3\n")         # Art-Net universe 3 (0:0:3)
        universe = 3
    for path in [folder, ola, *ola.iterdir()]:
        path.chmod(0o777 if path.is_dir() else 0o666)
    return universe


@pytest.mark.parametrize("protocol,host", [("sacn", "10.99.0.1"), ("sacn", ""), ("artnet", "10.99.0.1"),
                                           ("artnet", ""), ("artnet", "10.99.0.255")],
                         ids=["sacn-unicast", "sacn-multicast", "artnet", "artnet-broadcast",
                              "artnet-subnet-broadcast"])
def test_ola_receives_the_lights_and_the_blackout(protocol, host):
    if shutil.which("olad") is None:
        pytest.fail("olad is missing: 'make setup' installs the Debian package ola")
    folder = Path(tempfile.mkdtemp(prefix="tonegraph-dmx-"))     # olad runs as nobody
    try:
        universe = ola_config(folder, protocol)
        (folder / "rig.yaml").write_text(FIXTURES)
        (folder / "patch.yaml").write_text(textwrap.dedent(f"""
            nodes:
              half: {{type: control.constant, params: {{value: 0.5}}}}
              full: {{type: control.constant, params: {{value: 1.0}}}}
              dmx:  {{type: dmx.out, params: {{protocol: {protocol}, host: "{host}", universe: {universe},
                                              fixtures: rig.yaml}},
                      in: {{front/dimmer: full, front/red: half, spot/pan: half, ch20: full}}}}
            """))
        env = {"DIR": str(folder), "ROOT": str(ROOT), "PY": sys.executable, "U": str(universe),
               "PATH": "/usr/sbin:/usr/bin:/sbin:/bin"}
        res = subprocess.run(["unshare", "-n", "sh", "-c", HARNESS], env=env, capture_output=True,
                             text=True, timeout=90)
        log = (folder / "engine.log").read_text() if (folder / "engine.log").exists() else ""
        assert res.returncode == 0, (res.stderr[-2000:], log)
        assert (folder / "playing").exists(), ("OLA saw no DMX", log)
        playing = json.loads((folder / "playing").read_text())["dmx"]
        after = json.loads((folder / "after").read_text())["dmx"]
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert playing[0] == 255 and playing[1] == 128                       # front: dimmer, red
    assert (playing[9], playing[10]) == (128, 0) and playing[19] == 255  # 16-bit pan, ch20
    assert "Traceback" not in log
    assert not any(after[:20]), after[:20]                               # blackout on stop


#: Runs dmx.out for real inside a network namespace of the test's own (see
#: tests/netns.py), its values set 100 times a second until it has sent "frames" frames
#: at its own rate, then closes it, while UDP
#: sockets capture what arrives at each address named in "listen" (unicast, or a
#: multicast group joined on lo).  Once "recover_at" frames are sent the host's address is added to
#: lo, so a host that was unreachable becomes reachable.  After the close a marker
#: datagram is sent to each address: once it arrives, everything sent there before has.
#: Prints {"packets": {address: [hex, ...]}, "log": ..., "stdout": ...}.
DMX_PROBE = r"""
import contextlib, io, json, logging, socket, subprocess, sys, time
from tonegraph.engine.node import Context, Tick
from tonegraph.engine.ports import PortType
from tonegraph.nodes.dmx.out import DmxOut

cfg = json.loads(sys.argv[1])
port = 6454 if cfg["params"].get("protocol") == "artnet" else 5568
MARK = b"end of capture"

def listen(addr):
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.bind((addr, port))
    if addr.startswith("239."):
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(addr) + socket.inet_aton("0.0.0.0"))
    return s

caps = {a: listen(a) for a in cfg["listen"]}
text = io.StringIO()
handler = logging.StreamHandler(text)
handler.setFormatter(logging.Formatter("%(levelname)s %(name)s: %(message)s"))
logging.basicConfig(level=logging.INFO, handlers=[handler])
params = {k: DmxOut.params[k].coerce(v, k) for k, v in cfg["params"].items()}
printed = io.StringIO()
with contextlib.redirect_stdout(printed):
    node = DmxOut("dmx", params, Context(fps=44.0), {"ch1": PortType.NUMBER})
    node.configure()
    # The node sends from its own thread at its rate: the ticks here only give it values,
    # until it has sent "frames" frames (at "recover_at" the host becomes reachable).
    i, deadline, recover = 0, time.monotonic() + 60, cfg.get("recover_at")
    while (node.pacer is None or node.pacer.sent < cfg["frames"]) and time.monotonic() < deadline:
        if recover is not None and node.pacer is not None and node.pacer.sent >= recover:
            subprocess.run(["ip", "addr", "add", params["host"] + "/32", "dev", "lo"], check=True)
            caps[params["host"]] = listen(params["host"])
            recover = None
        if cfg.get("poll_from") and node.pacer is not None and node.pacer.sent >= 5:
            # A desk's ArtPoll (Art-Net 4: ID, OpPoll, protocol 14, flags, priority).
            caps[cfg.pop("poll_from")].sendto(b"Art-Net\0\x00\x20\x00\x0e\x00\x00", ("127.0.0.1", port))
        node.inp["ch1"] = 0.2 + (i % 50) / 100
        node.process(Tick(i / 100.0, 1 / 100.0, i))
        i += 1
        time.sleep(0.01)
    node.close()
marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
packets = {}
for addr, s in caps.items():
    marker.sendto(MARK, (addr, port))
    s.settimeout(0.2)
    got, deadline = [], time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        if data == MARK:
            break
        got.append(data.hex())
    else:
        raise SystemExit(f"the marker never reached {addr}")
    packets[addr] = got
print(json.dumps({"packets": packets, "log": text.getvalue(), "stdout": printed.getvalue()}))
"""


def run_dmx_probe(params: dict, listen: list[str], frames: int = 44, recover_at: int | None = None,
                  poll_from: str | None = None) -> dict:
    """``poll_from``: one of the ``listen`` addresses, which sends an ArtPoll to the node
    (at 127.0.0.1) once it has sent 5 frames."""
    from ..netns import in_network_namespace

    cfg = {"params": params, "listen": listen, "frames": frames, "recover_at": recover_at,
           "poll_from": poll_from}
    res = in_network_namespace(sys.executable, "-c", DMX_PROBE, json.dumps(cfg), timeout=120)
    assert res.returncode == 0, res.stderr[-3000:]
    got = json.loads(res.stdout.strip().splitlines()[-1])
    got["packets"] = {a: [bytes.fromhex(p) for p in ps] for a, ps in got["packets"].items()}
    return got


def e131(packet: bytes) -> dict:
    """An E1.31 packet's kind and fields (ANSI E1.31-2016, sections 6 and 7)."""
    assert packet[4:16] == b"ASC-E1.17\0\0\0", packet[:16]
    root, frame = int.from_bytes(packet[18:22], "big"), int.from_bytes(packet[40:44], "big")
    if (root, frame) == (0x04, 0x02):
        return {"kind": "data", "sync": int.from_bytes(packet[109:111], "big"),
                "terminated": bool(packet[112] & 0x40), "universe": int.from_bytes(packet[113:115], "big"),
                "dmx": packet[126:]}
    if (root, frame) == (0x08, 0x01):
        return {"kind": "sync", "sync": int.from_bytes(packet[45:47], "big")}
    return {"kind": f"other {root:#x}/{frame:#x}"}


def test_sacn_unicast_sends_no_sync_and_nothing_multicast_by_default():
    """With sync off (the default) a unicast host gets data packets only, none naming a
    sync universe, and nothing reaches the sync group 239.255.249.255 (the sacn
    library's default sync universe 63999) or the universe's own group."""
    got = run_dmx_probe({"host": "127.0.0.1", "universe": 1},
                        ["127.0.0.1", "239.255.249.255", "239.255.0.1"])
    unicast = [e131(p) for p in got["packets"]["127.0.0.1"]]
    assert len(unicast) >= 44
    assert {p["kind"] for p in unicast} == {"data"}
    assert {p["sync"] for p in unicast} == {0} and {p["universe"] for p in unicast} == {1}
    assert got["packets"]["239.255.249.255"] == [] and got["packets"]["239.255.0.1"] == []


@pytest.mark.parametrize("host,data_at,sync_at", [("127.0.0.1", "127.0.0.1", "127.0.0.1"),
                                                  ("", "239.255.0.1", "239.255.0.7")],
                         ids=["unicast", "multicast"])
def test_sacn_sync_goes_where_the_data_goes(host, data_at, sync_at):
    """With 'sync: 7' each data frame names sync universe 7 and is followed by a sync
    packet for it: unicast to the host when there is one, to universe 7's group when
    multicasting; nothing goes anywhere else."""
    everywhere = ["127.0.0.1", "239.255.0.1", "239.255.0.7", "239.255.249.255"]
    got = run_dmx_probe({"host": host, "universe": 1, "sync": 7}, everywhere)
    packets = {a: [e131(p) for p in ps] for a, ps in got["packets"].items()}
    data = [p for p in packets[data_at] if p["kind"] == "data" and not p["terminated"]]
    syncs = [p for p in packets[sync_at] if p["kind"] == "sync"]
    assert len(data) >= 44 and {p["sync"] for p in data} == {7}
    assert len(syncs) == len(data) and {p["sync"] for p in syncs} == {7}
    assert sum(len(ps) for a, ps in packets.items() if a not in (data_at, sync_at)) == 0


def test_sacn_close_sends_the_blackout_then_three_stream_terminated_packets():
    """Closing the node (the show stops, or a reload removes it) sends the blackout
    frame and then E1.31's three stream-terminated packets (options bit 6), so a
    receiver lets go of the universe at once instead of after its 2.5 s timeout."""
    got = run_dmx_probe({"host": "127.0.0.1", "universe": 3}, ["127.0.0.1"], frames=10)
    packets = [e131(p) for p in got["packets"]["127.0.0.1"]]
    assert [p["terminated"] for p in packets] == [False] * (len(packets) - 3) + [True] * 3
    assert len(packets) >= 11 and {p["universe"] for p in packets} == {3}
    assert packets[0]["dmx"][0] > 0 and not any(packets[-4]["dmx"])      # lights, then blackout


@pytest.mark.parametrize("protocol", ["sacn", "artnet"])
def test_an_unreachable_host_is_reported_once_and_once_when_it_recovers(protocol):
    """A host with no route (ENETUNREACH in the namespace) for 200 frames, then
    reachable (its address added to lo) for 60 more: two log lines in all, no traceback,
    nothing printed, and the frames reach the host once it can be reached."""
    host = "10.99.0.1"
    got = run_dmx_probe({"protocol": protocol, "host": host}, [], frames=260, recover_at=200)
    lines = got["log"].splitlines()
    assert len(lines) <= 2 and "Traceback" not in got["log"] and got["stdout"] == "", got["log"]
    assert lines[0] == (f"WARNING tonegraph.dmx: node 'dmx': DMX to {host} not sent: Network is "
                        "unreachable; reported again when it recovers")
    assert lines[1].startswith(f"WARNING tonegraph.dmx: node 'dmx': DMX to {host} sent again"), lines
    arrived = got["packets"][host]
    assert len(arrived) >= 50
    if protocol == "artnet":
        assert arrived[0][:10] == b"Art-Net\0\x00\x50"
    else:
        assert e131(arrived[0])["kind"] == "data"


def test_sync_with_art_net_is_a_patch_error(write_patch, registry):
    from tonegraph.engine.graph import load_graph

    patch = write_patch("nodes:\n  dmx: {type: dmx.out, params: {protocol: artnet, sync: 7}}\n")
    errors = " | ".join(str(e) for e in load_graph(patch, registry)[1])
    assert "sync is an sACN sync universe; Art-Net sends none (set it to 0)" in errors
    patch = write_patch("nodes:\n  dmx: {type: dmx.out, params: {protocol: sacn, sync: 64000}}\n")
    assert "sync" in " | ".join(str(e) for e in load_graph(patch, registry)[1])


#: In a network namespace of the test's own: a real engine (``tonegraph run``) runs the
#: patch given while a socket on 127.0.0.1:5568 timestamps every sACN packet that arrives.
RATE_PROBE = r"""
import json, socket, subprocess, sys, threading, time
cfg = json.loads(sys.argv[1])
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.bind(("127.0.0.1", 5568))
s.settimeout(0.2)
got, stop = [], threading.Event()
def receive():
    while not stop.is_set():
        try:
            data = s.recv(2048)
        except socket.timeout:
            continue
        got.append((time.monotonic(), bool(data[112] & 0x40)))
threading.Thread(target=receive, daemon=True).start()
run = subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "run", cfg["patch"], "--headless",
                      "--no-osc", "--duration", str(cfg["duration"])], capture_output=True, text=True,
                     timeout=120)
time.sleep(0.3)
stop.set()
print(json.dumps({"got": got, "rc": run.returncode, "log": run.stderr[-3000:]}))
"""


@pytest.mark.parametrize("fps", [30, 60, 100])
def test_the_universe_goes_out_at_its_rate_whatever_the_patch_fps_with_a_render_running(fps, tmp_path):
    """dmx.out at rate 44 in a patch at 30, 60 or 100 fps that draws a shader at 1280x720
    (Mesa on the CPU, headless): 44 +- 1 frames a second arrive, and no gap reaches
    0.2 s (control ticks sent it at 29.9, 29.5 and 32 Hz, with gaps of a quarter second
    under a heavy render; on a machine whose cores are all busy a stall of the whole
    process can still cost a few frames)."""
    from ..netns import in_network_namespace

    patch = tmp_path / "rig.yaml"
    shader = ROOT / "graphs" / "shaders" / "tunnel.frag"
    patch.write_text(textwrap.dedent("""
        patch: {name: rate, fps: FPS}
        nodes:
          lfo:  {type: control.lfo, params: {frequency: 0.5}}
          look: {type: gl.shader, params: {path: SHADER}, in: {level: lfo}}
          out:  {type: gl.window, params: {size: [1280, 720]}, in: {image: look}}
          dmx:  {type: dmx.out, params: {host: 127.0.0.1, rate: 44}, in: {ch1: lfo}}
        """).replace("FPS", str(fps)).replace("SHADER", str(shader)))
    res = in_network_namespace(sys.executable, "-c", RATE_PROBE,
                               json.dumps({"patch": str(patch), "duration": 5}), timeout=150)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0, out["log"]
    times = np.array([t for t, terminated in out["got"] if not terminated][:-1])   # less the blackout
    times = times[times > times[0] + 1.0]                                    # past the start
    rate = (len(times) - 1) / (times[-1] - times[0])
    gaps = np.diff(times)
    print(f"fps {fps}: {rate:.2f} Hz over {times[-1] - times[0]:.1f} s, longest gap {gaps.max() * 1e3:.0f} ms")
    assert 43.0 <= rate <= 45.0
    assert gaps.max() < 0.2


def test_art_net_answers_a_desks_artpoll_with_its_universe():
    """With 'announce', a desk's ArtPoll gets an ArtPollReply (Art-Net 4's layout, read
    at the specification's offsets) unicast back to the desk's port 6454: this node's
    address, one input port sending universe 0x123 (net 1, sub-net 2, universe 3),
    its name, a node report, its refresh rate; ArtDmx goes on meanwhile."""
    import struct

    got = run_dmx_probe({"protocol": "artnet", "host": "127.0.0.1", "universe": 0x123, "announce": True,
                         "source_name": "stage left"}, ["127.0.0.2"], frames=30, poll_from="127.0.0.2")
    replies = [p for p in got["packets"]["127.0.0.2"] if p[8:10] == b"\x00\x21"]
    assert len(replies) == 1, got["packets"]
    r = replies[0]
    assert len(r) == 239 and r[:8] == b"Art-Net\0"
    assert r[10:14] == bytes([127, 0, 0, 1]) and struct.unpack_from("<H", r, 14)[0] == 6454
    assert (r[18], r[19], r[186]) == (0x01, 0x02, 0x03)                  # NetSwitch, SubSwitch, SwIn[0]
    assert r[26:44].rstrip(b"\0") == b"stage left" and r[44:108].startswith(b"tonegraph dmx")
    assert r[108:113] == b"#0001"                                        # NodeReport: RcPowerOk
    assert struct.unpack_from(">H", r, 172)[0] == 1 and r[174] == 0x40     # one port, DMX input to Art-Net
    assert r[200] == 0x02 and r[207:211] == bytes([127, 0, 0, 1])           # StMedia, BindIp
    assert r[212] & 0x08 and struct.unpack_from(">H", r, 226)[0] == 44      # 15-bit addresses, 44 Hz


def test_art_net_without_announce_listens_on_no_port():
    """A node not asked to announce itself opens no listening socket: the ArtPoll goes
    unanswered."""
    got = run_dmx_probe({"protocol": "artnet", "host": "127.0.0.1"}, ["127.0.0.2"], frames=30,
                        poll_from="127.0.0.2")
    assert [p for p in got["packets"]["127.0.0.2"] if p[8:10] == b"\x00\x21"] == []


def test_sacn_announce_sends_universe_discovery_to_its_group():
    """With 'announce', sACN sends E1.31 universe discovery (read by the sacn library's
    own parser) to 239.255.250.214, naming the universe it sends and its source name."""
    from sacn.messages.universe_discovery import UniverseDiscoveryPacket

    got = run_dmx_probe({"host": "127.0.0.1", "universe": 9, "announce": True, "source_name": "booth"},
                        ["239.255.250.214"], frames=20)
    found = [UniverseDiscoveryPacket.make_universe_discovery_packet(list(p))
             for p in got["packets"]["239.255.250.214"]]
    assert len(found) == 1 and found[0].universes == (9,) and found[0].sourceName == "booth"
