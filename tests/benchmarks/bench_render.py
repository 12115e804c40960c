"""Offline render speed against its floor.

For tunnel, trails and seed-004 at 640x360 and 1280x720, on the machine's GL: the time
``tonegraph render`` takes (r, ``--convert auto``), and with the other converter, beside,
in the same run, (a) the same patch drawn offscreen on the offline clock with every
frame finished (``glFinish``) but nothing read back or encoded, and (b) ffmpeg alone
encoding the same frames, as the render hands them over, from a raw file, with the
render's settings.  A render that overlaps drawing, readback and encoding perfectly
takes the longer of a and b, unless the two together need more CPU than the machine
has: the floor is max(a, b, (CPU time of a + CPU time of b) / cores), and r / floor is
how far the render is from it (goal <= 1.3).  r / max(a, b) is printed too: on a
machine where a and b each keep most cores busy (llvmpipe and x264 on 2 cores), no
overlap brings it near 1.  Each of r, a and b is the faster of two runs (with its CPU
time), so a moment of other work on the machine is not counted.
"""

from __future__ import annotations

import os
import resource
import subprocess
import tempfile
import time
from pathlib import Path

from tonegraph.engine.registry import default_registry
from tonegraph.tools.render import PRESET, prepare, render

from .common import cpu_name, quick, table

ROOT = Path(__file__).resolve().parents[2]
PATCHES = ["tunnel", "trails", "seed-004-beat-sync"]
SIZES = [(640, 360), (1280, 720)]
RUNS = 2          # each measure is the faster of this many runs


class _Finish:
    """In place of gl.window's readback: each frame is finished, nothing is read."""

    def push(self, targets, flip=False):
        from pyglet import gl

        gl.glFinish()

    def drain(self):
        return iter(())

    def delete(self) -> None:
        pass


def _cpu(who: int) -> float:
    use = resource.getrusage(who)
    return use.ru_utime + use.ru_stime


def _drawn(patch: Path, reg, size, seconds: float, raw: Path | None,
           pixels: str = "auto") -> tuple[float, float, int, str]:
    """Seconds (wall, CPU) to draw the span; with ``raw``, the frames are written there
    as the render would hand them to ffmpeg, and their count and pixel format (what
    ``auto`` chose on this GL) are returned."""
    job = prepare(patch, reg, None, size, None, 0.0, seconds)
    win = job.runtime.runner.nodes[job.window]
    count = [0]
    if raw is None:
        from tonegraph.nodes.gl.context import GL

        win.sink = lambda px: None
        real, GL.readback = GL.readback, lambda self, planes, shape: _Finish()   # undone below
    else:
        out = raw.open("wb")

        def keep(px) -> None:
            out.write(px.tobytes())
            count[0] += 1
        win.sink, win.pixels = keep, pixels
    t0, c0 = time.perf_counter(), _cpu(resource.RUSAGE_SELF)
    try:
        job.runtime.run()
    finally:
        if raw is None:
            GL.readback = real
    took, cpu = time.perf_counter() - t0, _cpu(resource.RUSAGE_SELF) - c0
    if raw is not None:
        out.close()
    return took, cpu, count[0], win.pixels


def _encoded(raw: Path, pix_fmt: str, size, fps: float, out: Path, preset: str = PRESET
             ) -> tuple[float, float]:
    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-y", "-loglevel", "error", "-f", "rawvideo",
           "-pix_fmt", pix_fmt, "-s", f"{size[0]}x{size[1]}", "-r", f"{fps:g}", "-i", str(raw),
           "-c:v", "libx264", "-pix_fmt", "yuv420p", "-crf", "18", "-preset", preset, str(out)]
    t0, c0 = time.perf_counter(), _cpu(resource.RUSAGE_CHILDREN)
    subprocess.run(cmd, check=True)
    return time.perf_counter() - t0, _cpu(resource.RUSAGE_CHILDREN) - c0


def _ssim(encoded: Path, raw: Path, pix_fmt: str, size, fps: float) -> float:
    """SSIM (all planes) of an encoded video against the frames it was made from."""
    import re

    import imageio_ffmpeg

    cmd = [imageio_ffmpeg.get_ffmpeg_exe(), "-loglevel", "info", "-i", str(encoded), "-f", "rawvideo",
           "-pix_fmt", pix_fmt, "-s", f"{size[0]}x{size[1]}", "-r", f"{fps:g}", "-i", str(raw),
           "-lavfi", "[0:v][1:v]ssim", "-f", "null", "-"]
    said = subprocess.run(cmd, capture_output=True, text=True, check=True).stderr
    return float(re.findall(r"All:([\d.]+)", said)[-1])


#: x264's presets the table measures, fastest first; render's default is PRESET.
PRESETS = ("ultrafast", "superfast", "veryfast", "faster", "fast", "medium")


def run_presets(reg, seconds: float) -> None:
    """x264's presets on the same frames (tunnel at 1280x720, as render hands them over):
    encoding time and CPU, file size and SSIM against the frames, each preset the
    faster of RUNS encodes.  What render's default --preset is chosen by."""
    size = SIZES[1]
    rows = []
    with tempfile.TemporaryDirectory() as d:
        raw = Path(d) / "frames.raw"
        _, _, frames, pix_fmt = _drawn(ROOT / "graphs" / "tunnel.yaml", reg, size, seconds, raw)
        fps = frames / seconds
        base = None
        for preset in PRESETS:
            out = Path(d) / f"{preset}.mp4"
            wall, cpu = min(_encoded(raw, pix_fmt, size, fps, out, preset) for _ in range(RUNS))
            kb = out.stat().st_size / 1024
            base = base or (wall, kb)
            rows.append([preset + (" (render's default)" if preset == PRESET else ""),
                         f"{frames / wall:.0f}", f"{cpu:.1f}", f"{wall / base[0]:.2f}x", f"{kb:.0f}",
                         f"{kb / base[1]:.2f}x", f"{_ssim(out, raw, pix_fmt, size, fps):.4f}"])
    table(f"x264 presets, crf 18, on the same {frames} frames (tunnel, {size[0]}x{size[1]}, {cpu_name()}, "
          f"{os.cpu_count()} cores)", ["preset", "frames/s", "CPU s", "time vs ultrafast", "KiB",
                                       "size vs ultrafast", "SSIM"], rows)


def run() -> None:
    reg = default_registry(plugins=False)
    run_presets(reg, 1.0 if quick() else 5.0)
    seconds = 1.0 if quick() else 5.0
    cores = os.cpu_count() or 1
    rows = []
    for name in PATCHES:
        patch = ROOT / "graphs" / f"{name}.yaml"
        with tempfile.TemporaryDirectory() as d:       # warm-up: first loads, compiles, caches
            render(patch, reg, None, Path(d) / "w.mp4", SIZES[0], None, 0.0, 0.5, quiet=True)
        for size in SIZES:
            with tempfile.TemporaryDirectory() as d:
                rep = min((render(patch, reg, None, Path(d) / "r.mp4", size, None, 0.0, seconds, quiet=True)
                           for _ in range(RUNS)), key=lambda r: r.wall)
                drawn, drawn_cpu, _, _ = min(_drawn(patch, reg, size, seconds, None) for _ in range(RUNS))
                raw = Path(d) / "frames.raw"
                _, _, frames, pix_fmt = _drawn(patch, reg, size, seconds, raw)
                assert frames == rep.frames, (frames, rep.frames)
                chosen, other = ("gl", "ffmpeg") if pix_fmt == "yuv420p" else ("ffmpeg", "gl")
                alt = render(patch, reg, None, Path(d) / "c.mp4", size, None, 0.0, seconds, quiet=True,
                             convert=other)
                encoded, encoded_cpu = min(_encoded(raw, pix_fmt, size, rep.fps, Path(d) / "e.mp4")
                                           for _ in range(RUNS))
            floor = max(drawn, encoded, (drawn_cpu + encoded_cpu) / cores)
            rows.append([name, f"{size[0]}x{size[1]}", f"{rep.frames}",
                         f"{rep.wall:.2f} s ({chosen})",
                         f"{alt.wall:.2f} s ({other})",
                         f"{drawn:.2f} s / {drawn_cpu:.1f}", f"{encoded:.2f} s / {encoded_cpu:.1f}",
                         f"{floor:.2f} s", f"{rep.wall / floor:.2f}", f"{rep.wall / max(drawn, encoded):.2f}",
                         f"{rep.seconds / rep.wall:.2f}x"])
    table(f"Offline render to H.264 (crf 18, {PRESET}), {seconds:g} s of each patch on {cores} cores: "
          f"the render (r) against its floor (each the faster of {RUNS} runs)",
          ["patch", "size", "frames", "r: render (converter)", "other converter",
           "a: drawn, no readback (wall / CPU s)", "b: ffmpeg alone (wall / CPU s)",
           "floor", "r / floor", "r / max(a, b)", "speed vs real time"], rows)
