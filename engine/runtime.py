"""Running a graph: the frame loop on a real-time or virtual clock, and the audio domain.

Offline, frame ``k`` (at ``k / fps``) runs after every audio hop that ended by then, so
identical input gives identical output.  In real time the frame clock paces the frame
loop on this thread while :class:`engine.audio.AudioDriver` runs the audio hops on its
own, paced by the input device.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from .audio import AudioDriver
from .clock import FrameClock
from .executor import Executor
from .graph import Graph
from .node import Context, Tick
from .registry import Registry

log = logging.getLogger("tonegraph.runtime")


@dataclass
class RunReport:
    frames: int
    hops: int
    skipped_frames: int
    late_frames: int
    faults: int
    media_time: float
    wall_time: float
    reason: str

    def summary(self) -> str:
        return (f"stopped ({self.reason}): {self.frames} frames, {self.hops} audio hops, "
                f"{self.media_time:.2f} s media time in {self.wall_time:.2f} s, "
                f"{self.skipped_frames} skipped frames, {self.faults} node faults")


class Runtime:
    """Owns an executor and a clock and runs them until told to stop."""

    def __init__(self, graph: Graph, registry: Registry, *, offline: bool = False,
                 headless: bool = True, duration: float | None = None, fps: float | None = None,
                 time_fn: Callable[[], float] = time.perf_counter,
                 sleep_fn: Callable[[float], None] = time.sleep) -> None:
        spec = graph.spec
        self.fps = float(fps or spec.fps)
        self.ctx = spec.context(offline=offline, headless=headless)
        self.ctx.fps = self.fps
        self.graph = graph
        self.executor = Executor(graph, registry, self.ctx)
        self.duration = duration
        self.offline = offline
        self.clock = FrameClock(self.fps, time_fn, sleep_fn)
        self._time_fn = time_fn
        self.hop_period = spec.hop / spec.samplerate
        self.hops = 0
        self.frames = 0
        self.driver: AudioDriver | None = None

    @property
    def sources(self) -> list:
        return [n for n in self.executor.nodes.values() if n.is_source]

    def request_stop(self) -> None:
        """Ask the loop to stop after the current tick (safe from signal handlers)."""
        self.ctx.stop.set()

    def run(self) -> RunReport:
        ex = self.executor
        self.ctx.clock_origin = time.time()  # media time 0, for OSC timetags
        if not ex.configured:
            ex.configure()
        if self.offline:
            return self._run_offline()
        sources = self.sources
        wall0 = self._time_fn()
        driver = None
        if ex.has_audio and not self.offline:
            driver = AudioDriver(ex, self.ctx, self._time_fn)
            self.driver = driver
        self.clock.start()
        if driver:
            driver.start()
        reason = "stop requested"
        t = 0.0
        try:
            while not self.ctx.stop.is_set():
                tick = self.clock.next()
                t = tick.t
                if self.duration is not None and t >= self.duration - 1e-9:
                    reason = "duration reached"
                    break
                if sources and all(s.finished for s in sources):
                    reason = "sources ended"
                    break
                ex.frame(tick)
                self.frames += 1
        finally:
            if driver:
                driver.stop()
                self.hops = driver.hops
            ex.close()
        return RunReport(self.frames, self.hops, self.clock.skipped, self.clock.late_frames,
                         ex.fault_count(), t, self._time_fn() - wall0, reason)

    def _run_offline(self) -> RunReport:
        """The virtual clock, inlined: offline runs are how files are analysed and
        videos rendered, so the loop itself must cost next to nothing per frame.  One
        Tick per domain is reused (nodes read a tick only during the call)."""
        ex = self.executor
        frame, hop = ex.frame, ex.audio_hop
        sources = self.sources
        stop = self.ctx.stop
        period, hp = 1.0 / self.fps, self.hop_period
        end = self.duration - 1e-9 if self.duration is not None else float("inf")
        has_audio = ex.has_audio
        ftick, htick = Tick(0.0, 0.0, 0), Tick(0.0, hp, 0)
        n = self.hops
        k = 0
        t = 0.0
        reason = "stop requested"
        wall0 = self._time_fn()
        try:
            while True:
                if not k & 63 and stop.is_set():
                    break
                t = k * period
                if t >= end:
                    reason = "duration reached"
                    break
                if has_audio and (n + 1) * hp <= t + 1e-9:
                    # Frame k sees every hop that ended by its time.
                    while (n + 1) * hp <= t + 1e-9:
                        htick.t, htick.index = n * hp, n
                        hop(htick)
                        n += 1
                    if sources and all([s.finished for s in sources]):
                        reason = "sources ended"
                        break
                ftick.t, ftick.index = t, k
                frame(ftick)
                if k == 0:
                    ftick.dt = period
                k += 1
        finally:
            self.hops, self.frames = n, k
            ex.close()
        return RunReport(k, n, 0, 0, ex.fault_count(), t, self._time_fn() - wall0, reason)

