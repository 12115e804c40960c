"""Frame-clock lateness at 60 Hz, idle and with one core busy, beside a bare
``time.sleep`` to absolute deadlines measured in the same run.
Targets: p99 <= 1 ms idle, <= 2 ms with one core busy."""

from __future__ import annotations

import time

from tonegraph.engine.clock import TickClock

from .common import busy_core, percentile, quick, table

FPS = 60.0


def bare_sleep(seconds: float) -> list[float]:
    period = 1 / FPS
    t0 = time.perf_counter()
    late = []
    for k in range(1, int(seconds * FPS)):
        deadline = t0 + k * period
        now = time.perf_counter()
        if now < deadline:
            time.sleep(deadline - now)
        late.append(time.perf_counter() - deadline)
    return late


def frame_clock(seconds: float) -> list[float]:
    clock = TickClock(FPS)
    clock.start()
    clock.next()
    late = []
    for _ in range(int(seconds * FPS) - 1):
        clock.next()
        late.append(clock.last_lateness)
    return late


def run() -> dict:
    seconds = 5.0 if quick() else 30.0
    rows, results = [], {}
    for load in ("idle", "one core busy"):
        if load == "idle":
            base, ours = bare_sleep(seconds), frame_clock(seconds)
        else:
            with busy_core():
                base, ours = bare_sleep(seconds), frame_clock(seconds)
        target = 1.0 if load == "idle" else 2.0
        for name, late in (("bare sleep", base), ("TickClock", ours)):
            p50, p99, mx = (percentile(late, 50) * 1e3, percentile(late, 99) * 1e3, max(late) * 1e3)
            verdict = "" if name == "bare sleep" else ("PASS" if p99 <= target else "FAIL")
            rows.append([load, name, f"{p50:.3f}", f"{p99:.3f}", f"{mx:.3f}", verdict])
        ratio = percentile(ours, 99) / max(percentile(base, 99), 1e-9)
        rows.append([load, "p99 ratio", f"{ratio:.2f}", "", "", f"target p99 <= {target:g} ms"])
        results[load] = percentile(ours, 99)
    table(f"Frame-clock lateness at 60 Hz over {seconds:g} s [ms]",
          ["load", "clock", "p50", "p99", "max", ""], rows)
    return results


if __name__ == "__main__":
    run()
