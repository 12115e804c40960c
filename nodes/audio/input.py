"""audio.input: a live PortAudio device through sounddevice, hosted in a child process.

The device is opened by :mod:`nodes.audio.devhost` in a child process whose PortAudio
callback only copies each block into a pipe.  The engine's audio thread blocks in
:meth:`AudioInput.wait_hop` until a hop of samples has arrived, then runs the audio
nodes, so the device's clock paces the audio domain.

Sound that piles up while the engine cannot take it (the process was stopped, the
machine stalled) is stale for a live show: beyond ``BACKLOG`` seconds of it, the oldest
is dropped, reported once per episode, and the engine plays on from the newest hop
(media time re-anchors, see engine/audio.py).

With ``file`` set, the node plays that sound file instead of listening to a device, with
the same outputs: a live patch rehearsed on a recording, or rendered to video over a
song (``tonegraph render --audio`` sets it).

A device that is missing, busy, refuses the samplerate, or stops delivering (unplugged,
JACK server gone) is reported once; the node then outputs silence and starts a new
device host every ``retry`` seconds, matching the device by name, and resumes on its
own when it is back.  The rest of the graph never stops.
"""

from __future__ import annotations

import logging
import os
import select
import subprocess
import sys
import time

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import AudioBlock

from . import devhost
from .dsp import pick_channels

log = logging.getLogger("tonegraph.audio.input")

START_WAIT = 5.0  # [s] configure waits this long for the first device report
REPORT_EVERY = 10.0  # [s] between two reports of a growing overflow count
BACKLOG = 0.2  # [s] of received sound beyond which the oldest is dropped as stale


class AudioInput(Node):
    type_name = "audio.input"
    description = "A live input device (PortAudio): survives the device vanishing and coming back."
    domain = "audio"
    is_source = True
    default_output = "audio"
    params = {
        "device": P.text("", "Device name (substring) or index; empty: the system default.",
                         restart=True),
        "channels": P.integer(1, "Channels to open.", min=1, max=64, restart=True),
        "channel": P.integer(-1, "Channel to use; -1 mixes all opened channels down.", min=-1,
                             restart=True),
        "blocksize": P.integer(0, "PortAudio block size; 0 uses the patch's hop.", unit="samples",
                               min=0, max=16384, restart=True),
        "latency": P.choice("low", ("low", "high"), "PortAudio's suggested latency.", restart=True),
        "retry": P.number(1.0, "Time between attempts to reopen a missing device.", unit="s",
                          min=0.05, max=60.0),
        "lost_after": P.number(0.5, "Silence from the device after which it counts as lost.",
                               unit="s", min=0.05, max=10.0),
        "file": P.path(None, "Play this sound file instead of a device (rehearsing a live patch "
                             "on a recording; 'tonegraph render --audio' sets it)."),
        "start": P.number(0.0, "With 'file': where to start in it.", unit="s", min=0.0,
                          restart=True),
    }
    outputs = {
        "audio": ports.audio("The input, one hop per tick (silence while the device is away)."),
        "live": ports.number("1 while the device delivers audio, else 0."),
        "overflows": ports.number("Input overflows reported by PortAudio since start."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        if params["file"]:
            from .file import AudioFile

            return AudioFile.check(_file_params(params), {}, ctx)
        if params["channel"] >= params["channels"]:
            return [("channel", f"channel {params['channel']} is not among the {params['channels']} "
                                f"opened (0..{params['channels'] - 1}); raise 'channels'")]
        return []

    def configure(self) -> None:
        self.player = None
        if self.p.file:
            from .file import AudioFile

            self.player = AudioFile(self.id, _file_params(vars(self.p)), self.ctx)
            self.player.configure()
            self.overflows = 0
            self.out["live"] = 1.0
            return
        self.child: subprocess.Popen | None = None
        self.live = False
        self.rx = bytearray()
        self.pending: list[np.ndarray] = []
        self.pending_frames = 0
        self.device_name = ""
        self.reported = ""       # the last problem reported, so each is said once
        self.next_try = 0.0
        self.last_data = 0.0
        self.overflows = 0
        self.blocks = 0
        self.frames_in = 0
        self.arrival = 0.0       # perf_counter at which the newest block was handed over
        self.overflows_reported = 0
        self.next_overflow_report = 0.0
        hop = self.ctx.hop
        self.backlog = max(4 * hop, 2 * (self.p.blocksize or hop), int(BACKLOG * self.ctx.samplerate))
        self.stale_frames = 0
        self.next_stale_report = 0.0
        if self.ctx.offline:
            log.warning("node '%s': audio.input hears nothing on the offline clock; set its "
                        "'file' (--set %s.file=song.flac) to run it on a recording", self.id, self.id)
            self.next_try = float("inf")
            return
        self._spawn()
        deadline = time.monotonic() + START_WAIT
        while self.child is not None and not self.live and time.monotonic() < deadline:
            self._pump(0.05)

    # -- the device host ------------------------------------------------------------

    def _spawn(self) -> None:
        p = self.p
        args = [sys.executable, "-m", "tonegraph.nodes.audio.devhost", p.device, str(p.channels),
                str(self.ctx.samplerate), str(p.blocksize or self.ctx.hop), p.latency]
        env = {**os.environ, "PYTHONPATH": os.pathsep.join(
            [str(_package_root()), os.environ.get("PYTHONPATH", "")])}
        self.child = subprocess.Popen(args, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                      stderr=subprocess.DEVNULL, env=env, close_fds=True)
        os.set_blocking(self.child.stdout.fileno(), False)
        self.rx.clear()

    def _kill(self) -> None:
        child, self.child = self.child, None
        self.live = False
        self.pending, self.pending_frames = [], 0
        if child is not None:
            try:
                child.kill()
                child.wait(timeout=2)
            except Exception:  # already gone
                pass
            for f in (child.stdin, child.stdout):
                try:
                    f.close()
                except Exception:
                    pass

    def _report(self, message: str) -> None:
        if message != self.reported:
            log.warning("node '%s': %s", self.id, message)
            self.reported = message

    def _down(self, why: str) -> None:
        self._kill()
        self.next_try = time.monotonic() + self.p.retry
        self._report(f"audio input {why}; playing silence and retrying every {self.p.retry:g} s")

    def _pump(self, timeout: float) -> None:
        """Read what the device host sent, waiting at most ``timeout`` [s] for something."""
        child = self.child
        if child is None:
            return
        fd = child.stdout.fileno()
        ready, _, _ = select.select([fd], [], [], timeout)
        if not ready:
            return
        # Read all that waits (after a stall, the whole backlog at once, so that only
        # its newest hop is kept rather than one stale hop per read).
        while True:
            try:
                chunk = os.read(fd, 1 << 16)
            except BlockingIOError:
                break
            if not chunk:
                self._down("host process ended" if self.live else "could not be opened")
                return
            self.rx += chunk
            if len(chunk) < 1 << 16 or len(self.rx) > 1 << 23:
                break
        self._parse()

    def _parse(self) -> None:
        h = devhost.HEADER
        rx = self.rx
        while len(rx) >= h.size:
            kind, length, channels, stamp = h.unpack_from(rx)
            if len(rx) < h.size + length:
                break
            payload = bytes(rx[h.size:h.size + length])
            del rx[:h.size + length]
            if kind in (devhost.DATA, devhost.DATA_OVERFLOW):
                block = np.frombuffer(payload, dtype=np.float32).reshape(-1, channels)
                self.pending.append(block)
                self.pending_frames += len(block)
                self.blocks += 1
                self.frames_in += len(block)
                self.overflows += kind == devhost.DATA_OVERFLOW
                self.arrival = stamp
                self.last_data = time.monotonic()
            elif kind == devhost.READY:
                self.device_name = payload.decode()
                self.live = True
                self.last_data = time.monotonic()
                if self.reported:
                    log.warning("node '%s': audio input '%s' is back", self.id, self.device_name)
                else:
                    log.info("node '%s': listening to '%s' at %d Hz", self.id, self.device_name,
                             self.ctx.samplerate)
                self.reported = ""
            elif kind == devhost.ERROR:
                self._down(f"unavailable: {payload.decode()}")
                return
        if self.pending_frames > self.backlog:
            self._drop_stale()

    def _drop_stale(self) -> None:
        """Keep the newest hop of a backlog that built up while the engine stood still."""
        data = np.concatenate(self.pending)
        keep = self.ctx.hop
        dropped = len(data) - keep
        self.pending, self.pending_frames = [data[-keep:]], keep
        self.stale_frames += dropped
        now = time.monotonic()
        if now >= self.next_stale_report:
            log.warning("node '%s': %.2f s of sound arrived while the engine was stalled and was "
                        "dropped as stale; playing on from now", self.id, dropped / self.ctx.samplerate)
            self.next_stale_report = now + REPORT_EVERY

    # -- engine side ----------------------------------------------------------------

    @property
    def finished(self) -> bool:
        return self.player is not None and self.player.finished

    @property
    def device_missing(self) -> bool:
        return self.out.get("live") == 0.0

    def files(self) -> list:
        return self.player.files() if self.player is not None else []

    def wait_hop(self, timeout: float) -> bool | None:
        if self.player is not None or not self.live:
            return None
        hop = self.ctx.hop
        deadline = time.monotonic() + timeout
        while self.pending_frames < hop:
            self._pump(max(0.0, deadline - time.monotonic()))
            if not self.live:
                return None
            if self.pending_frames >= hop:
                break
            if time.monotonic() >= deadline:
                if time.monotonic() - self.last_data > self.p.lost_after:
                    self._down(f"'{self.device_name}' stopped delivering audio")
                    return None
                return False
        return True

    def process(self, tick: Tick) -> None:
        if self.player is not None:
            self.player.process(tick)
            self.out["audio"] = self.player.out["audio"]
            return
        hop = self.ctx.hop
        if self.live and self.pending_frames >= hop:
            data = self.pending[0] if len(self.pending) == 1 else np.concatenate(self.pending)
            block, rest = data[:hop], data[hop:]
            self.pending = [rest] if len(rest) else []
            self.pending_frames = len(rest)
            x = pick_channels(block, self.p.channel)
            self.out["live"] = 1.0
        else:
            if self.child is not None and not self.live:
                self._pump(0.0)            # a host starting up: has it reported yet?
            elif self.child is None and time.monotonic() >= self.next_try:
                self._spawn()
            x = np.zeros((hop, 1), dtype=np.float32)
            self.out["live"] = 0.0
        x = np.ascontiguousarray(x, dtype=np.float32)
        self.out["audio"] = AudioBlock(x, tick.t, self.ctx.samplerate, x[:, 0])
        self.out["overflows"] = float(self.overflows)
        if self.overflows > self.overflows_reported and time.monotonic() >= self.next_overflow_report:
            log.warning("node '%s': %d input overflow(s) from '%s' so far (samples were lost "
                        "before tonegraph saw them; a larger blocksize or latency: high helps)",
                        self.id, self.overflows, self.device_name)
            self.overflows_reported = self.overflows
            self.next_overflow_report = time.monotonic() + REPORT_EVERY

    def close(self) -> None:
        if getattr(self, "player", None) is not None:
            self.player.close()
        if getattr(self, "child", None) is not None:
            self._kill()


def _file_params(params: dict) -> dict:
    """The params of the audio.file that plays an audio.input's ``file``."""
    return {"path": params["file"], "start": params["start"], "channel": params["channel"],
            "loop": False, "gain": 1.0, "monitor": False, "monitor_device": ""}


def _package_root():
    from pathlib import Path

    return Path(__file__).resolve().parents[2]
