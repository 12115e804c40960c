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


def paced(rate, on_send, count: int, clock: FakeClock):
    """A Pacer on ``clock`` run until it has called ``on_send`` ``count`` times; the
    clock's time at each call."""
    import threading

    from tonegraph.engine.clock import Pacer

    times: list[float] = []
    done = threading.Event()

    def send():
        times.append(clock.now())
        on_send(len(times))
        if len(times) >= count:
            pacer.stop()
            done.set()

    pacer = Pacer("test", rate, send, clock)
    pacer.start()
    assert done.wait(10), "the pacer stopped sending"
    pacer.thread.join(5)
    assert not pacer.thread.is_alive()
    return pacer, times


def test_a_pacer_sends_at_its_own_rate_on_absolute_deadlines():
    ft = FakeClock()
    ft.oversleep = 0.0007                  # each wait overshoots; the schedule does not drift
    _, times = paced(lambda: 44.0, lambda n: ft.advance(0.002), 440, ft)
    assert times[-1] - times[0] == pytest.approx(439 / 44.0, abs=0.001)
    assert all(abs(b - a - 1 / 44.0) < 0.001 for a, b in zip(times, times[1:]))


def test_a_stalled_pacer_skips_what_it_missed_and_never_sends_in_a_burst():
    ft = FakeClock()
    pacer, times = paced(lambda: 40.0, lambda n: ft.advance(0.1 if n == 10 else 0.0), 30, ft)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert min(gaps) >= 1 / 40.0 - 1e-9                    # no burst after the stall
    assert gaps[9] == pytest.approx(0.1, abs=1e-9)          # the late one went at once
    # Then back on the grid of the first send: 3 whole periods skipped.
    assert pacer.skipped == 3
    slots = [(t - times[0]) * 40.0 for t in times[11:]]
    assert all(abs(s - round(s)) < 1e-6 for s in slots)


def test_a_pacers_rate_changes_at_the_next_send_and_a_failing_send_does_not_stop_it(caplog):
    ft = FakeClock()

    def on_send(n):
        if n in (5, 6):
            raise OSError("boom")

    sent: list[int] = [0]

    def counted(n):
        sent[0] = n
        on_send(n)

    _, times = paced(lambda: 44.0 if sent[0] < 11 else 20.0, counted, 20, ft)
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert all(g == pytest.approx(1 / 44.0) for g in gaps[:10])
    assert all(g == pytest.approx(1 / 20.0) for g in gaps[11:])
    assert len(times) == 20
    assert sum("a send failed" in r.getMessage() for r in caplog.records) == 1
