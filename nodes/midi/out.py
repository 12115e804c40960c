"""midi.out: notes, controllers and clock to a synth, a light desk's MIDI input or an app.

Inputs are named in the patch, like osc.out's addresses: each name in ``note_names``
is an event input that plays that note (velocity from the event's strength, held for
``length`` seconds), each name in ``controls`` a number input 0..1 sent as that
controller (0-127, only when it changes).  With ``tempo`` wired, the node sends MIDI
clock at that tempo (24 pulses a beat, from a thread of its own so the pulses keep
their spacing whatever the frame rate), preceded by a start and followed by a stop.
Each pulse is due a period after the one before was due, so a thread woken a little late
every time (a loaded machine) keeps the tempo exact.  After a stall (a pulse a whole
period late or more: the machine busy, the MIDI system slow to take a message) the
pulses go on evenly spaced from the one that was held up: none is sent in a burst to
catch up, which a receiver reads as a jump in tempo.  With ``beat`` wired too (e.g.
``audio.tempo``'s ``beat`` and ``bpm`` into ``beat`` and ``tempo``), the clock is
locked to the beats: each puts the first pulse of the nearest quarter on the beat,
moving the pulses after it by at most a tenth of their spacing until it is there
(a lock within about 4 beats from any phase; a missed beat changes nothing).  With
``downbeat`` wired as well, the Start waits for a bar's first beat and goes out just
before the pulse on it, so a sequencer's or desk's bar 1 begins on the song's (a bar
that starts before its event arrives is foreseen from the last two).  ``start`` and
``stop`` inputs send Start (on the next downbeat, when it is wired) and Stop; the pulses
go on while stopped, so the receiver keeps the tempo.  Unwired, the clock starts with
the show and stops with it.

With ``timecode`` set to a frame rate, the node leads a timeline with MIDI Time Code
(nodes/midi/timecode.py): a full frame to locate the receiver, then quarter frames, four
a frame, evenly spaced from a thread of its own, each block of eight starting on a
frame's edge.  The position sent is the patch's media time, or the ``time`` input where
it is wired (a song's position, a cue list's clock), carried on in real time between
ticks; a jump of more than a frame (a relocate, a loop) sends a full frame before the
quarter frames go on from there.
Ports are chosen and kept open as nodes/midi/ports.py says.
"""

from __future__ import annotations

import collections
import logging
import math
import threading
import time

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import PortType

from . import ports as midiports
from . import timecode as mtc
from .inp import NAME_RE, _names_of, check_names

log = logging.getLogger("tonegraph.midi")

#: Pulses a beat (a quarter note) in MIDI clock.
PPQ = 24
#: The most a beat moves one pulse to bring the clock onto it, as a share of a period.
NUDGE = 0.1


class Pulses:
    """When each MIDI clock pulse is due, on the clock's own time [s].

    Pulse k is due a period after pulse k-1 was due, so the tempo holds however late
    each is sent, until one goes out a whole period late or more (a stall, as the
    engine's ticks count one): the schedule then goes on from that pulse, a period
    later, rather than catching up on the ones it missed in a burst.

    A ``beat`` puts the first pulse of the nearest quarter (every ``PPQ``-th pulse) on
    it: the pulses after it are moved by at most ``NUDGE`` of a period each until the
    whole difference is made up, so the clock is re-phased smoothly.  Each beat measures
    the difference anew, so a beat missed changes nothing and a tempo a little off the
    beats' is made up for beat by beat."""

    def __init__(self, start: float) -> None:
        self.at = start        # when pulse ``index`` is due
        self.index = 0
        self.behind = 0.0      # [s] still to be added to the schedule for the last beat

    def beat(self, t: float, period: float) -> None:
        """A beat fell at ``t``: the nearest quarter's first pulse should have been then."""
        first = self.at - (self.index % PPQ) * period        # this quarter's first pulse
        after = first + PPQ * period                          # the next quarter's
        self.behind = t - first if t - first <= after - t else t - after

    def sent(self, now: float, period: float) -> float:
        """Pulse ``index`` went out at ``now``; when the next is due."""
        if now - self.at >= period:                           # held up: resume from now
            self.at = now
        nudge = max(-NUDGE * period, min(NUDGE * period, self.behind))
        self.behind -= nudge
        self.at += period + nudge
        self.index += 1
        return self.at


class MidiOut(Node):
    type_name = "midi.out"
    extra, extra_modules = "midi", ("mido", "rtmidi")
    description = "Send notes from events, CC from numbers and clock from a tempo to a MIDI port."
    params = {
        "port": P.text("", "Output port, by name substring (with 'virtual', the name of the port made).",
                       route=True),
        "virtual": P.boolean(False, "Make a port of our own that other apps connect to.", restart=True),
        "api": P.choice("auto", midiports.APIS, "MIDI system: ALSA, JACK, or auto.", restart=True),
        "channel": P.integer(1, "MIDI channel, 1-16.", min=1, max=16),
        "note_names": P.mapping({}, "Input name -> note number: an event input that plays it.",
                                keys={"pattern": NAME_RE.pattern},
                                values={"type": "integer", "minimum": 0, "maximum": 127}),
        "controls": P.mapping({}, "Input name -> controller number: a 0..1 input sent as that CC.",
                              keys={"pattern": NAME_RE.pattern},
                              values={"type": "integer", "minimum": 0, "maximum": 127}),
        "length": P.number(0.1, "How long a note is held.", unit="s", min=0.001, max=60.0),
        "timecode": P.choice("off", ("off", *mtc.CODES), "Send MIDI Time Code at this frame rate "
                                                          "(29.97: drop-frame).", restart=True),
    }
    inputs = {"tempo": ports.number("When wired: send MIDI clock at this tempo [BPM]."),
              "beat": ports.event("With tempo: each beat puts the first pulse of a quarter on "
                                  "it (re-phased smoothly)."),
              "downbeat": ports.event("With tempo: Start waits for a downbeat, so the receiver's "
                                      "bar 1 is the song's."),
              "start": ports.event("With tempo: send Start (on the next downbeat when that is wired)."),
              "stop": ports.event("With tempo: send Stop (the clock pulses go on)."),
              "time": ports.number("With timecode: the position to send [s] (default: the media time).")}
    variadic = ports.any_port("Named in note_names (events) or controls (numbers).")

    @classmethod
    def check(cls, params, wired, ctx):
        problems = check_names(params, ("note_names", "controls"), set(cls.inputs))
        notes, ccs = _names_of(params.get("note_names")), _names_of(params.get("controls"))
        for name, typ in wired.items():
            if name in cls.inputs:
                continue
            if name in notes and typ not in (PortType.EVENT, PortType.ANY):
                problems.append(("", f"input '{name}' plays a note: wire events to it, not {typ.value}"))
            elif name in ccs and typ not in (PortType.NUMBER, PortType.ANY):
                problems.append(("", f"input '{name}' is a controller: wire a number to it, not {typ.value}"))
            elif name not in notes and name not in ccs:
                problems.append(("", f"input '{name}' is in neither note_names nor controls"))
        return problems

    def configure(self) -> None:
        self.sent = 0
        self.last_cc: dict[int, int] = {}
        self.offs: list[tuple[float, int]] = []          # (clock time, note) to release
        self.bpm = 0.0
        self.stop_clock = threading.Event()
        self.clock_thread: threading.Thread | None = None
        self.beats: collections.deque = collections.deque(maxlen=16)   # on the clock's time
        self.downbeats: collections.deque = collections.deque(maxlen=2)
        # The process thread asks (wanted; each start input counted in starts), the clock
        # thread answers and alone keeps what the receiver was told (running).
        self.wanted = "start" not in self.wired            # the clock starts with the show
        self.starts = self.started = 0
        self.running = False
        self.since = math.inf      # [s] the clock's time at media time 0 (the earliest tick's)
        self.timeline: tuple[float, float] | None = None   # (position [s], on the clock's time)
        self.timecode_thread: threading.Thread | None = None
        self.port = midiports.open_for(self, "output")

    def _send(self, msg) -> None:
        if self.port.send(msg):
            self.sent += 1

    def process(self, tick: Tick) -> None:
        import mido

        if self.ctx.offline:
            return
        self.port.keep()
        ch = self.p.channel - 1
        now = self.ctx.clock.now()
        due = [n for at, n in self.offs if at <= now]
        if due:
            self.offs = [(at, n) for at, n in self.offs if at > now]
            for n in due:
                self._send(mido.Message("note_off", channel=ch, note=n, velocity=0))
        inp = self.inp
        for name, note in _names_of(self.p.note_names).items():
            for ev in inp.get(name) or ():
                velocity = max(1, min(127, round(float(ev.value) * 127)))
                self._send(mido.Message("note_on", channel=ch, note=int(note), velocity=velocity))
                self.offs.append((now + self.p.length, int(note)))
        for name, control in _names_of(self.p.controls).items():
            x = inp.get(name)
            if x is None or not math.isfinite(float(x)):
                continue
            value = max(0, min(127, round(float(x) * 127)))
            if self.last_cc.get(control) != value:
                self.last_cc[control] = value
                self._send(mido.Message("control_change", channel=ch, control=int(control), value=value))
        # A tick runs at its media time or later: the least late shows the clock's time
        # at media time 0, for the beats' times and the time code.
        self.since = min(self.since, now - tick.t)
        if self.p.timecode != "off":
            position = inp.get("time") if "time" in self.wired else tick.t
            if position is not None and math.isfinite(position):
                self.timeline = (float(position), self.since + tick.t)
            if self.timecode_thread is None and self.timeline is not None:
                self.timecode_thread = threading.Thread(target=self._timecode, daemon=True,
                                                        name=f"midi timecode {self.id}")
                self.timecode_thread.start()
        if "tempo" in self.wired:
            for ev in inp.get("beat") or ():
                self.beats.append(self.since + ev.t)
            for ev in inp.get("downbeat") or ():
                self.downbeats.append(self.since + ev.t)
            if inp.get("stop"):
                self.wanted = False
            if inp.get("start"):
                self.wanted, self.starts = True, self.starts + 1
            bpm = inp.get("tempo")
            self.bpm = float(bpm) if bpm is not None and math.isfinite(bpm) and 20 <= bpm <= 999 else 0.0
            if self.clock_thread is None and self.bpm > 0:
                self.clock_thread = threading.Thread(target=self._clock, daemon=True,
                                                     name=f"midi clock {self.id}")
                self.clock_thread.start()

    def _clock(self) -> None:
        """24 pulses a beat at the latest tempo, each at its own time, not the frame's,
        as :class:`Pulses` schedules them."""
        import mido

        clock, stop = self.ctx.clock, self.stop_clock
        pulses = Pulses(clock.now())
        while not stop.is_set():
            bpm = self.bpm
            if bpm <= 0:
                clock.wait(stop, 0.05)
                pulses.at = clock.now()
                continue
            period = 60.0 / (PPQ * bpm)
            while self.beats:
                pulses.beat(self.beats.popleft(), period)
            wanted, starts = self.wanted, self.starts
            if self.running and not wanted:
                self.running = False
                self._send(mido.Message("stop"))
            if wanted and (not self.running or starts != self.started) and self._starts_here(pulses.at, period):
                self.running, self.started = True, starts       # a start while running restarts
                self._send(mido.Message("start"))
            self._send(mido.Message("clock"))
            delay = pulses.sent(clock.now(), period) - clock.now()
            if delay > 0:
                clock.wait(stop, delay)

    def _starts_here(self, due: float, period: float) -> bool:
        """Whether a pending Start goes out before the pulse due at ``due``: at once
        without ``downbeat``, else on the pulse nearest a downbeat (the last one heard,
        or one bar after it, the bar measured between the last two)."""
        if "downbeat" not in self.wired:
            return True
        if not self.downbeats:
            return False
        last = self.downbeats[-1]
        if len(self.downbeats) == 2 and due - last > period / 2:
            bar = last - self.downbeats[0]
            if 0.5 <= bar <= 10.0:
                last += math.ceil((due - last - period / 2) / bar) * bar
        return abs(due - last) <= period / 2

    def _timecode(self) -> None:
        """Quarter frames of the timeline's position, a block of eight every two frames
        from a frame's edge, on the thread's own schedule while the timeline runs on as
        it does; a full frame first, and after a jump (or a stall of the thread) the
        blocks start again from where the timeline is."""
        import mido

        clock, stop = self.ctx.clock, self.stop_clock
        code = mtc.CODES[self.p.timecode]
        frame = 1.0 / mtc.RATES[code]
        edge = start = None                # the next block: its label [s], when it goes [clock s]
        while not stop.is_set():
            position, at = self.timeline
            if edge is not None:
                there = position + (start - at)           # the timeline at the block's start
                if abs(there - edge) > frame / 2 or clock.now() - start > frame:
                    edge = None
            if edge is None:
                now = clock.now()
                here = position + (now - at)
                edge = math.ceil(here / frame - 1e-9) * frame
                start = now + (edge - here)
                self._send(mido.Message("sysex", data=mtc.full_frame(*mtc.from_seconds(edge, code), code)))
            for k, byte in enumerate(mtc.quarter_frames(*mtc.from_seconds(edge, code), code)):
                delay = start + k * frame / 4 - clock.now()
                if delay > 0 and clock.wait(stop, delay):
                    return
                self._send(mido.Message("quarter_frame", frame_type=byte >> 4, frame_value=byte & 0xF))
            edge, start = edge + 2 * frame, start + 2 * frame
            delay = start - clock.now()
            if delay > 0 and clock.wait(stop, delay):
                return

    def close(self) -> None:
        if getattr(self, "timecode_thread", None) is not None:
            self.stop_clock.set()
            self.timecode_thread.join(timeout=2)
        if getattr(self, "clock_thread", None) is not None:
            self.stop_clock.set()
            self.clock_thread.join(timeout=2)
            import mido

            if self.running:                               # a receiver that was started
                self._send(mido.Message("stop"))
        if getattr(self, "port", None) is not None:
            import mido

            for _, n in self.offs:
                self._send(mido.Message("note_off", channel=self.p.channel - 1, note=n, velocity=0))
            if self.sent and self.port.port is not None:
                # JACK sends what was written in its next cycles; a port closed at once
                # would drop the stop and the note-offs.
                time.sleep(0.05)
            self.port.close()
