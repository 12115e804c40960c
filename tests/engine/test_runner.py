"""The runner: wiring, delayed edges, cross-domain events and fault isolation."""

from __future__ import annotations

import logging

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Context, Node, Tick
from tonegraph.engine.registry import Registry, default_registry
from tonegraph.engine.runtime import Runtime

from ..conftest import load_ok, make_runner


class Boom(Node):
    """Test node: passes its input through, raising while the input is above 0.5."""

    type_name = "test.boom"
    description = "raises on demand"
    inputs = {"value": ports.number()}
    outputs = {"out": ports.number(), "hit": ports.event()}

    def process(self, tick: Tick) -> None:
        self.out["hit"] = (ports.Event(tick.t),)
        if self.inp["value"] > 0.5:
            raise ZeroDivisionError("too loud")
        self.out["out"] = self.inp["value"]


class HopCounter(Node):
    """Test audio-domain source: one event every `every` hops, with the hop's media time."""

    type_name = "test.hops"
    description = "audio-domain event source"
    domain = "audio"
    is_source = True
    params = {"every": P.integer(4, min=1), "hops": P.integer(100, min=1)}
    outputs = {"out": ports.event(), "count": ports.number()}

    def configure(self) -> None:
        self.n = 0

    def process(self, tick: Tick) -> None:
        self.n += 1
        self.out["count"] = float(self.n)
        if self.n % self.p.every == 0:
            self.out["out"] = (ports.Event(tick.t),)

    @property
    def finished(self) -> bool:
        return self.n >= self.p.hops


class Collect(Node):
    """Test frame-domain sink: remembers every event it receives."""

    type_name = "test.collect"
    description = "collects events"
    inputs = {"ev": ports.event(), "count": ports.number()}

    def configure(self) -> None:
        self.seen: list[ports.Event] = []
        self.counts: list[float] = []

    def process(self, tick: Tick) -> None:
        self.seen.extend(self.inp["ev"])
        self.counts.append(self.inp["count"])


def make_registry() -> Registry:
    reg = default_registry(plugins=False)
    for cls in (Boom, HopCounter, Collect):
        reg.add(cls, __name__)
    return reg


def test_wiring_follows_topological_order(write_patch, registry):
    path = write_patch("""
        nodes:
          m: {type: control.map, params: {out_range: [0, 10]}, in: {value: c}}
          c: {type: control.constant, params: {value: 0.5}}
          s: {type: control.math, params: {op: expr, expr: "x * 2"}, in: {x: m}}
        """)
    ex = make_runner(load_ok(path, registry), registry)
    ex.frame(Tick(0.0, 1 / 60, 0))
    assert ex.nodes["s"].out["out"] == 10.0


def test_delayed_edge_reads_previous_tick(write_patch, registry):
    # An accumulator: acc = acc(previous tick) + 1.
    path = write_patch("""
        nodes:
          one: {type: control.constant, params: {value: 1}}
          acc: {type: control.math, params: {op: add},
                in: {a: one, b: {from: acc.out, delay: 1}}}
        """)
    ex = make_runner(load_ok(path, registry), registry)
    values = []
    for k in range(5):
        ex.frame(Tick(k / 60, 1 / 60, k))
        values.append(ex.nodes["acc"].out["out"])
    assert values == [1.0, 2.0, 3.0, 4.0, 5.0]


def test_failing_node_is_isolated_and_holds_its_outputs(write_patch, caplog):
    reg = make_registry()
    path = write_patch("""
        nodes:
          lfo:  {type: control.lfo, params: {shape: saw, frequency: 1, amplitude: 0.5, offset: 0.5}}
          boom: {type: test.boom, in: {value: lfo}}
          after: {type: control.map, params: {out_range: [0, 100]}, in: {value: boom}}
          other: {type: control.map, in: {value: lfo}}
        """)
    ex = make_runner(load_ok(path, reg), reg)
    ex.restart_after = 0    # isolation alone here; the restart policy has its own test
    held, other = [], []
    with caplog.at_level(logging.ERROR, logger="tonegraph.runner"):
        for k in range(120):
            tick = Tick(k / 60, 1 / 60, k)
            ex.frame(tick)
            boom = ex.nodes["boom"]
            if ex.nodes["lfo"].out["out"] > 0.5:
                assert boom.out["hit"] == ()           # a failed tick fires no events
                held.append(ex.nodes["after"].out["out"])
            other.append(ex.nodes["other"].out["out"])
    # Outputs held at the last good value (just under 0.5, mapped to just under 50).
    assert held and all(49.0 < h <= 50.0 for h in held)
    assert ex.faults["boom"].count == len(held)
    # The rest of the graph ran on: 'other' followed the LFO all the way up.
    assert max(other) > 0.95
    # Rate-limited: two bursts of failure (two LFO cycles), one log line, within 5 s.
    lines = [r for r in caplog.records if "boom" in r.getMessage()]
    assert len(lines) == 1 and "ZeroDivisionError: too loud" in lines[0].getMessage()


def test_audio_events_reach_frame_nodes_once_with_media_time(write_patch):
    reg = make_registry()
    path = write_patch("""
        patch: {fps: 30, samplerate: 48000, hop: 480}
        nodes:
          src: {type: test.hops, params: {every: 7, hops: 1000}}
          sink: {type: test.collect, in: {ev: src.out, count: src.count}}
        """)
    graph = load_ok(path, reg)
    rt = Runtime(graph, reg, offline=True)
    sink = rt.runner.nodes["sink"]
    report = rt.run()
    assert report.reason == "sources ended"
    # 1000 hops of 10 ms: every 7th hop fired, each seen exactly once, in order.
    want = [(n - 1) * 0.01 for n in range(7, 1001, 7)]
    got = [e.t for e in sink.seen]
    assert len(got) == len(want) and all(abs(a - b) < 1e-9 for a, b in zip(got, want))
    # A frame at t sees every hop that ended by t: frame k at k/30 s has k/30/0.01 hops.
    for k, c in enumerate(sink.counts[:50]):
        assert c == int(k / 30 / 0.01 + 1e-9)


def test_configure_failure_names_node(write_patch, registry, tmp_path):
    blocker = tmp_path / "blocker"
    blocker.write_text("a file where a folder should be")
    path = write_patch(f"""
        nodes:
          c: {{type: control.constant}}
          rec: {{type: io.record, params: {{path: "{blocker}/x.jsonl"}}, in: {{c: c}}}}
        """)
    graph, errors = load_graph(path, registry)
    assert not errors
    rt = Runtime(graph, registry, offline=True, duration=1)
    import pytest

    from tonegraph.engine.errors import NodeError
    with pytest.raises(NodeError) as err:
        rt.run()
    assert "node 'rec'" in str(err.value) and "io.record" in str(err.value)


def test_context_resolves_paths(tmp_path):
    ctx = Context(patch_dir=tmp_path)
    assert ctx.resolve_input("a.wav") == tmp_path / "a.wav"
    assert ctx.resolve_input("/abs/a.wav").is_absolute()
