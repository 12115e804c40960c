"""Running unattended: systemd's notify protocol, JSON logs, the restart policy, a full disk."""

from __future__ import annotations

import json
import socket
import subprocess
import sys

from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.registry import default_registry
from tonegraph.engine.runtime import Runtime
from tonegraph.nodes.io.record import Record

from ..conftest import ROOT, NodeDriver, load_ok


def test_systemd_ready_watchdog_and_stopping(write_patch, tmp_path):
    """A real AF_UNIX datagram socket in place of systemd's, as systemd sets it up."""
    sock_path = tmp_path / "notify.sock"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(str(sock_path))
    sock.settimeout(5)
    path = write_patch("nodes: {lfo: {type: control.lfo}}\n")
    env = {"NOTIFY_SOCKET": str(sock_path), "WATCHDOG_USEC": "200000"}
    import os
    proc = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", str(path), "--headless",
                             "--duration", "1.5", "--osc-port", "0"], cwd=ROOT,
                            env={**os.environ, **env}, stderr=subprocess.PIPE, text=True)
    got = []
    try:
        while True:
            got.append(sock.recv(4096).decode())
            if got[-1].startswith("STOPPING=1"):
                break
    finally:
        proc.communicate(timeout=20)
    assert got[0].startswith("READY=1\nSTATUS=running")
    pings = [g for g in got if g == "WATCHDOG=1"]
    assert 10 <= len(pings) <= 20          # every 0.1 s for 1.5 s
    assert got[-1] == "STOPPING=1"


def test_log_json(write_patch):
    path = write_patch("nodes: {c: {type: control.constant}}\n")
    res = subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "--log-json", "run", str(path),
                          "--offline", "--duration", "0.1"], cwd=ROOT, capture_output=True, text=True)
    lines = [json.loads(l) for l in res.stderr.strip().splitlines()]
    assert lines and all({"time", "level", "logger", "message"} <= set(l) for l in lines)
    assert any("stopped (duration reached)" in l["message"] for l in lines)


class Flaky(Node):
    """Test node: fails from its 10th tick on until it is configured again."""

    type_name = "test.flaky"
    description = "fails after a while"
    outputs = {"out": ports.number()}

    def configure(self) -> None:
        self.ticks = 0
        self.configured = getattr(self, "configured", 0) + 1

    def process(self, tick: Tick) -> None:
        self.ticks += 1
        if self.ticks > 10:
            raise RuntimeError("stuck")
        self.out["out"] = float(self.ticks)


def test_restart_policy_restarts_a_node_that_keeps_failing(write_patch, caplog):
    reg = default_registry(plugins=False)
    reg.add(Flaky, __name__)
    path = write_patch("nodes: {f: {type: test.flaky}, m: {type: control.map, in: {value: f}}}\n")
    rt = Runtime(load_ok(path, reg), reg, offline=True, duration=3.0)
    rt.runner.restart_after = 20
    flaky = rt.runner.nodes["f"]
    rt.run()
    assert flaky.configured >= 2                     # restarted by the policy
    assert any("failed 20 times" in r.getMessage() and "restarting it" in r.getMessage()
               for r in caplog.records)


def test_in_real_time_a_failing_node_is_started_afresh_off_the_hot_path(write_patch, caplog):
    """The policy's restart is a new plan: a new object, set up on the reload thread and
    swapped in, without the state that may have caused the failures."""
    import logging

    from ..conftest import Watching, wait_for

    caplog.set_level(logging.INFO, logger="tonegraph")
    reg = default_registry(plugins=False)
    reg.add(Flaky, __name__)
    path = write_patch("nodes: {f: {type: test.flaky}, m: {type: control.map, in: {value: f}}}\n")
    run = Watching(path, reg)
    try:
        run.rt.policy.restart_after = 20
        first = run.rt.current.nodes["f"]
        assert wait_for(lambda: run.rt.reloads == 1)
        fresh = run.rt.current.nodes["f"]
        assert fresh is not first
        assert fresh.configured == 1 and dict(run.rt.plan.diff.restarted) == {"f": "kept failing"}
        assert wait_for(lambda: fresh.ticks > 0)
    finally:
        run.stop()
    assert any("restarted 'f' afresh" in r.getMessage() for r in caplog.records)


def test_full_disk_is_reported_once_survived_and_recovered_without_losing_rows(tmp_path, caplog):
    """A real full disk: /dev/full fails every write with ENOSPC.  Recovery is shown by
    pointing the recorder at a real file once the retry time has passed (a full disk
    that empties again cannot be made here without mounting a filesystem)."""
    from tonegraph.engine.ports import PortType

    d = NodeDriver(Record, {"path": "/dev/full", "flush": 0.0}, wired={"x": PortType.NUMBER})
    for k in range(20):
        d.tick(x=float(k))
        d.node.retry_at = 0.0            # retry at every tick: still one report
    assert d.node.failing and d.node.dropped == 0 and len(d.node.pending) == 20
    warnings = [r for r in caplog.records if "cannot write /dev/full" in r.getMessage()]
    assert len(warnings) == 1 and "No space left on device" in warnings[0].getMessage()
    good = tmp_path / "ok.jsonl"
    d.node.path = good
    for k in range(20, 30):
        d.tick(x=float(k))
    d.node.close()
    assert not d.node.failing
    # Every row of the failure's meantime reached the file, in order.
    assert [json.loads(l)["value"] for l in good.read_text().splitlines()] == [float(k) for k in range(30)]
    again = [r for r in caplog.records if "writing" in r.getMessage() and "again" in r.getMessage()]
    assert len(again) == 1


def test_a_write_cut_short_by_the_disk_leaves_no_torn_row(tmp_path, caplog, monkeypatch):
    """A disk that fills up in the middle of a write (os.write returning less than it was
    given, as it does on a nearly full disk; a stand-in, since filling a real disk here
    would need a filesystem of our own): the part written is taken back."""
    import os

    import tonegraph.nodes.io.record as record
    from tonegraph.engine.ports import PortType

    path = tmp_path / "rows.jsonl"
    d = NodeDriver(Record, {"path": str(path), "flush": 0.0}, wired={"x": PortType.NUMBER})
    d.tick(x=1.0)
    real = os.write

    def half(fd, data):
        return real(fd, data[: len(data) // 2])

    monkeypatch.setattr(record.os, "write", half)
    d.tick(x=2.0)
    d.tick(x=3.0)
    assert d.node.failing
    assert [json.loads(l)["value"] for l in path.read_text().splitlines()] == [1.0]
    monkeypatch.setattr(record.os, "write", real)
    d.node.retry_at = 0.0
    d.tick(x=4.0)
    d.node.close()
    assert [json.loads(l)["value"] for l in path.read_text().splitlines()] == [1.0, 2.0, 3.0, 4.0]
    assert sum("cannot write" in r.getMessage() for r in caplog.records) == 1
