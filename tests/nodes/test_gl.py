"""gl nodes for real: Mesa's EGL offscreen (llvmpipe), a real window under Xvfb, and
rendered MP4 files read back with ffmpeg."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from tonegraph.engine.runtime import Runtime

from ..conftest import ROOT, load_ok, tonegraph, wait_for


def frames_of(path, registry, duration=0.2, node="win", **kw):
    """Run a patch offline (headless, EGL) and return every frame gl.window ``node`` drew
    (with ``node=None``: a dict of every window's frames)."""
    rt = Runtime(load_ok(path, registry), registry, offline=True, duration=duration, **kw)
    frames: dict[str, list] = {}
    for nid, n in rt.runner.nodes.items():
        if n.type_name == "gl.window":
            n.sink = lambda px, nid=nid: frames.setdefault(nid, []).append(px.copy())
    rt.report = rt.run()
    return (frames if node is None else frames[node]), rt


def patch(write_patch, nodes: str, size=(64, 32), fps=30, name="patch.yaml"):
    return write_patch(f"patch: {{fps: {fps}}}\nnodes:\n{nodes}"
                       f"  win: {{type: gl.window, params: {{size: [{size[0]}, {size[1]}]}}, in: {{image: sh}}}}\n",
                       name=name)


GRADIENT = ('"void mainImage(out vec4 c, in vec2 f) '
            '{ c = vec4(f.x / iResolution.x, 0.25, 0.75, 1.0); }"')


def test_headless_shader_pixels_read_back_through_egl(registry, write_patch):
    path = patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {GRADIENT}}}}}\n")
    frames, rt = frames_of(path, registry)
    img = frames[-1]
    assert img.shape == (32, 64, 3) and img.dtype == np.uint8 and rt.report.faults == 0
    # Pixel centres: x = (i + 0.5) / 64 of full scale, 8 bits per channel.
    expected = (np.arange(64) + 0.5) / 64 * 255
    assert np.abs(img[10, :, 0].astype(float) - expected).max() <= 1.01
    assert np.all(np.abs(img[:, :, 1].astype(int) - 64) <= 1)
    assert np.all(np.abs(img[:, :, 2].astype(int) - 191) <= 1)


def test_window_fits_an_image_of_another_shape_whole_or_filling_never_stretched(registry, write_patch):
    # A 2:1 image: left half red, right half blue, into a square frame.
    src = ('"void mainImage(out vec4 c, in vec2 f) { c = f.x < iResolution.x * 0.5 ? '
           'vec4(1.0, 0.0, 0.0, 1.0) : vec4(0.0, 0.0, 1.0, 1.0); }"')
    got = {}
    for fit in ("contain", "cover"):
        path = write_patch(f"""
            patch: {{fps: 30}}
            nodes:
              sh:  {{type: gl.shader, params: {{source: {src}, size: [128, 64]}}}}
              win: {{type: gl.window, params: {{size: [64, 64], fit: {fit}}}, in: {{image: sh}}}}
            """, name=f"{fit}.yaml")
        frames, _ = frames_of(path, registry)
        got[fit] = frames[-1].astype(int)
    contain, cover = got["contain"], got["cover"]
    assert (contain[:14] == 0).all() and (contain[-14:] == 0).all()      # bars above and below
    assert (contain[20:44, :30] == (255, 0, 0)).all()                    # the whole width shown
    assert not (cover == 0).all(axis=2).any()                            # no bar anywhere
    assert (cover[:, :30] == (255, 0, 0)).all() and (cover[:, 34:] == (0, 0, 255)).all()


def test_blend_places_an_image_of_another_shape_whole_or_filling_never_stretched(registry, write_patch):
    black = '"void mainImage(out vec4 c, in vec2 f) { c = vec4(0.0, 0.0, 0.0, 1.0); }"'
    white = ('"void mainImage(out vec4 c, in vec2 f) { c = vec4(vec3(length(f / iResolution.xy - 0.5) < 0.5 '
             '? 1.0 : 0.5), 1.0); }"')
    got = {}
    for fit in ("contain", "cover"):
        path = write_patch(f"""
            patch: {{fps: 30}}
            nodes:
              a:   {{type: gl.shader, params: {{source: {black}, size: [64, 32]}}}}
              b:   {{type: gl.shader, params: {{source: {white}, size: [32, 32]}}}}
              sh:  {{type: gl.blend, params: {{mode: mix, amount: 1.0, fit: {fit}}}, in: {{a: a, b: b}}}}
              win: {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: sh}}}}
            """, name=f"b{fit}.yaml")
        frames, _ = frames_of(path, registry)
        got[fit] = frames[-1].astype(int)
    contain, cover = got["contain"], got["cover"]
    assert (contain[:, :14] == 0).all() and (contain[:, -14:] == 0).all()   # a beside b
    assert contain[16, 32].min() == 255 and abs(contain[1, 20].max() - 128) <= 1  # b whole, round
    assert (cover[:, :4] > 100).all()                                       # b fills the width
    assert cover[16, 2].max() == 255                                        # its circle, cut: wider than tall


def test_uniforms_from_the_graph_numbers_vectors_events_and_time(registry, write_patch):
    src = ('"uniform float gain; uniform vec3 tint; uniform float hit; '
           'void mainImage(out vec4 c, in vec2 f) { c = vec4(abs(tint) * 0.2 * gain, hit); '
           'if (f.x < 8.0) c = vec4(fract(iTime), float(iFrame) / 255.0, 0.0, 1.0); }"')
    path = patch(write_patch, f"""\
  k:   {{type: control.constant, params: {{value: 0.5}}}}
  t:   {{type: ml.latent, params: {{dim: 3, speed: 0, idle: 0, smooth: 0}}}}
  tr:  {{type: control.trigger, params: {{threshold: 0.5}}, in: {{value: sq}}}}
  sq:  {{type: control.lfo, params: {{shape: square, frequency: 1}}}}
  sh:  {{type: gl.shader, params: {{source: {src}, pulse_decay: 0.1}}, in: {{gain: k, tint: t, hit: tr}}}}
""", fps=30)
    frames, rt = frames_of(path, registry, duration=1.0)
    assert rt.report.faults == 0
    px = frames[3][16, 32].astype(int)
    tint = np.abs(rt.runner.nodes["t"].out["out"]) * 0.2 * 0.5
    assert np.abs(px - np.clip(tint, 0, 1) * 255).max() <= 1.01
    # Frame k shows time k / fps and frame number k.
    for k in (1, 7, 20):
        assert abs(int(frames[k][16, 2, 0]) - round((k / 30) % 1 * 255)) <= 1
        assert abs(int(frames[k][16, 2, 1]) - k) <= 1


def test_a_vector_fills_an_array_of_vectors_uniform(write_patch):
    """Eight numbers into 'uniform vec2 pts[4]': four points, in order."""
    from tonegraph.engine import ports
    from tonegraph.engine.node import Node
    from tonegraph.engine.registry import default_registry

    class Points(Node):
        type_name = "test.points"
        outputs = {"out": ports.vector()}

        def process(self, tick):
            self.out["out"] = np.array([0.25, 0, 0, 0.5, 0, 0, 0.75, 0], np.float32)

    reg = default_registry(plugins=False)
    reg.add(Points, __name__)
    path = patch(write_patch, "  pts: {type: test.points}\n"
                 "  sh: {type: gl.shader, params: {source: \"uniform vec2 pts[4]; void mainImage("
                 "out vec4 c, in vec2 f) { c = vec4(pts[0].x, pts[1].y, pts[3].x, 1.0); }\"}, "
                 "in: {pts: pts}}\n", size=(8, 8))
    frames, rt = frames_of(path, reg)
    assert rt.report.faults == 0
    assert np.abs(frames[-1][4, 4].astype(int) - [64, 128, 191]).max() <= 1


def test_event_pulse_jumps_and_decays(registry, write_patch):
    src = '"uniform float hit; void mainImage(out vec4 c, in vec2 f) { c = vec4(hit, 0.0, 0.0, 1.0); }"'
    path = patch(write_patch, f"""\
  sq:  {{type: control.lfo, params: {{shape: square, frequency: 0.5, phase: 0.5}}}}
  tr:  {{type: control.trigger, params: {{threshold: 0.0}}, in: {{value: sq}}}}
  sh:  {{type: gl.shader, params: {{source: {src}, pulse_decay: 0.1}}, in: {{hit: tr}}}}
""", fps=30)
    frames, _ = frames_of(path, registry, duration=3.0)
    red = np.array([f[16, 32, 0] for f in frames], dtype=float)
    k = int(np.argmax(red))
    assert k + 15 < len(red), red
    assert red[k] >= 250                                          # the jump to 1
    assert abs(red[k + 3] - 255 * np.exp(-3 / 30 / 0.1)) <= 3   # e^-1 after 0.1 s
    assert red[k + 15] < 5


def test_event_strengths_set_the_pulse_height(write_patch):
    """strengths 1: a soft event (0.3) pulses to 0.3 and a loud one (1.0) to 1; strengths
    0.5 halfway; 0: every event to 1."""
    from tonegraph.engine import ports
    from tonegraph.engine.node import Node
    from tonegraph.engine.ports import Event
    from tonegraph.engine.registry import default_registry

    class Hits(Node):
        type_name = "test.hits"
        outputs = {"out": ports.event()}

        def process(self, tick):
            self.out["out"] = tuple(Event(t, v) for t, v in ((0.5, 0.3), (1.5, 1.0))
                                    if tick.t <= t < tick.t + tick.dt)

    reg = default_registry(plugins=False)
    reg.add(Hits, __name__)
    src = '"uniform float hit; void mainImage(out vec4 c, in vec2 f) { c = vec4(hit, 0.0, 0.0, 1.0); }"'
    peaks = {}
    for k in (0.0, 0.5, 1.0):
        path = patch(write_patch, f"""\
  h:   {{type: test.hits}}
  sh:  {{type: gl.shader, params: {{source: {src}, pulse_decay: 0.05, strengths: {k}}}, in: {{hit: h}}}}
""", fps=30)
        frames, rt = frames_of(path, reg, duration=2.0)
        assert rt.report.faults == 0
        red = np.array([f[16, 32, 0] for f in frames], dtype=float)
        peaks[k] = (red[:30].max(), red[30:].max())
    assert peaks[0.0][0] >= 250 and peaks[0.0][1] >= 250
    assert abs(peaks[1.0][0] - 0.3 * 255) <= 3 and peaks[1.0][1] >= 250
    assert abs(peaks[0.5][0] - 0.65 * 255) <= 3 and peaks[0.5][1] >= 250


def test_feedback_reads_the_previous_frame(registry, write_patch):
    src = ('"uniform sampler2D prev; void mainImage(out vec4 c, in vec2 f) '
           '{ c = texture(prev, f / iResolution.xy) + vec4(4.0 / 255.0, 0.0, 0.0, 1.0); }"')
    path = patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {src}}}}}\n")
    frames, _ = frames_of(path, registry, duration=0.5)
    red = [int(f[5, 5, 0]) for f in frames]
    assert red[:5] == [4, 8, 12, 16, 20]


def test_images_as_textures_blend_and_transform(registry, write_patch, tmp_path):
    from PIL import Image

    pic = tmp_path / "half.png"
    a = np.zeros((32, 64, 3), np.uint8)
    a[:, :32] = (255, 0, 0)                                       # left half red
    Image.fromarray(a).save(pic)
    blue = '"void mainImage(out vec4 c, in vec2 f) { c = vec4(0.0, 0.0, 1.0, 1.0); }"'
    path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  img:  {{type: gl.image, params: {{path: "{pic}"}}}}
  b:    {{type: gl.shader, params: {{source: {blue}, size: [64, 32]}}}}
  add:  {{type: gl.blend, params: {{mode: add, amount: 1.0}}, in: {{a: img, b: b}}}}
  mix:  {{type: gl.blend, params: {{mode: mix, amount: 0.5}}, in: {{a: img, b: b}}}}
  mul:  {{type: gl.blend, params: {{mode: multiply, amount: 1.0}}, in: {{a: img, b: b}}}}
  turn: {{type: gl.transform, params: {{rotate: 180}}, in: {{image: img}}}}
  sh:   {{type: gl.blend, params: {{mode: screen, amount: 1.0}}, in: {{a: img, b: b}}}}
  w1:   {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: add}}}}
  w2:   {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: mix}}}}
  w3:   {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: mul}}}}
  w4:   {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: turn}}}}
  win:  {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: sh}}}}
""")
    frames, rt = frames_of(path, registry, duration=0.1, node=None)
    got = {w: f[-1] for w, f in frames.items()}
    assert tuple(got["w1"][16, 10]) == (255, 0, 255) and tuple(got["w1"][16, 50]) == (0, 0, 255)
    assert np.allclose(got["w2"][16, 10], (128, 0, 128), atol=1)
    assert tuple(got["w3"][16, 10]) == (0, 0, 0)
    assert tuple(got["w4"][16, 10]) == (0, 0, 0) and tuple(got["w4"][16, 50]) == (255, 0, 0)
    assert tuple(got["win"][16, 10]) == (255, 0, 255)


def test_transform_wraps_and_folds_each_as_asked(registry, write_patch, tmp_path):
    """gl.transform is compiled for its wrap mode and for a kaleidoscope that is on or
    off (no per-pixel cost for what is off); each variant draws what it says."""
    from PIL import Image

    pic = tmp_path / "half.png"
    a = np.zeros((32, 64, 3), np.uint8)
    a[:, :32] = (255, 0, 0)                                       # left half red
    Image.fromarray(a).save(pic)
    path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  img:    {{type: gl.image, params: {{path: "{pic}"}}}}
  plain:  {{type: gl.transform, params: {{wrap: clamp}}, in: {{image: img}}}}
  repeat: {{type: gl.transform, params: {{scale: 0.5, wrap: repeat}}, in: {{image: img}}}}
  mirror: {{type: gl.transform, params: {{scale: 0.5, wrap: mirror}}, in: {{image: img}}}}
  clamp:  {{type: gl.transform, params: {{scale: 0.5, wrap: clamp}}, in: {{image: img}}}}
  fold:   {{type: gl.transform, params: {{kaleidoscope: 2, wrap: clamp}}, in: {{image: img}}}}
  w1: {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: plain}}}}
  w2: {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: repeat}}}}
  w3: {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: mirror}}}}
  w4: {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: clamp}}}}
  w5: {{type: gl.window, params: {{size: [64, 32]}}, in: {{image: fold}}}}
""")
    frames, rt = frames_of(path, registry, duration=0.1, node=None)
    red = lambda w, x: bool(frames[w][-1][16, x, 0] > 200)   # noqa: E731
    assert red("w1", 10) and not red("w1", 50)                    # as it was
    assert (red("w2", 10), red("w2", 60)) == (False, True)        # repeat: the next copy
    assert (red("w3", 10), red("w3", 60)) == (True, False)        # mirror: turned over
    assert (red("w4", 10), red("w4", 60), red("w4", 20)) == (False, False, True)   # black around
    assert not red("w5", 10) and not red("w5", 50)                # folded onto the right half


def test_window_scale_draws_shaders_smaller_and_scales_the_picture_up(registry, write_patch):
    """gl.window's scale: shaders without a size draw at that fraction of the window
    (iResolution says so), and the frame is still the window's size."""
    res = '"void mainImage(out vec4 c, in vec2 f) { c = vec4(iResolution.x / 255.0, 0.0, 0.0, 1.0); }"'
    sizes = {}
    for scale in (1.0, 0.5):
        path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  sh:  {{type: gl.shader, params: {{source: {res}}}}}
  win: {{type: gl.window, params: {{size: [64, 32], scale: {scale}}}, in: {{image: sh}}}}
""", name=f"s{scale}.yaml")
        frame = frames_of(path, registry, duration=0.1)[0][-1]
        assert frame.shape == (32, 64, 3)
        sizes[scale] = int(frame[16, 32, 0])
    assert sizes == {1.0: 64, 0.5: 32}


def test_numpy_image_input_is_uploaded_once_per_new_array(registry, write_patch, monkeypatch):
    from tonegraph.nodes.gl import context

    uploads = []
    real = context.GL.upload
    monkeypatch.setattr(context.GL, "upload", lambda self, image, tex=None: uploads.append(1) or real(self, image, tex))
    path = write_patch("""
patch: {fps: 30}
nodes:
  z:   {type: ml.latent, params: {dim: 64, speed: 0}}
  gan: {type: ml.gan, in: {value: z}}
  sh:  {type: gl.image, in: {image: gan}}
  win: {type: gl.window, params: {size: [128, 128]}, in: {image: sh}}
""")
    frames, rt = frames_of(path, registry, duration=0.3)          # the window at the GAN's size
    img = rt.runner.nodes["gan"].out["out"]
    expected = (np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)
    assert np.abs(frames[-1].astype(int) - expected).max() <= 1    # upright, same pixels
    assert len(frames) == 9 and len(uploads) == 1                  # the latent held still


def test_shader_errors_keep_the_last_good_one_and_name_the_line(registry, write_patch, tmp_path, caplog):
    frag = tmp_path / "live.frag"
    frag.write_text("void mainImage(out vec4 c, in vec2 f) { c = vec4(1.0, 0.0, 0.0, 1.0); }\n")
    path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  sh:  {{type: gl.shader, params: {{path: "{frag}", size: [32, 16]}}}}
  win: {{type: gl.window, params: {{size: [32, 16]}}, in: {{image: sh}}}}
  lfo: {{type: control.lfo}}
""")
    rt = Runtime(load_ok(path, registry), registry, duration=60, watch=True)
    last = {}
    rt.runner.nodes["win"].sink = lambda px: last.update(px=px)  # GL is read on its own thread
    th = threading.Thread(target=rt.run, daemon=True)
    th.start()
    try:
        centre = lambda: tuple(last["px"][8, 16]) if "px" in last else None   # noqa: E731
        assert wait_for(lambda: rt.frames > 5, 20)
        assert centre() == (255, 0, 0)
        frag.write_text("// a comment\nvoid mainImage(out vec4 c, in vec2 f) {\n  c = vec4(0.0, 1.0 0.0, 1.0);\n}\n")
        assert wait_for(lambda: "live.frag: line 3:" in caplog.text, 10), caplog.text
        frames = rt.frames
        assert wait_for(lambda: rt.frames > frames + 5, 10)
        assert centre() == (255, 0, 0)                              # the last good one runs on
        assert "the last good shader keeps running" in caplog.text
        frag.write_text("void mainImage(out vec4 c, in vec2 f) { c = vec4(0.0, 0.0, 1.0, 1.0); }\n")
        assert wait_for(lambda: centre() == (0, 0, 255), 10)
        assert rt.runner.nodes["lfo"].out["out"] is not None and rt.runner.fault_count() == 0
    finally:
        rt.request_stop()
        th.join(10)


def test_missing_image_and_shader_files_are_patch_errors_with_their_place(write_patch):
    path = write_patch("""
nodes:
  img: {type: gl.image, params: {path: nowhere.png}}
  sh:  {type: gl.shader, params: {path: nowhere.frag}}
  win: {type: gl.window, in: {image: img}}
""")
    res = tonegraph("validate", str(path))
    assert res.returncode == 1
    lines = res.stderr.strip().splitlines()
    assert any(f"{path}:2:" in l and "no such image file" in l for l in lines), res.stderr
    assert any(f"{path}:3:" in l and "no such shader file" in l for l in lines), res.stderr


def test_no_display_and_not_headless_reports_once_and_the_show_goes_on(write_patch, tmp_path):
    out = tmp_path / "v.jsonl"
    path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  sh:  {{type: gl.shader, params: {{source: {GRADIENT}, size: [32, 16]}}}}
  win: {{type: gl.window, params: {{size: [32, 16]}}, in: {{image: sh}}}}
  lfo: {{type: control.lfo}}
  rec: {{type: io.record, params: {{path: "{out}"}}, in: {{x: lfo}}}}
""")
    env = {k: v for k, v in os.environ.items() if k != "DISPLAY"}
    res = tonegraph("run", str(path), "--offline", "--duration", "1", env=env)
    assert res.returncode == 0, res.stderr
    assert res.stderr.count("cannot open a window: no display") == 1
    assert "Traceback" not in res.stderr and len(out.read_text().splitlines()) >= 25


# -- a real window under Xvfb -------------------------------------------------------------


@pytest.fixture
def xvfb():
    exe = shutil.which("Xvfb")
    if exe is None:
        pytest.fail("Xvfb is not installed: `make test` installs it (apt package xvfb)")
    for n in range(90, 140):
        if not os.path.exists(f"/tmp/.X11-unix/X{n}") and not os.path.exists(f"/tmp/.X{n}-lock"):
            break
    display = f":{n}"
    proc = subprocess.Popen([exe, display, "-screen", "0", "640x480x24", "-nolisten", "tcp"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(lambda: os.path.exists(f"/tmp/.X11-unix/X{n}"), 10), "Xvfb did not start"
    yield display
    proc.terminate()
    proc.wait(10)


def test_window_under_xvfb_shows_the_image_with_its_aspect_kept(write_patch, xvfb):
    from PIL import ImageGrab

    # A 2:1 image (left red, right blue) in a 200x200 window: bars above and below.
    src = ('"void mainImage(out vec4 c, in vec2 f) { c = f.x < iResolution.x * 0.5 ? '
           'vec4(1.0, 0.0, 0.0, 1.0) : vec4(0.0, 0.0, 1.0, 1.0); }"')
    path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  sh:  {{type: gl.shader, params: {{source: {src}, size: [128, 64]}}}}
  win: {{type: gl.window, params: {{size: [200, 200], title: xvfb test}}, in: {{image: sh}}}}
""")
    env = dict(os.environ, DISPLAY=xvfb)
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "tonegraph.engine.cli", "run", str(path),
                             "--no-osc", "--duration", "20"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        def shot():
            return np.asarray(ImageGrab.grab(xdisplay=xvfb).convert("RGB"))

        assert wait_for(lambda: (shot() == (255, 0, 0)).all(axis=2).sum() > 1000, 20), "no window seen"
        img = shot()
        red = (img == (255, 0, 0)).all(axis=2)
        blue = (img == (0, 0, 255)).all(axis=2)
        ys, xs = np.nonzero(red | blue)
        assert xs.max() - xs.min() + 1 == 200 and ys.max() - ys.min() + 1 == 100   # 2:1, fitted
        assert xs[red[ys, xs]].max() < xs[blue[ys, xs]].min()                        # red left of blue
        top = ys.min()
        left = xs.min()
        assert (img[top - 50:top, left:left + 200] == 0).all()                        # black bar above
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=20)
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "failed to close" not in err, err      # the window's context goes last


# -- offline render to MP4 ----------------------------------------------------------------


def probe(path):
    import imageio_ffmpeg

    res = subprocess.run([imageio_ffmpeg.get_ffmpeg_exe(), "-hide_banner", "-i", str(path)],
                         capture_output=True, text=True)
    return res.stderr


def test_render_writes_a_video_with_audio_frame_accurate_and_deterministic(tmp_path):
    import imageio_ffmpeg
    from PIL import Image

    song = ROOT / "graphs" / "media" / "groove.flac"
    out = tmp_path / "tunnel.mp4"
    res = tonegraph("render", "graphs/tunnel.yaml", "--audio", str(song), "-o", str(out),
                    "--size", "160x90", "--fps", "15", "--start", "6", "--end", "10", "--preroll", "0",
                    "--frames", str(tmp_path / "a"), "-q", timeout=300)
    assert res.returncode == 0, res.stderr
    n, secs = imageio_ffmpeg.count_frames_and_secs(str(out))
    assert n == 60 and abs(secs - 4.0) < 0.05
    info = probe(out)
    assert "Video: h264" in info and "160x90" in info and "Audio: aac" in info
    reader = imageio_ffmpeg.read_frames(str(out))
    meta = next(reader)
    assert tuple(meta["size"]) == (160, 90) and meta["fps"] == 15
    reader.close()
    pngs = sorted((tmp_path / "a").glob("*.png"))
    assert len(pngs) == 60
    # The groove turns loud at 8 s: frames after it are brighter (the walls follow the
    # bass).  Lower quartiles, the walls between flashes: the rings' flashes on beats
    # and onsets light both parts alike, and the quiet part has as many hits.
    light = [np.asarray(Image.open(p)).mean() for p in pngs]
    quiet, loud = np.percentile(light[5:28], 25), np.percentile(light[33:58], 25)
    assert loud > 1.3 * quiet, (quiet, loud)
    # Same input, same frames.
    res = tonegraph("render", "graphs/tunnel.yaml", "--audio", str(song), "-o", str(tmp_path / "b.mp4"),
                    "--size", "160x90", "--fps", "15", "--start", "6", "--end", "7", "--preroll", "0",
                    "--frames", str(tmp_path / "b"), timeout=300)
    assert res.returncode == 0, res.stderr
    cpu = re.search(r"^CPU (.*)$", res.stdout, re.M)                     # where the time went
    assert cpu and {"drawing", "encoding", "ffmpeg"} <= set(re.findall(r"(\w+) [\d.]+ s", cpu[1])), res.stdout
    for p in sorted((tmp_path / "b").glob("*.png")):
        assert np.array_equal(np.asarray(Image.open(p)), np.asarray(Image.open(tmp_path / "a" / p.name)))


def test_render_converts_to_yuv_on_the_gl_side_with_the_same_pictures(tmp_path, write_patch):
    """--convert gl (auto's choice on a GPU) reads back the encoder's YUV 4:2:0 planes drawn by a
    shader; decoded, its frames are those of --convert ffmpeg (RGB read back, converted
    by ffmpeg): same colours, same order, every frame, at a height that leaves half a
    row of chroma (90 px), and tagged BT.709 so players decode the colours drawn."""
    import imageio_ffmpeg

    patch = write_patch("""
        patch: {fps: 20}
        nodes:
          look: {type: gl.shader, params: {size: [160, 90], source: "
            void mainImage(out vec4 c, in vec2 f) {
              vec2 uv = f / iResolution.xy;
              vec3 bars = uv.x < 0.25 ? vec3(1, 0, 0) : uv.x < 0.5 ? vec3(0, 1, 0)
                        : uv.x < 0.75 ? vec3(0, 0, 1) : vec3(fract(iTime * 0.4));
              c = vec4(uv.y > 0.5 ? bars : vec3(uv.x, 0.5, 1.0 - uv.x), 1.0); }"}}
          out: {type: gl.window, params: {size: [160, 90]}, in: {image: look}}
        """)
    frames = {}
    for convert in ("gl", "ffmpeg"):
        out = tmp_path / f"{convert}.mp4"
        res = tonegraph("render", str(patch), "-o", str(out), "--end", "2", "--size", "160x90",
                        "--convert", convert, "-q", timeout=300)
        assert res.returncode == 0, res.stderr
        reader = imageio_ffmpeg.read_frames(str(out))
        meta = next(reader)
        frames[convert] = [np.frombuffer(f, np.uint8).reshape(90, 160, 3).astype(float) for f in reader]
        assert tuple(meta["size"]) == (160, 90)
        assert ("bt709" in probe(out)) == (convert == "gl")
    gl, ff = frames["gl"], frames["ffmpeg"]
    assert len(gl) == len(ff) == 40
    for a, b in zip(gl, ff):
        assert np.abs(a - b).mean() < 3.0
    top = [(slice(5, 40), slice(5, 35)), (slice(5, 40), slice(45, 75)), (slice(5, 40), slice(85, 115))]
    for want, (rows, cols) in zip(np.eye(3) * 255, top):         # red, green, blue bars, top half
        assert np.abs(gl[10][rows, cols].mean(axis=(0, 1)) - want).max() < 12
    ramp = [f[5:40, 125:155].mean() for f in gl]                   # fract(time * 0.4), in order
    assert all(b > a for a, b in zip(ramp[:-1], ramp[1:])), ramp


def test_frames_read_back_through_the_ring_are_the_frames_drawn(monkeypatch, write_patch):
    """The pixel-buffer ring hands the sink every frame, late but in order, and the
    last ones at close: frame k's pixels are what its shader drew at time k / fps.
    Each frame is read only after the next frame's other work (here a control node),
    so the renderer draws it meanwhile; the read still comes before that frame's own
    drawing."""
    from tonegraph.engine.registry import default_registry
    from tonegraph.nodes.control.lfo import Lfo
    from tonegraph.nodes.gl import context
    from tonegraph.nodes.gl.shader import Shader
    from tonegraph.tools.render import prepare

    patch = write_patch("""
        patch: {fps: 30}
        nodes:
          wave: {type: control.lfo}
          look: {type: gl.shader, params: {size: [48, 32], source: "
            uniform float wave;
            void mainImage(out vec4 c, in vec2 f) {
              c = vec4(fract(iTime * 0.7), f.x / 48.0, f.y / 32.0, 1.0); }"},
                 in: {wave: wave}}
          out: {type: gl.window, params: {size: [48, 32]}, in: {image: look}}
        """)
    events, late = [], []
    for cls, name, what in ((Lfo, "process", "control"), (Shader, "draw", "draw"),
                            (context.Readback, "push", "read")):
        def logged(self, *args, f=getattr(cls, name), what=what, **kw):
            events.append(what)
            return f(self, *args, **kw)
        monkeypatch.setattr(cls, name, logged)
    job = prepare(patch, default_registry(plugins=False), None, (48, 32), end=1.0)
    win = job.runtime.runner.nodes[job.window]
    win.sink, win.pixels = (lambda px: late.append(px.copy())), "rgb24"
    job.runtime.run()
    assert len(late) == 30
    for k, frame in enumerate(late):
        assert abs(int(frame[5, 5, 0]) - ((k / 30 * 0.7) % 1.0) * 255) <= 1.5, k
    assert len({a.tobytes() for a in late}) == 30             # every frame differs: order matters
    assert events[:8] == ["control", "draw", "control", "read", "draw", "control", "read", "draw"]
    assert events.count("read") == 30 and events[-1] == "read"


def test_frames_stay_right_after_the_upstream_node_restarts(monkeypatch, write_patch):
    """A node restarted mid-render (as the fault policy restarts a failing one) draws
    into new textures: the recording follows them.  GL may hand a new texture a freed
    name the window has read before (Mesa does not here, other drivers do): the window
    then reads the new texture, not the deleted one its cached framebuffer holds."""
    from tonegraph.engine.registry import default_registry
    from tonegraph.tools.render import prepare
    from tonegraph.nodes.gl.shader import Shader

    patch = write_patch("""
        patch: {fps: 30}
        nodes:
          look: {type: gl.shader, params: {size: [48, 32], source: "
            void mainImage(out vec4 c, in vec2 f) { c = vec4(fract(iTime * 0.7), 0.0, 0.0, 1.0); }"}}
          out: {type: gl.window, params: {size: [48, 32]}, in: {image: look}}
        """)
    process, calls, names, reused = Shader.process, [0], [], []

    def restarting(self, tick):
        calls[0] += 1
        if calls[0] == 10:                 # what the fault policy does to restart a node
            self.close()
            self.configure()
        process(self, tick)
        names.append(self.out["out"].id)
        if calls[0] == 12:                 # as if GL had given the new texture an old name
            win.inp["image"] = self.out["out"]
            reused.append(win._framebuffer(names[0]).texture is self.out["out"])
    monkeypatch.setattr(Shader, "process", restarting)
    job = prepare(patch, default_registry(plugins=False), None, (48, 32), end=1.0)
    late = []
    win = job.runtime.runner.nodes[job.window]
    win.sink, win.pixels = (lambda px: late.append(px.copy())), "rgb24"
    job.runtime.run()
    assert reused == [True] and names[0] != names[-1]
    assert len(late) == 30
    for k, frame in enumerate(late):
        assert abs(int(frame[5, 5, 0]) - ((k / 30 * 0.7) % 1.0) * 255) <= 1.5, k


def test_a_failed_read_is_the_windows_fault_not_the_next_nodes(monkeypatch, write_patch, caplog):
    """A frame's read runs when the next GL node starts its frame; when it fails, the
    window is the node that failed (at its next draw, which still sends its own frame),
    the shader draws on, and only the failed frame is missing.  The last frame's read,
    at close, is reported when it fails."""
    from tonegraph.engine.registry import default_registry
    from tonegraph.nodes.gl import context
    from tonegraph.tools.render import prepare

    patch = write_patch("""
        patch: {fps: 30}
        nodes:
          look: {type: gl.shader, params: {size: [48, 32], source: "
            void mainImage(out vec4 c, in vec2 f) { c = vec4(fract(iTime), 0.0, 0.0, 1.0); }"}}
          out: {type: gl.window, params: {size: [48, 32]}, in: {image: look}}
        """)
    push = context.Readback.push

    def run(failing: int) -> tuple[list, dict]:
        calls = [0]

        def fails_once(self, targets, flip=False):
            calls[0] += 1
            if calls[0] == failing:
                raise context.GLError("cannot map a pixel buffer to read a frame back")
            return push(self, targets, flip)
        monkeypatch.setattr(context.Readback, "push", fails_once)
        job = prepare(patch, default_registry(plugins=False), None, (48, 32), end=0.5)
        late = []
        win = job.runtime.runner.nodes[job.window]
        win.sink, win.pixels = late.append, "rgb24"
        job.runtime.run()
        return late, job.runtime.runner.faults

    late, faults = run(5)
    assert set(faults) == {"out"} and faults["out"].count == 1
    assert "cannot map a pixel buffer" in faults["out"].last_message
    assert len(late) == 14                   # 15 frames drawn, the 5th not read
    caplog.clear()
    late, faults = run(15)                   # the last frame, read as the window closes
    assert len(late) == 14 and not faults
    assert any("the last frame could not be read back" in r.getMessage() for r in caplog.records)


def test_render_pre_roll_has_the_beat_tracker_locked_at_the_first_frame(tmp_path, write_patch):
    """From --start 10 s, the analysers heard the song from 2 s on: the tracker's tempo
    is the groove's 120 BPM from the first frame, and the first frame is on a beat; with
    --preroll 0 the tracker has heard nothing at the first frame and its tempo wanders
    while it listens."""
    from PIL import Image

    song = ROOT / "graphs" / "media" / "groove.flac"
    patch = write_patch(f"""
        patch: {{fps: 20}}
        nodes:
          song:  {{type: audio.file, params: {{path: "{song}"}}}}
          tempo: {{type: audio.tempo, in: {{audio: song}}}}
          look:  {{type: gl.shader, params: {{pulse_decay: 0.05, size: [16, 16],
                   source: "uniform float beat; uniform float bpm; void mainImage(out vec4 c, in vec2 f) {{ c = vec4(beat, bpm / 240.0, 0.0, 1.0); }}"}},
                   in: {{beat: tempo.beat, bpm: tempo.bpm}}}}
          out:   {{type: gl.window, params: {{size: [16, 16]}}, in: {{image: look}}}}
        """)
    seen = {}
    for preroll in ("8", "0"):
        frames = tmp_path / f"p{preroll}"
        res = tonegraph("render", str(patch), "-o", str(tmp_path / f"p{preroll}.mp4"), "--start", "10",
                        "--end", "11.5", "--size", "16x16", "--preroll", preroll, "--frames",
                        str(frames), "-q", timeout=300)
        assert res.returncode == 0, res.stderr
        px = [np.asarray(Image.open(p))[8, 8, :2].astype(float) for p in sorted(frames.glob("*.png"))]
        assert len(px) == 30
        seen[preroll] = (px[0][0], [g / 255 * 240 for _, g in px])
    flash, bpm = seen["8"]
    assert flash > 200 and all(abs(b - 120) < 4 for b in bpm), bpm
    _, bpm = seen["0"]
    assert not all(abs(b - 120) < 4 for b in bpm[:10]), bpm


def test_render_plays_the_song_through_a_live_patch_input(tmp_path):
    import imageio_ffmpeg

    out = tmp_path / "live.mp4"
    res = tonegraph("render", "graphs/seed-000-live-world.yaml", "--audio",
                    str(ROOT / "graphs" / "media" / "groove.flac"), "-o", str(out), "--size", "64x36",
                    "--fps", "10", "--start", "8", "--end", "10", "-q", timeout=300)
    assert res.returncode == 0, res.stderr
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == 20
    res = tonegraph("render", "graphs/seed-000-live-world.yaml", "-o", str(tmp_path / "x.mp4"))
    assert res.returncode == 1 and "give --audio FILE" in res.stderr


def interrupted_render(tmp_path, size: str, presses: float) -> tuple[subprocess.Popen, str, Path, Path]:
    """Render graphs/tunnel.yaml, writing PNG frames too, and press Ctrl-C once 5 frames
    are drawn (when ``presses`` is 2, again once the render says it is stopping, as a
    user presses twice): (the process, its stderr, the video, the frames' folder)."""
    import signal

    out, frames, said = tmp_path / "part.mp4", tmp_path / "frames", tmp_path / "stderr.txt"
    with open(said, "w") as log:
        proc = subprocess.Popen([sys.executable, "-m", "tonegraph.engine.cli", "render", "graphs/tunnel.yaml",
                                 "-o", str(out), "--size", size, "--fps", "10", "--frames", str(frames),
                                 "-q"], cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log, text=True)
    try:
        assert wait_for(lambda: len(list(frames.glob("*.png"))) >= 5, 60)
        proc.send_signal(signal.SIGINT)
        if presses == 2:
            assert wait_for(lambda: "stopping:" in said.read_text(), 30), said.read_text()
            proc.send_signal(signal.SIGINT)
        proc.wait(timeout=60)
    finally:
        proc.kill()
    return proc, said.read_text(), out, frames


def test_a_render_stopped_with_ctrl_c_keeps_a_playable_file_of_the_frames_drawn(tmp_path):
    import imageio_ffmpeg

    proc, err, out, frames = interrupted_render(tmp_path, "64x36", 1)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    drawn = len(list(frames.glob("*.png")))
    assert f"stopped: {out} holds the first {drawn} of 320 frames" in err
    assert err.count("stopping: ") == 1                  # the press is answered at once
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == drawn


def test_nvenc_renders_where_it_works_and_is_one_line_where_not(tmp_path):
    from tonegraph.tools.render import encoder_works

    out = tmp_path / "n.mp4"
    res = tonegraph("render", "graphs/tunnel.yaml", "-o", str(out), "--end", "1", "--size", "256x144",
                    "--encoder", "h264_nvenc", "-q", timeout=300)
    if encoder_works("h264_nvenc") is None:
        assert res.returncode == 0, res.stderr
        assert "Video: h264" in probe(out)
    else:
        assert res.returncode == 1 and res.stderr.startswith("error: --encoder h264_nvenc: cannot encode")
        assert res.stderr.count("\n") == 1 and not out.exists()
    auto = tonegraph("render", "graphs/tunnel.yaml", "-o", str(tmp_path / "a.mp4"), "--end", "1",
                     "--size", "256x144", "--encoder", "auto", "-q", timeout=300)
    assert auto.returncode == 0, auto.stderr          # NVENC where it works, else x264


def test_a_failing_encoder_stops_the_render_with_one_line(tmp_path, monkeypatch):
    """ffmpeg dying mid-render (a full disk, a killed process) stops the run at once and
    says so in one line; frames are not piled up behind it."""
    from tonegraph.engine.registry import default_registry
    from tonegraph.tools import render as rendering

    def broken(*args, **kw):
        def gen():
            for _ in range(3):
                yield
            raise OSError(28, "No space left on device")
        g = gen()
        g.send(None)
        return g
    monkeypatch.setattr(rendering, "_writer", broken)
    seen = []
    monkeypatch.setattr(rendering._Sink, "__call__", lambda self, px, call=rendering._Sink.__call__: (
        seen.append(1), call(self, px))[1])
    with pytest.raises(rendering.RenderError, match="the encoder failed: .*No space left on device"):
        rendering.render(ROOT / "graphs" / "tunnel.yaml", default_registry(plugins=False), None,
                         tmp_path / "x.mp4", (64, 36), 10.0, 0.0, 30.0, quiet=True, convert="ffmpeg")
    assert len(seen) < 20                          # of 300: the run stopped right after


def test_render_errors_are_one_line(tmp_path, write_patch):
    res = tonegraph("render", "graphs/demo.yaml", "-o", str(tmp_path / "x.mp4"), "--end", "1")
    assert res.returncode == 1 and "has no gl.window node" in res.stderr
    res = tonegraph("render", "graphs/tunnel.yaml", "--audio", str(tmp_path / "none.flac"),
                    "-o", str(tmp_path / "x.mp4"))
    assert res.returncode == 1 and "Traceback" not in res.stderr
    res = tonegraph("render", "graphs/tunnel.yaml", "-o", str(tmp_path / "x.mp4"), "--size", "161x90")
    assert res.returncode == 1 and "must be even" in res.stderr
    res = tonegraph("render", "graphs/tunnel.yaml", "-o", str(tmp_path / "missing" / "x.mp4"), "--end", "1")
    assert res.returncode == 2 and "does not exist" in res.stderr and not (tmp_path / "missing").exists()


def close_window(display: str, title: str) -> bool:
    """Ask the window called ``title`` to close, as a window manager does: a
    WM_DELETE_WINDOW client message (bare Xvfb has no window manager to send it)."""
    import ctypes

    from pyglet.libs.x11 import xlib

    dpy = xlib.XOpenDisplay(display.encode())
    try:
        root = xlib.XDefaultRootWindow(dpy)

        def find(win):
            name = ctypes.c_char_p()
            if xlib.XFetchName(dpy, win, ctypes.byref(name)) and name.value == title.encode():
                return win
            r, p, children, n = xlib.Window(), xlib.Window(), ctypes.POINTER(xlib.Window)(), ctypes.c_uint()
            if xlib.XQueryTree(dpy, win, ctypes.byref(r), ctypes.byref(p), ctypes.byref(children),
                               ctypes.byref(n)):
                for i in range(n.value):
                    found = find(children[i])
                    if found:
                        return found
            return None

        win = find(root)
        if not win:
            return False
        ev = xlib.XEvent()
        ev.xclient.type = xlib.ClientMessage
        ev.xclient.window = win
        ev.xclient.message_type = xlib.XInternAtom(dpy, b"WM_PROTOCOLS", False)
        ev.xclient.format = 32
        ev.xclient.data.l[0] = xlib.XInternAtom(dpy, b"WM_DELETE_WINDOW", False)
        xlib.XSendEvent(dpy, win, False, 0, ctypes.byref(ev))
        xlib.XFlush(dpy)
        return True
    finally:
        xlib.XCloseDisplay(dpy)


@pytest.mark.parametrize("close_stops", [True, False])
def test_closing_the_window_stops_the_engine_only_if_configured(write_patch, xvfb, tmp_path, close_stops):
    out = tmp_path / "v.jsonl"
    path = write_patch(f"""
patch: {{fps: 30}}
nodes:
  sh:  {{type: gl.shader, params: {{source: {GRADIENT}, size: [64, 32]}}}}
  win: {{type: gl.window, params: {{size: [160, 90], title: closing, close_stops: {str(close_stops).lower()}}},
         in: {{image: sh}}}}
  lfo: {{type: control.lfo}}
  rec: {{type: io.record, params: {{path: "{out}", flush: 0}}, in: {{x: lfo}}}}
""")
    env = dict(os.environ, DISPLAY=xvfb)
    proc = subprocess.Popen([str(ROOT / ".venv" / "bin" / "python"), "-m", "tonegraph.engine.cli", "run", str(path),
                             "--no-osc", "--duration", "30"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    lines: list[str] = []
    reader = threading.Thread(target=lambda: lines.extend(proc.stderr), daemon=True)
    reader.start()
    try:
        assert wait_for(lambda: close_window(xvfb, "closing"), 20), "the window never appeared"

        def handled() -> bool:
            """The close was seen; else ask again (a window that has just appeared may
            not listen for the window manager's close request yet)."""
            if proc.poll() is not None or any("closed" in line for line in lines):
                return True
            close_window(xvfb, "closing")
            return False
        assert wait_for(handled, 20)
        if close_stops:
            proc.wait(timeout=10)                                    # it stops by itself
        else:
            assert any("the engine keeps running" in line for line in lines)
            n = len(out.read_text().splitlines())
            assert wait_for(lambda: len(out.read_text().splitlines()) > n + 10, 10)   # still running
            assert proc.poll() is None
    finally:
        if proc.poll() is None:
            proc.terminate()
        proc.wait(timeout=20)
        reader.join(10)
    err = "".join(lines)
    assert proc.returncode == 0, err
    assert ("closed: stopping" in err) == close_stops and "Traceback" not in err


def test_sprites_draw_what_a_per_pixel_loop_draws(registry, write_patch, tmp_path):
    """seed 002's particles as sprites (worked out once per particle, drawn only where
    they cover) against the same particles drawn by a loop over every particle in every
    pixel, as the preset was written before: the same pictures."""
    presets = tmp_path / "presets"
    shutil.copytree(ROOT / "graphs" / "presets", presets)
    (presets / "loop.frag").write_text(PARTICLES_LOOP)
    doc = (presets / "particles.json").read_text()
    (presets / "loop.json").write_text(doc.replace('"particles.frag"', '"loop.frag"')
                                          .replace('"sprites": "count",', ""))
    path = write_patch("""
patch: {fps: 30}
nodes:
  song:  {type: audio.file, params: {path: %s}}
  spec:  {type: audio.spectrum, in: {audio: song}}
  tempo: {type: audio.tempo, in: {audio: song}}
  code:  {type: ml.latent, params: {dim: 4, speed: 0.5}}
  a:     {type: gl.preset, params: {path: presets/particles.json}, in: {features: code, spectrum: spec.bands, beat: tempo.beat}}
  b:     {type: gl.preset, params: {path: presets/loop.json}, in: {features: code, spectrum: spec.bands, beat: tempo.beat}}
  wa:    {type: gl.window, params: {size: [160, 90]}, in: {image: a}}
  wb:    {type: gl.window, params: {size: [160, 90]}, in: {image: b}}
""" % (ROOT / "graphs" / "media" / "groove.flac"))
    frames, rt = frames_of(path, registry, duration=3.0, node=None)
    assert rt.report.faults == 0 and len(frames["wa"]) == len(frames["wb"]) == 90
    lit = 0
    for a, b in zip(frames["wa"], frames["wb"]):
        diff = np.abs(a.astype(int) - b.astype(int))
        # Sprites add in 8 bits one particle at a time; the loop adds in floats and
        # rounds once: a few levels where many particles overlap.
        assert diff.max() <= 6 and diff.mean() < 0.5, (diff.max(), diff.mean())
        lit += (a.max(axis=2) > 60).mean()
    assert lit / 90 > 0.005         # particles were drawn, not only the background


PARTICLES_LOOP = """
uniform float count; uniform float saturation; uniform float spin; uniform float size;
uniform float hue; uniform float spread; uniform float novelty; uniform float beat;
uniform sampler2D spectrum;
vec3 hsv(float h, float s, float v) {
    return v * mix(vec3(1.0), clamp(abs(mod(h * 6.0 + vec3(0.0, 4.0, 2.0), 6.0) - 3.0) - 1.0, 0.0, 1.0), s);
}
void mainImage(out vec4 fragColor, in vec2 fragCoord) {
    vec2 p = (2.0 * fragCoord - iResolution.xy) / iResolution.y;
    vec3 col = vec3(0.0);
    for (int i = 0; i < 64; i++) {
        if (float(i) >= count) break;
        float k = float(i) / count;
        float band = texture(spectrum, vec2(k, 0.5)).r;
        float radius = spread * (0.15 + 0.85 * fract(k * 7.31)) * (1.0 + 0.25 * beat);
        float angle = 6.28318 * fract(k * 3.17) + spin * (0.3 + k);
        vec2 c = radius * vec2(cos(angle), sin(angle));
        float r = size * (0.4 + 0.8 * band) * (1.0 + 0.6 * beat);
        float d = length(p - c);
        col += hsv(hue + 0.25 * k, saturation, 1.0) * smoothstep(r, 0.0, d) * (0.6 + 0.8 * band + beat);
    }
    col += vec3(1.0, 0.9, 0.8) * novelty * 0.25 * exp(-dot(p, p) * 2.0);
    col += hsv(hue + 0.5, 0.5, 0.08 + 0.12 * beat) * (1.0 - 0.4 * length(p));
    fragColor = vec4(col, 1.0);
}
"""


def test_a_shader_of_sprites_alone_draws_them_where_it_places_them(registry, write_patch, caplog):
    # Two square sprites (spriteImage fills the quad): red at the left, green at the right
    # of a 2:1 frame, 0.25 screen heights across; black everywhere else.
    src = ('"void sprite(int i, out vec2 centre, out float radius, out vec4 colour) {'
           ' centre = vec2(i == 0 ? -1.0 : 1.0, 0.0); radius = 0.25;'
           ' colour = i == 0 ? vec4(1.0, 0.0, 0.0, 0.0) : vec4(0.0, 1.0, 0.0, 0.0); }'
           ' vec4 spriteImage(vec2 q, vec4 colour) { return colour; }"')
    path = patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {src}, sprites: 2}}}}\n", size=(64, 32))
    img = frames_of(path, registry)[0][-1].astype(int)
    # p = (2 * x - 64) / 32: the left centre p.x = -1 is pixel x 16, the right x 48; a
    # radius of 0.25 is 4 pixels.
    assert tuple(img[16, 16]) == (255, 0, 0) and tuple(img[16, 48]) == (0, 255, 0)
    assert tuple(img[16, 22]) == (0, 0, 0) and tuple(img[16, 32]) == (0, 0, 0) and tuple(img[4, 16]) == (0, 0, 0)
    assert (img[:, :, 0] > 0).sum() == 64 and (img[:, :, 1] > 0).sum() == 64     # 8 x 8 each

    bad = '"void sprite(int i, out vec2 centre, out float radius, out vec4 colour) {\\n centre = 1.0;\\n}"'
    path = patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {bad}}}}}\n", name="bad.yaml")
    img = frames_of(path, registry)[0][-1]
    assert img.max() == 0 and "line 2:" in caplog.text and "drawing black until it compiles" in caplog.text


def test_a_frame_the_size_of_the_window_is_read_back_from_its_node_with_no_pass_drawn(
        registry, write_patch, monkeypatch):
    from tonegraph.nodes.gl.context import Target

    drawn = []
    real = Target.draw
    monkeypatch.setattr(Target, "draw", lambda self, prog, bind: (drawn.append(prog), real(self, prog, bind)))
    # Top half red, bottom half blue (GL's y runs up): read back top row first.
    src = ('"void mainImage(out vec4 c, in vec2 f) { c = f.y > iResolution.y * 0.5 ? '
           'vec4(1.0, 0.0, 0.0, 1.0) : vec4(0.0, 0.0, 1.0, 1.0); }"')
    frames, rt = frames_of(patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {src}}}}}\n"), registry)
    assert len(frames) == 6
    assert tuple(frames[-1][2, 5]) == (255, 0, 0) and tuple(frames[-1][29, 5]) == (0, 0, 255)
    assert len(drawn) == len(frames) + 2             # the shader's frames and its two blank targets
    # A frame of another size still goes through the window's pass (fitted, aspect kept).
    drawn.clear()
    frames, _ = frames_of(patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {src}, size: [16, 32]}}}}\n",
                                name="other.yaml"), registry)
    assert len(drawn) == 2 * len(frames) + 2 and tuple(frames[-1][2, 32]) == (255, 0, 0)
    assert tuple(frames[-1][2, 5]) == (0, 0, 0)                                  # a bar beside it


@pytest.mark.parametrize("offline", [True, False])
def test_a_window_restarted_by_the_fault_policy_keeps_recording(registry, write_patch, monkeypatch, offline):
    """A render's frames (or any sink's) keep coming after gl.window failed often enough
    to be started afresh: in place offline, as a new object in real time."""
    from tonegraph.nodes.gl.window import Window

    from ..conftest import Watching

    failing = {"on": False, "times": 0}
    real = Window.draw

    def draw(self, tick):
        if failing["on"] or (offline and 10 <= tick.index < 30):
            failing["times"] += 1
            raise RuntimeError("a broken frame")
        real(self, tick)
    monkeypatch.setattr(Window, "draw", draw)
    path = patch(write_patch, f"  sh: {{type: gl.shader, params: {{source: {GRADIENT}}}}}\n")
    frames = []
    if offline:
        rt = Runtime(load_ok(path, registry), registry, offline=True, duration=2.0)
        rt.policy.restart_after = 20
        rt.runner.nodes["win"].sink = lambda px: frames.append(px.copy())
        rt.run()
        assert failing["times"] == 20 and len(frames) == 60 - 20
        return
    run = Watching(path, registry, headless=True)
    try:
        run.rt.policy.restart_after = 20
        first = run.rt.current.nodes["win"]
        first.sink = lambda px: frames.append(px.copy())
        assert wait_for(lambda: len(frames) > 3, 10)
        failing["on"] = True
        assert wait_for(lambda: run.rt.reloads == 1, 20)
        failing["on"] = False
        assert run.rt.current.nodes["win"] is not first
        seen = len(frames)
        assert wait_for(lambda: len(frames) > seen + 5, 10)
    finally:
        run.stop()


def solid(r: float, g: float, b: float) -> str:
    """An inline shader that fills the frame with one colour."""
    return f"void mainImage(out vec4 c, in vec2 f) {{ c = vec4({r:.1f}, {g:.1f}, {b:.1f}, 1.0); }}"


# Line 2 of this source is wrong (a comma missing), in every shader form.
BROKEN = "void mainImage(out vec4 c, in vec2 f) {\n  c = vec4(0.0, 1.0 0.0, 1.0);\n}\n"


@pytest.mark.parametrize("via", ["save", "osc"])
def test_an_inline_shader_edit_draws_from_the_next_frames_and_a_broken_one_keeps_the_last(
        registry, write_patch, caplog, via):
    """A new inline source, saved in the patch or sent over OSC, is compiled and drawn;
    one that fails is one error line with its GLSL line, as at start-up, and the last good
    program draws on."""
    import logging
    import socket

    from tonegraph.engine.osc import encode
    from tonegraph.engine.runtime import OscOptions

    from ..conftest import Watching, save

    def text(source: str) -> str:     # a JSON string is a YAML double-quoted scalar
        return ("patch: {fps: 30}\nnodes:\n"
                f"  sh:  {{type: gl.shader, params: {{source: {json.dumps(source)}, size: [32, 16]}}}}\n"
                "  win: {type: gl.window, params: {size: [32, 16]}, in: {image: sh}}\n")

    # The broken source at start-up: the line it gives there.
    _, rt = frames_of(write_patch(text(BROKEN), name="first.yaml"), registry, duration=0.1)
    [startup] = [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]
    assert startup.startswith("node 'sh': line 2: ")
    caplog.clear()

    path = write_patch(text(solid(1, 0, 0)))
    run = Watching(path, registry, headless=True, osc=OscOptions(port=0, query_port=0))
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    last = {}
    run.rt.current.nodes["win"].sink = lambda px: last.update(px=px.copy())
    centre = lambda: tuple(last["px"][8, 16]) if "px" in last else None   # noqa: E731

    def edit(source: str) -> None:
        if via == "save":
            save(path, text(source))
        else:
            sock.sendto(encode.message("/tonegraph/sh/source", [("s", source)]),
                        ("127.0.0.1", run.rt.server.port))

    try:
        assert wait_for(lambda: centre() == (255, 0, 0), 20)
        edit(solid(0, 1, 0))
        assert wait_for(lambda: centre() == (0, 255, 0), 20)
        edit(BROKEN)
        errors = lambda: [r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR]  # noqa: E731
        assert wait_for(lambda: errors(), 20)
        frames = run.rt.frames
        assert wait_for(lambda: run.rt.frames > frames + 10, 20)
        assert centre() == (0, 255, 0)                              # the last good one draws on
        [line] = errors()
        assert line == startup.split(";")[0] + "; the last good shader keeps running"
        edit(solid(0, 0, 1))
        assert wait_for(lambda: centre() == (0, 0, 255), 20)
        assert run.rt.reloads == (3 if via == "save" else 0) and run.rt.runner.fault_count() == 0
    finally:
        sock.close()
        run.stop()
    assert "Traceback" not in caplog.text


def preset_show(tmp_path, shader: str) -> tuple:
    """A show folder with a patch playing a preset whose 'shader' is ``shader``, and a
    shader file outside the folder (returns the patch, the preset and that file)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "x.frag").write_text(solid(0, 0, 1))
    show = tmp_path / "show"
    (show / "presets").mkdir(parents=True)
    (show / "presets" / "red.frag").write_text(solid(1, 0, 0))
    preset = show / "presets" / "p.json"
    preset.write_text(json.dumps({"shader": shader}))
    patch = show / "patch.yaml"
    patch.write_text("patch: {fps: 30}\nnodes:\n"
                     "  p:   {type: gl.preset, params: {path: presets/p.json, size: [32, 16]}}\n"
                     "  win: {type: gl.window, params: {size: [32, 16]}, in: {image: p}}\n")
    return patch, preset, outside / "x.frag"


@pytest.mark.parametrize("form", ["relative", "absolute"])
def test_a_presets_shader_outside_the_patch_folder_is_refused_in_one_line(registry, tmp_path, form):
    from tonegraph.engine.graph import load_graph

    shader = "../../outside/x.frag" if form == "relative" else str(tmp_path / "outside" / "x.frag")
    patch, preset, _ = preset_show(tmp_path, shader)
    graph, errors = load_graph(patch, registry)
    assert graph is None and len(errors) == 1
    said = str(errors[0])
    assert "\n" not in said and "p.json" in said and f"'shader' names {shader!r}" in said
    assert "outside the patch's folder" in said
    # A preset the user names outside the patch's folder may name files beside it, no further.
    elsewhere = tmp_path / "outside" / "mine.json"
    elsewhere.write_text(json.dumps({"shader": "x.frag"}))
    assert load_graph(patch, registry, [f"p.path={elsewhere}"])[1] == []
    elsewhere.write_text(json.dumps({"shader": "../show/presets/red.frag"}))
    graph, errors = load_graph(patch, registry, [f"p.path={elsewhere}"])
    assert graph is None and "outside the preset's folder" in str(errors[0])


def test_a_preset_saved_with_a_shader_outside_the_folder_keeps_the_last_good_one(registry, tmp_path, caplog):
    from ..conftest import Watching, save

    patch, preset, outside = preset_show(tmp_path, "red.frag")
    run = Watching(patch, registry, headless=True)
    last = {}
    run.rt.current.nodes["win"].sink = lambda px: last.update(px=px.copy())
    try:
        assert wait_for(lambda: "px" in last and tuple(last["px"][8, 16]) == (255, 0, 0), 20)
        save(preset, json.dumps({"shader": str(outside)}))
        assert wait_for(lambda: "keeps running" in caplog.text, 20)
        frames = run.rt.frames
        assert wait_for(lambda: run.rt.frames > frames + 10, 20)
        assert tuple(last["px"][8, 16]) == (255, 0, 0)
        assert any(r.name == "tonegraph.gl" and "p.json: 'shader' names" in r.getMessage()
                   for r in caplog.records)
        assert run.rt.current.nodes["p"].path.name == "red.frag"
    finally:
        run.stop()
    assert "Traceback" not in caplog.text


def test_an_oversized_preset_or_parameters_file_is_refused_before_it_is_parsed(registry, tmp_path):
    from tonegraph.engine.graph import load_graph

    patch, preset, _ = preset_show(tmp_path, "red.frag")
    preset.write_text('{"shader": "red.frag"' + " " * (1 << 20) + "}")
    graph, errors = load_graph(patch, registry)
    assert graph is None and len(errors) == 1
    said = str(errors[0])
    assert "p.json: " in said and "larger than the 1 MiB a preset file may be" in said and "\n" not in said
    preset.write_text(json.dumps({"shader": "red.frag"}))
    mapping = patch.parent / "m.json"
    mapping.write_text("[" + " " * (1 << 20) + "]")
    graph, errors = load_graph(patch, registry, [f"p.mapping={mapping}"])
    assert graph is None and "m.json: " in str(errors[0])
    assert "larger than the 1 MiB a parameters file may be" in str(errors[0])


def test_shader_files_and_images_past_their_bounds_are_refused_in_one_line(tmp_path):
    """A shader file over 1 MiB or an image file over 64 MiB is refused before it is
    read, as every other file a patch names is."""
    from tonegraph.engine import files

    (tmp_path / "big.frag").write_text("//" + "x" * (files.TEXT_LIMIT + 10))
    (tmp_path / "p.yaml").write_text("nodes:\n  sh: {type: gl.shader, params: {path: big.frag}}\n")
    res = subprocess.run([sys.executable, "-m", "tonegraph.engine.cli", "validate", "p.yaml"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert res.returncode != 0 and "larger than the 1 MiB a shader file may be" in res.stderr
    assert "Traceback" not in res.stderr and len(res.stderr.strip().splitlines()) == 1
    with pytest.raises(OSError, match="larger than"):
        files.read_bounded(tmp_path / "big.frag", files.TEXT_LIMIT, "shader file")


def test_a_newcomers_render_mistakes_are_named_by_what_they_typed(tmp_path):
    """No --audio: the patch's own sound, said in one line (a video of the wrong song
    was made without a word); --start past the song's end and a sound file that cannot
    be read are named by the option typed (they were reported as --set:N); an output
    name ffmpeg cannot write H.264 into is refused before anything runs (it left a
    0-byte file after an ffmpeg dump)."""
    res = tonegraph("render", "graphs/tunnel.yaml", "-o", str(tmp_path / "x.mp4"), "--end", "0.2",
                    "--size", "64x36", "--fps", "10", "-q", timeout=300)
    assert res.returncode == 0, res.stderr
    assert "rendering over the patch's own sound, graphs/media/groove.flac: give --audio FILE" in res.stderr
    song = ROOT / "graphs" / "media" / "groove.flac"
    res = tonegraph("render", "graphs/tunnel.yaml", "--audio", str(song), "-o", str(tmp_path / "y.mp4"),
                    "--start", "400")
    assert res.returncode == 1 and "--set" not in res.stderr, res.stderr
    assert "--start 400 s is past the end of --audio" in res.stderr and res.stderr.count("\n") == 1
    m4a = tmp_path / "song.m4a"
    m4a.write_bytes(b"\0\0\0\x20ftypM4A " + bytes(64))
    res = tonegraph("render", "graphs/tunnel.yaml", "--audio", str(m4a), "-o", str(tmp_path / "z.mp4"))
    assert res.returncode == 1 and "--set" not in res.stderr, res.stderr
    assert "cannot read it as sound" in res.stderr and "ffmpeg cannot read it either" in res.stderr
    assert res.stderr.count("\n") == 1
    for name in ("a.gif", "noextension"):
        res = tonegraph("render", "graphs/tunnel.yaml", "-o", str(tmp_path / name), "--end", "1")
        assert res.returncode == 1 and "name the file .mp4, .mov, .mkv or .m4v" in res.stderr, res.stderr
        assert res.stderr.count("\n") == 1 and not (tmp_path / name).exists()


def test_a_second_ctrl_c_still_leaves_a_playable_file(tmp_path):
    """Two Ctrl-C 0.3 s apart (they left an MP4 without its index, unplayable, without a
    word): the frames waiting for the encoder are dropped, the file is closed with the
    frames encoded, and the count said is the count in the file."""
    import re
    import signal

    import imageio_ffmpeg

    proc, err, out, _ = interrupted_render(tmp_path, "1280x720", 2)
    # 130, or the default action once the program was already exiting after the file closed.
    assert proc.returncode in (130, -signal.SIGINT) and "Traceback" not in err, err
    held = re.search(r"holds the first (\d+) of 320 frames", err)
    assert held, err
    assert imageio_ffmpeg.count_frames_and_secs(str(out))[0] == int(held.group(1))
