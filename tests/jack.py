"""A private JACK server with the dummy backend: a real PortAudio device without sound
hardware.  Each server gets its own name (JACK_DEFAULT_SERVER), so tests never touch
another JACK instance on the machine."""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import signal
import subprocess
import time

import pytest


def _clear_stale_registry() -> None:
    """JACK keeps a registry of servers in /dev/shm with a handful of slots; a server
    that was killed outright leaves its slot taken. With no jackd running at all, every
    entry there is stale and safe to remove."""
    if subprocess.run(["pgrep", "-x", "jackd"], capture_output=True).returncode != 0:
        for path in glob.glob("/dev/shm/jack*"):
            try:
                os.unlink(path)
            except OSError:
                pass


class JackServer:
    started = 0
    def __init__(self, rate: int = 48000, period: int = 256) -> None:
        for tool in ("jackd", "jack_lsp", "jack_connect", "jack_metro"):
            if shutil.which(tool) is None:
                pytest.fail(f"'{tool}' is missing: 'make setup' installs the Debian package jackd2")
        # A new name per server: a process that was a client of a server that went away
        # cannot join a new one of the same name (libjack keeps the old one's state).
        JackServer.started += 1
        self.name = f"tonegraph-test-{os.getpid()}-{JackServer.started}"
        self.env = {**os.environ, "JACK_DEFAULT_SERVER": self.name, "JACK_NO_AUDIO_RESERVATION": "1"}
        self.rate, self.period = rate, period
        self.procs: list[subprocess.Popen] = []
        self.server: subprocess.Popen | None = None

    def start(self) -> None:
        _clear_stale_registry()
        self.server = subprocess.Popen(
            ["jackd", "--no-realtime", "-n", self.name, "-d", "dummy", "-r", str(self.rate),
             "-p", str(self.period)], env=self.env, stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL)
        self.wait_for_port("system:capture_1")

    def stop(self) -> None:
        for p in self.procs:
            p.kill()
            p.wait()
        self.procs = []
        if self.server is not None:
            # SIGTERM: the server leaves as a crashed one would for its clients, but
            # frees its registry slot.
            self.server.send_signal(signal.SIGTERM)
            try:
                self.server.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.server.kill()
                self.server.wait()
            self.server = None

    def ports(self) -> list[str]:
        res = subprocess.run(["jack_lsp"], env=self.env, capture_output=True, text=True, timeout=10)
        return res.stdout.split()

    def wait_for_port(self, port: str, timeout: float = 15.0) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if port in self.ports():
                return
            time.sleep(0.1)
        raise AssertionError(f"JACK port {port} did not appear within {timeout} s")

    def metro(self, bpm: int = 120, name: str = "metro") -> str:
        """Start jack_metro (a click at ``bpm``); returns its output port."""
        self.procs.append(subprocess.Popen(
            ["jack_metro", "-b", str(bpm), "-f", "1000", "-D", "30", "-a", "0.5", "-n", name],
            env=self.env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        port = f"{name}:{bpm}_bpm"
        self.wait_for_port(port)
        return port

    def connect(self, src: str, dst: str) -> None:
        subprocess.run(["jack_connect", src, dst], env=self.env, check=True, timeout=10)


@contextlib.contextmanager
def jack_for_benchmark(what: str):
    """A private JACK server with this process's environment pointed at it, for a
    benchmark; yields None (after saying why) when no server can start."""
    server = JackServer(rate=48000, period=256)
    try:
        server.start()
    except (pytest.fail.Exception, AssertionError) as exc:
        print(f"\n{what}: not measured, no JACK server: {exc}")
        yield None
        return
    old_env = dict(os.environ)
    os.environ.update(server.env)
    try:
        yield server
    finally:
        os.environ.clear()
        os.environ.update(old_env)
        server.stop()

