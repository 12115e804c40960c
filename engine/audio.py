"""The real-time audio domain: one engine thread runs the audio nodes hop by hop.

A source that owns a hardware clock (a live input) paces the hops: the driver blocks
in its ``wait_hop`` until PortAudio has delivered the next hop of samples, then runs
every audio node at once, so an onset reaches downstream nodes (and OSC) as soon as its
hop is processed, never at the next frame.  With no such source, or while a device is
lost, the driver paces hops by the wall clock on absolute deadlines, so media time keeps
moving and the rest of the graph hears silence instead of stopping.

Only this thread runs audio-domain nodes; frame-domain nodes read their latest values
and receive their events through the executor's queues.
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from collections.abc import Callable

from .executor import Executor
from .node import Context, Tick

log = logging.getLogger("tonegraph.audio")

# Python hands the GIL to a waiting thread only every switch interval (5 ms by default):
# the audio thread would wait that long behind a busy frame thread.
SWITCH_INTERVAL = 0.0005  # [s]
WAIT_SLICE = 0.05  # [s] longest block in wait_hop, so a stop request is seen quickly
CATCH_UP_LIMIT = 0.5  # [s] behind the wall clock beyond which hops are not run in a burst


class AudioDriver:
    """Runs ``executor.audio_hop`` on its own thread in real time."""

    def __init__(self, executor: Executor, ctx: Context,
                 time_fn: Callable[[], float] = time.perf_counter,
                 sleep_fn: Callable[[float], None] = time.sleep) -> None:
        self.executor = executor
        self.ctx = ctx
        self.hop_period = ctx.hop / ctx.samplerate
        self.time_fn = time_fn
        self.sleep_fn = sleep_fn
        self.sources = [n for n in executor.nodes.values() if n.is_source and n.domain == "audio"]
        self.hops = 0
        self.skipped_hops = 0
        #: Held while a hop runs; a hot reload takes it to swap executors between hops.
        self.lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()

    def start(self) -> None:
        self._old_switch = sys.getswitchinterval()
        sys.setswitchinterval(SWITCH_INTERVAL)
        self._thread = threading.Thread(target=self._loop, name="tonegraph-audio", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            sys.setswitchinterval(self._old_switch)

    def _paced_by_device(self) -> bool | None:
        """Wait on the first source with a live clock: True when a hop is ready, False
        on time-out, None when no source has a live clock."""
        for src in self.sources:
            ready = src.wait_hop(WAIT_SLICE)
            if ready is not None:
                return ready
        return None

    def _loop(self) -> None:
        hp = self.hop_period
        anchor = self.time_fn()  # wall time at which hop 0 began
        while not (self._stop.is_set() or self.ctx.stop.is_set()):
            n = self.hops
            ready = self._paced_by_device()
            if ready is False:
                continue
            if ready is None:
                deadline = anchor + (n + 1) * hp
                now = self.time_fn()
                if now < deadline:
                    self.sleep_fn(deadline - now)
                elif now - deadline > CATCH_UP_LIMIT:
                    # Far behind (the machine stalled): drop the backlog rather than burst.
                    skipped = int((now - deadline) / hp)
                    self.skipped_hops += skipped
                    log.warning("audio thread stalled for %.2f s: %d hops skipped (%d so far)",
                                now - deadline, skipped, self.skipped_hops)
                    anchor = now - (n + 1) * hp
            else:
                # Keep the wall-clock schedule aligned with the device, so that falling
                # back to it after a device loss continues without a jump.
                anchor = self.time_fn() - (n + 1) * hp
            with self.lock:
                ex = self.executor
                if ex.audio_tasks:
                    ex.run_audio_tasks()
                try:
                    ex.audio_hop(Tick(n * hp, hp, n))
                except Exception:  # the executor isolates nodes; this is a last guard
                    log.exception("audio hop %d failed", n)
            self.hops = n + 1

    def use(self, executor: Executor) -> None:
        """Run ``executor`` from the next hop on (the caller holds ``lock``)."""
        self.executor = executor
        self.sources = [n for n in executor.nodes.values() if n.is_source and n.domain == "audio"]
