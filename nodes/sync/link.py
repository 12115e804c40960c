"""sync.link: Ableton Link, the tempo and beat grid that DJ software, Resolume,
TouchDesigner and Chataigne share on a network.

The node joins (or starts) a Link session through ``aalink`` and follows its timeline:
``beat`` fires on each beat of the session's grid and ``bar`` on each bar (``quantum``
beats, Link's phase), ``phase`` rises 0..1 between beats and ``bar_phase`` over the bar
(wire either into ``control.lfo``'s ``sync`` or ``ml.latent``'s ``phase`` to lock them
to the session), ``bpm`` is the session tempo and ``peers`` how many others are in it.
An event's time is the moment the session's beat fell, read from Link's clock, not the
tick that noticed it, so two machines in one session place their beats alike.

``delay`` moves the node's whole timeline (beats, bars, phases, count) later, or with a
negative value earlier, by that many seconds: -0.04 sends each beat 40 ms before the
session's, so a fixture or projector that takes 40 ms to respond lights on the beat.
Ahead is at most one beat at the session's tempo.

Start/stop: with ``start_stop`` the node takes part in Link's start/stop sync: the
``playing`` output follows the session's transport (1 playing, 0 stopped) and
``start``/``stop`` fire when it changes; wire a number into ``play`` (above 0.5: play)
to start and stop the session from the patch.  Beats go on either way (Link's grid
never stops); a patch gates them with ``playing``.

Leading: wire a number into ``tempo`` (``audio.tempo``'s ``bpm``, a fader) and the node
sets the session tempo from it and keeps it there; every peer follows.  It changes the
session at most ``lead_rate`` times a second, and only when the session's tempo is more
than 0.05 BPM from the input.

Link lives on the network (UDP multicast on port 20808); in an offline run, where
media time is not wall time, the node keeps its own grid at ``bpm`` instead and says so.
aalink is GPL-3 licensed; it is the ``link`` extra (``pip install 'tonegraph[link]'``).
"""

from __future__ import annotations

import asyncio
import logging
import math
import threading
import time

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import NodeError
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import Event

log = logging.getLogger("tonegraph.sync")

#: A jump of the session's beat by more than this many beats between two ticks (a new
#: session joined, a peer forcing the beat) re-aligns without firing the beats between.
MAX_BEATS_PER_TICK = 8.0


class _Loop:
    """One asyncio loop on a thread of its own, which aalink needs to exist on."""

    _lock = threading.Lock()
    _loop: asyncio.AbstractEventLoop | None = None

    @classmethod
    def run(cls, coro, timeout: float = 5.0):
        with cls._lock:
            if cls._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, daemon=True, name="link").start()
                cls._loop = loop
        return asyncio.run_coroutine_threadsafe(coro, cls._loop).result(timeout)


class Link(Node):
    type_name = "sync.link"
    extra, extra_modules = "link", ("aalink",)
    description = "Ableton Link: the session's tempo, beats, bars and phase; leads it from a tempo input."
    params = {
        "bpm": P.number(120.0, "Tempo of a new session (joining one takes its tempo).", unit="BPM",
                        min=20.0, max=999.0, restart=True),
        "quantum": P.integer(4, "Beats per bar: when 'bar' fires and what 'bar_phase' spans.",
                             min=1, max=64),
        "enabled": P.boolean(True, "Join the network session; off keeps a local timeline."),
        "lead_rate": P.number(5.0, "Most session tempo changes per second from 'tempo'.", unit="Hz",
                              min=0.1, max=60.0),
        "delay": P.number(0.0, "Move beats, bars and phases this much later; negative: earlier, to "
                               "cover a fixture's latency (at most one beat ahead).", unit="s",
                          min=-2.0, max=2.0),
        "start_stop": P.boolean(False, "Take part in Link's start/stop sync (playing, start, stop; "
                                       "the play input)."),
    }
    inputs = {"tempo": ports.number("When wired: set the session tempo from it (lead) [BPM]."),
              "play": ports.number("When wired (with start_stop): above 0.5 starts the session's "
                                   "transport, below stops it.")}
    outputs = {
        "beat": ports.event("Each beat of the session's grid, at the time it fell."),
        "bar": ports.event("Each bar (every 'quantum' beats, on the session's phase)."),
        "phase": ports.number("0..1 from one beat to the next."),
        "bar_phase": ports.number("0..1 over the bar."),
        "bpm": ports.number("The session tempo [BPM]."),
        "count": ports.number("The session's beat number."),
        "peers": ports.number("Other Link apps in the session."),
        "playing": ports.number("With start_stop: 1 while the session's transport plays, else 0."),
        "start": ports.event("With start_stop: the session's transport started."),
        "stop": ports.event("With start_stop: the session's transport stopped."),
    }

    def configure(self) -> None:
        self.link = None
        self.last_beat: float | None = None
        self.last_lead = (-math.inf, 0.0)      # (wall time, bpm) of the last tempo set
        self.local_origin = 0.0
        self.playing: bool | None = None        # the session's transport, as last seen
        if self.ctx.offline:
            log.warning("node '%s': Link follows wall-clock time; offline, sync.link keeps its own "
                        "grid at %g BPM", self.id, self.p.bpm)
            return
        import aalink

        async def make():
            link = aalink.Link(float(self.p.bpm))
            link.quantum = int(self.p.quantum)
            link.enabled = bool(self.p.enabled)
            link.start_stop_sync_enabled = bool(self.p.start_stop)
            return link
        try:
            self.link = _Loop.run(make())
        except Exception as exc:  # noqa: BLE001 - aalink raises plain RuntimeErrors
            raise NodeError(self.id, f"cannot start Ableton Link: {exc}") from None

    def params_changed(self, changed: set[str]) -> None:
        if self.link is not None:
            if "quantum" in changed:
                self.link.quantum = int(self.p.quantum)
            if "enabled" in changed:
                self.link.enabled = bool(self.p.enabled)
            if "start_stop" in changed:
                self.link.start_stop_sync_enabled = bool(self.p.start_stop)

    def _now(self, tick: Tick) -> tuple[float, float, float, float, int]:
        """(beat, wall time it was read at, bpm, bar phase in beats, peers)."""
        if self.link is None:                              # offline: a grid from media time
            bpm = float(self.p.bpm)
            beat = tick.t * bpm / 60.0
            return beat, tick.t, bpm, beat % self.p.quantum, 0
        link = self.link
        # The beat and the wall clock read together: a read that the scheduler split
        # (a busy machine) is tried again, so the pair is never more than 0.3 ms apart.
        best = None
        for _ in range(5):
            t0 = time.time()
            beat = float(link.beat)
            t1 = time.time()
            if best is None or t1 - t0 < best[2]:
                best = (beat, 0.5 * (t0 + t1), t1 - t0)
            if t1 - t0 < 0.0003:
                break
        beat, wall, _ = best
        return beat, wall, float(link.tempo), float(link.phase), int(link.num_peers)

    def process(self, tick: Tick) -> None:
        out = self.out
        self._lead(tick)
        beat, wall, bpm, bar, peers = self._now(tick)
        q = int(self.p.quantum)
        spb = 60.0 / bpm
        # The node's timeline: the session's moved by 'delay' (ahead: one beat at most).
        shift = max(-1.0, self.p.delay / spb)
        beat, bar = beat - shift, (bar - shift) % q
        beats, bars = [], []
        last = self.last_beat
        if last is not None and 0.0 <= beat - last <= MAX_BEATS_PER_TICK:
            # Beats crossed since the last tick, each at the moment it fell.  Online that
            # moment comes from the wall clock (media time 0 is ctx.clock_origin);
            # offline the grid is media time itself.
            origin = self.ctx.clock_origin if self.link is not None else 0.0
            bar_start = beat - bar                          # the bar begins here
            for k in range(math.floor(last) + 1, math.floor(beat) + 1):
                t = wall - (beat - k) * spb - origin
                beats.append(Event(t))
                if round(k - bar_start) % q == 0:
                    bars.append(Event(t))
        self.last_beat = beat
        out["beat"] = tuple(beats)
        out["bar"] = tuple(bars)
        out["phase"] = beat - math.floor(beat)
        out["bar_phase"] = min(max(bar / q, 0.0), 1.0)
        out["bpm"] = bpm
        out["count"] = float(math.floor(beat))
        out["peers"] = float(peers)
        self._transport(tick)

    def _transport(self, tick: Tick) -> None:
        """Link's start/stop sync: follow the session's transport, and lead it from 'play'."""
        out = self.out
        out["start"] = out["stop"] = ()
        if not self.p.start_stop:
            out["playing"] = 0.0
            return
        link = self.link
        want = self.inp.get("play") if "play" in self.wired else None
        if want is not None and math.isfinite(want) and link is not None and (want > 0.5) != bool(link.playing):
            link.playing = want > 0.5
        playing = bool(link.playing) if link is not None else (want is not None and want > 0.5)
        if self.playing is not None and playing != self.playing:
            out["start" if playing else "stop"] = (Event(tick.t),)
        self.playing = playing
        out["playing"] = float(playing)

    def _lead(self, tick: Tick) -> None:
        if "tempo" not in self.wired or self.link is None:
            return
        want = self.inp["tempo"]
        if want is None or not math.isfinite(want) or not 20.0 <= want <= 999.0:
            return
        now = time.monotonic()
        at, _ = self.last_lead
        # Against the session's tempo, not the last one set: a peer joining with its own
        # tempo, or another app changing it, is brought back to the leader's.
        if abs(want - float(self.link.tempo)) > 0.05 and now - at >= 1.0 / self.p.lead_rate:
            self.link.tempo = float(want)
            self.last_lead = (now, float(want))

    def close(self) -> None:
        link, self.link = getattr(self, "link", None), None
        if link is not None:
            try:
                link.enabled = False
            except Exception:  # noqa: BLE001 - leaving the session quietly
                pass
