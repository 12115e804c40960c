"""gl.shader: a GLSL fragment shader drawn over the whole frame, fed by the graph.

The shader is a file (``path``, hot-reloaded when saved) or inline ``source`` (compiled
anew when a save or OSC changes it, from the next frame on).  Two
forms are accepted:

* ShaderToy-like: define ``void mainImage(out vec4 fragColor, in vec2 fragCoord)``;
  tonegraph adds ``#version 330 core``, the built-in uniforms below and ``main``.
* A whole fragment shader starting with ``#version``; it declares what it uses, reads
  ``in vec2 uv`` (0..1 over the frame) and writes its own ``out vec4``.

Uniforms the shader declares are filled when the names match:

``time`` / ``iTime`` (float, media seconds), ``resolution`` (vec2) / ``iResolution``
(vec3), ``frame`` / ``iFrame`` (int), ``prev`` (sampler2D: this node's previous frame,
for feedback), ``spectrum`` and ``waveform`` (sampler2D, 1 pixel high, value in red:
the ``spectrum`` input's vector and the ``waveform`` input's latest samples), and any
wired input by its own name: a number as ``float``, a vector as ``vec2``/``vec3``/
``vec4`` (or ``float name[N]``), an event as a ``float`` pulse that jumps to 1 (or,
with ``strengths`` above 0, toward the event's own 0..1 strength, so a soft hit
pulses less than a loud one) and decays over ``pulse_decay``, an image as a ``sampler2D`` (and its size in pixels as
``vec2 <name>_size``, so a shader can keep the image's aspect: fill or fit the frame,
never stretch it).

Sprites: a ShaderToy-like shader that also defines
``void sprite(int i, out vec2 centre, out float radius, out vec4 colour)`` draws, after
``mainImage`` (optional then: black without it), ``sprites`` small quads added onto the
frame, one per ``i``.  ``sprite`` runs once per sprite, not once per pixel, so work that
belongs to a particle (its orbit, its band of the spectrum, its colour) is not repeated
for every pixel of the frame.  ``centre`` and ``radius`` are in screen heights from the
middle (y from -1 to 1, x over the frame's aspect), the space of
``p = (2.0 * fragCoord - iResolution.xy) / iResolution.y``; a radius of 0 draws nothing.
Inside the quad each pixel gets ``vec4 spriteImage(vec2 q, vec4 colour)``, ``q`` running
from -1 to 1 across the sprite; without one, a round soft dot:
``colour * smoothstep(1.0, 0.0, length(q))``.  The whole source is compiled into both
stages, so its functions must suit a vertex shader too (no ``dFdx``, no ``uv``).

A shader that fails to compile is reported once, with its file (or node) and line; the
last good one keeps running (before any good one, the output is black).
"""

from __future__ import annotations

import logging
import math
import os
import re
from pathlib import Path

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import display_path
from tonegraph.engine.files import TEXT_LIMIT, read_bounded, size_text
from tonegraph.engine.node import Tick
from tonegraph.engine.ports import PortType
from tonegraph.nodes.audio.dsp import mono

from .base import CANVAS_SIZE, GLNode, canvas

log = logging.getLogger("tonegraph.gl")

PRELUDE = """#version 330 core
in vec2 uv;
out vec4 tonegraph_color;
uniform float iTime;
uniform vec3 iResolution;
uniform int iFrame;
"""
MAIN = """
void main() {
    vec4 c = vec4(0.0, 0.0, 0.0, 1.0);
    mainImage(c, uv * iResolution.xy);
    tonegraph_color = c;
}
"""
BLACK = """#version 330 core
out vec4 color;
void main() { color = vec4(0.0, 0.0, 0.0, 1.0); }
"""


SPRITE_HEAD = """#version 330 core
uniform float iTime;
uniform vec3 iResolution;
uniform int iFrame;
"""
SPRITE_VERTEX_MAIN = """
void main() {
    vec2 centre = vec2(0.0);
    float radius = 0.0;
    vec4 colour = vec4(0.0);
    sprite(gl_InstanceID, centre, radius, colour);
    sprite_q = position;
    sprite_colour = colour;
    vec2 p = centre + radius * position;
    gl_Position = vec4(p.x * iResolution.y / iResolution.x, p.y, 0.0, 1.0);
}
"""
SPRITE_IMAGE = """
vec4 spriteImage(vec2 q, vec4 colour) { return colour * smoothstep(1.0, 0.0, length(q)); }
"""
SPRITE_FRAGMENT_MAIN = """
void main() { tonegraph_color = spriteImage(sprite_q, sprite_colour); }
"""
NO_IMAGE = """
void mainImage(out vec4 fragColor, in vec2 fragCoord) { fragColor = vec4(0.0, 0.0, 0.0, 1.0); }
"""


def has_sprites(source: str) -> bool:
    """Whether a ShaderToy-like source defines ``sprite(int i, ...)``."""
    return not source.lstrip().startswith("#version") and re.search(r"\bvoid\s+sprite\s*\(", source) is not None


def assemble(source: str) -> str:
    """The full fragment shader: a whole shader as it is, a ShaderToy-style one wrapped."""
    if source.lstrip().startswith("#version"):
        return source
    if has_sprites(source) and not re.search(r"\bmainImage\s*\(", source):
        source += NO_IMAGE
    # '#line 1' makes the compiler count the user's lines from 1.
    return PRELUDE + "#line 1\n" + source + MAIN


def assemble_sprites(source: str) -> tuple[str, str]:
    """The vertex and fragment shaders that draw a source's sprites."""
    image = "" if re.search(r"\bspriteImage\s*\(", source) else SPRITE_IMAGE
    vertex = (SPRITE_HEAD + "in vec2 position;\nout vec2 sprite_q;\nflat out vec4 sprite_colour;\n"
              + "#line 1\n" + source + SPRITE_VERTEX_MAIN)
    fragment = (SPRITE_HEAD + "in vec2 sprite_q;\nflat in vec4 sprite_colour;\nout vec4 tonegraph_color;\n"
                + "#line 1\n" + source + image + SPRITE_FRAGMENT_MAIN)
    return vertex, fragment


class Shader(GLNode):
    type_name = "gl.shader"
    description = "A GLSL fragment shader (ShaderToy-like) fed by graph values, audio and images."
    follows_files = True
    params = {
        "path": P.path(None, "GLSL fragment shader file (relative to the patch); reloaded on save."),
        "source": P.text("", "Inline GLSL, when no path is given."),
        "size": CANVAS_SIZE,
        "pulse_decay": P.number(0.25, "Time for an event's pulse to fade.", unit="s", min=0.001),
        "strengths": P.number(0.0, "How far an event's strength sets its pulse: 0, every event "
                                   "jumps to 1; 1, to its strength (0..1).", min=0.0, max=1.0),
        "sprites": P.integer(64, "How many sprites a shader with a sprite() function draws.",
                             min=0, max=1_000_000),
    }
    inputs = {
        "spectrum": ports.vector("Bands or magnitudes, as the 'spectrum' 1-D texture."),
        "waveform": ports.audio("Sound, whose latest samples become the 'waveform' 1-D texture."),
    }
    outputs = {"out": ports.image("The drawn frame (a GPU texture).")}
    variadic = ports.any_port("Uniforms by name: numbers, vectors, events (as pulses), images.")

    @classmethod
    def check(cls, params, wired, ctx):
        if params.get("path"):
            path = ctx.resolve_input(params["path"])
            if not path.is_file():
                return [("path", f"no such shader file: {display_path(path)}")]
            if path.stat().st_size > TEXT_LIMIT:
                return [("path", f"{display_path(path)}: {size_text(path.stat().st_size)}, larger "
                                 f"than the {size_text(TEXT_LIMIT)} a shader file may be")]
        elif not params.get("source", "").strip():
            return [("", "give the shader as 'path' (a file) or 'source' (inline GLSL)")]
        return []

    def setup(self) -> None:
        self.stamp: int | None = None
        self._load_shader()
        self.edited: str | None = None      # an inline source set since the last frame
        self.program = None
        self.sprite_program = None
        self.black = None
        self.failed_source: str | None = None
        self.pulses: dict[str, float] = {}
        self.targets: list = []
        self.spec_tex = None
        self.wave_tex = None

    def _load_shader(self) -> None:
        """The shader's source: its file's, or the inline one."""
        self.path = self.ctx.resolve_input(self.p.path) if self.p.path else None
        self.source = self._read() if self.path else self.p.source

    def params_changed(self, changed: set[str]) -> None:
        # A new inline source (a save, OSC) is compiled at the next frame, where the GL
        # context is current; one that fails leaves the last good program drawing.
        if "source" in changed and self.path is None:
            self.edited = self.p.source

    def _read(self) -> str:
        st = os.stat(self.path)
        self.stamp = st.st_mtime_ns
        return read_bounded(self.path, TEXT_LIMIT, "shader file").decode("utf-8", "replace")

    def files(self) -> list[Path]:
        return [self.path] if getattr(self, "path", None) else []

    def start(self) -> None:
        self.black = self.service.program(BLACK)
        self._size_targets()
        self._compile(self.source)

    def _size_targets(self) -> None:
        """Two targets (this frame and the previous) at the node's size, made again when
        it changes (a resized gl.window, for a shader drawing at the window's size)."""
        w, h = canvas(self)
        if self.targets and (self.targets[0].width, self.targets[0].height) == (w, h):
            return
        for t in self.targets:
            t.delete()
        self.targets = [self.service.target(w, h), self.service.target(w, h)]
        for t in self.targets:
            t.draw(self.black, lambda prog: None)

    def _compile(self, source: str) -> None:
        from .context import GLError

        where = display_path(self.path) if self.path else f"node '{self.id}'"
        sprites = None
        try:
            program = self.service.program(assemble(source))
            if has_sprites(source):
                vertex, fragment = assemble_sprites(source)
                try:
                    sprites = self.service.program(fragment, vertex)
                except GLError:
                    program.delete()
                    raise
        except GLError as exc:
            if source != self.failed_source:
                keep = "the last good shader keeps running" if self.program else "drawing black until it compiles"
                log.error("%s: %s; %s", where, exc, keep)
                self.failed_source = source
            return
        reloaded = self.program is not None
        self._delete_programs()
        if reloaded:
            log.info("%s: shader reloaded", where)
        self.program, self.sprite_program = program, sprites
        self.failed_source = None
        self.uniforms = dict(program.uniforms)
        self.sprite_uniforms = dict(sprites.uniforms) if sprites is not None else {}

    def _delete_programs(self) -> None:
        for program in (self.program, self.sprite_program):
            if program is not None:
                self.service.forget(program)
                program.delete()
        self.program = self.sprite_program = None

    def sprite_count(self) -> int:
        """How many sprites to draw this frame."""
        return int(self.p.sprites)

    def _poll_file(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            return          # being saved (temp file and rename): try again next frame
        if st.st_mtime_ns != self.stamp:
            try:
                self.source = self._read()
            except OSError as exc:
                if st.st_mtime_ns == self.stamp:     # read and refused: too large, not a file
                    log.error("node '%s': %s; the last good shader keeps running", self.id, exc)
                return
            self._compile(self.source)

    def draw(self, tick: Tick) -> None:
        if self.path is not None:
            self._poll_file()
        elif self.edited is not None:
            self.source, self.edited = self.edited, None
            self._compile(self.source)
        self._size_targets()
        inp = self.inp
        decay = math.exp(-tick.dt / self.p.pulse_decay) if tick.dt > 0 else 1.0
        k = self.p.strengths
        for name, typ in self.wired.items():
            if typ == PortType.EVENT:
                held = self.pulses.get(name, 0.0) * decay
                if inp[name]:
                    top = max(min(max(e.value, 0.0), 1.0) for e in inp[name])
                    held = max(held, 1.0 - k + k * top) if k > 0 else 1.0
                self.pulses[name] = held
        prev, target = self.targets
        if self.program is None:
            target.draw(self.black, lambda prog: None)
        else:
            self._upload()                 # once a frame, for the picture and the sprites
            target.draw(self.program, lambda prog: self._bind(prog, tick, prev))
            if self.sprite_program is not None:
                target.draw_sprites(self.sprite_program, lambda prog: self._bind(prog, tick, prev),
                                    self.sprite_count())
        self.targets = [target, prev]
        self.out["out"] = target.texture

    def _upload(self) -> None:
        """The spectrum and waveform textures, where a program of this shader reads them."""
        used = self.uniforms.keys() | self.sprite_uniforms.keys()
        if "spectrum" in used:
            self.spec_tex = self.service.upload_1d(self.inp["spectrum"], self.spec_tex)
        if "waveform" in used:
            self.wave_tex = self.service.upload_1d(mono(self.inp["waveform"], self.ctx.hop), self.wave_tex)

    def uniforms_of(self, prog) -> dict:
        """The uniforms ``prog`` (the picture's program or the sprites') declares."""
        return self.sprite_uniforms if prog is self.sprite_program else self.uniforms

    def _bind(self, prog, tick: Tick, prev) -> None:
        from .context import bind_textures

        u = self.uniforms_of(prog)
        w, h = prev.width, prev.height
        values = {"time": tick.t, "iTime": tick.t, "resolution": (float(w), float(h)),
                  "iResolution": (float(w), float(h), 1.0), "frame": tick.index, "iFrame": tick.index}
        for name, value in values.items():
            if name in u:
                prog[name] = value
        textures: dict[str, int] = {}
        if "prev" in u:
            textures["prev"] = prev.texture.id
        inp = self.inp
        for name, tex in (("spectrum", self.spec_tex), ("waveform", self.wave_tex)):
            if name in u:
                textures[name] = tex[0]
        for name, typ in self.wired.items():
            if name in self.inputs or name not in u:
                continue
            value = inp[name]
            if typ == PortType.EVENT:
                prog[name] = self.pulses.get(name, 0.0)
            elif typ == PortType.IMAGE:
                tex = self.texture_of(name, value)
                if tex is not None:
                    textures[name] = tex[0]
                    if name + "_size" in u:
                        prog[name + "_size"] = (float(tex[1]), float(tex[2]))
            elif typ in (PortType.NUMBER, PortType.VECTOR):   # a number fills every component
                _set_vector(prog, u[name], name, value)
        bind_textures(prog, textures)

    def close(self) -> None:
        if getattr(self, "service", None) is not None:
            self._delete_programs()
            if self.black is not None:
                self.service.forget(self.black)
                self.black.delete()
            self.service.delete_textures([t[0] for t in (self.spec_tex, self.wave_tex) if t])
        for t in getattr(self, "targets", []):
            t.delete()
        self.targets = []
        self.program = None
        super().close()


def _set_vector(prog, uniform, name: str, value) -> None:
    """A number or vector into a float uniform of any shape: ``float``, ``vecN``,
    ``float x[N]`` or ``vecN x[M]`` (filled in order; a vector too short repeats)."""
    v = np.asarray(value, dtype=np.float32).ravel()
    # pyglet's terms: 'length' is the components of one element, 'size' the elements.
    parts, count = int(uniform["length"]), int(uniform["size"])
    n = parts * count
    v = np.resize(v, n) if len(v) else np.zeros(n, np.float32)
    if n == 1:
        prog[name] = float(v[0])
    elif parts > 1 and count > 1:          # an array of vectors: one tuple per element
        prog[name] = tuple(tuple(float(x) for x in v[i * parts:(i + 1) * parts]) for i in range(count))
    else:
        prog[name] = tuple(float(x) for x in v)
