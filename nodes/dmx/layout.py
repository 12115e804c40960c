"""LED layouts: where each pixel of each LED fixture sits in the picture, the order of
its colours, and where its channels go (sACN/Art-Net universes, or DDP's pixel index).

A layout file (YAML) names its fixtures, in wiring order::

    frame: [1280, 720]          # the units below (default [1, 1]: fractions of the frame)
    fixtures:
      bar:  {type: strip, from: [64, 648], to: [1216, 648], count: 300, order: GRB}
      wall: {type: matrix, rect: [320, 72, 640, 320], size: [32, 16], serpentine: true,
             start: top-left, along: rows, universe: 3}
      halo: {type: ring, centre: [640, 360], radius: 216, count: 24, angle: 0, order: RGBW}

Positions are measured from the frame's top left corner, x to the right and y down, in
the units of ``frame``: with the picture's own size there, a ring is round and a square
is square whatever the frame's shape.

``strip``: ``count`` pixels evenly from ``from`` (the first, nearest the controller) to
``to`` (the last).  ``matrix``: ``size`` [columns, rows] cells filling ``rect`` [x, y,
width, height]; the first pixel is in the ``start`` corner (top-left, top-right,
bottom-left, bottom-right), the wiring runs ``along`` rows or columns, and with
``serpentine`` every other run comes back the other way (zig-zag).  ``ring``: ``count``
pixels round ``centre`` at ``radius``, the first at ``angle`` degrees clockwise from 12
o'clock, going ``clockwise`` or ``anticlockwise`` (``direction``).

``order`` is the order the fixture takes its colours in: RGB (the default), GRB, BGR...,
or with a white chip RGBW, GRBW, WRGB...  The white channel carries the light the three
colours share (the least of them, taken in light, after gamma), and the colours the rest.

Addresses: pixels are packed into universes whole, 170 to a universe of three channels
(510 of 512) or 128 of four, going on in the next universe.  A fixture starts where
``universe`` and ``channel`` (1-512) say, or where the fixture before it ended (the first
at universe 1, channel 1), in the next universe when not one pixel fits in what is
left.  Over DDP, which addresses a controller's pixels by index, a fixture's first
pixel is ``pixel`` (0 to 65536, counting from 0 as WLED counts LEDs), or the one after the fixture
before it.  Two fixtures on the same channels or pixels are refused.

Each pixel takes the mean colour of its share of the picture: the cell of a matrix, and
a square as wide as the spacing of a strip's or a ring's pixels (16 samples over it).

The file is read safely and within bounds (engine/files.py: 1 MiB, :data:`MAX_VALUES`
values), and a layout holds at most :data:`MAX_PIXELS` pixels.  A bad file is a
:class:`LayoutError`: one line, with the line of the file it is about.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import yaml

from tonegraph.engine.files import read_bounded, read_yaml, TEXT_LIMIT

CHANNELS = 512            # channels of one DMX universe
LAST_UNIVERSE = 63999     # the highest sACN universe (E1.31); Art-Net's is 32767
MAX_PIXELS = 65536        # pixels one layout may hold (385 universes of RGB)
MAX_VALUES = 20_000       # YAML values a layout file may hold
DDP_RGB, DDP_RGBW = 0x0B, 0x1B   # DDP data types: RGB / RGBW, 8 bits a channel (C R TTT SSS)
COMMON = ("type", "order", "universe", "channel", "pixel")
KINDS = {
    "strip": ("from", "to", "count"),
    "matrix": ("rect", "size", "start", "along", "serpentine"),
    "ring": ("centre", "radius", "count", "angle", "direction"),
}
CORNERS = ("top-left", "top-right", "bottom-left", "bottom-right")


class LayoutError(ValueError):
    """A layout file that cannot be used: one line, and the line of the file (or None)."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(message)
        self.line = line


class _Bad(ValueError):
    """A problem found in the parsed data, at a path of keys (found in the text later)."""

    def __init__(self, message: str, *where) -> None:
        super().__init__(message)
        self.where = where


@dataclass
class Fixture:
    """One fixture's pixels: where each samples the picture (``at``, its centre, and
    ``span``, the width and height it averages over, as fractions of the frame from its
    top left), its colour ``order``, and its address: each pixel's ``universe`` and
    first ``channel`` (1-based), and the DDP index of its first pixel (``pixel``)."""

    name: str
    order: str
    at: np.ndarray
    span: np.ndarray
    universe: np.ndarray = field(default=None)
    channel: np.ndarray = field(default=None)
    pixel: int = 0

    @property
    def count(self) -> int:
        return len(self.at)

    @property
    def width(self) -> int:
        """Channels a pixel takes (3, or 4 with white)."""
        return len(self.order)


@dataclass
class Layout:
    """Every fixture of a layout file, and what turns sampled colours into what is sent:
    :meth:`channels` (the value of every channel, in layout order), then :meth:`dmx`
    (a frame of 512 per universe in :attr:`universes`) or :meth:`ddp` (one buffer)."""

    fixtures: list[Fixture]
    at: np.ndarray                 # (pixels, 2) all fixtures' pixels, in order
    span: np.ndarray
    universes: tuple[int, ...]     # the universes the pixels are on, ascending
    white: np.ndarray              # (pixels,) bool: the pixel has a white channel
    source: np.ndarray             # per channel value: pixel * 4 + component (R G B W)
    dmx_index: np.ndarray          # per channel value: where in the (universes, 512) frame
    ddp_index: np.ndarray          # per channel value: its byte in the DDP buffer
    ddp_size: int
    #: DDP's data type for the layout (RGB or RGBW), None when its fixtures mix the two.
    ddp_type: int | None

    @property
    def count(self) -> int:
        return len(self.at)

    def fixture(self, name: str) -> Fixture:
        return next(f for f in self.fixtures if f.name == name)

    def channels(self, rgb: np.ndarray, gamma: float, brightness: float) -> np.ndarray:
        """The value (uint8) of every channel of every pixel, in layout order, from the
        sampled colours ``rgb`` (pixels x 3, uint8): to light by ``gamma``, the white
        taken out where there is a white channel, scaled by ``brightness``, each in its
        fixture's order."""
        curve = (np.arange(256) / 255.0) ** float(gamma) * (float(brightness) * 255.0)
        light = np.zeros((len(rgb), 4))
        light[:, :3] = curve[rgb]
        white = np.where(self.white, light[:, :3].min(axis=1), 0.0)
        light[:, :3] -= white[:, None]
        light[:, 3] = white
        return (light.reshape(-1)[self.source] + 0.5).astype(np.uint8)

    def dmx(self, values: np.ndarray) -> np.ndarray:
        """The channel values as a frame of 512 per universe (``universes`` x 512)."""
        frame = np.zeros(len(self.universes) * CHANNELS, np.uint8)
        frame[self.dmx_index] = values
        return frame.reshape(len(self.universes), CHANNELS)

    def ddp(self, values: np.ndarray) -> np.ndarray:
        """The channel values as DDP's one buffer, each pixel at its index."""
        frame = np.zeros(self.ddp_size, np.uint8)
        frame[self.ddp_index] = values
        return frame


def read(path: Path) -> Layout:
    """The layout in a file; raises LayoutError (see the module docstring)."""
    try:
        doc = read_yaml(path, "layout file", MAX_VALUES)
    except OSError as exc:
        raise LayoutError(f"cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise LayoutError(f"not YAML: {getattr(exc, 'problem', None) or str(exc).splitlines()[0]}",
                          mark.line + 1 if mark else None) from None
    try:
        return parse(doc)
    except _Bad as exc:
        raise LayoutError(str(exc), _line_of(path, exc.where)) from None


def parse(doc) -> Layout:
    """A layout from a layout file's data; raises _Bad."""
    if not isinstance(doc, dict) or not isinstance(doc.get("fixtures"), dict) or not doc["fixtures"]:
        raise _Bad("a layout file has 'fixtures' (name: {type: strip, matrix or ring, ...}) "
                   "and may have 'frame' ([width, height], the units of positions)")
    for key in doc:
        if key not in ("frame", "fixtures"):
            raise _Bad(f"no key '{key}' (a layout file has 'frame' and 'fixtures')", key)
    frame = _numbers(doc.get("frame", [1, 1]), 2, "frame", ("frame",), positive=True)
    fixtures = []
    for name, spec in doc["fixtures"].items():
        if not isinstance(spec, dict):
            raise _Bad(f"fixture '{name}' needs a mapping: {{type: strip, matrix or ring, ...}}",
                       "fixtures", name)
        fixtures.append(_fixture(str(name), spec, frame))
        if sum(f.count for f in fixtures) > MAX_PIXELS:
            raise _Bad(f"fixture '{name}': the layout has more than {MAX_PIXELS} pixels", "fixtures", name)
    _address(fixtures, doc["fixtures"])
    return _wire(fixtures)


def _fixture(name: str, spec: dict, frame: np.ndarray) -> Fixture:
    where = ("fixtures", name)
    kind = spec.get("type")
    if kind not in KINDS:
        raise _Bad(f"fixture '{name}': type must be one of {', '.join(KINDS)}, got {kind!r}", *where, "type")
    for key in spec:
        if key not in COMMON + KINDS[kind]:
            raise _Bad(f"fixture '{name}': no key '{key}' (a {kind} has {', '.join(KINDS[kind])}; "
                       f"every fixture {', '.join(COMMON)})", *where, key)
    order = str(spec.get("order", "RGB")).upper()
    if sorted(order) not in (sorted("RGB"), sorted("RGBW")):
        raise _Bad(f"fixture '{name}': order must be R, G and B (and W) once each, as RGB, GRB "
                   f"or GRBW, got {spec.get('order')!r}", *where, "order")

    def get(key, length=None, default=None, positive=False):
        value = spec.get(key, default)
        if value is None:
            raise _Bad(f"fixture '{name}': a {kind} needs '{key}'", *where)
        if length is None:
            return value
        return _numbers(value, length, f"fixture '{name}': {key}", where + (key,), positive)

    if kind == "strip":
        count = _count(spec, name, where)
        start, end = get("from", 2), get("to", 2)
        at = start + np.linspace(0.0, 1.0, count)[:, None] * (end - start) if count > 1 else start[None]
        step = float(np.hypot(*(end - start))) / max(count - 1, 1)
        span = np.tile(step, (count, 2))
    elif kind == "matrix":
        x, y, w, h = get("rect", 4)
        cols, rows = (int(v) for v in _whole(get("size"), name, where + ("size",), "size", 2))
        corner = get("start", default="top-left")
        along = get("along", default="rows")
        if corner not in CORNERS:
            raise _Bad(f"fixture '{name}': start must be one of {', '.join(CORNERS)}, got {corner!r}",
                       *where, "start")
        if along not in ("rows", "columns"):
            raise _Bad(f"fixture '{name}': along must be rows or columns, got {along!r}", *where, "along")
        serpentine = get("serpentine", default=False)
        if not isinstance(serpentine, bool):
            raise _Bad(f"fixture '{name}': serpentine is true or false, got {serpentine!r}", *where,
                       "serpentine")
        if w <= 0 or h <= 0:
            raise _Bad(f"fixture '{name}': rect is [x, y, width, height] with a width and height "
                       f"above 0", *where, "rect")
        if cols * rows > MAX_PIXELS:
            raise _Bad(f"fixture '{name}': the layout has more than {MAX_PIXELS} pixels", *where, "size")
        inner = cols if along == "rows" else rows
        run, step = np.divmod(np.arange(cols * rows), inner)
        if serpentine:
            step = np.where(run % 2 == 1, inner - 1 - step, step)
        col, row = (step, run) if along == "rows" else (run, step)
        if corner.endswith("right"):
            col = cols - 1 - col
        if corner.startswith("bottom"):
            row = rows - 1 - row
        at = np.stack([x + (col + 0.5) * w / cols, y + (row + 0.5) * h / rows], axis=1)
        span = np.tile((w / cols, h / rows), (cols * rows, 1))
    else:
        count = _count(spec, name, where)
        centre = get("centre", 2)
        radius = get("radius", 1, positive=True)[0]
        angle = get("angle", 1, default=0)[0]
        turn = get("direction", default="clockwise")
        if turn not in ("clockwise", "anticlockwise"):
            raise _Bad(f"fixture '{name}': direction must be clockwise or anticlockwise, got {turn!r}",
                       *where, "direction")
        sign = 1.0 if turn == "clockwise" else -1.0
        a = np.radians(angle + sign * 360.0 * np.arange(count) / count)
        at = centre + radius * np.stack([np.sin(a), -np.cos(a)], axis=1)     # y down: 12 o'clock is -y
        span = np.tile(2.0 * math.pi * radius / count, (count, 2))
    at, span = at / frame, span / frame
    if not np.all((at >= -1e-9) & (at <= 1.0 + 1e-9)):
        raise _Bad(f"fixture '{name}': its pixels must lie in the frame (0 to {frame[0]:g} across, "
                   f"0 to {frame[1]:g} down)", *where)
    return Fixture(name, order, np.clip(at, 0.0, 1.0), span)


def _address(fixtures: list[Fixture], specs: dict) -> None:
    """Each fixture's universe and channel per pixel, and its first DDP pixel (see the
    module docstring); refuses fixtures on the same channels or pixels."""
    universe, channel, pixel = 1, 1, 0          # where the next fixture goes by default
    for fx in fixtures:
        spec, where = specs[fx.name], ("fixtures", fx.name)
        w = fx.width
        if "universe" in spec or "channel" in spec:
            if "universe" in spec:
                universe = _int(spec, "universe", 0, LAST_UNIVERSE, fx.name, where)
            channel = _int(spec, "channel", 1, CHANNELS, fx.name, where) if "channel" in spec else 1
            if (CHANNELS - channel + 1) // w == 0:
                raise _Bad(f"fixture '{fx.name}': channel {channel} leaves no room for a pixel of {w} "
                           f"channels", *where, "channel")
        elif (CHANNELS - channel + 1) // w == 0:
            universe, channel = universe + 1, 1
        first = (CHANNELS - channel + 1) // w          # pixels in the first universe
        per = CHANNELS // w
        i = np.arange(fx.count)
        later = np.maximum(i - first, 0)
        fx.universe = np.where(i < first, universe, universe + 1 + later // per)
        fx.channel = np.where(i < first, channel + i * w, 1 + (later % per) * w)
        if fx.universe[-1] > LAST_UNIVERSE:
            raise _Bad(f"fixture '{fx.name}': runs past universe {LAST_UNIVERSE}", *where)
        universe, channel = int(fx.universe[-1]), int(fx.channel[-1]) + w
        fx.pixel = _int(spec, "pixel", 0, MAX_PIXELS, fx.name, where) if "pixel" in spec else pixel
        pixel = fx.pixel + fx.count
    _no_overlap(fixtures, lambda f: (int(f.universe[0]) * CHANNELS + int(f.channel[0]) - 1,
                                     int(f.universe[-1]) * CHANNELS + int(f.channel[-1]) - 1 + f.width),
                lambda key: f"universe {key // CHANNELS} channel {key % CHANNELS + 1}")
    _no_overlap(fixtures, lambda f: (f.pixel, f.pixel + f.count), lambda key: f"DDP pixel {key}")


def _no_overlap(fixtures: list[Fixture], extent, name) -> None:
    spans = sorted((extent(f), i) for i, f in enumerate(fixtures))
    for ((_, end), i), ((start, _), j) in zip(spans, spans[1:]):
        if start < end:
            a, b = sorted((i, j))
            raise _Bad(f"fixture '{fixtures[b].name}' overlaps '{fixtures[a].name}' at {name(start)}",
                       "fixtures", fixtures[b].name)


def _wire(fixtures: list[Fixture]) -> Layout:
    universes = tuple(sorted({int(u) for f in fixtures for u in np.unique(f.universe)}))
    source, dmx, ddp, white = [], [], [], []
    base = 0
    for f in fixtures:
        comp = np.array(["RGBW".index(c) for c in f.order])
        pix = np.arange(f.count)[:, None]
        source.append(((base + pix) * 4 + comp).ravel())
        slot = np.searchsorted(universes, f.universe)[:, None]
        dmx.append((slot * CHANNELS + f.channel[:, None] - 1 + np.arange(f.width)).ravel())
        ddp.append(((f.pixel + pix) * f.width + np.arange(f.width)).ravel())
        white.append(np.full(f.count, f.width == 4))
        base += f.count
    widths = {f.width for f in fixtures}
    ddp_index = np.concatenate(ddp)
    return Layout(fixtures, np.concatenate([f.at for f in fixtures]), np.concatenate([f.span for f in fixtures]),
                  universes, np.concatenate(white), np.concatenate(source), np.concatenate(dmx), ddp_index,
                  int(ddp_index.max()) + 1, (DDP_RGBW if widths == {4} else DDP_RGB) if len(widths) == 1 else None)


def _numbers(value, length: int, what: str, where: tuple, positive: bool = False) -> np.ndarray:
    if isinstance(value, (int, float)) and not isinstance(value, bool) and length == 1:
        value = [value]
    ok = (isinstance(value, list) and len(value) == length
          and all(isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v) for v in value))
    if not ok or (positive and min(value) <= 0):
        kind = "a number" if length == 1 else f"{length} numbers"
        raise _Bad(f"{what} must be {kind}{' above 0' if positive else ''}, got {value!r}", *where)
    return np.asarray(value, dtype=np.float64)


def _whole(value, name: str, where: tuple, key: str, length: int) -> list[int]:
    values = value if isinstance(value, list) else [value]
    if len(values) != length or not all(isinstance(v, int) and not isinstance(v, bool)
                                        and 1 <= v <= MAX_PIXELS for v in values):
        what = "a whole number" if length == 1 else f"{length} whole numbers"
        raise _Bad(f"fixture '{name}': {key} must be {what} from 1 to {MAX_PIXELS}, got {value!r}", *where)
    return values


def _count(spec: dict, name: str, where: tuple) -> int:
    return _whole(spec.get("count"), name, where + ("count",), "count", 1)[0]


def _int(spec: dict, key: str, lo: int, hi: int, name: str, where: tuple) -> int:
    value = spec[key]
    if isinstance(value, bool) or not isinstance(value, int) or not lo <= value <= hi:
        raise _Bad(f"fixture '{name}': {key} must be a whole number from {lo} to {hi}, got {value!r}",
                   *where, key)
    return value


def _line_of(path: Path, where: tuple) -> int | None:
    """The line (1-based) of the file that the keys ``where`` lead to, as far as they go."""
    try:
        node = yaml.compose(read_bounded(path, TEXT_LIMIT, "layout file"), Loader=yaml.SafeLoader)
    except (OSError, yaml.YAMLError):
        return None
    line = None
    for key in where:
        if not isinstance(node, yaml.MappingNode):
            break
        found = next(((k, v) for k, v in node.value if k.value == str(key)), None)
        if found is None:
            break
        line = found[0].start_mark.line + 1
        node = found[1]
    return line
