"""The real-time audio domain: one engine thread runs the audio nodes hop by hop.

A source that owns a hardware clock (a live input) paces the hops: the driver blocks
in its ``wait_hop`` until PortAudio has delivered the next hop of samples, then runs
every audio node at once, so an onset reaches downstream nodes (and OSC) as soon as its
hop is processed, never at the next control tick.  With no such source, or while a
device is lost, the driver paces hops by the clock on absolute deadlines, so media time
keeps moving and the rest of the graph hears silence instead of stopping.

Media time is the control clock's: a hop's time is when its samples were heard, so an
onset lands in the control tick that is running when it is found.  Sound and clock
part ways after any gap (the process was stopped, the device was lost and came back,
the machine stalled) and slowly through clock drift: a gap re-anchors media time at
once, drift is taken up a little every hop.

Only this thread runs audio-domain nodes; control and render nodes read their latest
values and receive their events through the runner's queues.  The driver reads the
runtime's current runner before every hop, so a reload is taken over between two hops,
and a changed samplerate or hop size applies from the next one.
"""

from __future__ import annotations

import logging
import sys
import threading

from .node import Tick
from .plan import AUDIO
from .runner import run_tasks

log = logging.getLogger("tonegraph.audio")

# Python hands the GIL to a waiting thread only every switch interval (5 ms by default):
# the audio thread would wait that long behind a busy control or render thread.
SWITCH_INTERVAL = 0.0005  # [s]
WAIT_SLICE = 0.05  # [s] longest block in wait_hop, so a stop request is seen quickly
#: [s] sound this far from the clock (either way) is a gap: media time re-anchors at once.
REANCHOR = 0.25
#: Share of the remaining difference taken up per hop when within REANCHOR (drift).
SLEW = 0.02


class AudioDriver:
    """Runs the current runner's ``audio_hop`` on its own thread in real time."""

    def __init__(self, runtime) -> None:
        self.rt = runtime
        self.clock = runtime.clock
        self.hops = 0
        self.skipped_hops = 0
        self.reanchors = 0
        #: Media time of the next hop [s].
        self.next_t = 0.0
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._entered = None
        self._sources: list = []
        self._hp = 0.0

    def start(self) -> None:
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self.next_t = self.media_now()
        self._thread = threading.Thread(target=self._loop, name="tonegraph-audio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            sys.setswitchinterval(self._old_switch)

    def media_now(self) -> float:
        return self.clock.now() - self.rt.t0

    def _loop(self) -> None:
        while not (self._stop.is_set() or self.rt.ctx.stop.is_set()):
            try:
                self.step()
            except Exception:  # the runner isolates nodes; this is the last guard
                log.exception("audio hop %d failed", self.hops)

    def step(self) -> bool:
        """Wait for and run one hop; False when there was none to run (a device that
        timed out, no audio nodes).  The loop calls this; tests may too."""
        run = self.rt.current
        if run is not self._entered:
            run.enter(AUDIO)
            self._entered = run
            self._sources = [n for n in run.nodes.values() if n.is_source and n.domain == AUDIO]
            self._hp = run.ctx.hop / run.ctx.samplerate
        if not run.has_audio:
            self.clock.wait(self._stop, WAIT_SLICE)
            self.next_t = self.media_now()
            return False
        hp = self._hp
        ready = None
        for src in self._sources:
            ready = src.wait_hop(WAIT_SLICE)
            if ready is not None:
                break
        if ready is False:
            return False
        now = self.media_now()
        end = self.next_t + hp            # media time at which this hop's last sample is due
        if ready is None:
            if now < end:
                self.clock.sleep(end - now)
            elif now - end > REANCHOR:
                # Far behind (the machine stalled): drop the backlog rather than burst.
                skipped = int((now - end) / hp)
                self.skipped_hops += skipped
                self._reanchor(now - end, f"{skipped} hops skipped")
                self.next_t = now - hp
        else:
            behind = now - end
            if abs(behind) > REANCHOR:
                self._reanchor(behind, "")
                self.next_t = now - hp
            else:
                self.next_t += behind * SLEW
        tasks = self.rt.tasks[AUDIO]
        if tasks:
            run_tasks(tasks)
        run.audio_hop(Tick(self.next_t, hp, self.hops))
        self.next_t += hp
        self.hops += 1
        return True

    def _reanchor(self, behind: float, extra: str) -> None:
        self.reanchors += 1
        log.warning("audio was %.2f s %s the clock (a stall, or a device that came back): "
                    "media time re-anchored%s", abs(behind), "behind" if behind > 0 else "ahead of",
                    f", {extra}" if extra else "")
