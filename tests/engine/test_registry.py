"""Node types from the nodes package, from entry-point plugins and from --nodes-path."""

from __future__ import annotations

import os
import textwrap

import pytest

from tonegraph.engine.registry import Registry, RegistryError, default_registry

from ..conftest import ROOT, tonegraph

PLUGIN = '''
from tonegraph.engine import ports
from tonegraph.engine.node import Node


class Sparkle(Node):
    type_name = "fx.sparkle"
    description = "A plugin node that doubles its input."
    inputs = {"value": ports.number()}
    outputs = {"out": ports.number()}

    def process(self, tick):
        self.out["out"] = 2 * self.inp["value"]
'''


def test_builtin_families_are_registered(registry):
    names = registry.names()
    for want in ("control.constant", "control.lfo", "control.map", "control.smooth",
                 "control.envelope", "control.trigger", "control.math", "io.print", "io.record"):
        assert want in names
    assert registry.origin("control.lfo") == "tonegraph.nodes.control.lfo"


def test_entry_point_plugin_is_found(tmp_path):
    # A real installed distribution as importlib.metadata sees one: a .dist-info
    # folder with an entry_points.txt, next to the plugin's module.
    (tmp_path / "sparkle_plugin.py").write_text(PLUGIN)
    info = tmp_path / "sparkle_plugin-1.0.dist-info"
    info.mkdir()
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: sparkle-plugin\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[tonegraph.nodes]\nsparkle = sparkle_plugin\n")
    patch = tmp_path / "p.yaml"
    patch.write_text(textwrap.dedent("""
        nodes:
          c: {type: control.constant, params: {value: 21}}
          s: {type: fx.sparkle, in: {value: c}}
          p: {type: io.print, params: {interval: 10}, in: {s: s}}
        """))
    env = {**os.environ, "PYTHONPATH": f"{tmp_path}{os.pathsep}{ROOT}"}
    listed = tonegraph("nodes", env=env)
    assert "fx.sparkle" in listed.stdout and "doubles its input" in listed.stdout
    run = tonegraph("run", str(patch), "--offline", "--duration", "0.05", env=env)
    assert run.returncode == 0, run.stderr
    assert "s=42.000" in run.stdout


def test_nodes_path_folder(tmp_path, write_patch):
    folder = tmp_path / "mynodes"
    folder.mkdir()
    (folder / "sparkle.py").write_text(PLUGIN)
    path = write_patch("nodes: {s: {type: fx.sparkle}}\n")
    assert tonegraph("validate", str(path)).returncode == 1
    res = tonegraph("validate", "--nodes-path", str(folder), str(path))
    assert res.returncode == 0, res.stderr


def test_broken_and_clashing_node_modules_are_clear_errors(tmp_path):
    folder = tmp_path / "bad"
    folder.mkdir()
    (folder / "broken.py").write_text("import nonexistent_module_xyz\n")
    with pytest.raises(RegistryError, match=r"broken\.py: failed to load: ModuleNotFoundError"):
        default_registry([folder], plugins=False)
    clash = tmp_path / "clash"
    clash.mkdir()
    (clash / "lfo.py").write_text(PLUGIN.replace("fx.sparkle", "control.lfo"))
    with pytest.raises(RegistryError, match="'control.lfo' is already defined by tonegraph.nodes.control.lfo"):
        default_registry([clash], plugins=False)
    res = tonegraph("nodes", "--nodes-path", str(folder))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    assert res.stderr.startswith("error: ")


def test_type_name_must_have_family():
    from tonegraph.engine.node import Node

    class Bad(Node):
        type_name = "nofamily"

    with pytest.raises(RegistryError, match="family.name"):
        Registry().add(Bad, "test")
