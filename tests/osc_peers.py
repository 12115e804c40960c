"""Real OSC peers we did not write: liblo's oscdump and the OLA lighting daemon."""

from __future__ import annotations

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
NTP_EPOCH = 2208988800  # seconds from 1900 (NTP) to 1970 (Unix)

# Every plugin of Debian's OLA build; all but OSC stay off (several would broadcast).
OLA_PLUGINS = ("artnet", "dummy", "e131", "espnet", "ftdidmx", "gpio", "karate", "kinet", "milinst",
               "opendmx", "openpixelcontrol", "pathport", "renard", "sandnet", "shownet", "spi",
               "stageprofi", "uartdmx", "usbdmx", "usbserial")


def free_port(kind: int = socket.SOCK_DGRAM) -> int:
    with socket.socket(socket.AF_INET, kind) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait(pred, timeout: float) -> bool:
    from .conftest import wait_for

    return wait_for(pred, timeout)


def end(proc: subprocess.Popen, timeout: float = 10) -> None:
    """Stop a peer: SIGTERM, then SIGKILL if it has not gone within ``timeout`` [s]."""
    proc.terminate()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=timeout)


def need(tool: str, package: str) -> None:
    if shutil.which(tool) is None:
        pytest.fail(f"'{tool}' is missing: 'make setup' installs the Debian package {package}")


class OscDump:
    """liblo's oscdump on a local port; ``lines`` holds what it printed, parsed."""

    def __init__(self) -> None:
        need("oscdump", "liblo-tools")
        self.port = free_port()
        self.proc = subprocess.Popen(["oscdump", "-L", str(self.port)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, text=True)
        self.raw: list[str] = []
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        self._syncs = 0
        self.sync()

    def sync(self, timeout: float = 10.0) -> None:
        """Return once oscdump has printed everything sent to it before this call: a
        marker sent after it comes out last (loopback delivers in order)."""
        self._syncs += 1
        marker = f"/sync/{self._syncs}"
        from tonegraph.engine.osc import encode

        deadline = time.monotonic() + timeout
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            while time.monotonic() < deadline:   # until oscdump is up and has read it
                s.sendto(encode.message(marker), ("127.0.0.1", self.port))
                if _wait(lambda: any(marker in line for line in self.raw), 0.2):
                    return
        raise AssertionError("oscdump did not answer")

    def _read(self) -> None:
        for line in self.proc.stdout:
            self.raw.append(line.rstrip("\n"))

    @property
    def messages(self) -> list[tuple[float, str, str, list[str]]]:
        """(timetag as Unix time, address, type tags, arguments as printed)."""
        out = []
        for line in list(self.raw):
            parts = line.split()
            if len(parts) < 2 or "." not in parts[0]:
                continue
            sec, frac = parts[0].split(".")
            t = int(sec, 16) - NTP_EPOCH + int(frac, 16) / 2**32
            types = parts[2] if len(parts) > 2 else ""
            if not parts[1].startswith("/sync/"):
                out.append((t, parts[1], types, parts[3:]))
        return out

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=5)


class Olad:
    """The OLA daemon as user nobody, with only its OSC plugin on, input patched to
    universe 0; ``dmx()`` reads universe 0 back through OLA's HTTP API."""

    def __init__(self, tmp: Path | None = None) -> None:
        need("olad", "ola")
        # Not under pytest's tmp_path: its folders are private, and olad runs as nobody.
        self.dir = Path(tempfile.mkdtemp(prefix="tonegraph-ola-"))
        self.osc_port, self.http_port, self.rpc_port = free_port(), free_port(socket.SOCK_STREAM), \
            free_port(socket.SOCK_STREAM)
        for name in OLA_PLUGINS:
            (self.dir / f"ola-{name}.conf").write_text("enabled = false\n")
        (self.dir / "ola-osc.conf").write_text(
            "enabled = true\ninput_ports = 1\noutput_ports = 0\n"
            f"port_0_address = /dmx/universe/%d\nudp_listen_port = {self.osc_port}\n")
        (self.dir / "ola-port.conf").write_text("14-1-I-0 = 0\n")  # OSC input port 0 -> universe 0
        os.chmod(self.dir, 0o777)
        for f in self.dir.iterdir():
            os.chmod(f, 0o666)
        cmd = ["olad", "-c", str(self.dir), "--http-port", str(self.http_port),
               "--rpc-port", str(self.rpc_port), "--no-register-with-dns-sd", "-l", "1"]
        if os.geteuid() == 0:
            cmd = ["runuser", "-u", "nobody", "--", *cmd]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        got: dict = {}

        def up() -> bool:
            try:
                got["plugins"] = self._get("/json/universe_plugin_list")["plugins"]
                return True
            except OSError:
                return False
        if not _wait(up, 15):
            self.stop()
            raise AssertionError("olad did not start its HTTP server")
        plugins = got["plugins"]
        active = [p["name"] for p in plugins if p.get("active")]
        if active != ["OSC"]:
            self.stop()
            raise AssertionError(f"OLA plugins other than OSC are active: {active}")

    def _get(self, path: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=2) as r:
            return json.loads(r.read())

    def dmx(self) -> list[int]:
        return self._get("/get_dmx?u=0")["dmx"]

    def stop(self) -> None:
        end(self.proc)
        shutil.rmtree(self.dir, ignore_errors=True)


class Engine:
    """tonegraph run in real time, listening for OSC on a free port."""

    def __init__(self, patch, *extra: str, seconds: float = 30, env: dict | None = None) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tonegraph.engine.cli", "run", str(patch), "--headless", "--duration",
             str(seconds), "--osc-port", "0", "--oscquery-port", "0", *extra],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
            env={**os.environ, **(env or {})})
        self.log: list[str] = []
        self.port = self.query_port = 0
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            line = self.proc.stderr.readline()
            if not line:
                break
            self.log.append(line)
            m = re.search(r"OSC control on [\d.]+:(\d+), OSCQuery on http://[\d.]+:(\d+)/", line)
            if m:
                self.port, self.query_port = int(m.group(1)), int(m.group(2))
                break
        assert self.port, "".join(self.log)
        self._reader = threading.Thread(target=self._drain, daemon=True)
        self._reader.start()

    def _drain(self) -> None:
        for line in self.proc.stderr:
            self.log.append(line)

    def send(self, packet: bytes, sock: socket.socket | None = None) -> None:
        s = sock or socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        s.sendto(packet, ("127.0.0.1", self.port))

    def stop(self) -> str:
        """Stop it (SIGTERM) and return everything it logged."""
        self.proc.terminate()
        self.proc.wait(timeout=20)
        self._reader.join(timeout=10)
        return "".join(self.log)

    def alive(self) -> bool:
        return self.proc.poll() is None

    def said(self, fragment: str) -> bool:
        """Whether a line it logged so far holds ``fragment``."""
        return any(fragment in line for line in list(self.log))

    def ask(self, packet: bytes, timeout: float = 10.0) -> list:
        """Send a packet from a socket of its own; the messages it gets back (OSC replies)."""
        from tonegraph.engine.osc import encode

        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            sock.bind(("127.0.0.1", 0))
            sock.settimeout(timeout)
            self.send(packet, sock)
            return [m for _, m in encode.decode(sock.recv(65536))]
