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
from .control import Control
from .systemd import Watchdog, notify
from .executor import Executor
from .graph import Graph
from .node import Context, Tick
from .registry import Registry

log = logging.getLogger("tonegraph.runtime")


@dataclass
class OscOptions:
    """Where the engine listens and reports (real-time runs only)."""

    host: str = "127.0.0.1"
    port: int | None = 9000          # None: no listener
    query_port: int | None = None    # None: the OSC port + 1 (0 when the OSC port is 0)
    status_to: str | None = None     # host:port for /tonegraph/status and /tonegraph/error
    status_interval: float = 1.0


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
                 sleep_fn: Callable[[float], None] = time.sleep,
                 osc: OscOptions | None = None, watch: bool = False,
                 sets: list[str] | None = None) -> None:
        spec = graph.spec
        self.osc = osc
        self.watch = watch
        self.sets = sets or []
        self.registry = registry
        self.reloader = None
        self.reloads = 0
        self.swap_times: list[float] = []   # [s] from the file event to the new graph running
        #: When a list, each real-time tick's work time [s] is appended (benchmarks).
        self.tick_record: list[float] | None = None
        #: perf_counter when the last swap completed (benchmarks).
        self.swapped_at = 0.0
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
        self.control: Control | None = None
        self.server = None
        self.query = None
        self.reporter = None

    @property
    def sources(self) -> list:
        return [n for n in self.executor.nodes.values() if n.is_source]

    def request_reload(self) -> None:
        """Reload the patch from disk (SIGHUP); safe from signal handlers."""
        if self.reloader is not None:
            self.reloader.request()

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
        self._start_osc()
        from .reload import Reloader

        self.reloader = Reloader(self.graph.spec.path, self.registry, lambda: self.executor,
                                 self.sets)
        self.reloader.start(watch=self.watch)
        self.clock.start()
        if driver:
            driver.start()
        reason = "stop requested"
        t = 0.0
        control, reporter = self.control, self.reporter
        watchdog = Watchdog()
        notify(f"READY=1\nSTATUS=running {self.graph.name}")
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
                work0 = time.perf_counter()
                if self.reloader.ready is not None:
                    self.swap()
                    ex = self.executor
                if control is not None:
                    control.apply()
                ex.frame(tick)
                self.frames += 1
                if self.tick_record is not None:
                    self.tick_record.append(time.perf_counter() - work0)
                if reporter is not None:
                    reporter.beat()
                watchdog.ping()
        finally:
            notify("STOPPING=1")
            self.reloader.stop()
            if driver:
                driver.stop()
                self.hops = driver.hops
            self._stop_osc()
            self.executor.close()
        return RunReport(self.frames, self.hops, self.clock.skipped, self.clock.late_frames,
                         ex.fault_count(), t, self._time_fn() - wall0, reason)

    def swap(self) -> None:
        """Between two ticks: put the reloader's prepared executor in charge."""
        new = self.reloader.take()
        if new is None:
            return
        t0 = time.perf_counter()
        notify("RELOADING=1")
        old = self.executor
        driver = self.driver
        if driver is not None:
            with driver.lock:  # the audio thread waits at most for this swap
                restarted = new.adopt()
                driver.use(new)
        else:
            restarted = new.adopt()
        self.executor = new
        if self.control is not None:
            self.control.use(new)
        if self.query is not None:
            self.query.nodes = new.nodes
        self.reloader.watch_files(new)
        done = time.perf_counter()
        self.swapped_at = done
        if self.reloader.last_event:
            self.swap_times.append(time.monotonic() - self.reloader.last_event)
        self.reloads += 1
        notify(f"READY=1\nSTATUS=running {new.graph.name}")
        new.restart_after = old.restart_after
        kept = len(set(new.nodes) - new.fresh)
        removed = len(set(old.nodes) - set(new.nodes))
        log.info("reloaded %s in %.1f ms: %d nodes kept, %d new, %d removed%s",
                 self.graph.spec.path.name, (done - t0) * 1e3, kept, len(new.fresh), removed,
                 f", restarted {', '.join(restarted)}" if restarted else "")
        self.graph = new.graph

    # -- OSC: listener, OSCQuery, status ------------------------------------------------

    def _start_osc(self) -> None:
        from .osc.query import OscQueryServer
        from .osc.server import OscServer
        from .osc.status import StatusReporter
        from .osc.transport import parse_destination

        opts = self.osc
        if opts is None:
            return
        if opts.port is not None:
            server = OscServer(opts.host, opts.port)
            try:
                server.start()
            except OSError as exc:
                log.warning("cannot listen for OSC on %s:%s (%s); live control over OSC is off",
                            opts.host, opts.port, exc.strerror or exc)
            else:
                self.server = server
                self.control = Control(self.executor, server)
                qport = opts.query_port if opts.query_port is not None else (
                    server.port + 1 if opts.port else 0)
                query = OscQueryServer(self.executor.nodes, self.graph.name, opts.host, server.port,
                                       opts.host, qport)
                try:
                    query.start()
                    self.query = query
                except OSError as exc:
                    log.warning("cannot serve OSCQuery on %s:%s (%s)", opts.host, qport,
                                exc.strerror or exc)
                log.info("OSC control on %s:%d%s", opts.host, server.port,
                         f", OSCQuery on http://{opts.host}:{self.query.port}/" if self.query else "")
        if opts.status_to:
            host, port = parse_destination(opts.status_to)
            dest = self.ctx.osc.acquire(host, port)
            self._status_dest = dest
            self._started = time.monotonic()
            self._beat_frames = (self._started, 0)
            self.reporter = StatusReporter(dest, opts.status_interval, self._status)
            logging.getLogger("tonegraph").addHandler(self.reporter)

    def _status(self) -> list:
        now = time.monotonic()
        t0, f0 = self._beat_frames
        fps = (self.frames - f0) / (now - t0) if now > t0 else 0.0
        self._beat_frames = (now, self.frames)
        ex = self.executor
        overflows = sum(getattr(n, "overflows", 0) for n in ex.nodes.values())
        dropped = (self.server.malformed + self.server.oversized) if self.server else 0
        return [("f", now - self._started), ("f", fps), ("i", self.clock.late_frames),
                ("i", self.clock.skipped), ("i", overflows), ("i", len(ex.faults)),
                ("i", ex.fault_count()), ("i", dropped)]

    def _stop_osc(self) -> None:
        if self.reporter is not None:
            logging.getLogger("tonegraph").removeHandler(self.reporter)
            self.ctx.osc.release(self._status_dest)
        if self.query is not None:
            self.query.stop()
        if self.server is not None:
            self.server.stop()

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
                    if ex.audio_tasks:
                        ex.run_audio_tasks()
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

