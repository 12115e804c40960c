"""dmx.pixels: LED layouts (where each pixel samples the picture, its colour order and
address), the channels made from sampled colours (gamma, brightness, white), pixels
sampled from a real gl node's frame (Mesa EGL, headless), and for real: several sACN
universes read back from OLA, and DDP packets checked against the protocol's
specification (http://www.3waylabs.com/ddp/) by a test receiver.

OLA listens only on a real interface (never loopback), so the OLA test makes a network
namespace of its own with a veth pair (OLA on 10.99.0.1); the DDP receiver listens on
127.0.0.1 inside a namespace of its own (tests/netns.py).  Nothing leaves them."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import numpy as np
import pytest

from ..conftest import ROOT, load_ok, run_offline

#: A 300-pixel strip, a 32 x 16 matrix and a ring of 24, in a frame of 1280 x 720 units.
LAYOUT = """
frame: [1280, 720]
fixtures:
  bar:  {type: strip, from: [64, 648], to: [1216, 648], count: 300, order: GRB}
  wall: {type: matrix, rect: [320, 72, 640, 320], size: [32, 16], serpentine: true, universe: 3}
  halo: {type: ring, centre: [640, 360], radius: 216, count: 24, order: RGBW}
"""


def layout_of(text: str, tmp_path: Path):
    from tonegraph.nodes.dmx import layout

    path = tmp_path / "leds.yml"
    path.write_text(textwrap.dedent(text))
    return layout.read(path)


# -- where each pixel samples the picture --------------------------------------------------

def test_a_strip_runs_from_its_first_pixel_to_its_last(tmp_path):
    leds = layout_of(LAYOUT, tmp_path)
    bar = leds.fixture("bar")
    assert bar.at.shape == (300, 2)
    assert np.allclose(bar.at[0], (64 / 1280, 0.9)) and np.allclose(bar.at[-1], (1216 / 1280, 0.9))
    assert np.allclose(np.diff(bar.at[:, 0]), (1152 / 1280) / 299)
    # Each pixel takes the mean of its share of the strip: a square as wide as the spacing.
    assert np.allclose(bar.span[0], (1152 / 299 / 1280, 1152 / 299 / 720))


@pytest.mark.parametrize("start,along,serpentine,first,second,last_of_run,next_run", [
    ("top-left", "rows", True, (0, 0), (1, 0), (31, 0), (31, 1)),
    ("top-left", "rows", False, (0, 0), (1, 0), (31, 0), (0, 1)),
    ("bottom-right", "rows", True, (31, 15), (30, 15), (0, 15), (0, 14)),
    ("top-right", "columns", True, (31, 0), (31, 1), (31, 15), (30, 15)),
    ("bottom-left", "columns", False, (0, 15), (0, 14), (0, 0), (1, 15)),
])
def test_a_matrix_is_wired_from_its_start_corner_along_rows_or_columns(
        tmp_path, start, along, serpentine, first, second, last_of_run, next_run):
    leds = layout_of(f"""
        fixtures:
          wall: {{type: matrix, rect: [0.25, 0.1, 0.5, 0.8], size: [32, 16], start: {start},
                 along: {along}, serpentine: {str(serpentine).lower()}}}
        """, tmp_path)
    at = leds.fixture("wall").at
    cell = lambda c, r: (0.25 + (c + 0.5) * 0.5 / 32, 0.1 + (r + 0.5) * 0.8 / 16)  # noqa: E731
    run = 32 if along == "rows" else 16
    assert at.shape == (512, 2)
    for k, (c, r) in ((0, first), (1, second), (run - 1, last_of_run), (run, next_run)):
        assert np.allclose(at[k], cell(c, r)), (k, at[k], (c, r))
    assert len({tuple(p) for p in np.round(at, 9)}) == 512          # every cell once
    assert np.allclose(leds.fixture("wall").span, (0.5 / 32, 0.8 / 16))


def test_a_ring_goes_clockwise_from_its_start_angle_round_in_frame_units(tmp_path):
    leds = layout_of(LAYOUT + "  dial: {type: ring, centre: [640, 360], radius: 100, count: 4, "
                              "angle: 90, direction: anticlockwise}\n", tmp_path)
    halo = leds.fixture("halo").at * (1280, 720)            # back in frame units
    assert np.allclose(halo[0], (640, 360 - 216))            # 12 o'clock
    assert np.allclose(halo[6], (640 + 216, 360))            # a quarter on: 3 o'clock
    assert np.allclose(halo[12], (640, 360 + 216))
    assert np.allclose(np.hypot(*(halo - (640, 360)).T), 216)  # round in units, whatever the frame
    dial = leds.fixture("dial").at * (1280, 720)
    assert np.allclose(dial, [(740, 360), (640, 260), (540, 360), (640, 460)])
    arc = 2 * math.pi * 216 / 24
    assert np.allclose(leds.fixture("halo").span[0], (arc / 1280, arc / 720))


# -- addresses: universes, channels, DDP pixels -----------------------------------------------

def test_pixels_fill_170_to_a_universe_then_go_on_in_the_next(tmp_path):
    leds = layout_of(LAYOUT, tmp_path)
    bar, wall, halo = (leds.fixture(n) for n in ("bar", "wall", "halo"))
    # 300 RGB pixels: 170 in universe 1 (channels 1-510), 130 in universe 2.
    assert (bar.universe[0], bar.channel[0]) == (1, 1)
    assert (bar.universe[169], bar.channel[169]) == (1, 508)
    assert (bar.universe[170], bar.channel[170]) == (2, 1)
    assert (bar.universe[299], bar.channel[299]) == (2, 388)
    # 512 pixels from universe 3: 170, 170, 170 and 2.
    assert np.bincount(wall.universe)[3:].tolist() == [170, 170, 170, 2]
    # RGBW: 128 to a universe (all 512 channels), going on after the matrix.
    assert (halo.universe[0], halo.channel[0]) == (6, 7) and (halo.universe[23], halo.channel[23]) == (6, 99)
    assert leds.universes == (1, 2, 3, 4, 5, 6)
    assert (bar.pixel, wall.pixel, halo.pixel) == (0, 300, 812)


def test_a_fixture_that_does_not_fit_the_rest_of_a_universe_starts_the_next(tmp_path):
    leds = layout_of("""
        fixtures:
          a: {type: strip, from: [0, 0], to: [1, 0], count: 170}
          b: {type: strip, from: [0, 1], to: [1, 1], count: 2, order: RGBW}
          c: {type: strip, from: [0, 1], to: [1, 1], count: 200, order: RGBW, universe: 9, channel: 505}
        """, tmp_path)
    b, c = leds.fixture("b"), leds.fixture("c")
    assert (b.universe[0], b.channel[0]) == (2, 1)      # channels 511-512 hold no RGBW pixel
    assert (c.universe[0], c.channel[0], c.universe[2], c.channel[2]) == (9, 505, 10, 1)
    assert leds.universes == (1, 2, 9, 10, 11)


def test_channels_take_each_fixtures_order_gamma_brightness_and_white(tmp_path):
    leds = layout_of("""
        fixtures:
          a: {type: strip, from: [0, 0], to: [1, 0], count: 2, order: GRB}
          b: {type: strip, from: [0, 1], to: [1, 1], count: 1, order: RGBW}
          c: {type: strip, from: [0, 1], to: [1, 1], count: 1, order: WBGR}
        """, tmp_path)
    rgb = np.array([[255, 128, 64], [10, 20, 30], [255, 128, 64], [255, 128, 64]], np.uint8)
    plain = leds.channels(rgb, gamma=1.0, brightness=1.0)
    assert plain.dtype == np.uint8
    assert plain.tolist() == [128, 255, 64, 20, 10, 30,     # GRB
                              191, 64, 0, 64,               # RGBW: the white the three share
                              64, 0, 64, 191]               # WBGR
    curved = leds.channels(rgb, gamma=2.2, brightness=0.5)
    lin = (np.array([255, 128, 64]) / 255.0) ** 2.2
    expect_rgbw = np.round(np.r_[lin - lin.min(), lin.min()] * 0.5 * 255)
    assert curved[:2].tolist() == [round(lin[1] * 0.5 * 255), round(0.5 * 255)]
    assert curved[6:10].tolist() == expect_rgbw.tolist()   # white taken from light, not from codes


def test_a_universe_frame_and_a_ddp_frame_hold_the_channels_where_they_are_addressed(tmp_path):
    leds = layout_of(LAYOUT, tmp_path)
    rgb = np.zeros((812 + 24, 3), np.uint8)
    rgb[170] = (1, 2, 3)                       # the strip's 171st pixel: universe 2, channel 1
    rgb[300 + 511] = (4, 5, 6)                 # the matrix's last: universe 6, channels 4-6
    rgb[812] = (7, 7, 9)                       # the ring's first: universe 6, 7-10, RGBW
    values = leds.channels(rgb, gamma=1.0, brightness=1.0)
    dmx = leds.dmx(values)
    assert dmx.shape == (6, 512) and dmx.dtype == np.uint8
    assert dmx[1, :3].tolist() == [2, 1, 3]                       # GRB
    assert dmx[5, 3:10].tolist() == [4, 5, 6, 0, 0, 2, 7]
    assert int(dmx.sum()) == 2 + 1 + 3 + 4 + 5 + 6 + 2 + 7


def test_ddp_takes_one_pixel_format_and_places_pixels_by_index(tmp_path):
    mixed = layout_of(LAYOUT, tmp_path)
    assert mixed.ddp_type is None                          # RGB and RGBW: DDP names one
    leds = layout_of("""
        fixtures:
          a: {type: strip, from: [0, 0], to: [1, 0], count: 3}
          b: {type: strip, from: [0, 1], to: [1, 1], count: 2, pixel: 10}
        """, tmp_path)
    assert leds.ddp_type == 0x0B                           # RGB, 8 bits a channel (00 001 011)
    rgb = np.arange(15, dtype=np.uint8).reshape(5, 3) + 1
    frame = leds.ddp(leds.channels(rgb, gamma=1.0, brightness=1.0))
    assert len(frame) == 12 * 3
    assert frame[:9].tolist() == list(range(1, 10)) and frame[30:].tolist() == list(range(10, 16))
    assert not frame[9:30].any()
    rgbw = layout_of("fixtures:\n  a: {type: ring, centre: [0.5, 0.5], radius: 0.2, count: 8, order: GRBW}\n",
                     tmp_path)
    assert rgbw.ddp_type == 0x1B                           # RGBW (00 011 011)


# -- bad layouts: one line, with the file's line ----------------------------------------------

@pytest.mark.parametrize("text,line,message", [
    ("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 3}\n  b: {type: blob}\n", 3,
     "fixture 'b': type must be one of strip, matrix, ring, got 'blob'"),
    ("fixtures:\n  a:\n    type: matrix\n    rect: [0, 0, 1, 1]\n    size: [32, 16]\n    serpentin: true\n",
     6, "fixture 'a': no key 'serpentin' (a matrix has"),
    ("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 3, order: RGBX}\n", 2,
     "fixture 'a': order must be R, G and B (and W) once each"),
    ("fixtures:\n  a: {type: strip, from: [0, 0], to: [1.5, 0], count: 3}\n", 2,
     "fixture 'a': its pixels must lie in the frame"),
    ("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 200, universe: 2}\n"
     "  b: {type: strip, from: [0, 0], to: [1, 0], count: 3, universe: 3, channel: 1}\n", 3,
     "fixture 'b' overlaps 'a' at universe 3 channel 1"),
    ("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 3, channel: 511}\n", 2,
     "fixture 'a': channel 511 leaves no room for a pixel of 3 channels"),
    ("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 1, universe: 63999, channel: 508}\n"
     "  b: {type: strip, from: [0, 0], to: [1, 0], count: 2}\n", 3, "fixture 'b': runs past universe 63999"),
    ("fixtures:\n  a: {type: ring, centre: [0.5, 0.5], radius: 0.1, count: 0}\n", 2,
     "fixture 'a': count must be a whole number"),
    ("fixtures: [1, 2]\n", None, "a layout file has 'fixtures'"),
    ("fixtures:\n  a: {type: strip\n", None, "not YAML"),
])
def test_a_bad_layout_is_one_line_naming_its_line(tmp_path, text, line, message):
    from tonegraph.nodes.dmx import layout

    with pytest.raises(layout.LayoutError) as err:
        layout_of(text, tmp_path)
    assert message in str(err.value) and "\n" not in str(err.value)
    if line is not None:
        assert err.value.line == line, str(err.value)


def test_a_bad_layout_is_a_patch_error_with_file_and_line(write_patch, registry, tmp_path):
    from tonegraph.engine.graph import load_graph

    (tmp_path / "leds.yml").write_text("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: -3}\n")
    patch = write_patch("""
        nodes:
          sh: {type: gl.shader, params: {source: "void mainImage(out vec4 c, in vec2 f) { c = vec4(1.0); }"}}
          px: {type: dmx.pixels, params: {layout: leds.yml}, in: {image: sh}}
        """)
    _, errors = load_graph(patch, registry)
    text = " | ".join(map(str, errors))
    assert len(errors) == 1 and "leds.yml:2: fixture 'a': count must be a whole number" in text, text


@pytest.mark.parametrize("params,message", [
    ("{layout: leds.yml, protocol: ddp}", "DDP names one pixel format"),
    ("{layout: leds.yml, protocol: ddp, host: ''}", "DDP goes to one controller"),
    ("{layout: leds.yml, protocol: artnet, host: ''}", "Art-Net pixels go to one controller"),
    ("{layout: zero.yml, protocol: sacn}", "an sACN universe is 1-63999"),
    ("{layout: far.yml, protocol: artnet}", "an Art-Net universe is 0-32767"),
])
def test_a_layout_the_protocol_cannot_carry_is_a_patch_error(write_patch, registry, tmp_path, params, message):
    from tonegraph.engine.graph import load_graph

    (tmp_path / "leds.yml").write_text(textwrap.dedent(LAYOUT))
    (tmp_path / "zero.yml").write_text("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 3, "
                                       "universe: 0}\n")
    (tmp_path / "far.yml").write_text("fixtures:\n  a: {type: strip, from: [0, 0], to: [1, 0], count: 3, "
                                      "universe: 40000}\n")
    patch = write_patch(f"""
        nodes:
          sh: {{type: gl.shader, params: {{source: "void mainImage(out vec4 c, in vec2 f) {{ c = vec4(1.0); }}"}}}}
          px: {{type: dmx.pixels, params: {params}, in: {{image: sh}}}}
        """)
    _, errors = load_graph(patch, registry)
    assert message in " | ".join(map(str, errors))


# -- sampled from a real gl node's frame (Mesa EGL, headless) --------------------------------

#: x and y of the frame (y from the top) as red and green, blue a half.  A shader's
#: fragment y counts from the bottom, as GL's does.
POSITION = ('"void mainImage(out vec4 c, in vec2 f) '
            '{ c = vec4(f.x / iResolution.x, 1.0 - f.y / iResolution.y, 0.5, 1.0); }"')


def position_channels(leds):
    """The channels of every pixel of a layout as it should read the POSITION frame."""
    x, y = leds.at.T
    rgb = np.round(np.stack([x * 255, y * 255, np.full_like(x, 127.5)], axis=1)).astype(np.uint8)
    return leds.channels(rgb, gamma=1.0, brightness=1.0)


def pixels_patch(write_patch, tmp_path, layout: str, source: str, params: str = "gamma: 1") -> Path:
    (tmp_path / "leds.yml").write_text(textwrap.dedent(layout))
    return write_patch(f"""
        patch: {{fps: 30}}
        nodes:
          sh: {{type: gl.shader, params: {{source: {source}, size: [320, 180]}}}}
          px: {{type: dmx.pixels, params: {{layout: leds.yml, {params}}}, in: {{image: sh}}}}
        """)


def test_each_pixel_samples_the_frame_where_the_layout_puts_it(write_patch, registry, tmp_path):
    """A frame whose red is x and green is y: every pixel of the strip, the
    serpentine matrix and the ring reads its own position back (within 8-bit rounding),
    in its fixture's order."""
    path = pixels_patch(write_patch, tmp_path, LAYOUT, POSITION)
    rt = run_offline(path, registry, duration=0.2)
    assert rt.report.faults == 0, rt.runner.faults
    want = position_channels(layout_of(LAYOUT, tmp_path)).astype(int)
    got = rt.runner.nodes["px"].out["frame"]
    assert got.shape == want.shape == (300 * 3 + 512 * 3 + 24 * 4,)
    assert np.abs(got - want).max() <= 3, np.abs(got - want).argmax()
    # The matrix's 33rd pixel starts the second row at its right end (serpentine).
    wall = got[900:900 + 512 * 3].reshape(512, 3)
    assert abs(wall[32, 0] - wall[31, 0]) <= 1 and wall[32, 0] > wall[0, 0] + 100
    assert wall[32, 1] >= wall[31, 1] + 5                   # a row (7 levels) lower


@pytest.mark.parametrize("params,expect", [
    ("gamma: 1", {"bar": [128, 255, 64], "halo": [191, 64, 0, 64]}),
    ("gamma: 2.2, brightness: 0.5", None),
])
def test_the_node_sends_colours_in_order_with_white_gamma_and_brightness(write_patch, registry, tmp_path,
                                                                        params, expect):
    flat = '"void mainImage(out vec4 c, in vec2 f) { c = vec4(1.0, 128.0 / 255.0, 64.0 / 255.0, 1.0); }"'
    path = pixels_patch(write_patch, tmp_path, LAYOUT, flat, params)
    rt = run_offline(path, registry, duration=0.2)
    got = rt.runner.nodes["px"].out["frame"].astype(int)
    bar, wall, halo = got[:900].reshape(-1, 3), got[900:2436].reshape(-1, 3), got[2436:].reshape(-1, 4)
    if expect is None:                       # to light, then halved
        lin = (np.array([255, 128, 64]) / 255.0) ** 2.2 * 127.5
        expect = {"bar": np.round(lin[[1, 0, 2]]).tolist(),
                  "halo": np.round(np.r_[lin - lin.min(), lin.min()]).tolist()}
    assert (bar == expect["bar"]).all() and (halo == expect["halo"]).all()
    assert (wall == [expect["bar"][1], expect["bar"][0], expect["bar"][2]]).all()


def test_more_pixels_than_a_row_of_the_sampling_texture_read_their_own_places(write_patch, registry, tmp_path):
    """2,048 pixels (two rows of the texture they are sampled into): each reads its own
    position back."""
    big = "fixtures:\n  wall: {type: matrix, rect: [0.1, 0.1, 0.8, 0.8], size: [64, 32], along: columns}\n"
    rt = run_offline(pixels_patch(write_patch, tmp_path, big, POSITION), registry, duration=0.2)
    leds = layout_of(big, tmp_path)
    got = rt.runner.nodes["px"].out["frame"].reshape(-1, 3)
    assert got.shape == (2048, 3)
    assert np.abs(got[:, :2] - leds.at * 255).max() <= 2.5


def test_the_shipped_patch_drives_a_300_pixel_strip_and_a_32_by_16_matrix(registry, tmp_path, monkeypatch):
    from tonegraph.nodes.dmx import layout

    leds = layout.read(ROOT / "graphs" / "leds.yml")
    assert [(f.name, f.count) for f in leds.fixtures] == [("strip", 300), ("matrix", 512)]
    assert leds.universes == (1, 2, 3, 4, 5, 6) and leds.ddp_type == layout.DDP_RGB
    monkeypatch.chdir(tmp_path)
    rt = run_offline(ROOT / "graphs" / "pixels.yaml", registry, duration=2.0)
    assert rt.report.faults == 0, rt.runner.faults
    frame = rt.runner.nodes["leds"].out["frame"]
    assert frame.shape == (812 * 3,) and frame.max() > 30 and len(np.unique(frame)) > 20


# -- for real: OLA reads several universes back; a receiver checks DDP against its spec -----

#: In a network namespace of the test's own (tests/netns.py) with a veth pair, OLA on
#: 10.99.0.1 (tg0: OLA listens on no loopback) as user nobody, one input port per
#: universe; a real engine (``tonegraph run``) runs the patch given.  Waits until every
#: universe has light, reads them all, waits for the engine to stop, reads them again.
OLA_PROBE = r"""
import json, subprocess, sys, time, urllib.request
cfg = json.loads(sys.argv[1])
for cmd in ("ip link add tg0 type veth peer name tg1", "ip addr add 10.99.0.1/24 dev tg0",
            "ip link set tg0 up", "ip link set tg1 up"):
    subprocess.run(cmd.split(), check=True)
ola = subprocess.Popen(["runuser", "-u", "nobody", "--", "olad", "-c", cfg["dir"] + "/ola", "--http-port",
                        "9191", "--rpc-port", "9192", "--no-register-with-dns-sd", "-l", "1"],
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

def get(path):
    with urllib.request.urlopen("http://127.0.0.1:9191" + path, timeout=2) as reply:
        return json.loads(reply.read())

def until(ready, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        try:
            got = ready()
            if got:
                return got
        except OSError:
            pass
        time.sleep(0.1)
    return None

def frames():
    return [get(f"/get_dmx?u={u}")["dmx"] for u in cfg["universes"]]

out = {}
try:
    up = until(lambda: {u["id"] for u in get("/json/universe_plugin_list")["universes"]} >= set(cfg["universes"]), 20)
    if not up:
        raise SystemExit("OLA did not patch its input ports")
    run = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", cfg["patch"], "--headless",
                            "--no-osc", "--duration", str(cfg["duration"])], stderr=subprocess.PIPE, text=True)
    out["playing"] = until(lambda: (lambda f: f if all(any(u) for u in f) else None)(frames()), cfg["duration"])
    out["log"] = run.communicate(timeout=60)[1][-3000:]
    out["rc"] = run.returncode
    out["after"] = until(lambda: (lambda f: f if not any(any(u) for u in f) else None)(frames()), 5) or frames()
finally:
    ola.terminate()
    ola.wait(timeout=10)
print(json.dumps(out))
"""


@pytest.mark.parametrize("protocol", ["sacn", "artnet"])
def test_ola_reads_back_every_universe_of_the_strip_and_the_matrix(protocol):
    """The shipped layout (graphs/leds.yml: a 300-pixel strip on universes 1-2, a 32 x 16
    matrix on 3-6) over sACN or Art-Net to OLA's input: each universe OLA holds (all six
    over sACN, the first four over Art-Net, where OLA's device has four ports) has the
    channels of the frame's pixels where the layout addresses them, and all black once
    the show stops."""
    from tonegraph.nodes.dmx import layout

    from ..netns import in_network_namespace
    from ..osc_peers import OLA_PLUGINS

    if shutil.which("olad") is None:
        pytest.fail("olad is missing: 'make setup' installs the Debian package ola")
    universes = [1, 2, 3, 4, 5, 6] if protocol == "sacn" else [1, 2, 3, 4]
    folder = Path(tempfile.mkdtemp(prefix="tonegraph-pixels-"))      # olad runs as nobody
    try:
        ola = folder / "ola"
        ola.mkdir()
        for name in OLA_PLUGINS + ("osc",):
            (ola / f"ola-{name}.conf").write_text("enabled = false\n")
        # Input port k listens to the sACN universe (Art-Net: net 0, sub-net 0, universe) of
        # the OLA universe it is patched to.
        if protocol == "sacn":
            (ola / "ola-e131.conf").write_text(f"enabled = true\ninput_ports = {len(universes)}\n"
                                               "output_ports = 0\nignore_preview = true\n")
            (ola / "ola-port.conf").write_text("".join(f"11-1-I-{k} = {u}\n" for k, u in enumerate(universes)))
        else:
            (ola / "ola-artnet.conf").write_text("enabled = true\nnet = 0\nsubnet = 0\noutput_ports = 0\n")
            (ola / "ola-port.conf").write_text("".join(f"2-1-I-{k} = {u}\n" for k, u in enumerate(universes)))
        for path in [folder, ola, *ola.iterdir()]:
            path.chmod(0o777 if path.is_dir() else 0o666)
        shutil.copy(ROOT / "graphs" / "leds.yml", folder / "leds.yml")
        (folder / "patch.yaml").write_text(textwrap.dedent(f"""
            patch: {{fps: 30}}
            nodes:
              sh:  {{type: gl.shader, params: {{source: {POSITION}, size: [320, 180]}}}}
              px:  {{type: dmx.pixels, params: {{layout: leds.yml, protocol: {protocol}, host: 10.99.0.1,
                                                gamma: 1}}, in: {{image: sh}}}}
            """))
        cfg = {"dir": str(folder), "patch": str(folder / "patch.yaml"), "universes": universes, "duration": 8}
        res = in_network_namespace(sys.executable, "-c", OLA_PROBE, json.dumps(cfg), timeout=120)
    finally:
        shutil.rmtree(folder, ignore_errors=True)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and "Traceback" not in out["log"], out["log"]
    assert out["playing"] is not None, ("OLA did not see every universe", out["log"])
    leds = layout.read(ROOT / "graphs" / "leds.yml")
    want = leds.dmx(position_channels(leds)).astype(int)[:len(universes)]
    playing = np.array([u + [0] * (512 - len(u)) for u in out["playing"]])
    assert playing.shape == (len(universes), 512)
    assert np.abs(playing - want).max() <= 3, np.abs(playing - want).max(axis=1)
    assert playing[1, 390:].sum() == 0 and playing[:, 510:].sum() == 0    # past the pixels
    if protocol == "sacn":
        assert playing[5, :6].all() and playing[5, 6:].sum() == 0          # the matrix's last two
    assert not any(any(u) for u in out["after"])                             # black when it stops


#: In a network namespace of the test's own (tests/netns.py): a real engine (``tonegraph
#: run``) runs the patch given while a socket at each [address, port] of "listen" (unicast,
#: or a multicast group joined on lo) takes every datagram with the time the kernel
#: received it (SO_TIMESTAMPNS: when it was sent, however late this process reads it,
#: into a buffer large enough to lose none).  Once the engine has stopped, a marker
#: datagram to each says that everything sent there has arrived.
CAPTURE_PROBE = r"""
import json, selectors, socket, struct, subprocess, sys, time
SO_RCVBUFFORCE, SO_TIMESTAMPNS = 33, 35          # Linux
cfg = json.loads(sys.argv[1])
MARK = b"end of capture"
sel = selectors.DefaultSelector()
for addr, port in cfg["listen"]:
    s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 16 << 20)
    s.setsockopt(socket.SOL_SOCKET, SO_TIMESTAMPNS, 1)
    s.bind((addr, port))
    if addr.startswith("239."):
        s.setsockopt(socket.IPPROTO_IP, socket.IP_ADD_MEMBERSHIP,
                     socket.inet_aton(addr) + socket.inet_aton("0.0.0.0"))
    sel.register(s, selectors.EVENT_READ, addr)
run = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "run", cfg["patch"], "--headless",
                        "--no-osc", "--duration", str(cfg["duration"])], stderr=subprocess.PIPE, text=True)
got = {addr: [] for addr, _ in cfg["listen"]}
waiting, marked, deadline = set(got), False, time.monotonic() + 120
while waiting and time.monotonic() < deadline:
    if run.poll() is not None and not marked:
        marker = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        for addr, port in cfg["listen"]:
            marker.sendto(MARK, (addr, port))
        marked = True
    for key, _ in sel.select(0.2):
        data, notes, _, _ = key.fileobj.recvmsg(65536, socket.CMSG_SPACE(16))
        if data == MARK:
            waiting.discard(key.data)
            sel.unregister(key.fileobj)
            continue
        sec, nsec = next(struct.unpack("qq", d) for level, kind, d in notes if kind == SO_TIMESTAMPNS)
        got[key.data].append((sec + nsec * 1e-9, data.hex()))
if waiting:
    raise SystemExit(f"the marker never reached {sorted(waiting)}")
print(json.dumps({"got": got, "rc": run.wait(), "log": run.stderr.read()[-3000:]}))
"""


def capture(patch: Path, listen: list[tuple[str, int]], duration: float) -> dict:
    """What arrived at each address while a real engine ran ``patch`` (CAPTURE_PROBE):
    {"got": {address: [(time, bytes), ...]}, "rc": ..., "log": ...}."""
    from ..netns import in_network_namespace

    cfg = {"patch": str(patch), "listen": listen, "duration": duration}
    res = in_network_namespace(sys.executable, "-c", CAPTURE_PROBE, json.dumps(cfg), timeout=150)
    assert res.returncode == 0, res.stderr[-3000:]
    out = json.loads(res.stdout.strip().splitlines()[-1])
    assert out["rc"] == 0 and "Traceback" not in out["log"], out["log"]
    out["got"] = {a: [(t, bytes.fromhex(p)) for t, p in ps] for a, ps in out["got"].items()}
    return out


def ddp_frames(packets: list[bytes], kind: int = 0x0B) -> list[bytes]:
    """Frames from DDP packets, each checked against the specification: a 10-byte header
    (no timecode), version 1, sequence numbers 1-15 one after another, the data type
    (RGB 0x0B or RGBW 0x1B at 8 bits: C R TTT SSS), the display as destination, each
    packet's data where the one before ended, at most 1440 bytes of whole pixels, and
    PUSH on the frame's last packet only."""
    width = {0x0B: 3, 0x1B: 4}[kind]
    frames, data, sequence = [], b"", None
    for p in packets:
        flags, seq, dest = p[0], p[1], p[3]
        offset, length = int.from_bytes(p[4:8], "big"), int.from_bytes(p[8:10], "big")
        assert flags & 0xC0 == 0x40, f"version bits {flags >> 6}"
        assert flags & 0x1E == 0, f"timecode, storage, reply or query set: {flags:#04x}"
        assert 1 <= seq <= 15 and (sequence is None or seq == sequence % 15 + 1), (sequence, seq)
        assert (p[2], dest) == (kind, 1)
        assert length == len(p) - 10 and 0 < length <= 1440 and length % width == 0, (length, len(p))
        assert offset == len(data), (offset, len(data))
        sequence, data = seq, data + p[10:]
        if flags & 0x01:                                  # PUSH: the frame is whole
            frames.append(data)
            data = b""
    assert data == b"", "packets after the last PUSH"
    return frames


def test_a_ddp_frame_is_split_into_packets_of_whole_pixels_numbered_1_to_15():
    from tonegraph.nodes.dmx import ddp

    frame = bytes(range(256)) * 15 + bytes(160)                # 4000 bytes: 1000 RGBW pixels
    packets, after = ddp.packets(frame, 15, 0x1B)
    assert [len(p) - 10 for p in packets] == [1440, 1440, 1120] and after == 3
    assert [p[1] for p in packets] == [15, 1, 2]                # 15 wraps round to 1, never 0
    assert ddp_frames(packets, kind=0x1B) == [frame]
    one, after = ddp.packets(bytes(30), after, 0x0B)
    assert len(one) == 1 and one[0][:4] == bytes([0x41, 3, 0x0B, 1]) and after == 4


def test_ddp_frames_arrive_whole_per_the_specification_at_44_hz_with_a_render_running(tmp_path):
    """The shipped layout (812 RGB pixels, 2,436 bytes: packets of 1,440 and 996) over DDP
    to a receiver on 127.0.0.1:4048: every packet is as the DDP specification says, the
    frames put together hold the frame's pixels where the layout puts them, they arrive
    44 +- 1 times a second while the patch draws at 1280 x 720, and the last is black."""
    from tonegraph.nodes.dmx import layout

    shutil.copy(ROOT / "graphs" / "leds.yml", tmp_path / "leds.yml")
    (tmp_path / "patch.yaml").write_text(textwrap.dedent(f"""
        patch: {{fps: 60}}
        nodes:
          sh:  {{type: gl.shader, params: {{source: {POSITION}, size: [1280, 720]}}}}
          px:  {{type: dmx.pixels, params: {{layout: leds.yml, protocol: ddp, host: 127.0.0.1, gamma: 1}},
                 in: {{image: sh}}}}
          win: {{type: gl.window, params: {{size: [1280, 720]}}, in: {{image: sh}}}}
        """))
    got = capture(tmp_path / "patch.yaml", [("127.0.0.1", 4048)], duration=5)["got"]["127.0.0.1"]
    packets = [p for _, p in got]
    assert [len(p) for p in packets[:2]] == [10 + 1440, 10 + 996]
    frames = ddp_frames(packets)
    assert {len(f) for f in frames} == {812 * 3}
    leds = layout.read(ROOT / "graphs" / "leds.yml")
    want = leds.ddp(position_channels(leds)).astype(int)
    lit = np.frombuffer(frames[-2], np.uint8).astype(int)
    assert np.abs(lit - want).max() <= 3
    assert not any(frames[-1])                                              # black when it stops
    pushed = np.array([t for t, p in got if p[0] & 0x01][:-1])
    pushed = pushed[pushed > pushed[0] + 1.0]                               # past the start
    rate = (len(pushed) - 1) / (pushed[-1] - pushed[0])
    print(f"DDP: {rate:.2f} frames/s over {pushed[-1] - pushed[0]:.1f} s, longest gap "
          f"{np.diff(pushed).max() * 1e3:.0f} ms")
    assert 43.0 <= rate <= 45.0 and np.diff(pushed).max() < 4 / 44.0


def test_sacn_with_no_host_sends_each_universe_to_its_own_multicast_group(tmp_path):
    """host '' over sACN: universe u's packets go to 239.255.0.u and only there, each with
    light while the show runs, then black and E1.31's three stream-terminated packets;
    nothing reaches this machine's own address."""
    from .test_dmx import e131

    shutil.copy(ROOT / "graphs" / "leds.yml", tmp_path / "leds.yml")
    (tmp_path / "patch.yaml").write_text(textwrap.dedent(f"""
        patch: {{fps: 30}}
        nodes:
          sh:  {{type: gl.shader, params: {{source: {POSITION}, size: [320, 180]}}}}
          px:  {{type: dmx.pixels, params: {{layout: leds.yml, host: "", gamma: 1}}, in: {{image: sh}}}}
        """))
    groups = [f"239.255.0.{u}" for u in range(1, 7)]
    got = capture(tmp_path / "patch.yaml", [(g, 5568) for g in groups] + [("127.0.0.1", 5568)], 3)["got"]
    assert got["127.0.0.1"] == []
    for u, group in enumerate(groups, start=1):
        packets = [e131(p) for _, p in got[group]]
        assert len(packets) > 20 and {p["universe"] for p in packets} == {u}, group
        assert [p["terminated"] for p in packets[-4:]] == [False, True, True, True]
        assert any(packets[-5]["dmx"]) and not any(packets[-4]["dmx"])     # light, then black
