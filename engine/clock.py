"""Time. One source of it is injected everywhere; tick clocks pace the domains on it.

Every part of the engine that needs the time or waits for it (the control and render
loops, the audio driver, the reloader's debounce, the fault policy, OSC rate limits)
asks one :class:`Clock` object: ``now()``, ``sleep(seconds)`` and ``wait(event,
timeout)``.  A real run uses :data:`SYSTEM`; a test hands in a :class:`FakeClock` and
decides when time moves, so nothing it checks depends on how busy the machine is.

:class:`TickClock` paces one domain on absolute deadlines: tick ``k`` is due at
``t0 + k / fps`` whatever happened before, so the rate never drifts.  A tick that is
late by less than one period runs at once; when a whole period or more has passed, the
ticks in between are skipped (counted in ``skipped``), never queued up to run in a
burst, because a light cue or a picture that is already out of date has no value.

Offline runs need no clock object: frame ``k`` is at ``k / fps`` and nothing sleeps
(see :meth:`engine.runtime.Runtime._run_offline`), so a run goes as fast as the machine
allows and the same input gives the same output.
"""

from __future__ import annotations

import logging
import math
import threading
import time

log = logging.getLogger("tonegraph.clock")


class Tick:
    """When a tick runs: ``t`` media time [s], ``dt`` since the previous tick [s] (0 for
    the first tick), ``index`` the frame (or hop) number.

    A tick is valid only during the call it is passed to: the engine may reuse the
    object for the next tick, so a node copies the numbers it wants to keep."""

    __slots__ = ("t", "dt", "index")

    def __init__(self, t: float, dt: float, index: int) -> None:
        self.t = t
        self.dt = dt
        self.index = index

    def __repr__(self) -> str:
        return f"Tick(t={self.t:.6f}, dt={self.dt:.6f}, index={self.index})"


class Clock:
    """The system's monotonic clock."""

    def now(self) -> float:
        """Seconds on a monotonic clock (only differences mean anything)."""
        return time.perf_counter()

    def sleep(self, seconds: float) -> None:
        if seconds > 0:
            time.sleep(seconds)

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        """Block until ``event`` is set (True) or ``timeout`` seconds pass (False)."""
        return event.wait(timeout)


SYSTEM = Clock()


class FakeClock(Clock):
    """Time that moves only when told: by :meth:`advance`, or by whoever sleeps or waits
    (a sleep moves time on by its length, plus ``oversleep`` as real sleeps overshoot).
    For tests; safe to share between threads."""

    def __init__(self, start: float = 100.0) -> None:
        self.t = start
        self.sleeps: list[float] = []
        self.oversleep = 0.0
        self._lock = threading.Lock()

    def now(self) -> float:
        return self.t

    def advance(self, seconds: float) -> None:
        with self._lock:
            self.t += seconds

    def sleep(self, seconds: float) -> None:
        with self._lock:
            self.sleeps.append(seconds)
            self.t += max(0.0, seconds) + self.oversleep

    def wait(self, event: threading.Event, timeout: float | None) -> bool:
        if not event.is_set() and timeout:
            self.sleep(timeout)
        return event.is_set()


class TickClock:
    """Real-time pacing of one domain on absolute deadlines (see the module docstring).

    ``retime(fps)`` changes the rate without a jump: the ticks after it continue from
    the media time the next tick was due at, at the new period."""

    def __init__(self, fps: float, clock: Clock = SYSTEM) -> None:
        if not (fps > 0 and math.isfinite(fps)):
            raise ValueError("fps must be a positive number")
        self.period = 1.0 / fps
        self.clock = clock
        self.t0 = 0.0
        self.index = -1
        self.last_t = 0.0
        #: Media time of tick ``base_k``: where the current period's schedule starts.
        self.base_t = 0.0
        self.base_k = 0
        self.skipped = 0
        self.late_frames = 0
        self.last_lateness = 0.0
        #: When a list, every tick's lateness [s] is appended (for benchmarks).
        self.record: list[float] | None = None

    @property
    def fps(self) -> float:
        return 1.0 / self.period

    def start(self, t0: float | None = None) -> None:
        """Tick 0 is due at ``t0`` (default: now)."""
        self.t0 = self.clock.now() if t0 is None else t0
        self.index = -1
        self.last_t = 0.0
        self.base_t, self.base_k = 0.0, 0
        self.skipped = 0
        self.late_frames = 0

    def media_time(self, k: int) -> float:
        return self.base_t + (k - self.base_k) * self.period

    def retime(self, fps: float) -> None:
        if not (fps > 0 and math.isfinite(fps)) or 1.0 / fps == self.period:
            return
        k = self.index + 1
        self.base_t, self.base_k = self.media_time(k), k
        self.period = 1.0 / fps

    def next(self) -> Tick:
        """Sleep until the next tick's deadline and return it.

        ``last_lateness`` is how far past its deadline [s] the tick was released.
        """
        k = self.index + 1
        deadline = self.t0 + self.media_time(k)
        now = self.clock.now()
        if now >= deadline + self.period:
            # One or more whole ticks were missed: jump to the newest due slot.
            newest = self.base_k + int(math.floor((now - self.t0 - self.base_t) / self.period))
            self.skipped += newest - k
            self.late_frames += 1
            k = newest
            deadline = self.t0 + self.media_time(k)
        elif now < deadline:
            self.clock.sleep(deadline - now)
            now = self.clock.now()
        # The first tick has no predecessor: nothing has elapsed yet.
        t = self.media_time(k)
        dt = t - self.last_t if self.index >= 0 else 0.0
        self.index, self.last_t = k, t
        self.last_lateness = max(0.0, now - deadline)
        if self.record is not None:
            self.record.append(self.last_lateness)
        return Tick(t, dt, k)


class Pacer:
    """An output's own rate: ``send()`` called on a thread of its own ``rate()`` times a
    second, on absolute deadlines, apart from the control and render ticks, so a DMX
    universe goes out at its refresh rate whatever the patch's fps and however long a
    frame takes to draw.  ``send`` takes the latest values the node's ticks left.

    A late send goes at once, as the slot nearest the time it goes (slots passed over are
    counted in ``skipped``), so sends are never closer than half a period, never a burst; a change of ``rate()`` takes effect at the next send without
    a jump.  ``stop()`` returns within a moment whatever the rate.  An exception from
    ``send`` is logged once (with ``name``) and the sends go on."""

    def __init__(self, name: str, rate, send, clock: Clock = SYSTEM) -> None:
        self.name, self.rate, self.send, self.clock = name, rate, send, clock
        self.sent = 0
        self.skipped = 0
        self._stop = threading.Event()
        self._failed = False
        self.thread = threading.Thread(target=self._run, name=name, daemon=True)

    def start(self) -> "Pacer":
        self.thread.start()
        return self

    def _run(self) -> None:
        period = 1.0 / self.rate()
        base, k = self.clock.now(), 0            # send k is due at base + k * period
        while not self._stop.is_set():
            now = self.clock.now()
            due = base + k * period
            if now < due:
                if self.clock.wait(self._stop, due - now):
                    return
            else:                                # late: the slot nearest now, so that the
                nearest = max(k, round((now - base) / period))   # next is >= half a period on
                self.skipped += nearest - k
                k = nearest
            self._call()
            k += 1
            rate = self.rate()
            if 1.0 / rate != period:             # a new rate from the next send on
                base, k, period = base + k * period, 0, 1.0 / rate

    def _call(self) -> None:
        try:
            self.send()
            self.sent += 1
        except Exception:  # noqa: BLE001 - an output's fault must not end its thread
            if not self._failed:
                self._failed = True
                log.exception("%s: a send failed; the sends go on", self.name)

    def stop(self) -> None:
        self._stop.set()
        if self.thread.is_alive() and self.thread is not threading.current_thread():
            self.thread.join(timeout=2.0)
