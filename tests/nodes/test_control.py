"""Control nodes, each driven tick by tick on a virtual clock."""

from __future__ import annotations

import math

import pytest

from tonegraph.engine.errors import ParamError
from tonegraph.engine.ports import Event, PortType
from tonegraph.nodes.control.constant import Constant
from tonegraph.nodes.control.envelope import Envelope
from tonegraph.nodes.control.lfo import Lfo
from tonegraph.nodes.control.map import Map
from tonegraph.nodes.control.math import Math
from tonegraph.nodes.control.smooth import Smooth
from tonegraph.nodes.control.trigger import Trigger

from ..conftest import NodeDriver


def test_constant_and_live_param_change():
    d = NodeDriver(Constant, {"value": 3})
    assert d.tick()["out"] == 3.0
    d.node.set_params({"value": 4.5})
    assert d.tick()["out"] == 4.5
    with pytest.raises(ParamError, match="must be a number"):
        d.node.set_params({"value": "x"})
    assert d.tick()["out"] == 4.5


@pytest.mark.parametrize("shape,at,want", [
    ("sine", 0.25, 1.0), ("sine", 0.75, -1.0), ("triangle", 0.0, -1.0), ("triangle", 0.5, 1.0),
    ("saw", 0.0, -1.0), ("saw", 0.5, 0.0), ("square", 0.25, 1.0), ("square", 0.75, -1.0),
])
def test_lfo_shapes(shape, at, want):
    d = NodeDriver(Lfo, {"shape": shape, "frequency": 1.0}, fps=100)
    out = [d.tick()["out"] for _ in range(100)]
    assert out[round(at * 100)] == pytest.approx(want, abs=1e-9)


def test_lfo_amplitude_offset_phase_and_random_smooth_is_continuous_and_seeded():
    d = NodeDriver(Lfo, {"shape": "sine", "amplitude": 0.5, "offset": 0.5, "phase": 0.25})
    assert d.tick()["out"] == pytest.approx(1.0)
    a = NodeDriver(Lfo, {"shape": "random-smooth", "frequency": 2.0, "seed": 7}, fps=200)
    b = NodeDriver(Lfo, {"shape": "random-smooth", "frequency": 2.0, "seed": 7}, fps=200)
    c = NodeDriver(Lfo, {"shape": "random-smooth", "frequency": 2.0, "seed": 8}, fps=200)
    va = [a.tick()["out"] for _ in range(2000)]
    assert va == [b.tick()["out"] for _ in range(2000)]
    assert va != [c.tick()["out"] for _ in range(2000)]
    assert all(-1.0 <= v <= 1.0 for v in va)
    assert max(abs(x - y) for x, y in zip(va, va[1:])) < 0.05   # smooth: no jumps
    assert max(va) - min(va) > 0.5                               # but it does wander


def test_lfo_sync_to_phase_and_reset():
    d = NodeDriver(Lfo, {"shape": "saw", "frequency": 2.0}, wired=["sync", "reset"])
    # Two cycles per sync cycle: at sync 0.25 the saw is at its midpoint of cycle 1.
    assert d.tick(sync=0.25)["out"] == pytest.approx(0.0)
    assert d.tick(sync=0.5)["out"] == pytest.approx(-1.0)
    free = NodeDriver(Lfo, {"shape": "saw", "frequency": 1.0}, wired=["reset"], fps=10)
    for _ in range(5):
        free.tick(reset=())
    assert free.node.out["out"] == pytest.approx(-1.0 + 2 * 0.4)
    assert free.tick(reset=(Event(free.t + 0.1),))["out"] == pytest.approx(-1.0)


def test_lfo_keeps_continuous_phase_across_frequency_change_and_state():
    d = NodeDriver(Lfo, {"shape": "saw", "frequency": 1.0}, fps=10)
    for _ in range(4):
        d.tick()
    d.node.set_params({"frequency": 2.0})
    assert d.tick()["out"] == pytest.approx(-1.0 + 2 * (0.3 + 0.2))
    state = d.node.state()
    e = NodeDriver(Lfo, {"shape": "saw", "frequency": 2.0}, fps=10)
    e.node.restore(state)
    e.index = d.index
    assert e.tick()["out"] == pytest.approx(d.tick()["out"])


def test_map_range_clamp_invert_curves():
    m = NodeDriver(Map, {"in_range": [0, 10], "out_range": [100, 200]})
    assert m.tick(value=5.0)["out"] == 150.0
    assert m.tick(value=20.0)["out"] == 200.0
    m = NodeDriver(Map, {"in_range": [0, 10], "out_range": [100, 200], "clamp": False})
    assert m.tick(value=20.0)["out"] == 300.0
    m = NodeDriver(Map, {"invert": True})
    assert m.tick(value=0.25)["out"] == 0.75
    for curve in ("exponential", "logarithmic", "smoothstep"):
        m = NodeDriver(Map, {"curve": curve})
        ends = [m.tick(value=v)["out"] for v in (0.0, 1.0, 2.0)]
        assert ends == pytest.approx([0.0, 1.0, 1.0])
        mid = m.tick(value=0.5)["out"]
        if curve == "exponential":
            assert mid < 0.5
        elif curve == "logarithmic":
            assert mid > 0.5
        else:
            assert mid == pytest.approx(0.5)


def test_map_step_like_seed_002():
    # velocityRandomness: min 0, max 3, step 0.5 -> {0.0, 0.5, ..., 3.0}
    m = NodeDriver(Map, {"out_range": [0, 3], "step": 0.5})
    seen = {m.tick(value=v / 100)["out"] for v in range(0, 101)}
    assert seen == {0.0, 0.5, 1.0, 1.5, 2.0, 2.5, 3.0}


def test_map_step_hysteresis_stops_flicker_at_a_boundary():
    """A value wavering round a step's edge (1.25 on a 0.5 grid): with no hysteresis
    the output flips at every wobble; with it, it holds until the value really moves."""
    wobble = [1.25 / 3 + (0.004 if k % 2 else -0.004) for k in range(40)]   # 1.25 +- 0.012
    flips = {}
    for h in (0.0, 0.25):
        m = NodeDriver(Map, {"out_range": [0, 3], "step": 0.5, "hysteresis": h})
        outs = [m.tick(value=v)["out"] for v in wobble]
        flips[h] = sum(a != b for a, b in zip(outs, outs[1:]))
        moved = m.tick(value=2.0 / 3)["out"]                    # a real move: 2.0 at once
        assert moved == 2.0
    assert flips[0.0] >= 30 and flips[0.25] == 0


def test_map_fps_limits_update_rate():
    # fps 0.1: at most once every 10 s (seed 002's colorRandomness).
    m = NodeDriver(Map, {"fps": 0.1}, fps=10)
    outs = [m.tick(value=(k % 7) / 7)["out"] for k in range(300)]
    changes = [k for k in range(1, 300) if outs[k] != outs[k - 1]]
    assert changes == [100, 200]


def test_map_rise_and_fall_are_separate():
    m = NodeDriver(Map, {"rise": 0.0, "fall": 0.5}, fps=100)
    m.tick(value=0.0)
    assert m.tick(value=1.0)["out"] == 1.0              # rises at once
    out = [m.tick(value=0.0)["out"] for _ in range(50)]  # falls with tau 0.5 s
    assert out[-1] == pytest.approx(math.exp(-0.5 / 0.5), rel=1e-6)
    m = NodeDriver(Map, {"rise": 0.1}, fps=100)
    m.tick(value=0.0)
    assert m.tick(value=1.0)["out"] == pytest.approx(1 - math.exp(-0.01 / 0.1))


def test_map_rejects_empty_input_range():
    with pytest.raises(ParamError, match="in_range .* is empty"):
        NodeDriver(Map).node.set_params({"in_range": [2, 2]})


def test_smooth_one_pole_and_one_euro():
    s = NodeDriver(Smooth, {"time": 0.1}, fps=100)
    s.tick(value=0.0)
    for _ in range(10):
        y = s.tick(value=1.0)["out"]
    assert y == pytest.approx(1 - math.exp(-1.0), rel=1e-6)
    # One Euro with beta: a fast move is followed with less lag than a still value's cutoff gives.
    slow = NodeDriver(Smooth, {"filter": "one-euro", "min_cutoff": 0.5, "beta": 0.0}, fps=100)
    fast = NodeDriver(Smooth, {"filter": "one-euro", "min_cutoff": 0.5, "beta": 1.0}, fps=100)
    for d in (slow, fast):
        d.tick(value=0.0)
    ys = [(slow.tick(value=k / 10)["out"], fast.tick(value=k / 10)["out"]) for k in range(1, 31)]
    assert ys[-1][1] > ys[-1][0] + 0.5
    # Jitter around a still value is reduced.
    j = NodeDriver(Smooth, {"filter": "one-euro", "min_cutoff": 1.0, "beta": 0.0}, fps=100)
    outs = [j.tick(value=0.05 * (-1) ** k)["out"] for k in range(200)]
    assert max(abs(o) for o in outs[100:]) < 0.01


def test_envelope_adsr_from_event_time():
    env = NodeDriver(Envelope, {"attack": 0.1, "decay": 0.1, "sustain": 0.5, "hold": 0.2,
                                "release": 0.2}, fps=100)
    env.tick()
    # The trigger happened 5 ms before this tick: the level already reflects that.
    out = env.tick(trigger=(Event(0.005),))
    assert out["out"] == pytest.approx(0.05)
    levels = {}
    for _ in range(80):
        o = env.tick(trigger=())
        levels[round(env.t, 2)] = o["out"]
        if o["done"]:
            done_at = o["done"][0].t
    assert levels[0.1] == pytest.approx(0.95)    # attack
    assert levels[0.15] == pytest.approx(0.775)  # decay: 1 -> 0.5 over 0.1 s
    assert levels[0.3] == pytest.approx(0.5)     # hold
    assert levels[0.5] == pytest.approx(0.5 * (1 - 0.095 / 0.2))  # release from 0.405 s
    assert levels[0.7] == 0.0
    assert done_at == pytest.approx(0.605)


def test_envelope_retrigger_rules_and_gate():
    params = {"attack": 0.1, "decay": 0.5, "sustain": 0.0}
    for rule, want in (("restart", 0.0), ("legato", None), ("ignore", None)):
        e = NodeDriver(Envelope, {**params, "retrigger": rule}, fps=100)
        e.tick(trigger=(Event(0.0),))
        for _ in range(10):
            e.tick(trigger=())
        before = e.node.out["out"]
        after = e.tick(trigger=(Event(e.t + 0.01),))["out"]
        if rule == "restart":
            assert after == pytest.approx(0.0)
        elif rule == "legato":
            assert after == pytest.approx(before, abs=0.03) and after > 0.5   # continuous
        else:
            assert after < before   # keeps decaying
    g = NodeDriver(Envelope, {"attack": 0.0, "decay": 0.0, "sustain": 0.8, "release": 0.1},
                   wired=["gate"], fps=100)
    g.tick(trigger=(Event(0.0),), gate=1.0)
    for _ in range(100):
        o = g.tick(trigger=(), gate=1.0)
    assert o["out"] == pytest.approx(0.8)
    o = g.tick(trigger=(), gate=0.0)
    assert o["out"] == pytest.approx(0.8)
    for _ in range(5):
        o = g.tick(trigger=(), gate=0.0)
    assert o["out"] == pytest.approx(0.8 * 0.5)


def test_envelope_velocity():
    e = NodeDriver(Envelope, {"attack": 0.0, "decay": 1.0, "velocity": True}, fps=100)
    assert e.tick(trigger=(Event(0.0, 0.3),))["out"] == pytest.approx(0.3)


def test_a_short_strobe_reaches_full_level_at_every_sampling_phase():
    """An 80 ms strobe sampled at 60 Hz: whatever the phase of the trigger between two
    ticks, the tick after it carries the full peak (the desk never sees a dim flash)."""
    import random

    rng = random.Random(3)
    peaks = []
    e = NodeDriver(Envelope, {"attack": 0.0, "decay": 0.08}, fps=60)
    for k in range(600):               # tick k is at k / 60; its trigger fell since tick k - 1
        trig = (Event(k / 60 - rng.uniform(0, 1 / 60)),) if k % 15 == 1 else ()
        out = e.tick(trigger=trig)["out"]
        if trig:
            peaks.append(out)
    assert len(peaks) == 40 and min(peaks) == 1.0
    # With an attack longer than a tick, the ramp is seen and the peak still is.
    e = NodeDriver(Envelope, {"attack": 0.02, "decay": 0.08}, fps=60)
    levels = [e.tick(trigger=(Event(0.004),) if k == 1 else ())["out"] for k in range(8)]
    assert 0 < levels[1] < 1 and max(levels) == 1.0


def test_trigger_hysteresis_holdoff_direction():
    t = NodeDriver(Trigger, {"threshold": 0.5, "hysteresis": 0.1}, fps=100)
    seq = [0.0, 0.6, 0.45, 0.55, 0.3, 0.7, 0.7]
    fired = [bool(t.tick(value=v)["out"]) for v in seq]
    assert fired == [False, True, False, False, False, True, False]
    t = NodeDriver(Trigger, {"threshold": 0.5, "hysteresis": 0.0, "holdoff": 0.05}, fps=100)
    fired = [bool(t.tick(value=v)["out"]) for v in [0, 1, 0, 1, 0, 0, 0, 0, 1]]
    assert fired == [False, True, False, False, False, False, False, False, True]
    t = NodeDriver(Trigger, {"threshold": 0.5, "direction": "falling"}, fps=100)
    out = [t.tick(value=v)["out"] for v in [1.0, 0.2, 1.0, 0.2]]
    assert [bool(o) for o in out] == [False, True, False, True]
    assert out[1][0] == Event(0.01, 0.2)


def test_math_ops_and_expression():
    wired = {"a": PortType.NUMBER, "b": PortType.NUMBER, "c": PortType.NUMBER}
    vals = {"a": 1.0, "b": 4.0, "c": -2.0}
    for op, want in (("add", 3.0), ("multiply", -8.0), ("min", -2.0), ("max", 4.0), ("mix", 1.0)):
        m = NodeDriver(Math, {"op": op}, wired=wired)
        assert m.tick(**vals)["out"] == pytest.approx(want)
    m = NodeDriver(Math, {"op": "mix", "weights": [1, 1, 2]}, wired=wired)
    assert m.tick(**vals)["out"] == pytest.approx((1 + 4 - 4) / 4)
    m = NodeDriver(Math, {"op": "expr", "expr": "a * b + clamp(c)", "scale": 2, "offset": 1},
                   wired=wired)
    assert m.tick(**vals)["out"] == 9.0
    with pytest.raises(ParamError, match="unknown name 'd'"):
        m.node.set_params({"expr": "a + d"})
    assert m.tick(**vals)["out"] == 9.0   # the rejected expression changed nothing
    m.node.set_params({"expr": "a - b"})
    assert m.tick(**vals)["out"] == -5.0


def test_math_checks_at_load_time(write_patch, registry):
    from tonegraph.engine.graph import load_graph

    path = write_patch("""
        nodes:
          c: {type: control.constant}
          m: {type: control.math, params: {op: expr, expr: "c + nope"}, in: {c: c}}
          n: {type: control.math, params: {op: mix, weights: [1, 2]}, in: {c: c}}
          e: {type: control.math}
        """)
    _, errors = load_graph(path, registry)
    text = "\n".join(map(str, errors))
    assert "patch.yaml:3:52: error: unknown name 'nope' (inputs: c) (at character 5" in text
    assert "patch.yaml:4:54: error: weights has 2 values for 1 inputs (c)" in text
    assert "patch.yaml:5:3: error: control.math with op add needs at least one input" in text


def test_map_takes_one_element_of_a_vector():
    import numpy as np

    from tonegraph.engine.ports import PortType
    from tonegraph.nodes.control.map import Map

    d = NodeDriver(Map, {"index": 2, "out_range": [0, 10], "step": 2.5},
                   wired={"vector": PortType.VECTOR})
    assert d.tick(vector=np.array([0.9, 0.1, 0.52, 0.3], np.float32))["out"] == 5.0
    assert d.tick(vector=np.array([0.9], np.float32))["out"] == 0.0       # too short: reads 0
