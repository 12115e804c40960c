"""Frame clocks on an injected time source: no test here sleeps."""

from __future__ import annotations

import pytest

from engine.clock import FrameClock


class FakeTime:
    """A time source that only moves when told, or when the clock sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.sleeps: list[float] = []
        self.oversleep = 0.0

    def time(self) -> float:
        return self.now

    def sleep(self, s: float) -> None:
        self.sleeps.append(s)
        self.now += s + self.oversleep


def test_deadlines_are_absolute_and_do_not_drift():
    ft = FakeTime()
    ft.oversleep = 0.0004  # every sleep overshoots a little, as real sleeps do
    clock = FrameClock(50.0, ft.time, ft.sleep)
    clock.start()
    for k in range(1000):
        tick = clock.next()
        assert tick.index == k
        assert tick.t == pytest.approx(k / 50.0)
        # Released within one overshoot of its own absolute deadline, so error never adds up.
        assert ft.now - (100.0 + k / 50.0) == pytest.approx(0.0004 if k else 0.0, abs=1e-9)
        ft.now += 0.005  # work done in the frame
    assert clock.skipped == 0


def test_late_frame_runs_at_once_and_missed_frames_are_skipped_not_queued():
    ft = FakeTime()
    clock = FrameClock(10.0, ft.time, ft.sleep)
    clock.start()
    assert clock.next().index == 0
    ft.now += 0.15                       # 50 ms past frame 1's deadline: still runs, late
    tick = clock.next()
    assert tick.index == 1 and clock.skipped == 0
    assert clock.last_lateness == pytest.approx(0.05)
    ft.now += 0.35                       # now at 0.5 s: frames 2, 3 and 4 were missed
    tick = clock.next()
    assert tick.index == 5 and clock.skipped == 3
    assert tick.t == pytest.approx(0.5) and tick.dt == pytest.approx(0.4)
    assert clock.late_frames == 1
    n = len(ft.sleeps)
    tick = clock.next()                  # back on schedule: sleeps to frame 6
    assert tick.index == 6 and len(ft.sleeps) == n + 1
    assert ft.sleeps[-1] == pytest.approx(0.1)


def test_bad_fps_is_refused():
    with pytest.raises(ValueError):
        FrameClock(0)
