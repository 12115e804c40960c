"""Clocks. Time is injected: every clock takes its time source, so tests step a fake one.

:class:`FrameClock` paces frames in real time on absolute deadlines: frame ``k`` is due at
``t0 + k / fps`` whatever happened before, so the rate never drifts.  A frame that is
late by less than one period runs at once; when a whole period or more has passed, the
frames in between are skipped (counted in ``skipped``), never queued up to run in a
burst, because a light cue or a picture that is already out of date has no value.

Offline runs need no clock object: frame ``k`` is at ``k / fps`` and nothing sleeps
(see :meth:`engine.runtime.Runtime._run_offline`), so a run goes as fast as the machine
allows and the same input gives the same output.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from .node import Tick


class FrameClock:
    """Real-time frame pacing on absolute deadlines."""

    def __init__(self, fps: float, time_fn: Callable[[], float] = time.perf_counter,
                 sleep_fn: Callable[[float], None] = time.sleep) -> None:
        if fps <= 0:
            raise ValueError("fps must be positive")
        self.period = 1.0 / fps
        self.time_fn = time_fn
        self.sleep_fn = sleep_fn
        self.t0 = 0.0
        self.index = -1
        self.skipped = 0
        self.late_frames = 0
        self.last_lateness = 0.0
        #: When a list, every frame's lateness [s] is appended (for benchmarks).
        self.record: list[float] | None = None

    def start(self) -> None:
        """Frame 0 is due now."""
        self.t0 = self.time_fn()
        self.index = -1
        self.skipped = 0
        self.late_frames = 0

    def next(self) -> Tick:
        """Sleep until the next frame's deadline and return its tick.

        ``last_lateness`` is how far past its deadline [s] the frame was released.
        """
        k = self.index + 1
        deadline = self.t0 + k * self.period
        now = self.time_fn()
        if now >= deadline + self.period:
            # One or more whole frames were missed: jump to the newest due slot.
            newest = int(math.floor((now - self.t0) / self.period))
            self.skipped += newest - k
            self.late_frames += 1
            k = newest
            deadline = self.t0 + k * self.period
        elif now < deadline:
            self.sleep_fn(deadline - now)
            now = self.time_fn()
        # The first frame has no predecessor: nothing has elapsed yet.
        dt = (k - self.index) * self.period if self.index >= 0 else 0.0
        self.index = k
        self.last_lateness = max(0.0, now - deadline)
        if self.record is not None:
            self.record.append(self.last_lateness)
        return Tick(k * self.period, dt, k)
