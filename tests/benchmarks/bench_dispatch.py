"""Runner dispatch overhead: a 1,000-node LFO -> map graph, run by the runner and by a
hand-written loop calling the same nodes' process methods. Target: ratio <= 1.3."""

from __future__ import annotations

from pathlib import Path
import tempfile

from tonegraph.engine.graph import load_graph
from tonegraph.engine.node import Context, Tick
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime

from .common import best_of, quick, table

PAIRS = 500


def patch_text(pairs: int) -> str:
    lines = ["patch: {name: dispatch, fps: 60}", "nodes:"]
    for i in range(pairs):
        lines.append(f"  l{i}: {{type: control.lfo, params: {{frequency: {0.1 + i / 1000}}}}}")
        lines.append(f"  m{i}: {{type: control.map, params: {{in_range: [-1, 1], out_range: [0, 255], "
                     f"curve: smoothstep, fall: 0.2}}, in: {{value: l{i}}}}}")
    return "\n".join(lines) + "\n"


def run() -> dict:
    reg = default_registry(plugins=False)
    with tempfile.TemporaryDirectory() as d:
        path = Path(d) / "dispatch.yaml"
        path.write_text(patch_text(PAIRS))
        graph, errors = load_graph(path, reg)
        assert not errors, errors
    ex = Runtime(graph, reg, offline=True).runner
    ex.configure()

    # The same node types, instantiated and wired by hand.
    ctx = Context(offline=True)
    lfo_cls, map_cls = reg["control.lfo"], reg["control.map"]
    pairs = []
    for i in range(PAIRS):
        gl, gm = graph.nodes[f"l{i}"], graph.nodes[f"m{i}"]
        lfo = lfo_cls(gl.id, gl.params, ctx, gl.wired)
        m = map_cls(gm.id, gm.params, ctx, gm.wired)
        lfo.configure()
        m.configure()
        pairs.append((lfo, m, lfo.out, m.inp))

    frames = 100 if quick() else 400
    ticks = [Tick(k / 60, 1 / 60 if k else 0.0, k) for k in range(frames)]

    def engine_loop() -> None:
        frame = ex.frame
        for tick in ticks:
            frame(tick)

    def hand_loop() -> None:
        for tick in ticks:
            for lfo, m, lout, minp in pairs:
                lfo.process(tick)
                minp["value"] = lout["out"]
                m.process(tick)

    # Interleave so drift in machine load affects both alike.
    t_engine = t_hand = float("inf")
    for _ in range(3 if quick() else 7):
        t_hand = min(t_hand, best_of(hand_loop, 1))
        t_engine = min(t_engine, best_of(engine_loop, 1))
    ratio = t_engine / t_hand
    n = frames * 2 * PAIRS
    table("Runner dispatch, 1,000-node LFO -> map graph (target ratio <= 1.3)",
          ["loop", "per node call", "per frame"],
          [["hand-written", f"{t_hand / n * 1e6:.2f} us", f"{t_hand / frames * 1e3:.2f} ms"],
           ["runner", f"{t_engine / n * 1e6:.2f} us", f"{t_engine / frames * 1e3:.2f} ms"],
           ["ratio", f"{ratio:.3f}", "PASS" if ratio <= 1.3 else "FAIL"]])
    return {"dispatch_ratio": ratio}


if __name__ == "__main__":
    run()
