"""The chaos soak's short run: the show lives through every fault and attack in turn,
loses and tears no row, and the table says so (``make soak CHAOS=1`` runs it an hour)."""

from __future__ import annotations

import json
import subprocess
import sys

from .conftest import ROOT


def test_a_short_chaos_soak_keeps_the_show_and_its_rows():
    from tests.chaos import FAULTS, OUT

    res = subprocess.run([sys.executable, "-m", "tests.chaos", "--duration", str(2 * len(FAULTS))],
                         cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    result = json.loads((OUT / "result.json").read_text())
    assert result["deaths"] == 0 and result["rows_lost"] == 0 and result["torn_rows"] == 0
    assert result["rows_recorded"] > 0 and result["tracebacks"] == 0
    assert [s["fault"] for s in result["slots"]] == [f.__name__.replace("_", " ") for f in FAULTS]
    assert "deaths 0" in (OUT / "table.md").read_text()
