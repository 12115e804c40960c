"""``tonegraph render``: a patch over a whole song, offline, to an H.264 video with the
song's audio.

``--audio`` becomes the source of every ``audio.file`` node and the file of every
``audio.input`` node (so one preset, or a live patch, renders any song), every
``gl.window`` draws offscreen at ``--size``, and the patch runs on the offline clock:
frame k shows the graph at time k / fps, exactly, whatever the machine's speed, and the
same input gives the same frames.  The sound starts up to ``--preroll`` seconds before
``--start``, so a beat tracker is locked at the first frame.  ffmpeg (shipped by
imageio-ffmpeg) encodes the frames and muxes the audio of the rendered span.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import queue
import signal
import sys
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from tonegraph.engine.cpu import CpuMeter
from tonegraph.engine.errors import TonegraphError, describe, display_path
from tonegraph.engine.graph import load_graph
from tonegraph.engine.registry import Registry
from tonegraph.engine.runtime import Runtime

from .render_command import PRESET

log = logging.getLogger("tonegraph.render")
#: Containers ffmpeg writes H.264 and AAC into.
CONTAINERS = (".mp4", ".mov", ".mkv", ".m4v")


class RenderError(TonegraphError):
    """A render that cannot start (one line)."""


@dataclass
class RenderReport:
    output: Path
    frames: int
    seconds: float          # media time rendered
    wall: float             # seconds it took
    size: tuple[int, int]
    fps: float
    #: Frames the span has; fewer were written when the render was stopped (SIGINT/TERM).
    planned: int = 0
    #: CPU seconds per domain (engine/cpu.py): drawing (the engine's thread: control,
    #: GL, the models' calls), other threads (torch's workers, the GL driver's), ffmpeg.
    cpu: dict = field(default_factory=dict)


PREROLL = 8.0  # [s] of the song the analysers hear before the first frame (--preroll)


@dataclass
class Prepared:
    """A patch made ready to render a span of a song: the runtime, the window that is
    recorded, the sound and the span [s] of it that the frames show."""

    runtime: Runtime
    window: str
    sound: Path | None
    start: float
    end: float

    @property
    def frames(self) -> int:
        return math.ceil((self.end - self.start) * self.runtime.fps - 1e-9)


def prepare(patch: Path, registry: Registry, audio: Path | None, size: tuple[int, int],
            fps: float | None = None, start: float = 0.0, end: float | None = None,
            sets: list[str] | None = None, preroll: float = PREROLL) -> Prepared:
    """Load ``patch`` to render ``audio`` (or the patch's own sound) from ``start`` to
    ``end`` at ``size``: every ``audio.file`` plays the song, every ``audio.input``
    reads it as its file, every ``gl.window`` draws offscreen at ``size``.  The sound
    starts ``preroll`` seconds early (as much of it as the song has before ``start``),
    so onset, tempo and other analysers have heard the music when the first frame is
    drawn; the frames of the pre-roll are not drawn."""
    from tonegraph.nodes.audio.sound import SoundError, open_sound

    graph, errors = load_graph(patch, registry, sets)
    if errors:
        raise RenderError("\n".join(str(e) for e in errors))
    files = [nid for nid, n in graph.nodes.items() if n.type == "audio.file"]
    inputs = [nid for nid, n in graph.nodes.items() if n.type == "audio.input"]
    windows = [nid for nid, n in graph.nodes.items() if n.type == "gl.window"]
    if not windows:
        raise RenderError(f"{display_path(Path(patch))} has no gl.window node: nothing to render")
    if audio is None and inputs:
        raise RenderError(f"{display_path(Path(patch))} listens to a live input "
                          f"('{inputs[0]}'): give --audio FILE to render it over a song")
    if audio is not None and not files + inputs:
        raise RenderError(f"{display_path(Path(patch))} has no audio.file or audio.input node "
                          f"to play --audio")
    w, h = size
    if w % 2 or h % 2 or w < 16 or h < 16:
        raise RenderError(f"--size {w}x{h}: width and height must be even and at least 16 (H.264)")
    rate = float(fps or graph.spec.fps)
    # The sound, checked before it becomes an override: a problem is named by the option
    # the user typed, not by the param it is passed on as.
    if audio is not None:
        audio = Path(audio).resolve()
        sound, said = audio, f"--audio {display_path(audio)}"
    elif files:
        sound = graph.spec.context().resolve_input(graph.nodes[files[0]].params["path"])
        said = display_path(Path(sound))
        log.warning("rendering over the patch's own sound, %s: give --audio FILE for your song", said)
    else:
        sound = said = None
    if sound is not None:
        try:
            with open_sound(sound) as f:
                total = f.frames / f.samplerate
        except SoundError as exc:
            raise RenderError(f"{said}: cannot read it as sound ({exc})") from None
        if start >= total:
            raise RenderError(f"--start {start:g} s is past the end of {said} ({total:.1f} s long)")
        end = total if end is None else min(end, total)
    elif end is None:
        raise RenderError("the patch plays no audio.file: give --end to say how long to render")
    if end <= start:
        raise RenderError(f"nothing to render between --start {start:g} s and --end {end:g} s")
    # A whole number of frames of pre-roll, no more than the song has before start.
    pre = math.floor(min(max(preroll, 0.0), start) * rate + 1e-9) / rate
    overrides = list(sets or [])
    if audio is not None:
        overrides += [f"{nid}.path={json.dumps(str(audio))}" for nid in files]
        overrides += [f"{nid}.file={json.dumps(str(audio))}" for nid in inputs]
    overrides += [f"{nid}.start={start - pre}" for nid in files + inputs]
    overrides += [f"{nid}.size=[{w}, {h}]" for nid in windows]
    graph, errors = load_graph(patch, registry, overrides)
    if errors:
        raise RenderError("\n".join(str(e) for e in errors))
    rt = Runtime(graph, registry, offline=True, headless=True, duration=end - start + pre, fps=fps,
                 preroll=pre)
    return Prepared(rt, windows[0], sound, start, end)


def render(patch: Path, registry: Registry, audio: Path | None, output: Path,
           size: tuple[int, int] = (1280, 720), fps: float | None = None, start: float = 0.0,
           end: float | None = None, frames_dir: Path | None = None, quiet: bool = False,
           sets: list[str] | None = None, crf: int = 18, preset: str = PRESET,
           preroll: float = PREROLL, convert: str = "auto", encoder: str = "libx264") -> RenderReport:
    """``convert``: where the frames become the encoder's YUV 4:2:0: "gl" (a shader
    pass from the image itself; half the bytes read back, BT.709, tagged), "ffmpeg" (RGB
    read back and converted by ffmpeg, BT.601 matrix, untagged: the frames of earlier
    versions, byte for byte), or "auto": gl on a GPU, ffmpeg on a CPU renderer such as
    llvmpipe, where ffmpeg's converter costs less than a shader pass.  PNG frames
    (``frames_dir``) need RGB, so they make it "ffmpeg".  ``encoder``: "libx264" (the
    CPU; the same bytes for the same frames), "h264_nvenc" (an NVIDIA GPU's encoder), or
    "auto" (NVENC where it works, else x264)."""
    import soundfile as sf

    from tonegraph.nodes.audio.sound import open_sound

    if Path(output).suffix.lower() not in CONTAINERS:
        raise RenderError(f"-o {output}: a render is H.264 video with its sound; name the file "
                          f"{', '.join(CONTAINERS[:-1])} or {CONTAINERS[-1]}")
    encoder = pick_encoder(encoder, size, crf, preset)
    job = prepare(patch, registry, audio, size, fps, start, end, sets, preroll)
    rt, sound, start, end = job.runtime, job.sound, job.start, job.end
    rate = rt.fps
    w, h = size
    output = Path(output)
    if not output.parent.is_dir():
        raise RenderError(f"-o {output}: the folder {display_path(output.parent)} does not exist")
    if frames_dir is not None:
        Path(frames_dir).mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as tmp:
        track = None
        if sound is not None:
            track = Path(tmp) / "track.wav"
            with open_sound(sound) as f:
                f.seek(int(round(start * f.samplerate)))
                data = f.read(int(round((end - start) * f.samplerate)), dtype="float32", always_2d=True)
                sf.write(track, data, f.samplerate, subtype="PCM_16")
        pixels = ("rgb24" if frames_dir is not None or convert == "ffmpeg"
                  else "yuv420p" if convert == "gl" else "auto")
        # ffmpeg starts at the first frame, whose shape says which pixels the window chose.
        sink = _Sink(lambda fmt: _writer(output, w, h, rate, track, crf, preset, fmt, encoder),
                     frames_dir, job.frames, quiet, on_error=rt.request_stop)
        window = rt.runner.nodes[job.window]
        window.sink, window.pixels = sink, pixels
        rt.ctx.sharing = rt.ctx.sharing | {"encoder"}
        t0 = time.perf_counter()
        meter = CpuMeter("drawing", "ffmpeg")
        try:
            with _stoppable(rt, sink, output):
                try:
                    with sink:
                        rt.run()
                finally:
                    sink.close()
        except KeyboardInterrupt:
            print(f"stopped at once: {output} is unfinished and will not play", file=sys.stderr)
            raise
    if sink.count == 0:
        raise RenderError("no frames were drawn (see the errors above)")
    return RenderReport(output, sink.count, sink.count / rate, time.perf_counter() - t0, (w, h), rate,
                        job.frames, meter.sample({"encoding": sink.cpu}))


@contextlib.contextmanager
def _stoppable(rt: Runtime, sink: "_Sink | None" = None, output: Path | None = None):
    """SIGINT and SIGTERM stop the render after the frame being drawn, saying so at once;
    the frames drawn so far are encoded and the file is closed, playable (main thread only).  A second
    one drops the frames still waiting for the encoder and closes the file with those
    encoded, still playable; a third stops at once (KeyboardInterrupt), the file then
    unfinished."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    signals = []

    def stop(signum, frame) -> None:  # noqa: ARG001
        signals.append(signum)
        if len(signals) == 1:
            rt.request_stop()
            if sink is not None:
                print(f"stopping: {output} gets the frames drawn so far (once more drops those "
                      "still waiting for the encoder)", file=sys.stderr)
        elif len(signals) == 2 and sink is not None:
            sink.drop = True
            print(f"stopping now: {output} keeps the frames encoded so far (once more leaves it "
                  "unfinished)", file=sys.stderr)
        else:
            raise KeyboardInterrupt
    old = {s: signal.signal(s, stop) for s in (signal.SIGINT, signal.SIGTERM)}
    try:
        yield
    finally:
        if not signals:       # once stopping, a second press still only drops frames
            for s, h in old.items():
                signal.signal(s, h)


#: x264's speed presets and the NVENC preset each is closest to (p1 fastest .. p7 best).
NVENC_PRESETS = {"ultrafast": "p1", "superfast": "p2", "veryfast": "p3", "faster": "p4", "fast": "p5",
                 "medium": "p5", "slow": "p6", "slower": "p7"}


def quality_args(encoder: str, crf: int, preset: str) -> list[str]:
    """The encoder's own options for a CRF and an x264 speed preset."""
    if encoder == "libx264":
        return ["-crf", str(crf), "-preset", preset]
    # NVENC's constant quality: 0 means "choose for me", so the best asked for is 1.
    return ["-rc", "vbr", "-cq", str(max(1, crf)), "-b:v", "0", "-preset", NVENC_PRESETS[preset]]


def encoder_works(encoder: str, size: tuple[int, int] = (256, 256), crf: int = 18,
                  preset: str = PRESET) -> str | None:
    """None if ffmpeg can encode with ``encoder`` here, at this size and with these
    settings (one frame is tried: NVENC needs the GPU and its driver, not just a build
    that names it, and has its own limits on sizes), else why not."""
    import subprocess

    import imageio_ffmpeg

    try:
        res = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-loglevel", "error",
                              "-f", "lavfi", "-i", f"color=black:s={size[0]}x{size[1]}", "-frames:v", "1",
                              "-pix_fmt", "yuv420p", "-c:v", encoder,
                              *quality_args(encoder, crf, preset), "-f", "null", "-"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return str(exc)
    lines = [ln.strip() for ln in res.stderr.splitlines() if ln.strip()]
    return None if res.returncode == 0 else (lines[0] if lines else f"ffmpeg exited {res.returncode}")


def pick_encoder(asked: str, size: tuple[int, int], crf: int, preset: str) -> str:
    if asked == "auto":
        return "h264_nvenc" if encoder_works("h264_nvenc", size, crf, preset) is None else "libx264"
    if asked != "libx264":
        why = encoder_works(asked, size, crf, preset)
        if why is not None:
            raise RenderError(f"--encoder {asked}: cannot encode with it here ({why[:200]})")
    return asked


def _writer(path: Path, w: int, h: int, fps: float, track: Path | None, crf: int, preset: str,
            pixels: str = "rgb24", encoder: str = "libx264"):
    import imageio_ffmpeg

    # Frames converted on the GL side are BT.709, limited range: said on the way in and
    # tagged on the way out, so players show the colours that were drawn.
    colour = (["-colorspace", "bt709", "-color_primaries", "bt709", "-color_trc", "bt709",
               "-color_range", "tv"] if pixels == "yuv420p" else [])
    quality = quality_args(encoder, crf, preset)
    gen = imageio_ffmpeg.write_frames(
        str(path), (w, h), fps=fps, codec=encoder, pix_fmt_in=pixels, pix_fmt_out="yuv420p",
        quality=None, macro_block_size=1, ffmpeg_log_level="error", input_params=colour or None,
        output_params=quality + ["-movflags", "+faststart"] + colour
        + (["-shortest"] if track is not None else []),
        audio_path=str(track) if track is not None else None, audio_codec="aac")
    gen.send(None)
    return gen


class _Sink:
    """Takes each frame from gl.window and hands it to a thread of its own, which feeds
    ffmpeg (and PNG files, if asked) while the next frames draw; the progress bar counts
    frames encoded.  At most ``QUEUE`` frames wait; a failure of the encoder is raised
    on the drawing side at the next frame, and at the end."""

    QUEUE = 4

    def __init__(self, open_writer, frames_dir: Path | None, total: int, quiet: bool,
                 on_error=lambda: None) -> None:
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn,
                                   TimeElapsedColumn, TimeRemainingColumn)

        self.open_writer = open_writer
        self.on_error = on_error      # told (on the encoder's thread) that encoding failed
        self.writer = None
        self.frames_dir = frames_dir
        self.count = 0
        self.error: BaseException | None = None
        self.drop = False             # frames still waiting are not encoded (a second Ctrl-C)
        self.queue: queue.Queue = queue.Queue(maxsize=self.QUEUE)
        self.cpu = 0.0                            # [s] the encoder thread's, once it has ended
        self.thread = threading.Thread(target=self._encode, name="encoder", daemon=True)
        self.progress = Progress(TextColumn("[bold]render[/]"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), TextColumn("eta"), TimeRemainingColumn(),
                                 disable=quiet)
        self.task = self.progress.add_task("", total=total)

    def __enter__(self):
        self.progress.start()
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self.queue.put(None)
        self.thread.join()
        self.progress.stop()
        if self.error is not None and exc[0] is None:
            raise RenderError(f"the encoder failed: {describe(self.error)}")

    def __call__(self, pixels: np.ndarray) -> None:
        if self.error is None:        # after a failure, frames are dropped and the run stops
            self.queue.put(pixels)

    def close(self) -> None:
        """Let ffmpeg finish the file (after :meth:`__exit__`)."""
        if self.writer is not None:
            self.writer.close()

    def _encode(self) -> None:
        try:
            self._encode_all()
        finally:
            self.cpu = time.thread_time()         # this thread's CPU, for the render's summary

    def _encode_all(self) -> None:
        while (pixels := self.queue.get()) is not None:
            if self.error is not None or self.drop:
                continue                   # failed or dropped: keep taking frames so drawing never blocks
            try:
                pixels = np.ascontiguousarray(pixels)      # a frame read bottom row first is a view
                if self.writer is None:
                    self.writer = self.open_writer("yuv420p" if pixels.ndim == 2 else "rgb24")
                self.writer.send(pixels)
                if self.frames_dir is not None:
                    from PIL import Image

                    Image.fromarray(pixels).save(Path(self.frames_dir) / f"frame-{self.count:06d}.png")
                self.count += 1
                self.progress.advance(self.task)
            except BaseException as exc:  # noqa: BLE001 - reported when the run has stopped
                self.error = exc
                self.on_error()
