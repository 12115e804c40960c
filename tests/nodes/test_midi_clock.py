"""MIDI timing on injected time: the tempo midi.in reads from clock pulses that arrive
late, the pulses midi.out sends after its thread was held up, and how long it holds a
note."""

from __future__ import annotations

import math

import mido
import numpy as np
import pytest

from tonegraph.engine.clock import FakeClock
from tonegraph.engine.ports import Event, PortType
from tonegraph.nodes.midi.inp import FIT_PULSES, MidiIn, clock_bpm
from tonegraph.nodes.midi.out import MidiOut, Pulses

from ..conftest import NodeDriver

#: JACK's delivery grid on the test server: 256 frames at 48 kHz [s].
JACK_PERIOD = 256 / 48000


def arrivals(bpm: float, pulses: int, stall_at: float, stall: float, resumes: str) -> list[float]:
    """When each clock pulse of a steady ``bpm`` arrives [s], on JACK's delivery grid,
    when delivery stops for ``stall`` seconds at ``stall_at``.  ``resumes``: "burst",
    the pulses held up arrive together at the end of the stall and the rest on time; or
    "late", the sender itself was held and goes on from where it was, ``stall`` later."""
    step, shift, out = 60.0 / (24 * bpm), 0.0, []
    for k in range(pulses):
        t = k * step + shift
        if stall_at <= t < stall_at + stall:
            if resumes == "late":
                shift += stall_at + stall - t
            t = stall_at + stall
        out.append(math.ceil(t / JACK_PERIOD) * JACK_PERIOD)
    return out


@pytest.mark.parametrize("bpm", [60.0, 90.0, 140.0, 180.0, 240.0, 300.0])
@pytest.mark.parametrize("resumes", ["burst", "late"])
def test_clock_tempo_holds_through_a_delivery_stall(bpm, resumes):
    """A 30 ms stall 8 beats in: once four beats have come, every tempo midi.in gives is
    within 1 BPM (a line through the last beat's pulses dipped 9-14 BPM at 140)."""
    d = NodeDriver(MidiIn, {"api": "jack"}, fps=60)
    times = arrivals(bpm, 24 * 16, 8 * 60.0 / bpm, 0.030, resumes)
    read = []
    i = 0
    for k in range(int(times[-1] * 60) + 1):          # the ticks that read them
        while i < len(times) and times[i] <= k / 60:
            d.node.queue.append((times[i], mido.Message("clock")))
            i += 1
        bpm_out = d.tick()["bpm"]
        if i > 4 * 24:
            read.append(bpm_out)
    assert len(read) > 60 * 11 * 60 / bpm
    assert np.abs(np.array(read) - bpm).max() < 1.0, (min(read), max(read))


def test_clock_tempo_follows_a_change_of_tempo():
    """The fit is over the last beats only: 120 then 130 BPM reads 130 within 4 beats."""
    d = NodeDriver(MidiIn, {"api": "jack"}, fps=60)
    times = [k * 60 / (24 * 120) for k in range(24 * 8)]
    times += [times[-1] + (k + 1) * 60 / (24 * 130) for k in range(24 * 4)]
    for t in times:
        d.node.queue.append((t, mido.Message("clock")))
        d.tick()
    assert d.node.out["bpm"] == pytest.approx(130.0, abs=0.1)


class HeldUp(FakeClock):
    """The engine's clock, injected: time moves only as midi.out's clock thread waits,
    and one wait, the ``at``-th, oversleeps by ``stall`` seconds (the thread was not run)."""

    def __init__(self, at: int | None = None, stall: float = 0.0) -> None:
        super().__init__()
        self.waits, self.at, self.stall = 0, at, stall

    def wait(self, event, timeout):
        self.waits += 1
        if self.waits == self.at:
            self.advance(self.stall)
        return super().wait(event, timeout)


class Receiver:
    """midi.out's port: when each message went out on the injected clock; the
    ``hold_at``-th pulse's send is held up ``stall`` seconds (a busy MIDI system), and
    after ``pulses`` pulses the clock thread is told to stop."""

    def __init__(self, node, pulses: int, hold_at: int | None = None, stall: float = 0.0) -> None:
        self.node, self.clock, self.pulses = node, node.ctx.clock, pulses
        self.hold_at, self.stall = hold_at, stall
        self.port = object()
        self.sent: list[tuple[float, str]] = []

    def keep(self) -> None:
        pass

    def send(self, msg) -> bool:
        pulse = sum(1 for _, kind in self.sent if kind == "clock")
        if msg.type == "clock" and pulse == self.hold_at:
            self.clock.advance(self.stall)
        self.sent.append((self.clock.now(), msg.type))
        if pulse + 1 >= self.pulses:
            self.node.stop_clock.set()
        return True


def clock_out(bpm: float, clock: FakeClock, beats: tuple = (), **receiver) -> list[float]:
    """The times [s] midi.out's clock pulses go out at ``bpm``, on ``clock``, with
    ``beats`` (events) at its first tick."""
    d = NodeDriver(MidiOut, {"api": "jack"}, wired=["tempo", "beat"])
    d.node.ctx.offline, d.node.ctx.clock = False, clock
    d.node.port = port = Receiver(d.node, **receiver)
    d.tick(tempo=bpm, beat=beats)
    d.node.clock_thread.join(timeout=30)
    assert not d.node.clock_thread.is_alive()
    assert port.sent[0][1] == "start"
    return [t for t, kind in port.sent if kind == "clock"]


@pytest.mark.parametrize("where", ["send", "thread"])
def test_clock_out_resumes_evenly_after_a_stall(where):
    """A 30 ms stall (a send held up, or the clock thread not run) 2 beats in at 140 BPM:
    the pulses after it go on a whole period apart, never in a burst to catch up (which
    a receiver read as one beat at 163 BPM), and midi.in reads 140 from them throughout."""
    bpm, step = 140.0, 60.0 / (24 * 140.0)
    if where == "send":
        times = clock_out(bpm, FakeClock(), pulses=24 * 6, hold_at=48, stall=0.030)
    else:
        times = clock_out(bpm, HeldUp(at=49, stall=0.030), pulses=24 * 6)
    gaps = np.diff(times)
    assert len(times) == 24 * 6
    assert gaps.max() == pytest.approx(step + 0.030, abs=step / 2)          # the stall itself
    others = np.delete(gaps, np.argmax(gaps))
    assert others == pytest.approx(step, abs=1e-9)                        # evenly spaced
    read = [clock_bpm(times[max(0, k - FIT_PULSES + 1):k + 1]) for k in range(24 * 4, len(times))]
    assert np.abs(np.array(read) - bpm).max() < 1.0


@pytest.mark.parametrize("late", [0.05, 0.6, 0.9])
def test_clock_out_keeps_its_schedule_when_every_wake_up_is_late(late):
    """A loaded machine wakes the clock thread late every time (by 0.05, 0.6 and 0.9 of a
    period at 120 BPM): each pulse is still due a period after the one before was
    due, so after the first every pulse is equally late and they stay a period apart.
    (Resuming from each late pulse made the clock 100 BPM for 120 on a loaded machine.)"""
    step = 60.0 / (24 * 120.0)
    clock = FakeClock()
    clock.oversleep = late * step
    times = clock_out(120.0, clock, pulses=24 * 4)
    assert np.diff(times[1:]) == pytest.approx(step, abs=1e-9)


def test_a_note_is_held_its_length_on_the_engine_clock():
    """midi.out releases a note on the first control tick at least ``length`` after the
    one that played it: at 60 fps a 50 ms note is held 50-67 ms by the engine's clock,
    however busy the machine (what a synth then hears also depends on delivery)."""
    clock = FakeClock()
    d = NodeDriver(MidiOut, {"api": "jack", "length": 0.05, "note_names": {"kick": 36}},
                   wired={"kick": PortType.EVENT})
    d.node.ctx.offline, d.node.ctx.clock = False, clock
    d.node.port = port = Receiver(d.node, pulses=1)
    for k in range(120):
        d.tick(kick=(Event(k / 60, 1.0),) if k % 20 == 0 else ())
        clock.advance(1 / 60)
    ons = [t for t, kind in port.sent if kind == "note_on"]
    offs = [t for t, kind in port.sent if kind == "note_off"]
    assert len(ons) == len(offs) == 6
    assert np.array(offs) - np.array(ons) == pytest.approx(0.05 + 1 / 120, abs=1 / 120 + 1e-9)


def lock(bpm: float, beats: list[float], until: float) -> list[float]:
    """The times [s] midi.out's clock pulses go out at ``bpm``, free-running from 0, with
    ``beats`` (times [s]) each handed over a control tick (1/60 s) after it fell, as the
    control thread does; each pulse goes out when it is due (time injected)."""
    period = 60.0 / (24 * bpm)
    pulses, times, waiting, now = Pulses(0.0), [], sorted(beats), 0.0
    while now < until:
        while waiting and waiting[0] + 1 / 60 <= now:
            pulses.beat(waiting.pop(0), period)
        times.append(now)
        now = pulses.sent(now, period)
    return times


@pytest.mark.parametrize("offset", [0.2, -0.1, 0.26])
def test_clock_out_locks_each_quarter_to_the_beat(offset):
    """With beats wired (120 BPM, ``offset`` s off the clock's own phase), a quarter's
    first pulse lands on each beat within a millisecond after 4 beats, the pulses
    getting there smoothly: none more than a tenth of a period off its spacing."""
    step = 60.0 / (24 * 120.0)
    beats = [offset + 0.5 * k for k in range(1, 20)]
    times = np.array(lock(120.0, beats, 10.0))
    assert np.all(np.abs(np.diff(times) - step) <= 0.1 * step + 1e-12)
    quarters = times[::24]
    for b in beats[8:]:
        assert np.min(np.abs(quarters - b)) < 0.001, b


def test_clock_out_keeps_its_lock_through_a_missed_beat_and_follows_a_jump():
    """A beat the tracker missed changes nothing; beats that jump a third of a beat
    later (a new song) are followed, smoothly, within 8 beats."""
    step = 60.0 / (24 * 120.0)
    beats = [0.5 * k for k in range(1, 12) if k != 7] + [5.5 + 0.5 * k + 0.16 for k in range(1, 20)]
    times = np.array(lock(120.0, beats, 16.0))
    assert np.all(np.abs(np.diff(times) - step) <= 0.1 * step + 1e-12)
    quarters = times[::24]
    for b in [*beats[3:10], *beats[18:]]:
        assert np.min(np.abs(quarters - b)) < 0.001, b


def test_a_beat_wired_to_midi_out_moves_its_clock_onto_it():
    """The node end to end: a beat event at media time 0.2 s (the first tick's clock
    time is media time 0) brings the quarters' first pulses to 0.2 s past each half
    second at 120 BPM."""
    clock = FakeClock(start=100.0)
    times = np.array(clock_out(120.0, clock, beats=(Event(0.2),), pulses=24 * 8))
    off = (times[24 * 5::24] - 100.2 + 0.25) % 0.5 - 0.25      # from the nearest beat
    assert len(off) >= 3 and np.abs(off).max() < 1e-6, off


class Sequencer(Receiver):
    """A receiver counting pulses from each Start, as a sequencer does; ``at`` maps a
    pulse number to a callback run before it is sent (the show's ticks meanwhile)."""

    def __init__(self, node, pulses: int, at: dict | None = None) -> None:
        super().__init__(node, pulses)
        self.at = at or {}

    def send(self, msg) -> bool:
        pulse = sum(1 for _, kind in self.sent if kind == "clock")
        if msg.type == "clock" and pulse in self.at:
            self.at.pop(pulse)()
        return super().send(msg)


def started(wired: list, pulses: int, beats=(), downbeats=(), at=None):
    """midi.out at 120 BPM on an injected clock from 100 s: (kind, time) of each Start,
    Stop and the pulse after each Start."""
    clock = FakeClock(start=100.0)
    d = NodeDriver(MidiOut, {"api": "jack"}, wired=["tempo", *wired])
    d.node.ctx.offline, d.node.ctx.clock = False, clock
    d.node.port = port = Sequencer(d.node, pulses, {k: (lambda f=f: f(d.node)) for k, f in (at or {}).items()})
    d.tick(tempo=120.0, beat=beats, downbeat=downbeats)
    d.node.clock_thread.join(timeout=30)
    sent = port.sent
    return [(kind, t, next((u for u, k in sent[i + 1:] if k == "clock"), None))
            for i, (t, kind) in enumerate(sent) if kind in ("start", "stop")]


def test_the_clock_starts_on_the_downbeat_so_the_receivers_bar_one_is_the_songs():
    """Beats every 0.5 s from 0.2 s, a bar's first at 0.2 s: the Start goes out just
    before the pulse on it (the quarters locked to the beats), not with the show."""
    beats = tuple(Event(0.2 + 0.5 * k) for k in range(8))
    marks = started(["beat", "downbeat"], 24 * 6, beats, (Event(0.2),))
    assert [m[0] for m in marks] == ["start"]
    _, t_start, first_pulse = marks[0]
    assert abs(first_pulse - 100.2) <= 60 / (24 * 120) / 2 and t_start <= first_pulse
    plain = started([], 24)
    assert plain[0][0] == "start" and plain[0][1] == 100.0           # unwired: with the show


def test_start_and_stop_inputs_send_them_and_a_later_start_waits_for_a_foreseen_downbeat():
    """Downbeats heard at 0.2 and 2.2 s: a Start asked at once goes out on the 2.2 s
    one; Stop at 2.3 s (the pulses go on); Start again at 2.5 s: it goes out on the bar
    foreseen at 4.2 s, though no downbeat came then.  A Stop that finds the
    receiver stopped sends nothing, and closing sends the last Stop only to a receiver
    left running."""
    period = 60 / (24 * 120)

    def stop(node):
        node.wanted = False

    def start(node):
        node.wanted, node.starts = True, node.starts + 1
    marks = started(["start", "stop", "downbeat"], 24 * 10, downbeats=(Event(0.2), Event(2.2)),
                    at={0: start, 110: stop, 112: stop, 120: start})
    kinds = [m[0] for m in marks]
    assert kinds == ["start", "stop", "start"], marks                # one Stop for two stops
    assert abs(marks[0][2] - 102.2) <= period / 2, marks             # on the last downbeat
    assert abs(marks[1][1] - (100 + 111 * period)) < 1e-9      # before the pulse after it
    assert marks[1][2] is not None                                   # and the pulses go on
    assert abs(marks[2][2] - 104.2) <= period / 2, marks
    assert started(["start", "stop"], 24 * 2, at={10: stop}) == []    # never started: no Stop
