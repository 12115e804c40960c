"""`make soak CHAOS=1 DURATION=3600`: one live show under every fault and attack in turn.

A real engine (``tonegraph run``, real time, headless GL through EGL, audio from a
private JACK server on its dummy backend) plays a show: a groove's beats and onsets
recorded by ``io.record`` onto a small tmpfs, cues sent by ``osc.out`` to a receiver
here at every frame, DMX over sACN, an inline shader and a preset drawn offscreen.  The
run is cut into equal slots, one per fault; in its slot each fault is done to the show
(a 200-star datagram, amplification probes, forged listeners, a 10,000-packet flood, an
OSCQuery slowloris, WebSocket churn, corrupt saves, shader edits, an escaping preset,
oversized and endless files, an unroutable sACN host, a node that keeps failing,
SIGSTOP, a full disk, JACK killed, a record format set over OSC), then undone, and the
show must carry on.  At the end the engine is stopped with SIGTERM and a table says:
deaths, rows recorded and lost, torn rows, the longest gap between two cues after each
fault, log bytes per fault, and the engine's memory, descriptors and threads at the
start and the end.

Everything runs inside a network namespace and a mount namespace of its own
(``unshare -n -m``, root): only ``lo``, so the unroutable host reaches nothing, and the
tmpfs is seen by no one else.  ``python -m tests.chaos --duration S`` (at least 2 s a
fault) writes the table to ``build/chaos/`` and exits 1 when the show died, lost a row
or tore one.
"""

from __future__ import annotations

import argparse
import base64
import json
import os
import random
import re
import shlex
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
OUT = ROOT / "build" / "chaos"
DISK_BYTES = 4 * 2 ** 20          # the tmpfs the recording goes to

SHADER = """uniform float hit;
void mainImage(out vec4 fragColor, in vec2 fragCoord) {{
    fragColor = vec4(fragCoord / iResolution.xy, {blue}, 1.0) * (0.5 + 0.5 * hit);
}}"""

PATCH = """
patch: {{name: chaos, fps: 60}}
nodes:
  groove: {{type: audio.synth, params: {{bpm: 120}}}}
  mic:    {{type: audio.input, params: {{device: system, retry: 0.5}}}}
  onsets: {{type: audio.onset, params: {{method: hfc}}, in: {{audio: groove}}}}
  tempo:  {{type: audio.tempo, in: {{audio: groove}}}}
  level:  {{type: audio.level, in: {{audio: mic}}}}
  hit:    {{type: control.envelope, params: {{decay: 0.2}}, in: {{trigger: onsets}}}}
  saw:    {{type: control.lfo, params: {{shape: saw, frequency: 0.5}}}}
  dim:    {{type: control.map, params: {{out_range: [0, 1]}}, in: {{value: saw}}}}
  flaky:  {{type: chaos.flaky}}
  cues:   {{type: osc.out, params: {{host: 127.0.0.1, port: {cue_port}, policy: every-frame}},
           in: {{/cue: dim, /beat: groove.beat, /level: level.rms, /flaky: flaky}}}}
  lights: {{type: dmx.out, params: {{host: {dmx_host}, fixtures: fixtures.yaml}},
           in: {{wash/dimmer: hit}}}}
  look:   {{type: gl.shader, params: {{size: [64, 64], source: "{shader}"}}, in: {{hit: hit}}}}
  preset: {{type: gl.preset, params: {{path: look.json}}}}
  rec:    {{type: io.record, params: {{path: disk/rec.jsonl, flush: 0.2}},
           in: {{beat: groove.beat, onset: onsets}}}}
"""

FIXTURES = """
types:
  par: [dimmer, red, green, blue]
fixtures:
  wash: {type: par, address: 1}
"""

PRESET = {"shader": "look.frag", "init": {}, "update": []}
PRESET_SHADER = """void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    fragColor = vec4(0.2, 0.3, 0.4, 1.0);
}"""

FLAKY = '''
import os
from tonegraph.engine import ports
from tonegraph.engine.node import Node


class Flaky(Node):
    """Fails at every tick while 'flaky.on' is in the working folder."""

    type_name = "chaos.flaky"
    description = "a node that fails on demand"
    outputs = {"out": ports.number("1 while healthy")}

    def process(self, tick):
        if os.path.exists("flaky.on"):
            raise RuntimeError("failing on purpose")
        self.out["out"] = 1.0
'''


@dataclass
class Slot:
    name: str
    start: float = 0.0
    end: float = 0.0
    log_start: int = 0
    log_end: int = 0
    notes: list[str] = field(default_factory=list)
    ok: bool = True


class Show:
    """The engine under test, its files and what reaches us from it."""

    def __init__(self, work: Path, jack_env: dict) -> None:
        self.work = work
        self.jack_env = jack_env
        self.cues: list[float] = []             # arrival times of /cue
        self.dmx_frames: list[float] = []
        self.log = bytearray()
        self.lines: list[str] = []
        self.cue_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.cue_sock.bind(("127.0.0.1", 0))
        self.cue_sock.settimeout(0.2)
        self.dmx_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.dmx_sock.bind(("127.0.0.1", 5568))
        self.dmx_sock.settimeout(0.2)
        self.stopping = threading.Event()
        self.threads = [threading.Thread(target=self._cues, daemon=True),
                        threading.Thread(target=self._dmx, daemon=True)]
        for t in self.threads:
            t.start()
        self.proc: subprocess.Popen | None = None
        self.port = self.query_port = 0
        self.logged = threading.Condition()
        self.paced = threading.Event()            # never set: hold() waits on it

    # -- the patch and its files --------------------------------------------------------

    def patch_text(self, dmx_host: str = "127.0.0.1", blue: str = "0.5") -> str:
        shader = SHADER.format(blue=blue).replace("\n", "\\n")
        return PATCH.format(cue_port=self.cue_sock.getsockname()[1], dmx_host=dmx_host,
                            shader=shader)

    def save(self, text: str) -> None:
        """Save the patch the way an editor does: a new file renamed over the old."""
        tmp = self.work / ".patch.yaml.tmp"
        tmp.write_text(text)
        os.replace(tmp, self.work / "patch.yaml")

    def write_files(self) -> None:
        (self.work / "plugins").mkdir()
        (self.work / "plugins" / "flaky.py").write_text(FLAKY)
        (self.work / "fixtures.yaml").write_text(FIXTURES)
        (self.work / "look.json").write_text(json.dumps(PRESET))
        (self.work / "look.frag").write_text(PRESET_SHADER)
        self.save(self.patch_text())

    # -- the engine ---------------------------------------------------------------------

    def start(self) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tonegraph.engine.cli", "run", "patch.yaml", "--headless",
             "--osc-port", "0", "--oscquery-port", "0", "--osc-allow", "none",
             "--nodes-path", "plugins", "--restart-failing", "20"],
            cwd=self.work, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=self.jack_env)
        reader = threading.Thread(target=self._read_log, daemon=True)
        reader.start()
        self.threads.append(reader)
        line = self.wait_for_line("OSC control on ", 0, 60)
        m = line and re.search(r"OSC control on [\d.]+:(\d+), OSCQuery on http://[\d.]+:(\d+)/", line)
        if not m:
            raise SystemExit("the show did not start:\n" + "".join(self.lines[-30:]))
        self.port, self.query_port = int(m.group(1)), int(m.group(2))

    def _read_log(self) -> None:
        assert self.proc is not None and self.proc.stderr is not None
        for raw in self.proc.stderr:
            with self.logged:
                self.log += raw
                self.lines.append(raw.decode("utf-8", "replace"))
                self.logged.notify_all()
        with self.logged:
            self.logged.notify_all()

    def wait_for_line(self, fragment: str, after: int, deadline: float = 30.0) -> str | None:
        """The first line from line number ``after`` on that holds ``fragment``, waited
        for at most ``deadline`` seconds (None: it never came)."""
        with self.logged:
            found = self.logged.wait_for(
                lambda: any(fragment in x for x in self.lines[after:]) or not self.alive(), deadline)
            return next((x for x in self.lines[after:] if fragment in x), None) if found else None

    def reported(self, slot: "Slot", fragment: str, after: int) -> int:
        """Whether the engine logged ``fragment`` since line ``after`` (noted in the slot);
        the line count now, for the next question."""
        if self.wait_for_line(fragment, after) is None:
            slot.notes.append(f"never reported '{fragment}'")
            slot.ok = False
        return len(self.lines)

    def hold(self, seconds: float) -> None:
        """Let the show run on (the soak's pacing: each fault lasts its slot)."""
        self.paced.wait(max(0.0, seconds))

    def _cues(self) -> None:
        while not self.stopping.is_set():
            try:
                data = self.cue_sock.recv(65536)
            except OSError:
                continue
            if b"/cue\0" in data:
                with self.logged:
                    self.cues.append(time.monotonic())
                    self.logged.notify_all()

    def _dmx(self) -> None:
        while not self.stopping.is_set():
            try:
                self.dmx_sock.recv(1024)
            except OSError:
                continue
            self.dmx_frames.append(time.monotonic())

    def alive(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def resources(self) -> dict:
        pid = self.proc.pid
        status = Path(f"/proc/{pid}/status").read_text()
        rss = int(re.search(r"VmRSS:\s+(\d+)", status).group(1)) / 1024
        threads = int(re.search(r"Threads:\s+(\d+)", status).group(1))
        return {"rss_mb": round(rss, 1), "fds": len(os.listdir(f"/proc/{pid}/fd")),
                "threads": threads}

    def send(self, packet: bytes, sock: socket.socket | None = None) -> None:
        s = sock or self._sender()
        s.sendto(packet, ("127.0.0.1", self.port))

    def _sender(self) -> socket.socket:
        if not hasattr(self, "_send_sock"):
            self._send_sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._send_sock.bind(("127.0.0.1", 0))
        return self._send_sock

    def stop(self) -> int:
        assert self.proc is not None
        self.proc.send_signal(signal.SIGTERM)
        try:
            rc = self.proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            rc = -9
        self.stopping.set()
        return rc


# -- the faults ---------------------------------------------------------------------------
# Each takes the show, the slot (to write notes in) and how long it may last [s], does its
# harm, undoes it, and returns.

def _message(address: str, *args) -> bytes:
    from tonegraph.engine.osc import encode

    return encode.message(address, list(args))


def _pending(sock: socket.socket, but: tuple[bytes, ...] = ()) -> int:
    """Bytes already waiting at ``sock`` (nothing is waited for), less datagrams that
    start with one of ``but``."""
    got = 0
    sock.setblocking(False)
    while True:
        try:
            data = sock.recv(65536)
        except OSError:
            return got
        if not data.startswith(but):
            got += len(data)


def _marked(show: Show, sock: socket.socket) -> int:
    """Send a refusal whose reason fits its datagram and wait for it: everything the
    engine answered before it has arrived by then.  The bytes that came before it."""
    marker = _message("/tonegraph/dim/out_range", ("s", "loud-" * 12))
    show.send(marker, sock)
    got, deadline = 0, time.monotonic() + 30
    sock.setblocking(True)
    while time.monotonic() < deadline:
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        try:
            data = sock.recv(65536)
        except OSError:
            break
        if b"must be a list" in data:
            return got
        got += len(data)
    raise TimeoutError("the engine never answered the marker")


def star_datagrams(show: Show, slot: Slot, span: float) -> None:
    seen = len(show.lines)
    packet = _message("/tonegraph/" + "*" * 200 + "Q/x", ("f", 1.0))
    for _ in range(20):
        show.send(packet)
    slot.notes.append(f"20 datagrams of {len(packet)} bytes")
    show.reported(slot, "the pattern matches no node param", seen)
    show.hold(span - (time.monotonic() - slot.start))


def amplification(show: Show, slot: Slot, span: float) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    sent = 0
    for packet in (_message("/tonegraph/*/*"), _message("/tonegraph/*/*", ("s", "10.1.2.3")),
                   _message("/tonegraph/{cues,lights}/host", ("s", "10.1.2.3")),
                   _message("/tonegraph/cues/host", ("s", "10.1.2.3")),
                   _message("/tonegraph/rec/format", ("s", "csv")),
                   _message("/tonegraph/*/*", ("s", "x" * 40))) * 20:
        show.send(packet, sock)
        sent += len(packet)
    got = _marked(show, sock)
    sock.close()
    slot.notes.append(f"bytes out/in {got / sent:.2f}")
    slot.ok = got <= sent
    show.hold(span - (time.monotonic() - slot.start))


def forged_listeners(show: Show, slot: Slot, span: float) -> None:
    """One socket does the handshake; 31 ask to listen and never echo their token.  Once
    the one has heard every change, anything sent to the others would be there too."""
    def udp():
        s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.bind(("127.0.0.1", 0))
        s.settimeout(10)
        return s
    real = udp()
    show.send(_message("/tonegraph/listen", ("s", "a-real-surface")), real)
    [(_, token)] = encode_decode(real.recv(65536))
    show.send(_message("/tonegraph/listen", ("s", token.params[0])), real)
    forged = [udp() for _ in range(31)]
    for s in forged:
        show.send(_message("/tonegraph/listen"), s)
        show.send(_message("/tonegraph/listen", ("s", "a-name-long-enough")), s)
    for k in range(1, 11):
        show.send(_message("/tonegraph/saw/frequency", ("f", 0.5 + 0.01 * k)))
    heard = 0
    while heard < 10:
        [(_, m)] = encode_decode(real.recv(65536))
        heard += m.address == "/tonegraph/saw/frequency"
    # What reached them but the answers to their own requests (tokens, refusals: each no
    # larger than the request, as the amplification slot checks).
    echoed = sum(_pending(s, but=(b"/tonegraph/listen\0", b"/tonegraph/error\0")) for s in forged)
    for s in forged + [real]:
        s.close()
    show.send(_message("/tonegraph/saw/frequency", ("f", 0.5)))
    slot.notes.append(f"bytes echoed to 31 forged listeners {echoed} (10 changes to the real one)")
    slot.ok = echoed == 0
    show.hold(span - (time.monotonic() - slot.start))


def encode_decode(data: bytes) -> list:
    from tonegraph.engine.osc import encode

    return encode.decode(data)


def flood(show: Show, slot: Slot, span: float) -> None:
    rng = random.Random(11)
    sock = show._sender()
    valid = [_message("/tonegraph/saw/frequency", ("f", 0.5)), _message("/tonegraph/*/decay", ("f", 0.2)),
             _message("/tonegraph/ghost/x", ("i", 1))]
    for i in range(10_000):
        packet = rng.randbytes(rng.randint(1, 600)) if i % 3 == 0 else rng.choice(valid)
        try:
            show.send(packet, sock)
        except OSError:
            pass
    slot.notes.append("10,000 packets")
    show.hold(span - (time.monotonic() - slot.start))


def slowloris(show: Show, slot: Slot, span: float) -> None:
    import websockets.sync.client as ws

    url = f"http://127.0.0.1:{show.query_port}/"
    held = []
    for _ in range(8):
        try:
            held.append(ws.connect(f"ws://127.0.0.1:{show.query_port}/", open_timeout=5,
                                   legacy=True))
        except Exception:
            pass
    tricklers = []
    for _ in range(16):
        s = socket.create_connection(("127.0.0.1", show.query_port), timeout=5)
        s.sendall(b"G")
        tricklers.append(s)
    served, worst, asked = 0, 0.0, 0
    end = slot.start + span
    while time.monotonic() < end:
        for s in tricklers:
            try:
                s.sendall(b"E")
            except OSError:
                pass
        t0 = time.monotonic()
        asked += 1
        try:
            with urllib.request.urlopen(url, timeout=10) as r:
                served += r.status == 200
        except OSError:
            pass
        worst = max(worst, time.monotonic() - t0)
        show.hold(min(1.0, span / 4, end - time.monotonic()))     # a trickle a second
    for s in tricklers:
        s.close()
    for c in held:
        c.close()
    slot.notes.append(f"GETs served {served}/{asked}, slowest {worst:.2f} s")
    slot.ok = served == asked


def websocket_churn(show: Show, slot: Slot, span: float) -> None:
    import websockets.sync.client as ws

    n, end = 0, slot.start + span
    while time.monotonic() < end and n < 3000:
        try:
            with ws.connect(f"ws://127.0.0.1:{show.query_port}/", open_timeout=5):
                pass
        except Exception:
            pass
        n += 1
    slot.notes.append(f"{n} connections")
    show.hold(end - time.monotonic())


def _saved_in_turn(show: Show, slot: Slot, span: float, steps: list) -> None:
    """Each step: (do it, what the engine must then log), one share of the slot each."""
    for k, (do, fragment) in enumerate(steps, 1):
        seen = len(show.lines)
        do()
        if fragment:
            show.reported(slot, fragment, seen)
        show.hold(slot.start + span * k / len(steps) - time.monotonic())


def corrupt_saves(show: Show, slot: Slot, span: float) -> None:
    good = show.patch_text()
    failed = "reload of patch.yaml failed"
    _saved_in_turn(show, slot, span, [
        (lambda: show.save("nodes: {groove: {type: audio.synth\n  ::: ["), failed),
        (lambda: show.save(good.replace("bpm: 120", "bpm: -5")), failed),
        (lambda: (show.work / "patch.yaml").write_bytes(b""), failed),
        (lambda: show.save(good), "reloaded patch.yaml")])
    slot.notes.append("broken YAML, a bad value, an empty file")


def shader_edits(show: Show, slot: Slot, span: float) -> None:
    _saved_in_turn(show, slot, span, [
        (lambda: show.save(show.patch_text(blue="0.9")), "shader reloaded"),
        (lambda: show.save(show.patch_text(blue="nonsense_here")), "the last good shader keeps running"),
        (lambda: show.save(show.patch_text()), "shader reloaded")])
    slot.notes.append("a good edit, a broken one, back")


def escaping_preset(show: Show, slot: Slot, span: float) -> None:
    preset = show.work / "look.json"
    _saved_in_turn(show, slot, span, [
        (lambda: preset.write_text(json.dumps({**PRESET, "shader": "../outside.frag"})),
         "which is outside the patch's folder"),
        (lambda: preset.write_text(json.dumps({**PRESET, "shader": "/etc/hostname"})),
         "'/etc/hostname', which is outside"),
        (lambda: preset.write_text(json.dumps(PRESET)), "preset reloaded")])
    slot.notes.append("shader ../outside.frag, then /etc/hostname")


def oversized_files(show: Show, slot: Slot, span: float) -> None:
    fixtures = show.work / "fixtures.yaml"

    def endless():
        fixtures.unlink()
        fixtures.symlink_to("/dev/zero")

    def back():
        fixtures.unlink()
        fixtures.write_text(FIXTURES)
    _saved_in_turn(show, slot, span, [
        (lambda: fixtures.write_text(FIXTURES + "\n".join(f"# {'x' * 100}" for _ in range(50_000))),
         "larger than the 1 MiB a fixture file may be"),
        # Refused in one line when a reload reads it (tests/nodes/test_file_bounds.py); a
        # symlink made where the file was is not always seen by the watcher, so not asked.
        (endless, None),
        (back, "reloaded patch.yaml")])
    slot.notes.append("a 5 MB fixture file, then /dev/zero")


def unroutable_sacn(show: Show, slot: Slot, span: float) -> None:
    _saved_in_turn(show, slot, span, [
        (lambda: show.save(show.patch_text(dmx_host="10.255.255.1")), "not sent: Network is unreachable"),
        (lambda: show.save(show.patch_text()), "reloaded patch.yaml")])
    slot.notes.append("host 10.255.255.1 with no route")


def failing_node(show: Show, slot: Slot, span: float) -> None:
    flag = show.work / "flaky.on"
    _saved_in_turn(show, slot, span, [(lambda: flag.write_text(""), "restarting it"),
                                      (flag.unlink, None)])
    slot.notes.append("chaos.flaky failing every tick")


def sigstop(show: Show, slot: Slot, span: float) -> None:
    pause = min(5.0, span / 2)
    show.proc.send_signal(signal.SIGSTOP)
    show.hold(pause)
    show.proc.send_signal(signal.SIGCONT)
    before = len(show.cues)
    with show.logged:                                  # cues again: the show went on
        show.logged.wait_for(lambda: len(show.cues) > before + 10, 30)
    if len(show.cues) <= before + 10:
        slot.ok = False
        slot.notes.append("no cues after SIGCONT")
    show.hold(slot.start + span - time.monotonic())
    slot.notes.append(f"stopped {pause:.0f} s")


def full_disk(show: Show, slot: Slot, span: float) -> None:
    filler = show.work / "disk" / "filler"

    def fill():
        with open(filler, "wb") as f:
            try:
                while True:
                    f.write(b"\0" * 65536)
            except OSError:
                pass
    _saved_in_turn(show, slot, span, [(fill, "keeping rows in memory"),
                                      (filler.unlink, ": writing ")])
    slot.notes.append("tmpfs full")


def jack_killed(show: Show, slot: Slot, span: float, jack=None) -> None:
    def kill():
        jack.server.kill()
        jack.server.wait()
        jack.server = None
    _saved_in_turn(show, slot, span, [(kill, None), (jack.start, None)])
    slot.notes.append("jackd SIGKILL, then a new one")


def format_over_osc(show: Show, slot: Slot, span: float) -> None:
    seen = len(show.lines)
    for _ in range(50):
        show.send(_message("/tonegraph/rec/format", ("s", "csv")))
    show.reported(slot, "'format' says where rec's output goes", seen)
    show.hold(slot.start + span - time.monotonic())
    slot.notes.append("/tonegraph/rec/format s csv x50")


FAULTS = [star_datagrams, amplification, forged_listeners, flood, slowloris, websocket_churn,
          corrupt_saves, shader_edits, escaping_preset, oversized_files, unroutable_sacn,
          failing_node, sigstop, full_disk, jack_killed, format_over_osc]


# -- the run ------------------------------------------------------------------------------

def _gap(times: list[float], start: float, end: float) -> float:
    inside = [t for t in times if start <= t <= end]
    if not inside:
        return end - start
    edges = [start] + inside
    return max(b - a for a, b in zip(edges, edges[1:]))


def _recorded(work: Path) -> tuple[int, int]:
    """(whole rows, torn rows) in the recording."""
    whole = torn = 0
    path = work / "disk" / "rec.jsonl"
    if path.exists():
        for line in path.read_bytes().split(b"\n"):
            if not line:
                continue
            try:
                json.loads(line)
                whole += 1
            except ValueError:
                torn += 1
    return whole, torn


def run(duration: float) -> int:
    from tests.jack import JackServer

    per = duration / len(FAULTS)
    if per < 2:
        raise SystemExit(f"--duration {duration:g} leaves {per:.1f} s a fault; give at least "
                         f"{2 * len(FAULTS)} s")
    work = Path(tempfile.mkdtemp(prefix="tonegraph-chaos-"))
    (work / "disk").mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs",
                    str(work / "disk")], check=True)
    jack = JackServer(rate=44100)
    jack.start()
    show = Show(work, jack.env)
    show.write_files()
    show.start()
    subprocess.run(["jack_connect", "system:capture_1", "PortAudio:in_0"], env=jack.env,
                   capture_output=True, timeout=10)
    show.hold(min(5.0, per))                       # the show settles
    first = show.resources()
    slots: list[Slot] = []
    deaths = 0
    for fault in FAULTS:
        slot = Slot(fault.__name__.replace("_", " "), time.monotonic(), log_start=len(show.log))
        try:
            if fault is jack_killed:
                fault(show, slot, per, jack=jack)
            else:
                fault(show, slot, per)
        except Exception as exc:                  # the harness, not the show: say so
            slot.notes.append(f"harness: {type(exc).__name__}: {exc}")
            slot.ok = False
        slot.end, slot.log_end = time.monotonic(), len(show.log)
        slots.append(slot)
        if not show.alive():
            deaths += 1
            slot.notes.append("the engine died")
            break
        print(f"  {slot.name}: {'; '.join(slot.notes)}", flush=True)
    last = show.resources() if show.alive() else {}
    rc = show.stop()
    deaths += rc not in (0, -signal.SIGTERM)
    jack.stop()
    whole, torn = _recorded(work)
    log = show.log.decode("utf-8", "replace")
    said = [int(n) for n in re.findall(r"(\d+) rows recorded", log)]
    recorded = sum(said)
    lost = sum(int(n) for n in re.findall(r"(\d+) rows (?:were dropped|could not be written)", log))
    lost += max(0, recorded - whole)
    tracebacks = log.count("Traceback")
    result = {
        "duration_s": duration, "faults": len(slots), "deaths": deaths, "exit": rc,
        "rows_recorded": recorded, "rows_in_file": whole, "rows_lost": lost, "torn_rows": torn,
        "tracebacks": tracebacks, "log_bytes": len(show.log),
        "dmx_frames_per_s": round(len(show.dmx_frames) / max(1e-9, time.monotonic() - slots[0].start), 1),
        "start": first, "end": last,
        "slots": [{"fault": s.name, "cue_gap_s": round(_gap(show.cues, s.start, s.end), 3),
                   "log_bytes": s.log_end - s.log_start, "ok": s.ok, "notes": s.notes}
                  for s in slots],
    }
    OUT.mkdir(parents=True, exist_ok=True)
    (OUT / "result.json").write_text(json.dumps(result, indent=1))
    table = markdown(result)
    (OUT / "table.md").write_text(table)
    (OUT / "engine.log").write_bytes(bytes(show.log))
    print(table)
    good = deaths == 0 and lost == 0 and torn == 0 and tracebacks == 0 and recorded > 0 \
        and all(s.ok for s in slots)
    subprocess.run(["umount", str(work / "disk")], capture_output=True)
    return 0 if good else 1


def markdown(r: dict) -> str:
    rows = ["| fault | longest cue gap [s] | log bytes | what was done and seen |",
            "| --- | --- | --- | --- |"]
    for s in r["slots"]:
        rows.append(f"| {s['fault']} | {s['cue_gap_s']:.2f} | {s['log_bytes']:,} | "
                    f"{'; '.join(s['notes'])}{'' if s['ok'] else ' (FAILED)'} |")
    a, b = r["start"], r["end"] or {"rss_mb": "-", "fds": "-", "threads": "-"}
    rows += ["", f"{r['duration_s'] / 60:.0f} min, {r['faults']} faults: deaths {r['deaths']}, "
                 f"rows recorded {r['rows_recorded']:,}, in the file {r['rows_in_file']:,}, "
                 f"lost {r['rows_lost']}, torn {r['torn_rows']}, tracebacks {r['tracebacks']}, "
                 f"log {r['log_bytes']:,} bytes, DMX {r['dmx_frames_per_s']} frames/s; "
                 f"RSS {a['rss_mb']} -> {b['rss_mb']} MB, fds {a['fds']} -> {b['fds']}, "
                 f"threads {a['threads']} -> {b['threads']}"]
    return "\n".join(rows) + "\n"


def main(argv: list[str]) -> int:
    p = argparse.ArgumentParser(prog="python -m tests.chaos", description=__doc__.split("\n")[0])
    p.add_argument("--duration", type=float, default=3600.0, help="seconds in all (default 3600)")
    p.add_argument("--inside", action="store_true", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.inside:
        return run(args.duration)
    if os.geteuid() != 0:
        print("error: the chaos soak makes a network and a mount namespace: run it as root",
              file=sys.stderr)
        return 2
    script = ("ip link set lo up && ip link set lo multicast on && "
              "ip route add 224.0.0.0/4 dev lo && exec "
              + " ".join(shlex.quote(a) for a in [sys.executable, "-m", "tests.chaos", "--inside",
                                                  "--duration", str(args.duration)]))
    return subprocess.run(["unshare", "-n", "-m", "sh", "-c", script], cwd=ROOT).returncode


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
