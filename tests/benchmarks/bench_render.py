"""Offline render speed: graphs/spectrum-bars.yaml (a shader-only preset) over the
built-in groove to H.264 at 1280x720 and 60 fps, on the machine's GL (Mesa llvmpipe on
a CPU).  Figures: frames rendered per second, and the render's speed as a ratio to
real time.  Baseline in the same run: the same patch drawn offscreen at the same size
on the offline clock, without reading frames back or encoding them.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

from tonegraph.engine.graph import load_graph
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.nodes.gl.render import render

from .common import quick, table

ROOT = Path(__file__).resolve().parents[2]


def run() -> None:
    reg = default_registry(plugins=False)
    patch = ROOT / "graphs" / "spectrum-bars.yaml"
    seconds = 4.0 if quick() else 16.0
    with tempfile.TemporaryDirectory() as d:
        rep = render(patch, reg, None, Path(d) / "bars.mp4", (1280, 720), None, 0.0, seconds, quiet=True)
    graph, errors = load_graph(patch, reg, ["out.size=[1280, 720]"])
    assert not errors, errors
    t0 = time.perf_counter()
    Runtime(graph, reg, offline=True, headless=True, duration=seconds).run()
    drawn = time.perf_counter() - t0
    fps = rep.frames / rep.wall
    table("Offline render of graphs/spectrum-bars.yaml to H.264, 1280x720 at 60 fps",
          ["what", "wall time", "frames/s", "speed vs real time"],
          [[f"render, {rep.seconds:g} s of music", f"{rep.wall:.1f} s", f"{fps:.1f}",
            f"{rep.seconds / rep.wall:.2f}x"],
           ["baseline: drawn offscreen, no readback or encoding", f"{drawn:.1f} s",
            f"{seconds * rep.fps / drawn:.1f}", f"{seconds / drawn:.2f}x"]])
