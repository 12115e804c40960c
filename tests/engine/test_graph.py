"""Graph building: order, generations and drawing."""

from __future__ import annotations

from tonegraph.engine.graph import to_dot

from ..conftest import load_ok


def test_order_and_generations(write_patch, registry):
    path = write_patch("""
        nodes:
          z: {type: control.math, params: {op: add}, in: {a: x, b: y, fb: {from: z.out, delay: 1}}}
          y: {type: control.map, in: {value: c2}}
          x: {type: control.map, in: {value: c1}}
          c1: {type: control.constant}
          c2: {type: control.constant}
        """)
    graph = load_ok(path, registry)
    assert graph.generations == [["c1", "c2"], ["x", "y"], ["z"]]
    pos = {n: i for i, n in enumerate(graph.order)}
    for e in graph.edges:
        if not e.delay:
            assert pos[e.src] < pos[e.dst]
    delayed = [e for e in graph.edges if e.delay]
    assert [(e.src, e.dst, e.dst_port) for e in delayed] == [("z", "z", "fb")]
    dot = to_dot(graph)
    assert '"z" -> "z" [label="out -> fb", style=dashed];' in dot
    assert sum('" -> "' in line for line in dot.splitlines()) == 5
