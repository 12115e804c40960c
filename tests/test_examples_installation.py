"""The systemd unit in examples/installation asks for what the engine does."""

from __future__ import annotations

import configparser
import shlex

from tonegraph.engine.cli import build_parser

from .conftest import ROOT

UNIT = ROOT / "examples" / "installation" / "tonegraph.service"


def test_unit_is_notify_with_watchdog_restart_and_reload():
    cp = configparser.ConfigParser(strict=False, interpolation=None)
    cp.optionxform = str
    cp.read_string(UNIT.read_text().replace("\\\n", " "))
    svc = cp["Service"]
    assert svc["Type"] == "notify" and int(svc["WatchdogSec"]) > 0
    assert svc["Restart"] == "always" and "kill -HUP" in svc["ExecReload"]
    args = shlex.split(svc["ExecStart"])
    assert args[0].endswith("/tonegraph")
    parsed = build_parser().parse_args(args[1:])     # the command line is one we accept
    assert parsed.headless and parsed.status == "127.0.0.1:9100"


def test_unit_passes_systemd_analyze_verify(tmp_path):
    """systemd's own checker, on the unit as shipped, its ExecStart pointed at this
    checkout's command (verify also checks that the binary exists)."""
    import subprocess
    import sys
    from pathlib import Path

    exe = Path(sys.executable).parent / "tonegraph"
    unit = tmp_path / "tonegraph.service"
    unit.write_text(UNIT.read_text().replace("/opt/tonegraph/.venv/bin/tonegraph", str(exe)))
    res = subprocess.run(["systemd-analyze", "verify", str(unit)], capture_output=True, text=True,
                         timeout=60)
    assert res.returncode == 0 and not (res.stdout + res.stderr).strip(), res.stdout + res.stderr
