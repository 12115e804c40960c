"""The runnable integrations in examples/ work as their READMEs say."""

from __future__ import annotations

import os
import subprocess
import sys

from .conftest import ROOT, tonegraph

PLUGIN = ROOT / "examples" / "custom-node"


def test_custom_node_plugin_installs_and_runs(tmp_path):
    # A real install of the example package (its entry point included) into a
    # scratch folder; the project itself is already installed in this environment.
    target = tmp_path / "site"
    res = subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--no-deps",
                          "--target", str(target), str(PLUGIN)],
                         capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stderr
    env = {**os.environ, "PYTHONPATH": f"{target}{os.pathsep}{ROOT}"}
    shown = tonegraph("nodes", "fx.strobe", env=env)
    assert shown.returncode == 0, shown.stderr
    assert "Full on for 'flash' seconds" in shown.stdout
    run = tonegraph("run", str(PLUGIN / "strobe.yaml"), "--offline", "--duration", "2", env=env)
    assert run.returncode == 0, run.stderr
    flashes = [l for l in run.stdout.splitlines() if "flash=1.000" in l]
    assert 3 <= len(flashes) <= 8    # 128 BPM over 2 s: four beats, a 50 ms flash each
    # The reference lists installed plugins, except with --builtin (what 'make docs'
    # commits), so a plugin installed beside the project never leaks into docs/.
    assert "fx.strobe" in tonegraph("docs", env=env).stdout
    builtin = tonegraph("docs", "--builtin", env=env).stdout
    assert "fx.strobe" not in builtin and builtin == (ROOT / "docs" / "nodes.md").read_text()
    assert "fx.strobe" not in tonegraph("schema", "--builtin", env=env).stdout


def test_custom_node_via_nodes_path():
    res = tonegraph("validate", "--nodes-path", str(PLUGIN), str(PLUGIN / "strobe.yaml"))
    assert res.returncode == 0, res.stderr
