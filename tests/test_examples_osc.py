"""Every example patch validates and runs, whether or not its receiver is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, run_offline

EXAMPLES = sorted((ROOT / "examples" / "osc").glob("*.yaml"))


def test_one_example_per_profile():
    from tonegraph.nodes.osc.profiles import PROFILES

    assert {p.stem for p in EXAMPLES} == set(PROFILES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_with_no_receiver(path: Path, registry):
    rt = run_offline(path, registry, duration=2.0)
    assert rt.report.faults == 0
    outs = [n for n in rt.runner.nodes.values() if n.type_name == "osc.out"]
    assert outs and all(n.sent > 0 for n in outs)


def test_no_shipped_patch_sends_to_the_engines_own_control_port(registry):
    """A receiver started as the examples say must not collide with tonegraph's own OSC
    listener (port 9000 by default)."""
    from tonegraph.engine.cli import build_parser
    from tonegraph.engine.graph import load_graph
    from tonegraph.nodes.osc.profiles import PROFILES

    control = build_parser().parse_args(["run", "x.yaml"]).osc_port
    patches = EXAMPLES + sorted((ROOT / "graphs").glob("*.yaml"))
    checked = 0
    for path in patches:
        graph, errors = load_graph(path, registry)
        assert not errors, errors
        for node in graph.nodes.values():
            if node.type == "osc.out":
                port = node.params.get("port") or PROFILES[node.params.get("profile", "generic")].port
                assert port not in (control, control + 1), f"{path.name}: {node.id} sends to port {port}"
                checked += 1
    assert checked >= len(EXAMPLES)
