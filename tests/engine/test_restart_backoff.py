"""The fault policy's restarts of a node that keeps failing: growing delays (0.5 s
doubling to 30 s), counted across the fresh objects each restart makes, one line per
restart, and forgotten after a stretch of health.  Time is a FakeClock; a restart is
made as the reloader makes it in real time: a new plan with the node started afresh,
built with the same policy."""

from __future__ import annotations

import logging
import re

from tonegraph.engine import ports
from tonegraph.engine.clock import FakeClock
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.plan import make_plan
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runner import FaultPolicy, build

from ..conftest import load_ok

FPS = 60


class Sour(Node):
    """Test node: fails on every tick after its first 30 (while ``Sour.failing``)."""

    type_name = "test.sour"
    description = "fails after 30 good ticks"
    outputs = {"out": ports.number()}
    failing = True
    failures = 0

    def configure(self) -> None:
        self.ticks = 0

    def process(self, tick: Tick) -> None:
        self.ticks += 1
        if Sour.failing and self.ticks > 30:
            Sour.failures += 1
            raise RuntimeError("gone sour")
        self.out["out"] = float(self.ticks)


class Show:
    """A patch with one sour node, ticked at 60 fps on a FakeClock; the policy's restarts
    are new runners built off the loop, as engine/reload.py builds them."""

    def __init__(self, write_patch) -> None:
        self.registry = default_registry(plugins=False)
        self.registry.add(Sour, __name__)
        graph = load_ok(write_patch("nodes: {s: {type: test.sour}}\n"), self.registry)
        self.clock = FakeClock()
        self.policy = FaultPolicy(self.clock)
        self.runner = build(make_plan(graph, self.registry), self.registry,
                            graph.spec.context(offline=True), faults=self.policy)
        self.asked: list[str] = []
        self.policy.on_restart = self.asked.append
        self.restarted_at: list[float] = []
        self.lines: list[tuple[float, str]] = []     # (clock time, message)
        self.k = 0

    def run(self, seconds: float) -> None:
        for _ in range(round(seconds * FPS)):
            self.runner.frame(Tick(self.k / FPS, 1 / FPS, self.k))
            self.k += 1
            if self.asked:
                nid = self.asked.pop()
                plan = make_plan(self.runner.plan.graph, self.registry, self.runner.plan, fresh={nid})
                self.runner = build(plan, self.registry, self.runner.ctx, self.runner, faults=self.policy)
                self.restarted_at.append(self.clock.now())
            self.clock.advance(1 / FPS)

    def restarts(self) -> list[tuple[float, float, int]]:
        """(time, delay, count) of each restart line."""
        out = []
        for t, line in self.lines:
            m = re.search(r"restarting it in ([\d.]+) s \(restart (\d+)\)", line)
            if m:
                out.append((t, float(m.group(1)), int(m.group(2))))
        return out


class Lines(logging.Handler):
    def __init__(self, show: Show) -> None:
        super().__init__(logging.ERROR)
        self.show = show

    def emit(self, record: logging.LogRecord) -> None:
        self.show.lines.append((self.show.clock.now(), record.getMessage()))


def watched(write_patch) -> tuple[Show, Lines]:
    Sour.failing, Sour.failures = True, 0
    show = Show(write_patch)
    handler = Lines(show)
    logging.getLogger("tonegraph.runner").addHandler(handler)
    return show, handler


def test_a_node_that_keeps_failing_is_restarted_with_growing_delays_counted_truly(write_patch):
    show, handler = watched(write_patch)
    try:
        show.run(150.0)
    finally:
        logging.getLogger("tonegraph.runner").removeHandler(handler)
    restarts = show.restarts()
    assert [d for _, d, _ in restarts][:9] == [0.5, 1, 2, 4, 8, 16, 30, 30, 30]
    assert [n for _, _, n in restarts] == list(range(1, len(restarts) + 1))
    # Each restart is made its delay after it was announced (to a tick), on a fresh object.
    for (announced, delay, _), made in zip(restarts, show.restarted_at):
        assert abs(made - announced - delay) <= 1.5 / FPS, (announced, delay, made)
    assert len(show.restarted_at) >= len(restarts) - 1
    # Reported per restart, never per failure: thousands of failures, a few dozen lines.
    assert Sour.failures > 8000 and len(show.lines) < 60, (Sour.failures, len(show.lines))


def test_the_count_and_delay_start_again_after_a_stretch_of_health(write_patch):
    show, handler = watched(write_patch)
    try:
        show.run(6.0)                     # restarts 1, 2 and 3 announced: 0.5, 1, 2 s
        assert [(d, n) for _, d, n in show.restarts()] == [(0.5, 1), (1, 2), (2, 3)]
        show.run(2.0)                     # restart 3 made; then healthy for 20 s
        Sour.failing = False
        show.run(20.0)
        Sour.failing = True
        show.run(3.0)                     # a short rest: the count goes on
        assert [(d, n) for _, d, n in show.restarts()][3:] == [(4, 4)]
        show.run(6.0)                     # restart 4 made, restart 5 announced
        Sour.failing = False
        show.run(61.0)                    # a healthy minute: forgotten
        Sour.failing = True
        show.run(3.0)
    finally:
        logging.getLogger("tonegraph.runner").removeHandler(handler)
    assert [(d, n) for _, d, n in show.restarts()] == [(0.5, 1), (1, 2), (2, 3), (4, 4), (8, 5),
                                                       (0.5, 1), (1, 2)]
