"""The systemd unit in examples/installation asks for what the engine does."""

from __future__ import annotations

import configparser
import shlex

from engine.cli import build_parser

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
