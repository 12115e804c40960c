"""The engine reports itself over OSC: a heartbeat and its problems.

``/tonegraph/status`` every ``interval`` seconds with, in order: uptime [s] (f), frame
rate over the last interval [Hz] (f), late frames (i), skipped frames (i), audio input
overflows (i), nodes that have failed (i), node failures in all (i), dropped OSC
packets (i), inputs without their device (i: nodes whose ``live`` output is 0).  Every warning or error the
engine logs from the start, the nodes' set-up included (an interface missing at boot),
also goes to ``/tonegraph/error`` as one string (at most 20 a second, so a storm cannot
flood the receiver).
"""

from __future__ import annotations

import logging
from collections.abc import Callable

from ..clock import SYSTEM, Clock
from . import encode
from .transport import Destination

ERRORS_PER_SECOND = 20


class StatusReporter(logging.Handler):
    def __init__(self, dest: Destination, interval: float, stats: Callable[[], list],
                 clock: Clock = SYSTEM) -> None:
        super().__init__(level=logging.WARNING)
        self.dest, self.interval, self.stats, self.clock = dest, interval, stats, clock
        self.next_beat = 0.0
        self.window_start = 0.0
        self.errors_in_window = 0

    def beat(self, now: float | None = None) -> None:
        now = self.clock.now() if now is None else now
        if now < self.next_beat:
            return
        self.next_beat = now + self.interval
        self.dest.send(encode.message("/tonegraph/status", self.stats()))

    def emit(self, record: logging.LogRecord) -> None:  # logging.Handler
        now = self.clock.now()
        if now - self.window_start >= 1.0:
            self.window_start, self.errors_in_window = now, 0
        if self.errors_in_window >= ERRORS_PER_SECOND:
            return
        self.errors_in_window += 1
        try:
            self.dest.send(encode.message("/tonegraph/error", [("s", record.getMessage())]))
        except Exception:  # reporting must never raise into the code that logged
            pass
