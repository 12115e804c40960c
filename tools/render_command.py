"""``tonegraph render``: a patch over a song, to H.264 video with its sound."""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

from tonegraph.engine.args import add_mkdir, number, whole
from tonegraph.engine.cpu import said

#: x264's default preset, chosen by make bench's table of presets on the same frames
#: (tests/benchmarks/bench_render.py: speed, size and SSIM per preset).
PRESET = "veryfast"


def _size(text: str) -> tuple[int, int]:
    m = re.fullmatch(r"\s*(\d+)\s*[xX]\s*(\d+)\s*", text)
    if not m:
        raise argparse.ArgumentTypeError(f"expected WIDTHxHEIGHT like 1280x720, got {text!r}")
    w, h = int(m.group(1)), int(m.group(2))
    if not (16 <= w <= 16384 and 16 <= h <= 16384):
        raise argparse.ArgumentTypeError(f"{text}: width and height must be 16..16384")
    return w, h


def add_parsers(sub, with_nodes_path) -> None:
    p = add_mkdir(with_nodes_path(sub.add_parser("render", help="render a patch over a song to an MP4 video")))
    p.add_argument("patch", metavar="PATCH")
    p.add_argument("--audio", type=Path, metavar="FILE",
                   help="the song: replaces the source of the patch's audio.file nodes")
    p.add_argument("-o", "--output", required=True, type=Path, metavar="OUT.mp4")
    p.add_argument("--size", type=_size, default=(1280, 720), metavar="WxH", help="default 1280x720")
    p.add_argument("--fps", type=number(0, 1000, above=True), metavar="N",
                   help="frame rate (default: the patch's)")
    p.add_argument("--start", type=number(0), default=0.0, metavar="S", help="start in the song [s]")
    p.add_argument("--end", type=number(0, above=True), metavar="S",
                   help="end in the song [s] (default: its end)")
    p.add_argument("--preroll", type=number(0, 3600), default=8.0, metavar="S",
                   help="let the analysers hear this much of the song before --start (default 8)")
    p.add_argument("--frames", type=Path, metavar="DIR", help="also write every frame as PNG here")
    p.add_argument("--crf", type=whole(0, 51), default=18, metavar="N",
                   help="H.264 quality, 0-51, lower is better")
    p.add_argument("--preset", default=PRESET,
                   choices=["ultrafast", "superfast", "veryfast", "faster", "fast", "medium", "slow", "slower"],
                   help=f"x264 speed/size trade-off (default {PRESET}; slower makes smaller files)")
    p.add_argument("--convert", choices=["auto", "gl", "ffmpeg"], default="auto",
                   help="where frames become YUV for H.264: gl (a shader pass, half the bytes read "
                        "back, BT.709), ffmpeg (RGB read back, as --frames needs), or auto (the "
                        "default: gl on a GPU, ffmpeg on a CPU renderer)")
    p.add_argument("--encoder", choices=["libx264", "h264_nvenc", "auto"], default="libx264",
                   help="H.264 encoder: libx264 (the CPU, the default), h264_nvenc (an NVIDIA GPU), "
                        "or auto (NVENC where it works)")
    p.add_argument("--set", action="append", default=[], metavar="NODE.PARAM=VALUE",
                   help="override a param (repeatable)")
    p.add_argument("-q", "--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_render)


def cmd_render(args: argparse.Namespace) -> int:
    from tonegraph.engine.registry import default_registry

    from .render import render

    registry = default_registry([Path(p) for p in args.nodes_path or []])
    report = render(Path(args.patch), registry, args.audio, args.output, args.size, args.fps,
                    args.start, args.end, args.frames, args.quiet, args.set, args.crf, args.preset,
                    args.preroll, args.convert, args.encoder)
    w, h = report.size
    print(f"{report.output}: {report.frames} frames, {w}x{h} at {report.fps:g} fps, "
          f"{report.seconds:.2f} s in {report.wall:.1f} s ({report.seconds / report.wall:.2f}x real time)")
    if report.cpu and not args.quiet:
        print(said(report.cpu))
    if report.frames < report.planned:
        print(f"stopped: {report.output} holds the first {report.frames} of {report.planned} frames",
              file=sys.stderr)
        return 130
    return 0
