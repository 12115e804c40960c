"""gl.blend and gl.transform: fixed shaders over textures, drawn at their input's size.

An image is never stretched to another's shape: gl.blend places ``b`` over ``a`` whole
or filling it (``fit``), and gl.transform draws at its own input's size."""

from __future__ import annotations

import itertools
import math
from typing import ClassVar

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Tick

from .base import GLNode

BLEND = """#version 330 core
in vec2 uv;
out vec4 color;
uniform sampler2D a;
uniform sampler2D b;
uniform float amount;
uniform int mode;
uniform vec2 bscale;   // b's placement: its aspect kept, whole (contain) or filling (cover)
void main() {
    vec4 x = texture(a, uv);
    vec2 q = (uv - 0.5) / bscale + 0.5;
    if (any(lessThan(q, vec2(0.0))) || any(greaterThan(q, vec2(1.0)))) {
        color = vec4(x.rgb, 1.0);          // beside a letterboxed b: a alone
        return;
    }
    vec4 y = texture(b, q);
    vec3 m;
    if (mode == 0) m = y.rgb;                                  // mix
    else if (mode == 1) m = x.rgb + y.rgb;                     // add
    else if (mode == 2) m = x.rgb * y.rgb;                     // multiply
    else m = 1.0 - (1.0 - x.rgb) * (1.0 - y.rgb);              // screen
    color = vec4(clamp(mix(x.rgb, m, amount), 0.0, 1.0), 1.0);
}
"""

TRANSFORM = """#version 330 core
in vec2 uv;
out vec4 color;
uniform sampler2D image;
uniform float scale;
uniform float angle;
uniform vec2 offset;
uniform float segments;
uniform float aspect;
const float PI = 3.14159265358979;
void main() {
    vec2 p = uv - 0.5 - offset;
    p.x *= aspect;
    float c = cos(-angle), s = sin(-angle);
    p = mat2(c, s, -s, c) * p / max(scale, 1e-4);
#if KALEIDOSCOPE                           // fold the angle into one wedge
    float r = length(p);
    float a = atan(p.y, p.x);
    float wedge = 2.0 * PI / segments;
    a = mod(a, wedge);
    a = min(a, wedge - a);
    p = r * vec2(cos(a), sin(a));
#endif
    p.x /= aspect;
    p += 0.5;
#if WRAP == 0
    p = fract(p);                                                   // repeat
#elif WRAP == 1
    p = 1.0 - abs(mod(p, 2.0) - 1.0);                               // mirror
#else
    if (any(lessThan(p, vec2(0.0))) || any(greaterThan(p, vec2(1.0)))) {
        color = vec4(0.0, 0.0, 0.0, 1.0);                           // clamp to black
        return;
    }
#endif
    color = texture(image, p);
}
"""


def fit_scale(image_aspect: float, frame_aspect: float, fit: str) -> tuple[float, float]:
    """How much of the frame an image of another aspect covers on each axis, its aspect
    kept: whole (contain: one axis under 1) or filling (cover: one axis over 1)."""
    wider = image_aspect > frame_aspect if fit == "contain" else image_aspect < frame_aspect
    return (1.0, frame_aspect / image_aspect) if wider else (image_aspect / frame_aspect, 1.0)


class _Fixed(GLNode):
    """A built-in shader drawn at the size of the first image input.

    A shader may be specialised on params: :meth:`variant` names the ``#define`` values
    it is drawn with now (a kaleidoscope that is off costs nothing per pixel), and every
    variant in :attr:`VARIANTS` is compiled at start, so a change over OSC mid-show
    switches programs without compiling one on the render thread."""

    FRAGMENT: ClassVar[str] = ""
    #: Every variant :meth:`variant` can name.
    VARIANTS: ClassVar[tuple[tuple[tuple[str, int], ...], ...]] = ((),)

    def start(self) -> None:
        self.programs: dict[tuple, object] = {}
        self.target = None
        for key in self.VARIANTS:
            self._compile(key)

    def variant(self) -> tuple[tuple[str, int], ...]:
        return ()

    def _compile(self, key: tuple):
        head, _, body = self.FRAGMENT.partition("\n")
        defines = "".join(f"#define {name} {value}\n" for name, value in key)
        prog = self.programs[key] = self.service.program(f"{head}\n{defines}{body}")
        return prog

    @property
    def program(self):
        key = self.variant()
        return self.programs.get(key) or self._compile(key)

    def _target(self, w: int, h: int):
        if self.target is None or (self.target.width, self.target.height) != (w, h):
            if self.target is not None:
                self.target.delete()
            self.target = self.service.target(w, h)
        return self.target

    def close(self) -> None:
        if getattr(self, "target", None) is not None:
            self.target.delete()
            self.target = None
        for prog in getattr(self, "programs", {}).values():
            self.service.forget(prog)
            prog.delete()
        self.programs = {}
        super().close()


class Blend(_Fixed):
    type_name = "gl.blend"
    description = "Mix, add, multiply or screen two images, by an amount."
    FRAGMENT = BLEND
    MODES = ("mix", "add", "multiply", "screen")
    params = {
        "mode": P.choice("mix", MODES, "How b goes onto a."),
        "amount": P.number(0.5, "How much of the blend (0: a alone, 1: fully blended).", min=0.0, max=1.0),
        "fit": P.choice("contain", ("contain", "cover"), "b of another shape than a: whole, with a "
                        "alone beside it (contain), or filling a, its overflow cut (cover); never "
                        "stretched."),
    }
    inputs = {
        "a": ports.image("The base image (its size is the output's).", required=True),
        "b": ports.image("The image blended onto it.", required=True),
        "amount": ports.number("Overrides the amount param when wired (0..1)."),
    }
    outputs = {"out": ports.image("The blend.")}

    def draw(self, tick: Tick) -> None:
        a, b = self.texture_of("a", self.inp["a"]), self.texture_of("b", self.inp["b"])
        if a is None:
            return
        b = b or a
        amount = float(self.inp["amount"]) if "amount" in self.wired else self.p.amount
        mode = self.MODES.index(self.p.mode)

        def bind(prog) -> None:
            from .context import bind_textures

            prog["amount"] = min(1.0, max(0.0, amount))
            prog["mode"] = mode
            prog["bscale"] = fit_scale(b[1] / b[2], a[1] / a[2], self.p.fit)
            bind_textures(prog, {"a": a[0], "b": b[0]})

        target = self._target(a[1], a[2])
        target.draw(self.program, bind)
        self.out["out"] = target.texture


class Transform(_Fixed):
    type_name = "gl.transform"
    description = "Scale, rotate, translate, and kaleidoscope an image."
    FRAGMENT = TRANSFORM
    WRAPS = ("repeat", "mirror", "clamp")
    params = {
        "scale": P.number(1.0, "Zoom (2: twice as large).", min=0.0001),
        "rotate": P.number(0.0, "Rotation, counter-clockwise.", unit="deg"),
        "translate": P.numbers([0.0, 0.0], "Offset as fractions of the width and height.", length=2),
        "kaleidoscope": P.integer(0, "Mirror segments round the centre (0: off).", min=0, max=64),
        "wrap": P.choice("mirror", WRAPS, "What lies outside the image."),
    }
    inputs = {
        "image": ports.image("The image to transform.", required=True),
        "scale": ports.number("Overrides the scale param when wired."),
        "rotate": ports.number("Overrides the rotate param when wired [deg]."),
    }
    outputs = {"out": ports.image("The transformed image.")}

    VARIANTS = tuple((("KALEIDOSCOPE", k), ("WRAP", w))
                     for k, w in itertools.product((0, 1), range(len(WRAPS))))

    def variant(self) -> tuple[tuple[str, int], ...]:
        return (("KALEIDOSCOPE", int(self.p.kaleidoscope >= 1)), ("WRAP", self.WRAPS.index(self.p.wrap)))

    def draw(self, tick: Tick) -> None:
        img = self.texture_of("image", self.inp["image"])
        if img is None:
            return
        p, wired = self.p, self.wired
        scale = float(self.inp["scale"]) if "scale" in wired else p.scale
        angle = float(self.inp["rotate"]) if "rotate" in wired else p.rotate
        w, h = img[1], img[2]

        def bind(prog) -> None:
            from .context import bind_textures

            prog["scale"] = max(scale, 1e-4)
            prog["angle"] = math.radians(angle)
            prog["offset"] = (float(p.translate[0]), float(p.translate[1]))
            if p.kaleidoscope >= 1:
                prog["segments"] = float(p.kaleidoscope)
            prog["aspect"] = w / h
            bind_textures(prog, {"image": img[0]})

        target = self._target(w, h)
        target.draw(self.program, bind)
        self.out["out"] = target.texture
