"""The audio driver on a fake clock: media time follows the control clock, re-anchors
after a stall, and events land in the control tick that is current.  Nothing sleeps."""

from __future__ import annotations

import numpy as np
import pytest

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.audio import REANCHOR, AudioDriver
from tonegraph.engine.clock import FakeClock
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.plan import CONTROL
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime

from ..conftest import load_ok


class Device(Node):
    """Stands in for a device with a clock of its own (a hop is ready whenever asked):
    a click every ``every`` hops."""

    type_name = "test.device"
    description = "a clocked source"
    domain = "audio"
    is_source = True
    params = {"every": P.integer(20, min=1)}
    outputs = {"hit": ports.event()}

    def configure(self) -> None:
        self.n = 0

    def wait_hop(self, timeout: float) -> bool:
        return True

    def process(self, tick: Tick) -> None:
        self.n += 1
        if self.n % self.p.every == 0:
            self.out["hit"] = (ports.Event(tick.t),)


class Seen(Node):
    """Keeps each control tick's time with the events it received."""

    type_name = "test.seen"
    description = "control sink"
    inputs = {"ev": ports.event()}

    def configure(self) -> None:
        self.ticks: list[tuple[float, list[float]]] = []

    def process(self, tick: Tick) -> None:
        self.ticks.append((tick.t, [e.t for e in self.inp["ev"]]))


@pytest.fixture
def live(write_patch):
    reg = default_registry(plugins=False)
    reg.add(Device, __name__)
    reg.add(Seen, __name__)
    path = write_patch("""
        patch: {fps: 60, samplerate: 48000, hop: 480}
        nodes:
          dev:    {type: test.device}
          strobe: {type: control.envelope, params: {attack: 0, decay: 0.08}, in: {trigger: dev.hit}}
          seen:   {type: test.seen, in: {ev: dev.hit}}
        """)
    clock = FakeClock()
    rt = Runtime(load_ok(path, reg), reg, clock=clock)
    rt.current.configure()
    rt.t0 = clock.now()
    driver = AudioDriver(rt)
    driver.next_t = driver.media_now()
    run = rt.current
    run.enter(CONTROL)
    state = {"k": 0, "levels": []}

    def play(seconds: float, delay: float = 0.003) -> None:
        """The device delivers a hop every 10 ms, heard ``delay`` after its last sample;
        the control clock ticks at 60 Hz in between."""
        end = clock.now() + seconds
        while clock.now() < end:
            clock.advance(0.010)
            clock.advance(delay)
            driver.step()
            clock.advance(-delay)
            while (state["k"] + 1) / 60 <= clock.now() - rt.t0:
                state["k"] += 1
                run.control(Tick(state["k"] / 60, 1 / 60, state["k"]))
                state["levels"].append((state["k"] / 60, run.nodes["strobe"].out["out"]))

    yield clock, driver, run, play, state
    run.close()


def lags(run, after: float) -> list[float]:
    """For each event seen after ``after``: how long before its control tick it happened
    (a few ms after it counts as in it: sound and clock meet within a hop)."""
    return [t - e for t, evs in run.nodes["seen"].ticks if t > after for e in evs]


def test_media_time_follows_the_control_clock(live):
    clock, driver, run, play, _ = live
    play(2.0)
    got = lags(run, 0.0)
    assert len(got) >= 9 and all(-0.005 <= lag < 1 / 60 + 0.011 for lag in got), got
    assert driver.reanchors == 0


def test_a_stall_re_anchors_media_time_and_the_strobe_fires_again(live):
    clock, driver, run, play, state = live
    play(1.0)
    clock.advance(3.0)                 # the process was stopped: no hop, no tick for 3 s
    stalled_until = clock.now() - driver.rt.t0
    play(1.0)
    assert driver.reanchors == 1
    got = lags(run, stalled_until)
    assert len(got) >= 4 and all(-0.005 <= lag < 1 / 60 + 0.011 for lag in got), got
    peaks = [t for t, level in state["levels"] if t > stalled_until and level > 0.99]
    assert peaks and peaks[0] - stalled_until < 1.0


def test_clock_drift_is_taken_up_without_a_jump(live):
    clock, driver, run, play, _ = live
    for _ in range(200):               # the device runs 0.5 % slow for 20 s
        play(0.1, delay=0.003)
        clock.advance(0.0005)
    assert driver.reanchors == 0
    got = lags(run, 15.0)
    assert got and all(-0.005 <= lag < 1 / 60 + 0.011 for lag in got), got


def test_a_stale_backlog_is_dropped_once_reported(caplog):
    """Sound that piled up in the pipe while the engine stood still: the newest hop is
    kept, the rest dropped and said once."""
    from tonegraph.engine.node import Context
    from tonegraph.nodes.audio import devhost
    from tonegraph.nodes.audio.input import AudioInput

    node = AudioInput("mic", {}, Context(samplerate=48000, hop=256, offline=True))
    node.configure()
    block = np.arange(256, dtype=np.float32)[:, None]
    for i in range(200):               # 1.07 s of audio arrives at once
        node.rx += devhost.HEADER.pack(devhost.DATA, block.nbytes, 1, 0.0) + (block + i).tobytes()
    node._parse()
    assert node.pending_frames == 256 and node.pending[0][0, 0] == 199.0
    assert node.stale_frames > 48000
    assert sum("dropped as stale" in r.getMessage() for r in caplog.records) == 1
    assert REANCHOR < 0.5
