"""Command-line argument types: every number range-checked by argparse, every output
folder checked before any work starts.

A bad value ends the command with argparse's usage line and one ``error:`` line naming
the option, the value and the range (exit status 2), never a traceback.
"""

from __future__ import annotations

import argparse
import math
from pathlib import Path


def number(lo: float | None = None, hi: float | None = None, *, above: bool = False):
    """A finite float within ``lo``..``hi`` (``above``: strictly greater than ``lo``)."""
    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number, got {text!r}")
        if lo is not None and (v <= lo if above else v < lo) or hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"{text} is outside {_range(lo, hi, above)}")
        return v
    parse.__name__ = "number"
    return parse


def whole(lo: int | None = None, hi: int | None = None):
    """An integer within ``lo``..``hi``."""
    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
        if lo is not None and v < lo or hi is not None and v > hi:
            raise argparse.ArgumentTypeError(f"{text} is outside {_range(lo, hi, False)}")
        return v
    parse.__name__ = "whole number"
    return parse


#: A UDP/TCP port; 0 asks the system for any free one.
port = whole(0, 65535)
seed = whole(0, 2 ** 32 - 1)
samplerate = whole(8000, 384000)


def _range(lo, hi, above: bool) -> str:
    def f(v) -> str:
        return str(v) if isinstance(v, int) else f"{v:g}"
    if lo is not None and hi is not None:
        return f"{f(lo)}..{f(hi)}" if not above else f"({f(lo)}, {f(hi)}]"
    if lo is not None:
        return f"{'>' if above else '>='} {f(lo)}"
    return f"<= {f(hi)}"


def add_mkdir(p: argparse.ArgumentParser) -> argparse.ArgumentParser:
    p.add_argument("--mkdir", action="store_true", help="make missing output folders")
    return p


#: Options that name something the command writes: the folder it goes in must exist
#: (or --mkdir makes it).  For options naming a folder to fill (draw, sounds,
#: --frames), that folder itself may be new; the one above it must exist.
OUTPUTS = ("output", "plot", "samples", "checkpoint", "frames")


def check_outputs(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse (argparse error, exit 2) an output whose folder is missing, unless --mkdir
    is given, which makes it."""
    for name in OUTPUTS:
        value = getattr(args, name, None)
        if not value or value == "-":
            continue
        folder = Path(value).expanduser().parent
        if folder.is_dir():
            continue
        option = "-o/--output" if name == "output" else f"--{name}"
        if folder.exists():
            parser.error(f"{option}: {folder} is not a folder")
        if getattr(args, "mkdir", False):
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                parser.error(f"{option}: cannot make {folder}: {exc.strerror or exc}")
        else:
            parser.error(f"{option}: the folder {folder} does not exist (make it, or add --mkdir)")


#: What each command needs beyond the core install: (extra, modules).
COMMAND_EXTRAS = {
    "render": ("gl", ("pyglet", "imageio_ffmpeg", "PIL")),
    "train": ("ml", ("torch", "matplotlib", "PIL")),
    "draw": ("ml", ("PIL",)),
    "analyze": ("analyze", ("sklearn", "matplotlib", "distributed")),
}


def check_extras(parser: argparse.ArgumentParser, args: argparse.Namespace) -> None:
    """Refuse a command whose optional libraries are not installed, naming the extra."""
    from .node import missing_modules

    need = COMMAND_EXTRAS.get(getattr(args, "command", ""))
    if need:
        missing = missing_modules(f"tonegraph {args.command}", *need)
        if missing:
            parser.exit(1, f"error: {missing}\n")


def networks(text: str) -> tuple:
    """``--osc-allow``: addresses and networks, comma-separated, or ``none``."""
    from .control import trusted_networks

    try:
        return trusted_networks(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
