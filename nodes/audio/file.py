"""audio.file: a sound file (sound.py: WAV, FLAC, OGG, MP3; others through ffmpeg),
resampled to the patch's rate.

Offline it is read as fast as the engine asks; on the real-time clock the engine paces
it in real time, and ``monitor: true`` also plays it to an output device.  A file that
ends outputs silence and reports ``finished``; with ``loop`` it starts again at
``start``.
"""

from __future__ import annotations

import collections
import logging
import time

import numpy as np
from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import NodeError
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import AudioBlock

from .dsp import pick_channels
from .sound import SoundError, open_sound

log = logging.getLogger("tonegraph.audio.file")

CHUNK = 65536  # frames read from the file at a time


class AudioFile(Node):
    type_name = "audio.file"
    description = ("Play a sound file into the graph (WAV, FLAC, OGG, MP3; M4A and others through "
                   "ffmpeg), resampled to the patch's rate.")
    domain = "audio"
    is_source = True
    default_output = "audio"
    params = {
        "path": P.path(None, "The sound file, relative to the patch's folder."),
        "loop": P.boolean(False, "Start again at 'start' when the file ends."),
        "start": P.number(0.0, "Where to start in the file.", unit="s", min=0.0, restart=True),
        "channel": P.integer(-1, "Channel to use; -1 mixes all channels down.", min=-1, restart=True),
        "gain": P.number(1.0, "Multiplies the samples.", min=0.0),
        "monitor": P.boolean(False, "Also play the file to an output device (real time only).",
                             restart=True),
        "monitor_device": P.text("", "Output device name (substring) or index; empty: the default.",
                                 restart=True),
    }
    outputs = {
        "audio": ports.audio("The file's samples, one hop per tick."),
        "position": ports.number("Position in the file [s]."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        if not params["path"]:
            return [("", "audio.file needs a 'path'")]
        path = ctx.resolve_input(params["path"])
        if not path.is_file():
            return [("path", f"no such file: {path}")]
        try:
            with open_sound(path) as f:
                channels, duration = f.channels, f.frames / f.samplerate
        except SoundError as exc:
            return [("path", f"cannot read {path.name}: {exc}")]
        if params["channel"] >= channels:
            return [("channel", f"channel {params['channel']} does not exist: "
                                f"{path.name} has {channels} channel(s)")]
        if params["start"] >= duration:
            return [("start", f"start {params['start']:g} s is past the end of {path.name} "
                              f"({duration:.2f} s)")]
        return []

    def configure(self) -> None:
        self.path = self.ctx.resolve_input(self.p.path)
        try:
            self.sf = open_sound(self.path)
        except SoundError as exc:
            raise NodeError(self.id, f"cannot open {self.path}: {exc}") from exc
        self.rate = self.sf.samplerate
        self.resampler = None
        if self.rate != self.ctx.samplerate:
            import soxr

            self.resampler = soxr.ResampleStream(self.rate, self.ctx.samplerate, 1, dtype="float32",
                                                 quality="HQ")
        self.start_frame = int(self.p.start * self.rate)
        self.sf.seek(self.start_frame)
        self.rest = np.zeros(0, dtype=np.float32)
        self.hops: list[np.ndarray] = []
        self.next_hop = 0
        self.last_hop = -1
        self.silence = np.zeros((self.ctx.hop, 1), dtype=np.float32)
        self.hop_s = self.ctx.hop / self.ctx.samplerate
        self.rate_out = self.ctx.samplerate
        self.position = self.p.start
        self.gain = np.float32(self.p.gain)
        self.read_frames = self.start_frame  # file frames consumed into the buffer
        self.eof = False
        self.done = False
        self.monitor = _Monitor(self) if self.p.monitor and not self.ctx.offline else None

    def _refill(self) -> None:
        """Read (and resample) the next chunk, and cut everything buffered into
        hop-sized views, so a tick only hands one out."""
        hop = self.ctx.hop
        parts = [self.rest]
        have = len(self.rest)
        while have < hop and not self.eof:
            data = self.sf.read(CHUNK, dtype="float32", always_2d=True)
            last = False
            if len(data) < CHUNK:
                if self.p.loop and len(data) + self.read_frames > self.start_frame:
                    self.sf.seek(self.start_frame)
                    self.read_frames = self.start_frame
                else:
                    last = True
            else:
                self.read_frames += len(data)
            x = np.ascontiguousarray(pick_channels(data, self.p.channel)[:, 0])
            if self.resampler is not None:
                x = self.resampler.resample_chunk(x, last=last)
            parts.append(x.astype(np.float32, copy=False))
            have += len(x)
            if last:
                self.eof = True
        buf = np.concatenate(parts) if len(parts) > 1 else parts[0]
        whole = len(buf) // hop * hop
        if self.eof and whole < len(buf):  # the file's last, partial hop: pad with silence
            buf = np.concatenate([buf, np.zeros(hop - (len(buf) - whole), dtype=np.float32)])
            whole = len(buf)
        rows = buf[:whole].reshape(-1, hop)
        self.hops = list(zip(rows, rows.reshape(-1, hop, 1)))  # (mono view, frames x 1 view)
        self.rest = buf[whole:]
        self.next_hop = 0
        # The file's last hop, once it is buffered: delivering it ends the file.
        self.last_hop = len(self.hops) if self.eof and not len(self.rest) else -1

    def process(self, tick: Tick) -> None:
        if self.next_hop >= len(self.hops):
            self._refill()
            if not self.hops:
                self.done = True
                self.out["audio"] = AudioBlock(self.silence, tick.t, self.rate_out,
                                               self.silence[:, 0])
                return
        mono, x = self.hops[self.next_hop]
        self.next_hop += 1
        if self.next_hop == self.last_hop:
            self.done = True
        if self.gain != 1.0:
            mono = mono * self.gain
            x = mono.reshape(-1, 1)
        out = self.out
        out["audio"] = AudioBlock(x, tick.t, self.rate_out, mono)
        self.position += self.hop_s
        out["position"] = self.position
        if self.monitor is not None:
            self.monitor.push(x)
            self.monitor.report(self.id)

    def params_changed(self, changed: set[str]) -> None:
        self.gain = np.float32(self.p.gain)

    @property
    def finished(self) -> bool:
        return self.done

    def files(self):
        return [self.ctx.resolve_input(self.p.path)] if self.p.path else []

    def close(self) -> None:
        if getattr(self, "monitor", None) is not None:
            self.monitor.close()
        if getattr(self, "sf", None) is not None:
            self.sf.close()
        self.resampler = None        # soxr's stream must not outlive the run (nanobind reports it)


class _Monitor:
    """Plays hops to an output device. The callback only copies queued samples out; an
    empty queue plays silence and is counted as an underflow."""

    MAX_QUEUED = 16

    def __init__(self, node: AudioFile) -> None:
        import sounddevice as sd

        self.queue: collections.deque[np.ndarray] = collections.deque()
        self.underflows = 0
        self.reported = 0
        self.next_report = 0.0
        device = node.p.monitor_device or None
        if device is not None and device.isdigit():
            device = int(device)
        try:
            self.stream = sd.OutputStream(samplerate=node.ctx.samplerate, channels=1,
                                          blocksize=node.ctx.hop, device=device,
                                          dtype="float32", callback=self._callback)
            self.stream.start()
        except Exception as exc:
            log.warning("node '%s': cannot open monitor output (%s); playing on without it",
                        node.id, _reason(exc))
            self.stream = None

    def push(self, data: np.ndarray) -> None:
        if self.stream is None:
            return
        self.queue.append(data)
        while len(self.queue) > self.MAX_QUEUED:
            self.queue.popleft()

    def report(self, node_id: str) -> None:
        """Say, at most every 10 s, that the output ran dry (it played silence)."""
        if self.underflows > self.reported and time.monotonic() >= self.next_report:
            log.warning("node '%s': monitor output ran dry %d time(s) so far", node_id,
                        self.underflows)
            self.reported = self.underflows
            self.next_report = time.monotonic() + 10.0

    def _callback(self, outdata, frames, time_info, status) -> None:  # PortAudio thread
        if self.queue and len(self.queue[0]) == frames:
            outdata[:] = self.queue.popleft()
        else:
            outdata.fill(0)
            self.underflows += 1

    def close(self) -> None:
        if self.stream is not None:
            self.stream.close()


def _reason(exc: Exception) -> str:
    text = str(exc).strip().splitlines()[-1] if str(exc).strip() else type(exc).__name__
    return text.replace("Error opening", "error opening")
