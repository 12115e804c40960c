"""Every patch a user starts from validates and runs offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, load_ok, run_offline

GRAPHS = sorted((ROOT / "graphs").rglob("*.yaml"))


def test_there_are_graphs():
    assert any(p.name == "demo.yaml" for p in GRAPHS)


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: str(p.relative_to(ROOT)))
def test_graph_runs_offline(path: Path, registry, tmp_path, monkeypatch):
    """Each shipped patch runs 3 s offline without a fault, its windows drawn small (what
    it draws is judged by make looks; at full size Mesa took a minute for seed 000)."""
    from tonegraph.engine.graph import load_graph
    from tonegraph.engine.runtime import Runtime

    monkeypatch.chdir(tmp_path)   # recorders write relative to the working directory
    graph = load_ok(path, registry)
    small = [f"{nid}.size=[320, 180]" for nid, n in graph.nodes.items() if n.type == "gl.window"]
    graph, errors = load_graph(path, registry, small)
    assert not errors, errors
    rt = Runtime(graph, registry, offline=True, duration=3.0)
    report = rt.run()
    assert report.frames == int(3.0 * rt.fps)
    assert report.faults == 0, rt.runner.faults


def test_demo_hears_the_groove_and_prints_cues(registry, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_offline(ROOT / "graphs" / "demo.yaml", registry, duration=8.0)
    lines = [l for l in capsys.readouterr().out.splitlines() if "would send" in l]
    assert len(lines) == 32                                   # every 0.25 s for 8 s
    dimmers = {l.split("dimmer=")[1].split()[0] for l in lines}
    assert len(dimmers) > 8
    assert sum("onset=*" in l for l in lines) > 24            # hits on every eighth note
    bpm = float(lines[-1].split("bpm=")[1].split()[0])
    assert abs(bpm - 120.0) < 1.0                             # the groove is at 120 BPM
