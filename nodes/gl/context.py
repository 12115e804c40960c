"""The one OpenGL context the gl nodes share, and the textures they pass each other.

pyglet is set up on first use, on the thread that runs frames: headless (EGL, no
display needed; Mesa renders on the CPU) when the run is ``--headless`` or there is no
display, else through X with a hidden window holding the context that every window
shares.  Render targets are 8 bits per channel RGBA textures; images stay on the GPU
from node to node, numpy images are uploaded at most once per frame, and pixels are read
back only when something records them.
"""

from __future__ import annotations

import ctypes
import logging
import os
import threading

import numpy as np

log = logging.getLogger("tonegraph.gl")

VERTEX = """#version 330 core
in vec2 position;
out vec2 uv;
void main() {
    uv = position * 0.5 + 0.5;
    gl_Position = vec4(position, 0.0, 1.0);
}
"""

_lock = threading.Lock()
_services: dict[int, "GL"] = {}


class GLError(Exception):
    """A GL problem with a one-line message (shader errors name their line)."""


def get(headless: bool) -> "GL":
    """The GL service of the calling thread (the one running frames), made on first use.
    A GL context is current in one thread at a time, so each thread that runs frames has
    its own.  pyglet's headless choice is made once per process, by the first use."""
    with _lock:
        service = _services.get(threading.get_ident())
        if service is None:
            first = next(iter(_services.values()), None)
            headless = first.headless if first is not None else (headless or not os.environ.get("DISPLAY"))
            service = _services[threading.get_ident()] = GL(headless)
        return service


class GL:
    def __init__(self, headless: bool) -> None:
        import pyglet

        self.headless = headless
        pyglet.options["shadow_window"] = False
        pyglet.options["headless"] = headless
        pyglet.options["vsync"] = False
        from pyglet import gl

        self.pyglet = pyglet
        self.gl = gl
        config = gl.Config(red_size=8, green_size=8, blue_size=8, alpha_size=8, double_buffer=True,
                           major_version=3, minor_version=3, forward_compatible=True)
        try:
            self.holder = pyglet.window.Window(16, 16, visible=False, config=config)
        except Exception as exc:  # noqa: BLE001 - pyglet raises several types here
            raise GLError(f"cannot create an OpenGL 3.3 context "
                          f"({'EGL' if headless else 'X display ' + os.environ.get('DISPLAY', '')}): "
                          f"{exc}") from None
        self.context = self.holder.context
        self.renderer = gl.gl_info.get_renderer()
        self.version = gl.gl_info.get_version_string()
        log.info("OpenGL %s on %s%s", self.version, self.renderer, " (headless, EGL)" if headless else "")
        #: Drawn by the CPU (Mesa's llvmpipe, softpipe), not a GPU.
        self.software = any(name in self.renderer.lower() for name in ("llvmpipe", "softpipe", "swrast"))
        self.quad_program = self.program(FULLSCREEN_COPY)
        self._quads: dict[int, object] = {}
        #: Work that must run before the next GL command (see :meth:`later`).
        self._later: list = []

    def make_current(self) -> None:
        if self.gl.current_context is not self.context:
            self.holder.switch_to()

    def later(self, fn) -> None:
        """Run ``fn`` just before the next GL work of any node (:meth:`settle`), not now.
        A frame's readback goes here: the commands that drew it are flushed, so the
        renderer draws it while the thread computes the next frame's inputs (a GAN's
        forward pass, the audio analysis), and the read, which waits for the drawing,
        comes when that work is done.  What it reads stays as drawn until then, since
        nothing draws in between."""
        self._later.append(fn)
        self.gl.glFlush()

    def settle(self) -> None:
        """Run the work put off by :meth:`later`, in order."""
        while self._later:
            self._later.pop(0)()

    # -- programs -----------------------------------------------------------------

    def program(self, fragment: str, vertex: str = VERTEX):
        """Compile a full-screen fragment shader (or, with ``vertex``, a program drawing
        the same quad placed by its own vertex shader). Raises GLError with the
        compiler's first error as 'line N: message'."""
        from pyglet.graphics.shader import Shader, ShaderException, ShaderProgram

        try:
            return ShaderProgram(Shader(vertex, "vertex"), Shader(fragment, "fragment"))
        except ShaderException as exc:
            raise GLError(_first_error(str(exc))) from None

    def quad(self, program):
        """A full-screen quad for a program in the current context (vertex arrays are not
        shared between a window's context and the others)."""
        key = (id(program), id(self.gl.current_context))
        vl = self._quads.get(key)
        if vl is None:
            vl = program.vertex_list(4, self.gl.GL_TRIANGLE_STRIP,
                                     position=("f", [-1, -1, 1, -1, -1, 1, 1, 1]))
            self._quads[key] = vl
        return vl

    def forget(self, program) -> None:
        for key in [k for k in self._quads if k[0] == id(program)]:
            self._quads.pop(key).delete()

    # -- textures and targets ---------------------------------------------------------

    def texture(self, width: int, height: int, linear: bool = True):
        gl = self.gl
        tex = self.pyglet.image.Texture.create(width, height, internalformat=gl.GL_RGBA8,
                                               min_filter=gl.GL_LINEAR if linear else gl.GL_NEAREST,
                                               mag_filter=gl.GL_LINEAR if linear else gl.GL_NEAREST)
        gl.glBindTexture(gl.GL_TEXTURE_2D, tex.id)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_S, gl.GL_CLAMP_TO_EDGE)
        gl.glTexParameteri(gl.GL_TEXTURE_2D, gl.GL_TEXTURE_WRAP_T, gl.GL_CLAMP_TO_EDGE)
        return tex

    def target(self, width: int, height: int) -> "Target":
        return Target(self, width, height)

    def readback(self, planes: list[tuple[int, int, str]], shape: tuple[int, ...]) -> "Readback":
        return Readback(self, planes, shape)

    def upload(self, image: np.ndarray, tex=None):
        """A numpy image (H x W x 3 or 4, float 0..1 or uint8; row 0 at the top) into a
        texture, reused when the size matches."""
        gl = self.gl
        a = np.asarray(image)
        if a.ndim == 2:
            a = np.repeat(a[:, :, None], 3, axis=2)
        if a.ndim != 3 or a.shape[2] not in (3, 4):
            raise GLError(f"an image must be height x width x 3 or 4, got shape {a.shape}")
        if a.dtype != np.uint8:
            a = (np.clip(a, 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
        if a.shape[2] == 3:
            a = np.concatenate([a, np.full(a.shape[:2] + (1,), 255, np.uint8)], axis=2)
        a = np.ascontiguousarray(a[::-1])          # GL's row 0 is the bottom
        h, w = a.shape[:2]
        if tex is None or (tex.width, tex.height) != (w, h):
            tex = self.texture(w, h)
        gl.glBindTexture(gl.GL_TEXTURE_2D, tex.id)
        gl.glPixelStorei(gl.GL_UNPACK_ALIGNMENT, 1)
        gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, w, h, gl.GL_RGBA, gl.GL_UNSIGNED_BYTE,
                           a.ctypes.data_as(ctypes.POINTER(gl.GLubyte)))
        return tex

    def upload_1d(self, values: np.ndarray, tex=None):
        """A vector as a 1-pixel-high float texture (spectrum, waveform), red channel."""
        gl = self.gl
        v = np.ascontiguousarray(np.asarray(values, dtype=np.float32).ravel())
        n = max(1, len(v))
        if tex is None or tex[1] != n:
            tid = gl.GLuint()
            gl.glGenTextures(1, ctypes.byref(tid))
            gl.glBindTexture(gl.GL_TEXTURE_2D, tid.value)
            gl.glTexImage2D(gl.GL_TEXTURE_2D, 0, gl.GL_R32F, n, 1, 0, gl.GL_RED, gl.GL_FLOAT, None)
            for p, val in ((gl.GL_TEXTURE_MIN_FILTER, gl.GL_LINEAR), (gl.GL_TEXTURE_MAG_FILTER, gl.GL_LINEAR),
                           (gl.GL_TEXTURE_WRAP_S, gl.GL_CLAMP_TO_EDGE), (gl.GL_TEXTURE_WRAP_T, gl.GL_CLAMP_TO_EDGE)):
                gl.glTexParameteri(gl.GL_TEXTURE_2D, p, val)
            tex = (tid.value, n)
        if len(v):
            gl.glBindTexture(gl.GL_TEXTURE_2D, tex[0])
            gl.glTexSubImage2D(gl.GL_TEXTURE_2D, 0, 0, 0, n, 1, gl.GL_RED, gl.GL_FLOAT,
                               v.ctypes.data_as(ctypes.POINTER(gl.GLfloat)))
        return tex

    def delete_textures(self, names: list[int]) -> None:
        """Free textures made by :meth:`upload_1d`."""
        if names:
            arr = (self.gl.GLuint * len(names))(*names)
            self.gl.glDeleteTextures(len(names), arr)


class Readback:
    """Pixels read back without waiting for them: each frame's ``glReadPixels`` goes
    into a pixel buffer object of a ring of ``depth``, and the frame ``depth - 1``
    frames older is mapped and copied out, so the GL draws (and, with a GPU, copies)
    the newest frame while the oldest is taken.  Frames come out in order; :meth:`drain`
    gives the ones still in the ring at the end.

    ``planes``: what one frame is, as (width, height, format) reads laid end to end,
    format ``"rgb"``, ``"red"`` or ``"green"`` (one byte per pixel); ``shape``: the
    array each frame is given as."""

    FORMATS = {"rgb": ("GL_RGB", 3), "red": ("GL_RED", 1), "green": ("GL_GREEN", 1)}

    def __init__(self, service: GL, planes: list[tuple[int, int, str]], shape: tuple[int, ...],
                 depth: int = 3) -> None:
        from collections import deque

        gl = service.gl
        self.service, self.shape = service, shape
        self.planes, offset = [], 0
        for w, h, fmt in planes:
            name, channels = self.FORMATS[fmt]
            self.planes.append((int(w), int(h), getattr(gl, name), offset))
            offset += int(w) * int(h) * channels
        self.nbytes = offset
        ids = (gl.GLuint * depth)()
        gl.glGenBuffers(depth, ids)
        self.buffers = list(ids)
        for b in self.buffers:
            gl.glBindBuffer(gl.GL_PIXEL_PACK_BUFFER, b)
            gl.glBufferData(gl.GL_PIXEL_PACK_BUFFER, self.nbytes, None, gl.GL_STREAM_READ)
        gl.glBindBuffer(gl.GL_PIXEL_PACK_BUFFER, 0)
        self.free = deque(self.buffers)
        self.pending: deque[tuple[int, bool]] = deque()

    def push(self, targets: list["Target"], flip: bool = False) -> np.ndarray | None:
        """Start reading a frame (one target per plane; ``flip``: the target holds it
        bottom row first, as GL draws, and it is given top row first); returns the
        oldest frame when the ring is full."""
        gl = self.service.gl
        out = self._take() if not self.free else None
        buf = self.free.popleft()
        gl.glBindBuffer(gl.GL_PIXEL_PACK_BUFFER, buf)
        gl.glPixelStorei(gl.GL_PACK_ALIGNMENT, 1)
        for target, (w, h, fmt, offset) in zip(targets, self.planes):
            target.fb.bind()
            gl.glReadPixels(0, 0, w, h, fmt, gl.GL_UNSIGNED_BYTE, ctypes.c_void_p(offset))
            target.fb.unbind()
        gl.glBindBuffer(gl.GL_PIXEL_PACK_BUFFER, 0)
        self.pending.append((buf, flip))
        return out

    def drain(self):
        while self.pending:
            yield self._take()

    def _take(self) -> np.ndarray:
        gl = self.service.gl
        buf, flip = self.pending.popleft()
        gl.glBindBuffer(gl.GL_PIXEL_PACK_BUFFER, buf)
        ptr = gl.glMapBufferRange(gl.GL_PIXEL_PACK_BUFFER, 0, self.nbytes, gl.GL_MAP_READ_BIT)
        try:
            if not ptr:
                raise GLError("cannot map a pixel buffer to read a frame back")
            data = ctypes.string_at(ptr, self.nbytes)
        finally:
            gl.glUnmapBuffer(gl.GL_PIXEL_PACK_BUFFER)
            gl.glBindBuffer(gl.GL_PIXEL_PACK_BUFFER, 0)
        self.free.append(buf)
        frame = np.frombuffer(data, np.uint8).reshape(self.shape)
        return frame[::-1] if flip else frame

    def delete(self) -> None:
        if self.buffers:
            ids = (self.service.gl.GLuint * len(self.buffers))(*self.buffers)
            self.service.gl.glDeleteBuffers(len(self.buffers), ids)
            self.buffers = []


class Target:
    """A texture to draw into (a framebuffer object around it)."""

    def __init__(self, service: GL, width: int, height: int) -> None:
        self.service = service
        self.width, self.height = int(width), int(height)
        self.texture = service.texture(self.width, self.height)
        self.fb = service.pyglet.image.Framebuffer()
        self.fb.attach_texture(self.texture)

    def draw(self, program, bind) -> None:
        """Run ``program`` over the whole target; ``bind(program)`` sets its uniforms."""
        gl = self.service.gl
        self.fb.bind()
        gl.glViewport(0, 0, self.width, self.height)
        gl.glDisable(gl.GL_BLEND)
        program.use()
        bind(program)
        self.service.quad(program).draw(gl.GL_TRIANGLE_STRIP)
        program.stop()
        self.fb.unbind()

    def draw_sprites(self, program, bind, count: int) -> None:
        """Draw ``count`` instances of the quad with ``program`` (its vertex shader places
        each by ``gl_InstanceID``), added onto what the target holds; alpha is kept."""
        gl = self.service.gl
        if count <= 0:
            return
        self.fb.bind()
        gl.glViewport(0, 0, self.width, self.height)
        gl.glEnable(gl.GL_BLEND)
        gl.glBlendFuncSeparate(gl.GL_ONE, gl.GL_ONE, gl.GL_ZERO, gl.GL_ONE)
        program.use()
        bind(program)
        vl = self.service.quad(program)
        vl.domain.vao.bind()
        for buffer, _ in vl.domain.buffer_attributes:
            buffer.commit()
        gl.glDrawArraysInstanced(gl.GL_TRIANGLE_STRIP, vl.start, vl.count, int(count))
        program.stop()
        gl.glDisable(gl.GL_BLEND)
        self.fb.unbind()

    def delete(self) -> None:
        self.fb.delete()
        self.texture.delete()


def bind_textures(program, textures: dict[str, int]) -> None:
    """Bind textures (GL names) to sampler uniforms, one unit each."""
    from pyglet import gl

    for unit, (name, tex_id) in enumerate(textures.items()):
        gl.glActiveTexture(gl.GL_TEXTURE0 + unit)
        gl.glBindTexture(gl.GL_TEXTURE_2D, tex_id)
        program[name] = unit
    gl.glActiveTexture(gl.GL_TEXTURE0)


def _first_error(text: str) -> str:
    """The first error line of a GLSL compiler log, as 'line N: message'."""
    import re

    for line in text.splitlines():
        m = re.search(r"(\d+):(\d+)(?:\(\d+\))?: (error.*)", line)
        if m:
            return f"line {m.group(2)}: {m.group(3).strip()}"
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    return lines[-1] if lines else "shader error"


FULLSCREEN_COPY = """#version 330 core
in vec2 uv;
out vec4 color;
uniform sampler2D image;
uniform vec2 scale;
uniform float flip;
void main() {
    vec2 p = (uv - 0.5) / scale + 0.5;
    p.y = mix(p.y, 1.0 - p.y, flip);
    color = (p.x < 0.0 || p.x > 1.0 || p.y < 0.0 || p.y > 1.0) ? vec4(0.0, 0.0, 0.0, 1.0)
                                                                 : texture(image, p);
}
"""


#: An image as the planes of one video frame in the layout ffmpeg calls yuv420p, drawn
#: in two passes: ``chroma`` 0 draws luma into a W x H target (red), ``chroma`` 1 draws
#: Cb (red) and Cr (green) into a W/2 x H/2 target, each texel sampled where its 2 x 2
#: block of pixels meet, so linear filtering gives their mean in one fetch.  Row 0 of
#: each target is the top of the picture.  BT.709 with limited range (16..235 luma),
#: the matrix players assume for HD video.  ``scale`` fits the image as the window does.
YUV420 = """#version 330 core
out vec4 color;
uniform sampler2D image;
uniform vec2 scale;
uniform vec2 frame;
uniform int chroma;
const vec3 LUMA = vec3(0.2126, 0.7152, 0.0722) * 219.0;
const vec3 CB = vec3(-0.114572, -0.385428, 0.5) * 224.0;
const vec3 CR = vec3(0.5, -0.454153, -0.045847) * 224.0;

void main() {
    vec2 px = chroma == 1 ? 2.0 * floor(gl_FragCoord.xy) + 1.0 : gl_FragCoord.xy;
    vec2 p = (px / frame - 0.5) / scale + 0.5;
    p.y = 1.0 - p.y;
    vec3 c = (p.x < 0.0 || p.x > 1.0 || p.y < 0.0 || p.y > 1.0) ? vec3(0.0)
             : clamp(texture(image, p).rgb, 0.0, 1.0);
    color = chroma == 1 ? vec4((128.0 + dot(c, CB)) / 255.0, (128.0 + dot(c, CR)) / 255.0, 0.0, 1.0)
                        : vec4((16.0 + dot(c, LUMA)) / 255.0, 0.0, 0.0, 1.0);
}
"""
