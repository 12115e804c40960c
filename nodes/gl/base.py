"""What the gl nodes share: the GL service made on the render thread, inputs as textures."""

from __future__ import annotations

from typing import Any

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine.node import Node, Tick

SIZE = P.numbers([1280, 720], "Width and height of what the node draws.", length=2, unit="px",
                 min=1, max=16384, restart=True)
#: For nodes that draw at the output's size unless told otherwise.
CANVAS_SIZE = P.Param("floats", None, "Width and height to draw at; none: the size of the "
                      "patch's gl.window (what a render draws).", "px", 1, 16384, length=2,
                      restart=True, nullable=True)


def canvas(node: Node) -> tuple[int, int]:
    """The size a node with CANVAS_SIZE draws at."""
    if node.p.size:
        return int(node.p.size[0]), int(node.p.size[1])
    return node.ctx.canvas or (1280, 720)


class GLNode(Node):
    """A render node that draws with OpenGL.  GL objects are made on the first frame, on
    the thread that renders (never on the reload thread that configures new nodes), and
    freed there too."""

    domain = "render"
    extra, extra_modules = "gl", ("pyglet",)

    def configure(self) -> None:
        self.service: Any = None
        self.uploads: dict[str, tuple[Any, Any]] = {}
        self.setup()

    def setup(self) -> None:
        """Work that needs no GL: read files, check params."""

    def start(self) -> None:
        """Make GL objects (called once, on the first frame, with ``self.service`` set)."""

    def draw(self, tick: Tick) -> None:
        raise NotImplementedError

    def process(self, tick: Tick) -> None:
        if self.service is None:
            from .context import get

            self.service = get(self.ctx.headless)
            self.service.make_current()
            self.service.settle()
            self.start()
        else:
            self.service.make_current()
            self.service.settle()
        self.draw(tick)

    def texture_of(self, slot: str, value) -> tuple[int, int, int] | None:
        """An image input as (GL texture name, width, height): a texture from another gl
        node as it is, a numpy image uploaded once per new array (None: no image yet)."""
        if value is None:
            return None
        if hasattr(value, "id") and hasattr(value, "width"):
            return value.id, value.width, value.height
        if isinstance(value, np.ndarray) and value.size:
            seen, tex = self.uploads.get(slot, (None, None))
            if seen is not value:
                tex = self.service.upload(value, tex)
                self.uploads[slot] = (value, tex)
            return tex.id, tex.width, tex.height
        return None

    def close(self) -> None:
        for _, tex in getattr(self, "uploads", {}).values():
            _quietly(tex.delete)
        self.uploads = {}


def _quietly(fn) -> None:
    try:
        fn()
    except Exception:  # noqa: BLE001 - a context already gone takes its objects with it
        pass
