"""midi.in: a MIDI controller, keyboard or app as numbers and events.

Notes arrive as events on ``notes`` (strength: velocity 0..1), with the last note and
velocity as numbers and how many are held; control changes as ``cc``, a vector of the
128 controllers' last values in 0..1; ``program`` is the last program change.  Name
what matters in the patch and it gets an output of its own: ``note_names: {kick: 36}``
makes an event output ``kick``, ``controls: {fader: 7}`` a number output ``fader``.

MIDI clock (24 pulses a beat) gives ``bpm``: a line fitted through the arrival times of
the last four beats' pulses, not across a stall in their delivery, so neither a late
pulse nor a sender held up for a moment moves it (a 30 ms stall moves it less than
1 BPM from 60 to 300 BPM with pulses on JACK's 5 ms grid; the line through the last
beat alone dipped 13 BPM at 140); a change of tempo reads in full four beats later.
A ``beat`` event comes on every 24th pulse after a start or continue; ``start`` and
``stop`` are events too.  MIDI Time Code from a timeline (a DAW, a show controller, a
video server) gives ``timecode``, its position in seconds, to a quarter frame while it
runs (quarter frames) and at once when it locates (a full frame), with its frame rate
and whether it is running (nodes/midi/timecode.py).  Every event carries the time the
message arrived (mapped to media time), not the tick that read it.  Ports are chosen
and kept open as nodes/midi/ports.py says.
"""

from __future__ import annotations

import collections
import logging
import re
import threading
import time

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import Event, Port as OutPort

from . import ports as midiports
from .timecode import Reader

log = logging.getLogger("tonegraph.midi")

NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
FIXED = ("notes", "note", "velocity", "held", "cc", "program", "bpm", "beat", "start", "stop",
         "timecode", "timecode_fps", "timecode_running")
#: Messages kept between two ticks (a burst of a controller's sweep is a few hundred).
QUEUE = 4096
#: Clock pulses the tempo is fitted through: the last four beats (24 pulses each).
FIT_PULSES = 4 * 24 + 1
#: An interval between pulses this far from the usual one (a share of it) is a stall in
#: delivery or the burst after it, not the tempo.
STALL = 0.75


def _names_of(mapping) -> dict:
    return mapping if isinstance(mapping, dict) else {}


def check_names(params: dict, keys: tuple[str, ...], taken: set[str]) -> list[tuple[str, str]]:
    """Problems with the name -> number mappings that make outputs or inputs."""
    problems = []
    seen = set(taken)
    for key in keys:
        for name, n in _names_of(params.get(key)).items():
            if not isinstance(name, str) or not NAME_RE.match(name):
                problems.append((key, f"'{name}' is not a port name (letters, digits, _)"))
            elif name in seen:
                problems.append((key, f"'{name}' is named twice (or is a built-in port)"))
            elif isinstance(n, bool) or not isinstance(n, int) or not 0 <= n <= 127:
                problems.append((key, f"'{name}' needs a number 0-127, got {n!r}"))
            seen.add(name)
    return problems


class MidiIn(Node):
    type_name = "midi.in"
    extra, extra_modules = "midi", ("mido", "rtmidi")
    description = "A MIDI controller or app: notes as events, CC as 0..1 numbers, program, clock -> bpm and beats."
    params = {
        "port": P.text("", "Input port, by name substring (empty: the first there is; with "
                           "'virtual', the name of the port made)."),
        "virtual": P.boolean(False, "Make a port of our own that other apps connect to.", restart=True),
        "api": P.choice("auto", midiports.APIS, "MIDI system: ALSA, JACK, or auto (ALSA when there is "
                                                "a sequencer).", restart=True),
        "channel": P.integer(0, "Only this channel, 1-16 (0: every channel).", min=0, max=16),
        "note_names": P.mapping({}, "Output name -> note number: an event output per note.",
                                keys={"pattern": NAME_RE.pattern},
                                values={"type": "integer", "minimum": 0, "maximum": 127}),
        "controls": P.mapping({}, "Output name -> controller number: a 0..1 output per CC.",
                              keys={"pattern": NAME_RE.pattern},
                              values={"type": "integer", "minimum": 0, "maximum": 127}),
    }
    outputs = {
        "notes": ports.event("Every note on, strength = velocity / 127."),
        "note": ports.number("The last note played (MIDI number)."),
        "velocity": ports.number("Its velocity, 0..1."),
        "held": ports.number("Notes held now."),
        "cc": ports.vector("The 128 controllers' last values, 0..1."),
        "program": ports.number("The last program change."),
        "bpm": ports.number("Tempo from MIDI clock [BPM] (0 until clock arrives)."),
        "beat": ports.event("Every 24th clock pulse after start/continue."),
        "start": ports.event("Start or continue."),
        "stop": ports.event("Stop."),
        "timecode": ports.number("Position of a timeline sending MIDI Time Code [s] (0 until it does)."),
        "timecode_fps": ports.number("Its frame rate: 24, 25, 29.97 (drop-frame) or 30."),
        "timecode_running": ports.number("1 while its quarter frames arrive, 0 when it stops."),
    }

    @classmethod
    def outputs_for(cls, params) -> dict[str, OutPort]:
        out = dict(cls.outputs)
        for name, n in _names_of(params.get("note_names")).items():
            out[name] = ports.event(f"note {n} on, strength = velocity / 127")
        for name, n in _names_of(params.get("controls")).items():
            out[name] = ports.number(f"controller {n}, 0..1")
        return out

    @classmethod
    def check(cls, params, wired, ctx):
        return check_names(params, ("note_names", "controls"), set(FIXED))

    def configure(self) -> None:
        self.queue: collections.deque = collections.deque(maxlen=QUEUE)
        self.lock = threading.Lock()
        self.cc = np.zeros(128, dtype=np.float32)
        self.held: set[tuple[int, int]] = set()
        self.clock_times: collections.deque = collections.deque(maxlen=FIT_PULSES)
        self.pulses = -1                  # clock pulses since start (-1: not started)
        self.out["cc"] = self.cc.copy()
        self.by_note = {int(n): name for name, n in _names_of(self.p.note_names).items()}
        self.by_cc = {int(n): name for name, n in _names_of(self.p.controls).items()}
        self.timecode = Reader()
        self.port = midiports.open_for(self, "input", callback=self._arrived)

    def _arrived(self, msg) -> None:
        """rtmidi's thread: stamp and queue (no work here)."""
        self.queue.append((time.time(), msg))

    def params_changed(self, changed: set[str]) -> None:
        self.by_note = {int(n): name for name, n in _names_of(self.p.note_names).items()}
        self.by_cc = {int(n): name for name, n in _names_of(self.p.controls).items()}

    def process(self, tick: Tick) -> None:
        out = self.out
        self.port.keep()
        origin = self.ctx.clock_origin
        events: dict[str, list] = collections.defaultdict(list)
        cc_changed = False
        channel = self.p.channel
        while self.queue:
            wall, msg = self.queue.popleft()
            t = wall - origin
            kind = msg.type
            if hasattr(msg, "channel") and channel and msg.channel != channel - 1:
                continue
            if kind == "note_on" and msg.velocity > 0:
                v = msg.velocity / 127.0
                events["notes"].append(Event(t, v))
                out["note"], out["velocity"] = float(msg.note), v
                self.held.add((msg.channel, msg.note))
                name = self.by_note.get(msg.note)
                if name:
                    events[name].append(Event(t, v))
            elif kind in ("note_off", "note_on"):
                self.held.discard((msg.channel, msg.note))
            elif kind == "control_change":
                self.cc[msg.control] = msg.value / 127.0
                cc_changed = True
                name = self.by_cc.get(msg.control)
                if name:
                    out[name] = msg.value / 127.0
            elif kind == "program_change":
                out["program"] = float(msg.program)
            elif kind == "clock":
                self._clock(wall, t, events)
            elif kind in ("start", "continue"):
                self.pulses = 0
                events["start"].append(Event(t))
            elif kind == "stop":
                self.pulses = -1
                events["stop"].append(Event(t))
            elif kind == "quarter_frame":
                self.timecode.quarter(msg.frame_type << 4 | msg.frame_value, wall)
            elif kind == "sysex":
                self.timecode.full(msg.data, wall)
        for name in ("notes", "beat", "start", "stop", *self.by_note.values()):
            out[name] = tuple(events.get(name, ()))
        out["held"] = float(len(self.held))
        now = origin + tick.t
        position = self.timecode.seconds(now)
        if position is not None:
            out["timecode"], out["timecode_fps"] = position, self.timecode.fps
        out["timecode_running"] = float(self.timecode.running(now))
        if cc_changed:
            out["cc"] = self.cc.copy()

    def _clock(self, wall: float, t: float, events) -> None:
        self.clock_times.append(wall)
        bpm = clock_bpm(self.clock_times)
        if bpm is not None:
            self.out["bpm"] = bpm
        if self.pulses >= 0:
            if self.pulses % 24 == 0:
                events["beat"].append(Event(t))
            self.pulses += 1

    def close(self) -> None:
        if getattr(self, "port", None) is not None:
            self.port.close()


def clock_bpm(times) -> float | None:
    """Tempo from MIDI clock pulses' arrival times [s]: the pulse period is the slope of
    a line fitted through them (least squares), which a late pulse moves far less than
    it moves the span from the first to the last.  A stall in delivery (one interval
    more than ``STALL`` off the median one, then maybe a burst of the pulses it held
    up) is not fitted across: a line is fitted through each run of pulses between
    stalls, with one slope for all, so a sender that goes on late, or pulses that come
    all at once, leave the tempo as it was.  Pulses that come this irregularly
    throughout (more than one interval in 8) get the one line through them all."""
    n = len(times)
    if n < 2:
        return None
    t = np.fromiter(times, float, n)
    gaps = np.diff(t)
    typical = float(np.median(gaps))
    stalls = np.abs(gaps - typical) > STALL * typical
    runs = np.zeros(n, dtype=np.intp)
    if 0 < np.count_nonzero(stalls) <= n // 8:
        runs[1:] = np.cumsum(stalls)
    k = np.arange(n, dtype=float)
    sizes = np.bincount(runs)
    k -= (np.bincount(runs, k) / sizes)[runs]
    t -= (np.bincount(runs, t) / sizes)[runs]
    spread = float(k @ k)
    if spread <= 0:
        return None
    period = float(k @ t) / spread
    return 60.0 / (24.0 * period) if period > 0 else None
