"""gl.image: an image file or an image input (e.g. ml.gan's) as a texture."""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import NodeError, display_path
from tonegraph.engine.files import DATA_LIMIT, read_bounded
from tonegraph.engine.node import Tick

from .base import GLNode


class Image(GLNode):
    type_name = "gl.image"
    extra_modules = ("pyglet", "PIL")
    description = "An image file (PNG, JPEG, ...) or an image input, as a GPU texture."
    params = {"path": P.path(None, "Image file (relative to the patch); reloaded on save. "
                                   "None: the 'image' input.")}
    inputs = {"image": ports.image("An image (numpy H x W x 3/4, or a texture) when no path is given.")}
    outputs = {"out": ports.image("The texture.")}

    @classmethod
    def check(cls, params, wired, ctx):
        if params.get("path"):
            path = ctx.resolve_input(params["path"])
            if not path.is_file():
                return [("path", f"no such image file: {display_path(path)}")]
        elif "image" not in wired:
            return [("", "give an image file as 'path' or wire the 'image' input")]
        return []

    def setup(self) -> None:
        self.pixels = None
        if self.p.path:
            from PIL import Image as PILImage, UnidentifiedImageError

            path = self.ctx.resolve_input(self.p.path)
            try:
                data = io.BytesIO(read_bounded(path, DATA_LIMIT, "image"))
                with PILImage.open(data) as im:
                    self.pixels = np.asarray(im.convert("RGBA"))
            except (OSError, UnidentifiedImageError, PILImage.DecompressionBombError) as exc:
                raise NodeError(self.id, f"{display_path(path)}: cannot read it as an image ({exc})") from None

    def files(self) -> list[Path]:
        return [self.ctx.resolve_input(self.p.path)] if self.p.path else []

    def draw(self, tick: Tick) -> None:
        value = self.pixels if self.pixels is not None else self.inp["image"]
        if value is None or (isinstance(value, np.ndarray) and not value.size):
            return
        if hasattr(value, "id"):
            self.out["out"] = value
            return
        self.texture_of("image", value)
        self.out["out"] = self.uploads["image"][1]
