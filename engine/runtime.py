"""Running a plan: three clocks on one source of time, and one handle to swap.

In real time each domain runs on its own thread and its own clock:

* **audio** (engine/audio.py): hop by hop, paced by the input device (or the wall clock
  when there is none), so an onset leaves as soon as its hop is processed;
* **control** (this thread): numbers, events, lights and OSC at the patch's ``fps`` on
  absolute deadlines; it never waits on pictures, so a light cue keeps its rate when
  drawing is slow;
* **render**: GL and image nodes, as fast as drawing allows up to ``fps``, dropping
  frames when late and reading the latest control values.

All of them, the reloader and the fault policy take their time from one injected
:class:`engine.clock.Clock`.  The running graph is one object, :attr:`Runtime.current`
(a :class:`engine.runner.Runner`); a reload builds the next one whole, off the hot
path, and :meth:`Runtime.install` swaps the handle.  Each domain takes the new runner
over at its next tick; only when all have, the nodes it no longer runs are closed, off
the hot path (GL nodes on the render thread, where their context lives).

Offline, frame ``k`` (at ``k / fps``) runs after every audio hop that ended by then,
then its control tick, then its render tick, so identical input gives identical output.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Callable

from .clock import SYSTEM, Clock, TickClock
from .graph import Graph
from .node import Node, Tick
from .plan import AUDIO, CONTROL, DOMAINS, RENDER, Plan, make_plan
from .registry import Registry
from .runner import FaultPolicy, Runner, build, close_quietly, retired, run_tasks
from .cpu import CpuMeter, said
from .systemd import Watchdog, notify

log = logging.getLogger("tonegraph.runtime")

#: [s] a swap waits at most this long for every running domain to take the new runner
#: over before it closes the nodes that are gone.
ENTER_TIMEOUT = 10.0


@dataclass
class OscOptions:
    """Where the engine listens and reports (real-time runs only)."""

    host: str = "127.0.0.1"
    port: int | None = 9000          # None: no listener
    query_port: int | None = None    # None: the OSC port + 1 (0 when the OSC port is 0)
    status_to: str | None = None     # host:port for /tonegraph/status and /tonegraph/error
    status_interval: float = 1.0
    allow: tuple | None = None       # trusted OSC senders' networks; None: loopback


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
    renders: int = 0
    skipped_renders: int = 0
    #: CPU seconds per domain (engine/cpu.py), largest first.
    cpu: dict = field(default_factory=dict)

    def summary(self) -> str:
        drawn = ""
        if self.renders:
            rate = f" ({self.renders / self.wall_time:.1f}/s)" if self.wall_time > 0 else ""
            dropped = f", {self.skipped_renders} dropped" if self.skipped_renders else ""
            drawn = f", {self.renders} frames drawn{rate}{dropped}"
        return (f"stopped ({self.reason}): {self.frames} control ticks{drawn}, {self.hops} audio "
                f"hops, {self.media_time:.2f} s media time in {self.wall_time:.2f} s, "
                f"{self.skipped_frames} skipped ticks, {self.faults} node faults"
                + (f"; {said(self.cpu)}" if self.cpu else ""))


class Runtime:
    """Owns the running plan and the threads that run it, until told to stop."""

    def __init__(self, graph: Graph, registry: Registry, *, offline: bool = False,
                 headless: bool = True, duration: float | None = None, fps: float | None = None,
                 clock: Clock = SYSTEM, osc: OscOptions | None = None, watch: bool = False,
                 sets: list[str] | None = None, batching: bool = True,
                 preroll: float = 0.0) -> None:
        self.osc = osc
        self.watch = watch
        self.sets = sets or []
        self.registry = registry
        self.clock = clock
        self.offline = offline
        self.duration = duration
        #: Offline: media time [s] before which only audio and control run (a render's
        #: pre-roll, for analysers to hear the music before the first frame is drawn).
        self.preroll = preroll
        #: ``run --fps``: pins the control rate whatever the patch's header says.
        self.pinned_fps = fps
        plan = make_plan(graph, registry, fps=fps, batching=batching)
        self.ctx = graph.spec.context(offline=offline, headless=headless, clock=clock)
        self.ctx.fps = plan.header.fps
        types = {n.type for n in graph.nodes.values()}
        self.ctx.sharing = frozenset(
            ({"audio"} if not offline and any(t.startswith("audio.") for t in types) else set())
            | ({"gl"} if any(t.startswith("gl.") for t in types) else set()))
        self.policy = FaultPolicy(clock)
        #: The one handle every domain, OSC control, OSCQuery and the watcher read.
        self.current: Runner = build(plan, registry, self.ctx, faults=self.policy, configure=False)
        self.control_clock = TickClock(plan.header.fps, clock)
        #: Work for a domain's thread, run before its next tick (params of its nodes).
        self.tasks: dict[str, deque] = {d: deque() for d in DOMAINS}
        self.reloader = None
        self.reloads = 0
        self.swap_times: list[float] = []   # [s] from the file event to the new graph running
        #: When a list, each real-time control tick's work time [s] is appended (benchmarks).
        self.tick_record: list[float] | None = None
        #: Clock time when the last swap happened (benchmarks).
        self.swapped_at = 0.0
        self.t0 = 0.0
        self.hops = 0
        self.frames = 0
        self.renders = 0
        self.driver = None
        self.render_clock: TickClock | None = None
        self._render_thread: threading.Thread | None = None
        self._render_stop = threading.Event()
        self._render_retire: deque[Node] = deque()
        self._install_lock = threading.Lock()
        self.control = None
        self.server = None
        self.query = None
        self.advertiser = None
        self.reporter = None

    @property
    def runner(self) -> Runner:
        return self.current

    @property
    def plan(self) -> Plan:
        return self.current.plan

    @property
    def graph(self) -> Graph:
        return self.current.plan.graph

    @property
    def fps(self) -> float:
        return self.current.plan.header.fps

    @property
    def hop_period(self) -> float:
        return self.current.ctx.hop / self.current.ctx.samplerate

    @property
    def sources(self) -> list:
        return self.current.sources

    def request_reload(self) -> None:
        """Reload the patch from disk (SIGHUP); safe from signal handlers."""
        if self.reloader is not None:
            self.reloader.request()

    def request_stop(self) -> None:
        """Ask the loops to stop after their current tick (safe from signal handlers)."""
        self.ctx.stop.set()

    # -- real time ------------------------------------------------------------------------

    def run(self) -> RunReport:
        runner = self.current
        self.ctx.clock_origin = time.time()  # media time 0, for OSC timetags
        if not self.offline:
            self._start_status()
        if not runner.configured:
            try:
                runner.configure()
            except BaseException:
                self._stop_osc()                 # the status reporter started above
                raise
        if self.offline:
            return self._run_offline()
        from .reload import Reloader

        wall0 = self.clock.now()
        # Media time 0 is now, after the nodes' set-up (which may take seconds: models):
        # OSC media timetags and events timed from the wall clock (Link, MIDI) rely on it.
        self.ctx.clock_origin = time.time()
        self.t0 = wall0
        self.control_clock.start(self.t0)
        self._start_osc()
        self.reloader = Reloader(self, self.graph.spec.path, self.registry, self.sets, self.clock)
        self.policy.on_restart = self.reloader.request_fresh
        self.reloader.start(watch=self.watch)
        self._start_domains(runner)
        reason = "stop requested"
        t = 0.0
        reporter = self.reporter
        watchdog = Watchdog()
        cc = self.control_clock
        entered = None
        sources: list = []
        notify(f"READY=1\nSTATUS=running {self.graph.name}")
        meter = CpuMeter("control")
        cpu: dict = {}
        try:
            while not self.ctx.stop.is_set():
                tick = cc.next()
                run = self.current
                if run is not entered:
                    run.enter(CONTROL)
                    entered, sources = run, run.sources
                    cc.retime(run.plan.header.fps)
                t = tick.t
                if self.duration is not None and t >= self.duration - 1e-9:
                    reason = "duration reached"
                    break
                if sources and all(s.finished for s in sources):
                    reason = "sources ended"
                    break
                work0 = self.clock.now()
                if self.control is not None:
                    self.control.apply()
                if self.tasks[CONTROL]:
                    run_tasks(self.tasks[CONTROL])
                run.control(tick)
                self.frames += 1
                if self.tick_record is not None:
                    self.tick_record.append(self.clock.now() - work0)
                if reporter is not None:
                    reporter.beat()
                watchdog.ping()
        finally:
            cpu = meter.sample()             # while the domains' threads are still there
            notify("STOPPING=1")
            self.ctx.stop.set()
            self.reloader.stop()
            self._stop_render()
            if self.driver is not None:
                self.driver.stop()
                self.hops = self.driver.hops
            self._stop_osc()
            self.current.close((AUDIO, CONTROL) if self._render_thread else DOMAINS)
        rc = self.render_clock
        return RunReport(self.frames, self.hops, cc.skipped, cc.late_frames,
                         self.current.fault_count(), t, self.clock.now() - wall0, reason,
                         self.renders, rc.skipped if rc else 0, cpu)

    def _start_domains(self, runner: Runner) -> None:
        """Start the audio and render threads a runner needs that are not running yet
        (a reload may add the first audio or GL node to a running patch)."""
        if runner.has_audio and self.driver is None:
            from .audio import AudioDriver

            self.driver = AudioDriver(self)
            self.driver.start()
        if runner.has_render and self._render_thread is None:
            self.render_clock = TickClock(runner.plan.header.fps, self.clock)
            self._render_thread = threading.Thread(target=self._render_loop, name="tonegraph-render",
                                                   daemon=True)
            self._render_thread.start()

    def _render_loop(self) -> None:
        rc = self.render_clock
        assert rc is not None
        rc.start(self.t0)
        entered = None
        try:
            while not (self._render_stop.is_set() or self.ctx.stop.is_set()):
                run = self.current
                if run is not entered:
                    run.enter(RENDER)
                    entered = run
                    rc.retime(run.plan.header.fps)
                while self._render_retire:
                    close_quietly(self._render_retire.popleft())
                if not run.has_render:
                    self.clock.wait(self._render_stop, 0.05)
                    continue
                tick = rc.next()
                if self.tasks[RENDER]:
                    run_tasks(self.tasks[RENDER])
                run.render(tick)
                self.renders += 1
        finally:
            # GL objects belong to this thread's context: they are freed here.
            while self._render_retire:
                close_quietly(self._render_retire.popleft())
            self.current.close((RENDER,))

    def _stop_render(self) -> None:
        self._render_stop.set()
        if self._render_thread is not None:
            self._render_thread.join(timeout=10)

    def in_domain(self, node_id: str, fn: Callable[[], None]) -> None:
        """Run ``fn`` where node ``node_id`` runs: now when that is this thread (the
        control domain) or a domain with no thread, else before that domain's next tick."""
        domain = self.current.domain_of(node_id)
        running = {AUDIO: self.driver is not None, RENDER: self._render_thread is not None}
        if domain != CONTROL and running.get(domain):
            self.tasks[domain].append(fn)
        else:
            fn()

    # -- swapping -------------------------------------------------------------------------

    def install(self, new: Runner, why: str, started: float | None = None) -> None:
        """Put ``new`` in charge (the reload thread calls this; ``new`` is built and set
        up).  The swap is one assignment: each domain takes ``new`` over at its next
        tick.  Once all have, the nodes ``new`` no longer runs are closed here, off the
        hot path, or on the render thread for GL nodes."""
        with self._install_lock:
            t0 = self.clock.now()
            old = self.current
            notify(f"RELOADING=1\nMONOTONIC_USEC={time.monotonic_ns() // 1000}")
            self.current = new                       # the swap
            self.swapped_at = self.clock.now()
            if started is not None:
                self.swap_times.append(self.swapped_at - started)
            self._start_domains(new)
            running = [CONTROL]
            if self.driver is not None:
                running.append(AUDIO)
            if self._render_thread is not None:
                running.append(RENDER)
            deadline = self.clock.now() + ENTER_TIMEOUT
            for domain in running:
                while not new.entered[domain].is_set() and not self.ctx.stop.is_set():
                    if self.clock.wait(new.entered[domain], 0.05):
                        break
                    if self.clock.now() > deadline:
                        log.warning("the %s domain did not take the new patch over within %g s",
                                    domain, ENTER_TIMEOUT)
                        break
            for node in retired(old, new):
                if old.domain_of(node.id) == RENDER and self._render_thread is not None:
                    self._render_retire.append(node)
                else:
                    close_quietly(node)
            self.reloads += 1
            notify(f"READY=1\nSTATUS=running {new.plan.name}")
            log.info("%s in %.1f ms: %s", why, (self.clock.now() - t0) * 1e3,
                     new.plan.diff.summary())

    # -- OSC: listener, OSCQuery, status ------------------------------------------------

    def _start_osc(self) -> None:
        from .control import Control
        from .osc.query import OscQueryServer
        from .osc.server import OscServer

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
                self.control = Control(self, server, opts.allow)
                qport = opts.query_port if opts.query_port is not None else (
                    server.port + 1 if opts.port else 0)
                query = OscQueryServer(lambda: self.current.nodes, self.graph.name, opts.host,
                                       server.port, opts.host, qport, osc=server)
                try:
                    query.start()
                    self.query = query
                except OSError as exc:
                    log.warning("cannot serve OSCQuery on %s:%s (%s)", opts.host, qport,
                                exc.strerror or exc)
                log.info("OSC control on %s:%d%s", opts.host, server.port,
                         f", OSCQuery on http://{opts.host}:{self.query.port}/" if self.query else "")
                from .osc.advertise import Advertiser, beyond_loopback

                if beyond_loopback(opts.host):
                    self.advertiser = Advertiser(self.graph.name, opts.host, server.port,
                                                 self.query.port if self.query else None)
                    self.advertiser.start()

    def _start_status(self) -> None:
        """The heartbeat and error reports, before the nodes set up: what they say on
        the way (an input device missing at boot) reaches the monitor too."""
        from .osc.status import StatusReporter
        from .osc.transport import parse_destination

        opts = self.osc
        if opts is None or not opts.status_to or self.reporter is not None:
            return
        host, port = parse_destination(opts.status_to)
        dest = self.ctx.osc.acquire(host, port)
        self._status_dest = dest
        self._started = self.clock.now()
        self._beat_frames = (self._started, 0)
        self.reporter = StatusReporter(dest, opts.status_interval, self._status, self.clock)
        logging.getLogger("tonegraph").addHandler(self.reporter)

    def _status(self) -> list:
        now = self.clock.now()
        t0, f0 = self._beat_frames
        fps = (self.frames - f0) / (now - t0) if now > t0 else 0.0
        self._beat_frames = (now, self.frames)
        run = self.current
        overflows = sum(getattr(n, "overflows", 0) for n in run.nodes.values())
        dropped = (self.server.malformed + self.server.oversized) if self.server else 0
        cc = self.control_clock
        missing = sum(1 for n in run.nodes.values() if n.device_missing)
        return [("f", now - self._started), ("f", fps), ("i", cc.late_frames),
                ("i", cc.skipped), ("i", overflows), ("i", len(run.faults)),
                ("i", run.fault_count()), ("i", dropped), ("i", missing)]

    def _stop_osc(self) -> None:
        if self.advertiser is not None:
            self.advertiser.stop()
        if self.reporter is not None:
            logging.getLogger("tonegraph").removeHandler(self.reporter)
            self.ctx.osc.release(self._status_dest)
        if self.query is not None:
            self.query.stop()
        if self.server is not None:
            self.server.stop()

    # -- offline --------------------------------------------------------------------------

    def _run_offline(self) -> RunReport:
        """The virtual clock, inlined: offline runs are how files are analysed and
        videos rendered, so the loop itself must cost next to nothing per frame.  One
        Tick per domain is reused (nodes read a tick only during the call)."""
        run = self.current
        frame, hop, control = run.frame, run.audio_hop, run.control
        preroll = self.preroll - 1e-9
        sources = self.sources
        stop = self.ctx.stop
        period, hp = 1.0 / self.fps, self.hop_period
        end = self.duration - 1e-9 if self.duration is not None else float("inf")
        has_audio = run.has_audio
        tasks = self.tasks
        ftick, htick = Tick(0.0, 0.0, 0), Tick(0.0, hp, 0)
        n = self.hops
        k = 0
        t = 0.0
        reason = "stop requested"
        wall0 = self.clock.now()
        try:
            while True:
                if stop.is_set():
                    break
                t = k * period
                if t >= end:
                    reason = "duration reached"
                    break
                if has_audio and (n + 1) * hp <= t + 1e-9:
                    # Frame k sees every hop that ended by its time.
                    if tasks[AUDIO]:
                        run_tasks(tasks[AUDIO])
                    while (n + 1) * hp <= t + 1e-9:
                        htick.t, htick.index = n * hp, n
                        hop(htick)
                        n += 1
                    if sources and all([s.finished for s in sources]):
                        reason = "sources ended"
                        break
                if tasks[CONTROL] or tasks[RENDER]:
                    run_tasks(tasks[CONTROL])
                    run_tasks(tasks[RENDER])
                ftick.t, ftick.index = t, k
                if t < preroll:
                    control(ftick)
                else:
                    frame(ftick)
                if k == 0:
                    ftick.dt = period
                k += 1
        finally:
            self.hops, self.frames = n, k
            run.close()
        drawn = k - min(k, math.ceil(preroll * self.fps)) if run.has_render else 0
        return RunReport(k, n, 0, 0, run.fault_count(), t, self.clock.now() - wall0, reason, drawn)
