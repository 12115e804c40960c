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
    assert rt.report.faults == 0, rt.runner.faults


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
