"""Tick clocks on an injected time source: no test here sleeps."""

from __future__ import annotations

import pytest

from tonegraph.engine.clock import FakeClock, TickClock


def test_deadlines_are_absolute_and_do_not_drift():
    ft = FakeClock()
    ft.oversleep = 0.0004  # every sleep overshoots a little, as real sleeps do
    clock = TickClock(50.0, ft)
    clock.start()
    for k in range(1000):
        tick = clock.next()
        assert tick.index == k
        assert tick.t == pytest.approx(k / 50.0)
        # Released within one overshoot of its own absolute deadline, so error never adds up.
        assert ft.now() - (100.0 + k / 50.0) == pytest.approx(0.0004 if k else 0.0, abs=1e-9)
        ft.advance(0.005)  # work done in the tick
    assert clock.skipped == 0


def test_late_tick_runs_at_once_and_missed_ticks_are_skipped_not_queued():
    ft = FakeClock()
    clock = TickClock(10.0, ft)
    clock.start()
    assert clock.next().index == 0
    ft.advance(0.15)                     # 50 ms past tick 1's deadline: still runs, late
    tick = clock.next()
    assert tick.index == 1 and clock.skipped == 0
    assert clock.last_lateness == pytest.approx(0.05)
    ft.advance(0.35)                     # now at 0.5 s: ticks 2, 3 and 4 were missed
    tick = clock.next()
    assert tick.index == 5 and clock.skipped == 3
    assert tick.t == pytest.approx(0.5) and tick.dt == pytest.approx(0.4)
    assert clock.late_frames == 1
    n = len(ft.sleeps)
    tick = clock.next()                  # back on schedule: sleeps to tick 6
    assert tick.index == 6 and len(ft.sleeps) == n + 1
    assert ft.sleeps[-1] == pytest.approx(0.1)


def test_retime_changes_the_rate_without_a_jump():
    ft = FakeClock()
    clock = TickClock(10.0, ft)
    clock.start()
    for _ in range(5):
        clock.next()                     # ticks 0..4 at 0.0 .. 0.4 s
    clock.retime(20.0)
    times = [clock.next().t for _ in range(4)]
    assert times == pytest.approx([0.5, 0.55, 0.6, 0.65])
    assert ft.now() == pytest.approx(100.65)
    assert clock.skipped == 0


def test_bad_fps_is_refused():
    for fps in (0, -10, float("nan"), float("inf")):
        with pytest.raises(ValueError):
            TickClock(fps)
