"""Every patch a user starts from validates and runs offline."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, run_offline

GRAPHS = sorted((ROOT / "graphs").rglob("*.yaml"))


def test_there_are_graphs():
    assert any(p.name == "demo.yaml" for p in GRAPHS)


@pytest.mark.parametrize("path", GRAPHS, ids=lambda p: str(p.relative_to(ROOT)))
def test_graph_runs_offline(path: Path, registry, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)   # recorders write relative to the working directory
    rt = run_offline(path, registry, duration=3.0)
    assert rt.report.frames == int(3.0 * rt.fps)
    assert rt.report.faults == 0, rt.executor.faults


def test_demo_prints_changing_values(registry, tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    run_offline(ROOT / "graphs" / "demo.yaml", registry, duration=4.0)
    lines = [l for l in capsys.readouterr().out.splitlines() if "would send" in l]
    assert len(lines) == 20
    dimmers = {l.split("dimmer=")[1].split()[0] for l in lines}
    assert len(dimmers) > 5
    assert sum("beat=*" in l for l in lines) == 7    # 120 BPM: beats at 0.5 .. 3.5 s
