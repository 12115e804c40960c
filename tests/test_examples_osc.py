"""Every example patch validates and runs, whether or not its receiver is there."""

from __future__ import annotations

from pathlib import Path

import pytest

from .conftest import ROOT, run_offline

EXAMPLES = sorted((ROOT / "examples" / "osc").glob("*.yaml"))


def test_one_example_per_profile():
    from nodes.osc.profiles import PROFILES

    assert {p.stem for p in EXAMPLES} == set(PROFILES)


@pytest.mark.parametrize("path", EXAMPLES, ids=lambda p: p.stem)
def test_example_runs_with_no_receiver(path: Path, registry):
    rt = run_offline(path, registry, duration=2.0)
    assert rt.report.faults == 0
    outs = [n for n in rt.runner.nodes.values() if n.type_name == "osc.out"]
    assert outs and all(n.sent > 0 for n in outs)
