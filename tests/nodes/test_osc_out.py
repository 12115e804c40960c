"""osc.out against peers we did not write: liblo's oscdump and the OLA daemon."""

from __future__ import annotations

import socket
import subprocess
import sys

import numpy as np
import pytest

from tonegraph.engine.osc import encode
from tonegraph.engine.osc.transport import Transports, parse_destination

from ..conftest import ROOT, NodeDriver, wait_for
from ..osc_peers import Olad, OscDump, free_port


def test_encoding_round_trips_through_python_osc():
    msg = encode.message("/a/b", [("f", 0.5), ("i", -3), ("s", "hi"), ("T", True), ("b", b"\x01\x02")])
    [(tag, m)] = encode.decode(msg)
    assert tag is None and m.address == "/a/b" and m.params == [0.5, -3, "hi", True, b"\x01\x02"]
    b = encode.bundle(1_700_000_000.25, [encode.message("/x", [("f", 1.0)]), encode.message("/y")])
    got = encode.decode(b)
    assert [m.address for _, m in got] == ["/x", "/y"]
    assert got[0][0] == pytest.approx(1_700_000_000.25, abs=1e-6)
    framed = encode.slip_frame(msg)
    assert framed[0] == framed[-1] == 0xC0 and msg in framed.replace(b"\xdb\xdc", b"\xc0")
    with pytest.raises(ValueError):
        encode.decode(b"\x00garbage")


def test_float_vectors_are_packed_as_python_osc_would():
    from pythonosc.osc_message_builder import OscMessageBuilder

    rng = np.random.default_rng(0)
    for n in (1, 2, 3, 4, 5, 1024):
        for address in ("/a", "/ab", "/abc", "/abcd", "/tonegraph/spec/outputs/bands"):
            values = [float(v) for v in rng.standard_normal(n)] + [float("inf")]
            builder = OscMessageBuilder(address=address)
            for v in values:
                builder.add_arg(v, "f")
            assert encode.message(address, [("f", v) for v in values]) == builder.build().dgram


def test_destinations_parse_and_are_shared():
    assert parse_destination("10.0.0.2:7770") == ("10.0.0.2", 7770)
    assert parse_destination("[::1]:9000") == ("::1", 9000)
    assert parse_destination("desk", 3037) == ("desk", 3037)
    for bad in ("desk", "desk:port", "desk:70000"):
        with pytest.raises(ValueError):
            parse_destination(bad)
    pool = Transports()
    a, b = pool.acquire("127.0.0.1", 9999), pool.acquire("127.0.0.1", 9999)
    assert a is b and len(pool.all()) == 1
    pool.release(a)
    pool.release(b)
    assert pool.all() == []


def test_unreachable_destination_never_raises_or_blocks(caplog, monkeypatch):
    """A host name that does not resolve, and whose next lookups hang (a DNS server
    gone): sends return at once, dropped, while the lookup waits on its own thread; the
    problem is said once."""
    import socket as socket_module
    import threading

    import tonegraph.engine.osc.transport as transport

    answer = threading.Event()
    real = socket_module.getaddrinfo

    calls = []

    def hanging(host, *a, **kw):
        if host == "no-such-host.invalid":
            calls.append(host)
            if len(calls) > 1:
                answer.wait(30)
            raise socket_module.gaierror(-2, "Name or service not known")
        return real(host, *a, **kw)

    monkeypatch.setattr(transport, "RETRY", 0.01)
    monkeypatch.setattr(transport.socket, "getaddrinfo", hanging)
    pool = Transports()
    dest = pool.acquire("no-such-host.invalid", 9000)
    results: list = []
    sender = threading.Thread(target=lambda: results.extend(
        dest.send(encode.message("/x", [("f", 1.0)])) for _ in range(1000)))
    sender.start()
    sender.join(10)
    assert not sender.is_alive() and results == [False] * 1000   # done while the lookup hangs
    answer.set()
    for _ in range(100):
        dest.send(encode.message("/x", [("f", 1.0)]))
    warnings = [r for r in caplog.records if "no-such-host.invalid" in r.getMessage()]
    assert len(warnings) == 1                                  # reported once
    assert dest.stats.dropped == 1100
    pool.release(dest)


def run_engine(patch, seconds: float, extra=()) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                           "--duration", str(seconds), *extra], cwd=ROOT, capture_output=True,
                          text=True, timeout=60)


def test_oscdump_receives_messages_and_bundles_with_timetags(write_patch):
    dump = OscDump()
    try:
        patch = write_patch(f"""
            patch: {{fps: 60}}
            nodes:
              groove: {{type: audio.synth, params: {{bpm: 120}}}}
              onsets: {{type: audio.onset, in: {{audio: groove}}}}
              saw:    {{type: control.lfo, params: {{shape: saw, frequency: 1, amplitude: 0.5, offset: 0.5}}}}
              dim:    {{type: control.map, params: {{out_range: [0, 255], step: 1}}, in: {{value: saw}}}}
              cues:   {{type: osc.out, params: {{port: {dump.port}, bundle: true, delay: 0.05}},
                        in: {{/cue/hit: onsets}}}}
              values: {{type: osc.out, params: {{port: {dump.port}, bundle: false, max_rate: 10,
                         addresses: {{/light/dim: {{type: int}}}}}},
                        in: {{/light/dim: dim}}}}
            """)
        res = run_engine(patch, 3.0)
        assert res.returncode == 0, res.stderr
        dump.sync()
    finally:
        dump.stop()
    msgs = dump.messages
    cues = [m for m in msgs if m[1] == "/cue/hit"]
    hits = [m for m in cues if float(m[3][0]) > 0]
    dims = [m for m in msgs if m[1] == "/light/dim"]
    # Onsets: the groove has a hit every eighth note (0.25 s) at 120 BPM.
    assert 9 <= len(hits) <= 13, dump.raw
    assert all(types == "f" for _, _, types, _ in cues)
    # Each is a button: its press, then its release (0.0) timetagged after it, before the
    # next: at the first control tick after the press left (the audio runs ahead of it).
    assert [float(a[0]) > 0 for *_, a in cues] == [True, False] * len(hits)
    assert {float(a[0]) for *_, a in cues[1::2]} == {0.0}
    assert all(0.0 <= r[0] - p[0] <= 0.1 for p, r in zip(cues[::2], cues[1::2])), \
        [r[0] - p[0] for p, r in zip(cues[::2], cues[1::2])]
    tags = np.array([t for t, *_ in hits])
    steps = np.diff(tags) / 0.25
    assert np.all(np.abs(steps - np.round(steps)) < 0.06), steps   # timetags follow media time
    # Values: ints, on change, at most 10 per second.
    assert dims and all(types == "i" for _, _, types, _ in dims)
    assert len(dims) <= 3.0 * 10 + 2
    vals = [int(a[0]) for *_, a in dims]
    assert min(vals) >= 0 and max(vals) <= 255 and len(set(vals)) > 10


def test_templates_vectors_and_blobs_reach_oscdump(write_patch):
    dump = OscDump()
    try:
        patch = write_patch(f"""
            nodes:
              groove: {{type: audio.synth}}
              mfcc:   {{type: audio.mfcc, params: {{coeffs: 3, filters: 10}}, in: {{audio: groove}}}}
              out:    {{type: osc.out, params: {{port: {dump.port}, policy: every-frame, max_rate: 5,
                        addresses: {{/blob: {{vector: blob}}}}}},
                        in: {{"/fix/{{i}}/v": mfcc, /vec: mfcc, /blob: mfcc}}}}
            """)
        res = run_engine(patch, 1.0)
        assert res.returncode == 0, res.stderr
        dump.sync()
    finally:
        dump.stop()
    addresses = {m[1] for m in dump.messages}
    assert {"/fix/1/v", "/fix/2/v", "/fix/3/v", "/vec", "/blob"} <= addresses
    vec = next(m for m in dump.messages if m[1] == "/vec")
    assert vec[2] == "fff"
    blob = next(m for m in dump.messages if m[1] == "/blob")
    assert blob[2] == "b" and "[12b" in " ".join(blob[3])    # 3 float32 values


def test_onsets_cue_ola_dmx_channels(write_patch, tmp_path):
    """The lighting-desk story end to end: onsets drive channels through the ola profile
    and OLA's own HTTP API shows exactly those DMX values; an onset on a channel is a
    button, full on for its hold, then 0 again (not latched at 255 for good)."""
    ola = Olad(tmp_path)
    try:
        patch = write_patch(f"""
            nodes:
              groove: {{type: audio.synth}}
              onsets: {{type: audio.onset, in: {{audio: groove}}}}
              flash:  {{type: control.envelope, params: {{attack: 0, decay: 0, sustain: 1, hold: 60}},
                        in: {{trigger: onsets}}}}
              level:  {{type: control.map, params: {{out_range: [0, 200], step: 1}}, in: {{value: flash}}}}
              fixed:  {{type: control.constant, params: {{value: 17}}}}
              desk:   {{type: osc.out, params: {{profile: ola, port: {ola.osc_port}, hold: 0.1}},
                        in: {{/dmx/universe/0/1: level, /dmx/universe/0/5: fixed, /dmx/universe/0/9: onsets}}}}
            """)
        engine = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                                   "--duration", "6"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
        seen: list[int] = []

        def pressed_then_released() -> bool:
            dmx = ola.dmx()
            v = dmx[8] if len(dmx) > 8 else 0
            if not seen or seen[-1] != v:
                seen.append(v)
            return 255 in seen and 0 in seen[seen.index(255):]
        released = wait_for(pressed_then_released, 20)
        _, err = engine.communicate(timeout=60)
        assert engine.returncode == 0, err
        assert released, seen
        assert wait_for(lambda: ola.dmx()[:9] == [200, 0, 0, 0, 17, 0, 0, 0, 0], 10), ola.dmx()[:10]
        dmx = ola.dmx()
    finally:
        ola.stop()
    assert dmx[0] == 200          # the envelope latched full by the first onset, mapped to 200
    assert dmx[4] == 17           # a constant, as an int
    assert dmx[8] == 0            # the last onset's button released
    assert dmx[1:4] == [0, 0, 0] and dmx[9:20] == [0] * 11


def test_ola_universe_blob(write_patch, tmp_path):
    ola = Olad(tmp_path)
    try:
        patch = write_patch(f"""
            nodes:
              c1: {{type: control.constant, params: {{value: 10}}}}
              bands: {{type: audio.spectrum, params: {{bands: 4, agc: false}}, in: {{audio: groove}}}}
              groove: {{type: audio.synth}}
              scaled: {{type: test.vec}}
              desk: {{type: osc.out, params: {{profile: ola, port: {ola.osc_port}}},
                      in: {{/dmx/universe/0: scaled}}}}
            """)
        nodes_dir = tmp_path / "nodes"
        nodes_dir.mkdir()
        (nodes_dir / "vec.py").write_text(
            "import numpy as np\nfrom tonegraph.engine import ports\nfrom tonegraph.engine.node import Node\n"
            "class Vec(Node):\n    type_name = 'test.vec'\n    outputs = {'out': ports.vector()}\n"
            "    def process(self, tick):\n"
            "        self.out['out'] = np.array([1, 2, 300, -4, 254.6], dtype=np.float32)\n")
        res = run_engine(patch, 0.5, ["--nodes-path", str(nodes_dir)])
        assert res.returncode == 0, res.stderr
        assert wait_for(lambda: ola.dmx() == [1, 2, 255, 0, 255], 10), ola.dmx()
        dmx = ola.dmx()
    finally:
        ola.stop()
    assert dmx == [1, 2, 255, 0, 255]   # clamped and rounded DMX bytes; the blob sets the size


def test_tcp_slip_for_eos(write_patch):
    """The eos profile speaks OSC 1.1 over TCP: SLIP-framed packets on one connection."""
    port = free_port(socket.SOCK_STREAM)
    server = socket.socket()
    server.bind(("127.0.0.1", port))
    server.listen(1)
    server.settimeout(20)
    patch = write_patch(f"""
        nodes:
          groove: {{type: audio.synth}}
          onsets: {{type: audio.onset, in: {{audio: groove}}}}
          eos:    {{type: osc.out, params: {{profile: eos, port: {port}}}, in: {{/eos/key/go_0: onsets}}}}
        """)
    proc = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless",
                             "--duration", "2.5"], cwd=ROOT, stderr=subprocess.PIPE, text=True)
    conn, _ = server.accept()
    conn.settimeout(5)
    data = b""
    try:
        while True:
            chunk = conn.recv(4096)
            if not chunk:
                break
            data += chunk
    except socket.timeout:
        pass
    _, err = proc.communicate(timeout=30)
    server.close()
    assert proc.returncode == 0, err
    frames = [f for f in data.split(b"\xc0") if f]
    assert len(frames) >= 4
    for f in frames:
        [(tag, m)] = encode.decode(f.replace(b"\xdb\xdc", b"\xc0").replace(b"\xdb\xdd", b"\xdb"))
        assert tag is None and m.address == "/eos/key/go_0" and m.params == []   # no bundles, no args


def test_profiles_shape_values():
    from tonegraph.engine.ports import PortType
    from tonegraph.nodes.osc.out import OscOut

    def args_of(profile, value, kind="auto"):
        d = NodeDriver(OscOut, {"profile": profile, "host": ""}, wired={"/a": PortType.NUMBER})
        return d.node._number_args(value, kind), d.node._event_args(0.7, "auto")

    assert args_of("generic", 0.25) == ([("f", 0.25)], [("f", 0.7)])
    assert args_of("ola", 300.4) == ([("i", 255)], [("i", 255)])
    assert args_of("ola", 17.6) == ([("i", 18)], [("i", 255)])
    assert args_of("qlcplus", 1.7) == ([("f", 1.0)], [("f", 1.0)])
    assert args_of("resolume", 0.5) == ([("f", 0.5)], [("i", 1)])
    assert args_of("grandma3", 0.5)[1] == [("i", 1)]
    assert args_of("eos", 50.0) == ([("f", 50.0)], [])
    assert args_of("generic", 2.6, "int")[0] == [("i", 3)]
    assert args_of("generic", 1.0, "bool")[0] == [("T", True)]
    assert args_of("generic", 0.5, "string")[0] == [("s", "0.5")]
    assert args_of("generic", 1.5, "blob")[0] == [("b", b"\x3f\xc0\x00\x00")]   # big-endian float32


def test_bad_osc_out_settings_are_load_errors(write_patch, registry):
    from tonegraph.engine.graph import load_graph

    path = write_patch("""
        nodes:
          c: {type: control.constant}
          v: {type: audio.mfcc, in: {audio: s}}
          s: {type: audio.synth}
          o: {type: osc.out, params: {destinations: ["desk"], addresses: {/nope: {policy: x}, /a: {rate: 1}}},
              in: {"no slash": c, "/t/{i}": c, /a: c}}
        """)
    _, errors = load_graph(path, registry)
    text = "\n".join(map(str, errors))
    assert "input 'no slash' is not an OSC address" in text
    assert "address template '/t/{i}' needs a vector input, not number" in text
    assert "addresses has settings for '/nope', which is not an input" in text
    assert "unknown setting 'rate' for '/a'" in text
    assert "'desk' is not host:port" in text


def test_ola_profile_warns_once_about_values_in_0_to_1(write_patch, registry, caplog):
    """DMX through the ola profile is 0-255: a 0..1 value would go out as 0 or 1."""
    from ..conftest import run_offline

    path = write_patch("""
        nodes:
          lfo:  {type: control.lfo, params: {shape: sine, frequency: 2, amplitude: 0.4, offset: 0.5}}
          full: {type: control.constant, params: {value: 200}}
          desk: {type: osc.out, params: {profile: ola, port: 9},
                 in: {/dmx/universe/0/1: lfo, /dmx/universe/0/2: full}}
        """)
    with caplog.at_level("WARNING", logger="tonegraph.osc"):
        rt = run_offline(path, registry, duration=2.0)
    warned = [r.getMessage() for r in caplog.records if "a value in 0..1" in r.getMessage()]
    assert len(warned) == 1 and "/dmx/universe/0/1" in warned[0] and "out_range: [0, 255]" in warned[0]
    assert rt.runner.nodes["desk"].sent > 10


def button_log(profile: str, **params):
    """An osc.out node for one event address, '/go', on a virtual clock at 10 fps, with
    what it sends decoded into (tick, value or None for no argument)."""
    from tonegraph.engine.ports import Event, PortType
    from tonegraph.nodes.osc.out import OscOut

    d = NodeDriver(OscOut, {"profile": profile, "host": "", "bundle": False, **params},
                   wired={"/go": PortType.EVENT}, fps=10.0)
    log: list[tuple[int, float | None]] = []

    def sent(packets):
        for packet in packets:
            [(_, m)] = encode.decode(packet)
            log.append((d.index, float(m.params[0]) if m.params else None))
    d.node._send = sent

    def tick(*presses: float):
        d.tick(**{"/go": tuple(Event(d.t + d.period, v) for v in presses)})
    return d, log, tick, Event


@pytest.mark.parametrize("profile,press", [("qlcplus", 1.0), ("ola", 255.0), ("resolume", 1.0),
                                           ("grandma3", 1.0), ("generic", 0.5)])
def test_events_are_buttons_pressed_then_released(profile, press):
    """A press, its release (0) at the next control tick with hold 0, or once 'hold'
    seconds have passed; a press while held releases first; closing releases what is
    held; 'release: false' sends presses only."""
    d, log, tick, _ = button_log(profile)
    tick(0.5)
    tick()
    tick()
    assert log == [(0, press), (1, 0.0)]
    d, log, tick, _ = button_log(profile, hold=0.25)
    tick(0.5)
    for _ in range(4):
        tick()
    assert log == [(0, press), (3, 0.0)]                  # 0.3 s on: the first tick past 0.25 s
    d, log, tick, _ = button_log(profile, hold=1.0)
    tick(0.5)
    tick(0.5)
    d.node.close()
    assert log == [(0, press), (1, 0.0), (1, press), (1, 0.0)]
    d, log, tick, _ = button_log(profile, release=False)
    tick(0.5)
    tick()
    d.node.close()
    assert log == [(0, press)]


def test_eos_keys_carry_no_argument_and_need_no_release():
    """ETC Eos reads an argument-less key message as a press and its release."""
    d, log, tick, _ = button_log("eos")
    tick(0.5)
    tick()
    d.node.close()
    assert log == [(0, None)]
