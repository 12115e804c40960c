"""gl.window: the output window the audience sees, or an offscreen frame when headless.

The ``image`` input (a texture from a gl node, or a numpy image such as ml.gan's) is
drawn with its aspect kept, never stretched: whole with black bars around it (``fit:
contain``), or filling the frame with what overflows cut off (``fit: cover``).  In ``--headless`` runs
(and ``tonegraph render``) nothing opens: the frame is drawn offscreen through EGL at
``size``, and is what a render records.  A window that cannot open (no display, and
the run is not headless) is reported once; the frame is then drawn offscreen and the
rest of the patch runs on.
"""

from __future__ import annotations

import logging

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import describe
from tonegraph.engine.node import Tick

from .base import SIZE, GLNode

log = logging.getLogger("tonegraph.gl")


class Window(GLNode):
    type_name = "gl.window"
    #: Its GL context holds every other GL node's objects: it closes after them.
    closes_last = True
    description = "The output window (pyglet), or an offscreen frame in headless runs and renders."
    params = {
        "size": SIZE,
        "fullscreen": P.boolean(False, "Fill the screen.", restart=True),
        "screen": P.integer(0, "Which screen (0: the first).", min=0, restart=True),
        "vsync": P.boolean(False, "Wait for the display's refresh on each frame (the engine's clock "
                                  "paces frames either way).", restart=True),
        "title": P.text("tonegraph", "Window title."),
        "cursor": P.boolean(False, "Show the mouse cursor over the window.", restart=True),
        "close_stops": P.boolean(False, "Closing the window stops the engine (else it keeps "
                                        "running, without the window)."),
        "fit": P.choice("contain", ("contain", "cover"), "An image of another shape: whole, with "
                        "black bars (contain), or filling the frame, its overflow cut (cover)."),
        "scale": P.number(1.0, "Shaders without a size of their own draw at this fraction of the "
                          "window's size, and the picture is scaled up to it: 0.5 draws a quarter "
                          "of the pixels (heavy shaders on a CPU renderer or a weak GPU).",
                          min=0.1, max=1.0, restart=True),
    }
    inputs = {"image": ports.image("What to show (a texture or a numpy image).", required=True)}
    outputs = {}
    @property
    def sink(self):
        """Called with each offscreen frame's pixels (uint8, read-only), in order;
        `tonegraph render` sets it.  A frame is read when the next frame's GL work
        starts (``GL.later``), into a ring of pixel buffers given out a few frames late,
        so drawing never waits for the reads; the last ones come at close.
        It belongs to the run (``ctx.recorders``), so a window started afresh keeps it."""
        return self.ctx.recorders.get(self.id, {}).get("sink")

    @sink.setter
    def sink(self, fn) -> None:
        self.ctx.recorders.setdefault(self.id, {"pixels": "rgb24"})["sink"] = fn

    @property
    def pixels(self) -> str:
        """The frames the sink is given: "rgb24" (H x W x 3) or "yuv420p" (H * 3/2 x W:
        the planes an H.264 encoder takes, converted on the GL side from the image
        itself, so half the bytes come back and the encoder converts nothing); "auto":
        yuv420p on a GPU, rgb24 on a CPU renderer (where a converting pass costs more
        than ffmpeg's)."""
        return self.ctx.recorders.get(self.id, {}).get("pixels", "rgb24")

    @pixels.setter
    def pixels(self, fmt: str) -> None:
        self.ctx.recorders.setdefault(self.id, {"sink": None})["pixels"] = fmt

    def setup(self) -> None:
        w, h, k = int(self.p.size[0]), int(self.p.size[1]), float(self.p.scale)
        self.ctx.canvas = (max(1, round(w * k)), max(1, round(h * k)))
        self.window = None
        self.closed = False
        self.target = None
        self.readback = None
        self.yuv = self.chroma = None
        self.reads: dict[int, _Read] = {}
        self.failed: Exception | None = None     # the last frame's read, put off, failed

    def start(self) -> None:
        self.copy = self.service.quad_program
        if not self.ctx.headless and self.sink is None:
            if self.service.headless:
                log.error("gl.window '%s': cannot open a window: no display (DISPLAY is not set); "
                          "drawing offscreen. Run with --headless to mean it, or set DISPLAY",
                          self.id)
            else:
                self._open()
        if self.window is None:
            w, h = (int(v) for v in self.p.size)
            self.target = self.service.target(w, h)

    def _record(self) -> None:
        """Set up reading frames back for the sink (at the first frame it is there)."""
        w, h = self.target.width, self.target.height
        if self.pixels == "auto":
            self.pixels = "rgb24" if self.service.software else "yuv420p"
        if self.pixels == "yuv420p":
            from .context import YUV420

            self.yuv = self.service.program(YUV420)
            self.chroma = self.service.target(w // 2, h // 2)
            self.readback = self.service.readback(
                [(w, h, "red"), (w // 2, h // 2, "red"), (w // 2, h // 2, "green")], (h * 3 // 2, w))
        else:
            self.readback = self.service.readback([(w, h, "rgb")], (h, w, 3))

    def _open(self) -> None:
        pyglet = self.service.pyglet
        gl = self.service.gl
        p = self.p
        try:
            screens = pyglet.display.get_display().get_screens()
            screen = screens[min(p.screen, len(screens) - 1)]
            config = gl.Config(red_size=8, green_size=8, blue_size=8, alpha_size=8, double_buffer=True,
                               major_version=3, minor_version=3, forward_compatible=True)
            w, h = (int(v) for v in p.size)
            self.window = pyglet.window.Window(w, h, caption=p.title, fullscreen=p.fullscreen,
                                               screen=screen, vsync=p.vsync, config=config)
        except Exception as exc:  # noqa: BLE001 - pyglet raises several types here
            log.error("gl.window '%s': cannot open a window (%s); drawing offscreen", self.id, exc)
            self.window = None
            self.service.make_current()
            return
        self.window.set_mouse_visible(p.cursor)

        @self.window.event
        def on_close():
            self.closed = True
            if self.p.close_stops:
                log.info("gl.window '%s' closed: stopping", self.id)
                self.ctx.stop.set()
            else:
                log.info("gl.window '%s' closed; the engine keeps running (close_stops: false)", self.id)
            self.window.set_visible(False)
            return True
        self.service.make_current()

    def draw(self, tick: Tick) -> None:
        failed, self.failed = self.failed, None
        self._draw()
        if failed is not None:            # the last frame's read: raised once this one is on its way
            raise failed

    def _draw(self) -> None:
        img = self.texture_of("image", self.inp["image"])
        if self.window is not None and not self.closed:
            self._show(img)
        if self.target is None or self.sink is None:
            return                     # shown on screen, or offscreen with nobody recording
        if self.readback is None:
            self._record()
        w, h = self.target.width, self.target.height
        fit = self._fit(img, w, h)
        if self.yuv is not None:        # the encoder's planes, straight from the image
            for chroma, target in ((0, self.target), (1, self.chroma)):
                def bind(prog, chroma=chroma) -> None:
                    prog["frame"] = (float(w), float(h))
                    prog["chroma"] = chroma
                    self._bind(prog, img, fit)
                target.draw(self.yuv, bind)
            targets = [self.target, self.chroma, self.chroma]
            flip = False
        elif img is not None and (img[1], img[2]) == (w, h):
            # The image is the frame already: read back the upstream node's own texture
            # (bottom row first, turned over on the way out) with no pass drawn here.
            targets, flip = [self._framebuffer(img[0])], True
        else:
            # Drawn upside down, so that reading it back gives the top row first.
            self.target.draw(self.copy, lambda prog: self._bind(prog, img, fit, 1.0))
            targets, flip = [self.target], False
        self.service.later(lambda: self._push(targets, flip))

    def _push(self, targets, flip: bool) -> None:
        """Read a frame (run by whichever GL node works next: a failure is kept and
        raised by this window's next draw, so the fault is the window's)."""
        try:
            frame = self.readback.push(targets, flip)
            if frame is not None:
                self.sink(frame)
        except Exception as exc:  # noqa: BLE001 - raised again in draw
            self.failed = exc

    def _framebuffer(self, texture_id: int):
        """A framebuffer around the image's texture to read it back from (kept for the
        two or so textures an upstream node takes turns drawing into; made afresh when
        the name belongs to another texture now, as after the upstream node restarts
        and GL hands its freed names out again)."""
        value = self.inp["image"]
        texture = value if hasattr(value, "id") else self.uploads["image"][1]
        read = self.reads.get(texture_id)
        if read is not None and read.texture is not texture:
            self.reads.pop(texture_id).delete()
            read = None
        if read is None:
            fb = self.service.pyglet.image.Framebuffer()
            fb.attach_texture(texture)
            while len(self.reads) >= 4:
                self.reads.pop(next(iter(self.reads))).delete()
            read = self.reads[texture_id] = _Read(fb, texture)
        return read

    def _fit(self, img, w: int, h: int) -> tuple[float, float]:
        from .compose import fit_scale

        return (1.0, 1.0) if img is None else fit_scale(img[1] / img[2], w / h, self.p.fit)

    def _bind(self, prog, img, fit, flip: float | None = None) -> None:
        from .context import bind_textures

        prog["scale"] = fit
        if flip is not None:
            prog["flip"] = flip
        if img is not None:
            bind_textures(prog, {"image": img[0]})

    def _show(self, img) -> None:
        gl = self.service.gl
        win = self.window
        win.switch_to()
        win.dispatch_events()
        if self.p.title != win.caption:
            win.set_caption(self.p.title)
        fw, fh = win.get_framebuffer_size()
        gl.glBindFramebuffer(gl.GL_FRAMEBUFFER, 0)
        gl.glViewport(0, 0, fw, fh)
        gl.glClearColor(0.0, 0.0, 0.0, 1.0)
        gl.glClear(gl.GL_COLOR_BUFFER_BIT)
        if img is not None:
            prog = self.copy
            prog.use()
            self._bind(prog, img, self._fit(img, fw, fh), 0.0)
            self.service.quad(prog).draw(gl.GL_TRIANGLE_STRIP)
            prog.stop()
        win.flip()
        self.service.make_current()

    def close(self) -> None:
        if getattr(self, "window", None) is not None:
            try:
                self.window.close()
            except Exception:  # noqa: BLE001 - the display may be gone already
                pass
            self.window = None
        try:
            if getattr(self, "readback", None) is not None:
                self.service.settle()                 # the last frame's read, put off
                if self.failed is not None:
                    log.error("gl.window '%s': the last frame could not be read back: %s", self.id,
                              describe(self.failed))
                for frame in self.readback.drain():   # the last frames, still in the ring
                    self.sink(frame)
        finally:
            if getattr(self, "readback", None) is not None:
                self.readback.delete()
                self.readback = None
            if getattr(self, "yuv", None) is not None:
                self.service.forget(self.yuv)
                self.yuv.delete()
                self.chroma.delete()
                self.yuv = self.chroma = None
            if getattr(self, "target", None) is not None:
                self.target.delete()
                self.target = None
            for read in getattr(self, "reads", {}).values():
                read.delete()
            self.reads = {}
            super().close()


class _Read:
    """What the readback ring reads a plane from: a framebuffer (``fb``) around an
    upstream node's ``texture``."""

    def __init__(self, fb, texture) -> None:
        self.fb = fb
        self.texture = texture

    def delete(self) -> None:
        self.fb.delete()
