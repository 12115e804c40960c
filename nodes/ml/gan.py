"""ml.gan: a latent vector in, an image out, from a GAN generator.

The generator upsamples and convolves (``tonegraph train gan``); weights of the older
DCGAN kind (transposed convolutions) load too.

The latent comes one of two ways.  With any of ``energy``, ``onset``, ``beat`` or
``phase`` wired, the node walks the generator's latent space itself, exactly as
``ml.latent`` does (a drift whose speed follows loudness, a new direction on each beat,
a pulse toward the spectrum on onsets, or beat-locked keyframes; smoothing and
truncation), blending in ``value`` by ``blend``.  Otherwise ``value`` is the latent: as
it is when its length is the generator's, else through a fixed random projection (a
0..1 code from ``ml.autoencoder`` then spans the latent space).

A palette generator (``tonegraph train gan --arch palette``, the shipped one) draws at
``temperature``: below 1 each pixel takes one colour of its image's palette firmly
(flat paint, hard edges), at 1 it mixes them as in training.  It changes live, per
node, within one shared batch.

``out`` is a float32 array of shape (size, size, 3), RGB in 0..1, row 0 at the top.
The node runs in the render domain, once per drawn frame (a picture is only worth
computing when it is drawn).  Nodes that share a weights file and device render in one
batch per frame; a frame whose latent did not change renders nothing and keeps the last
image.  With ``every`` above 1 the generator runs for every Nth frame only, on a thread
of its own (one per model; the nodes of a model due in one frame run there as one batch)
while frames are drawn, and the frames after cross-fade to its picture: a slowly moving latent looks the same for a fraction of the work on the drawing
thread (python -m tests.benchmarks gan).
"""

from __future__ import annotations

import logging

import numpy as np

from tonegraph.engine import ports
from tonegraph.engine import params as P
from tonegraph.engine.node import Tick

from .base import MODEL_PARAMS, ModelNode
from .latent import WALK_INPUTS, WALK_PARAMS, Walk, fit

log = logging.getLogger("tonegraph.ml")

#: Inputs that make the node walk the latent space itself.
DRIVERS = ("energy", "onset", "beat", "phase")


class Gan(ModelNode):
    type_name = "ml.gan"
    description = "GAN generator: a latent (given, or walked with the music) to an RGB image, batched."
    kind = "gan"
    shipped = "gan.pt"
    domain = "render"
    params = {**MODEL_PARAMS, **WALK_PARAMS,
              "temperature": P.number(0.0, "A palette generator's ink: how firmly each pixel takes one "
                                      "colour of its image's palette. Lower is crisper (flat paint, hard "
                                      "edges), 1 the soft mixtures it trained on; 0: the model file's own "
                                      "(0.25 for the shipped model). Other generators ignore it.",
                                      min=0.0, max=100.0),
              "every": P.integer(1, "Run the generator for every Nth drawn frame only, on a thread of "
                                 "its own beside the drawing; the picture shown fades to each new "
                                 "one over the N frames after it is ready (offline: the next frame "
                                 "waits for it). 2 halves the generator's work, trailing the latent "
                                 "by two frames; 1: each frame its own picture, at once.",
                                 min=1, max=60)}
    inputs = WALK_INPUTS
    outputs = {
        "out": ports.image("The image: float32, size x size x 3, RGB in 0..1, top row first."),
        "latent": ports.vector("The latent rendered last."),
    }

    def setup(self) -> None:
        m = self.model
        self.dim = m.latent
        self.walking = any(name in self.wired for name in DRIVERS)
        self.walk = Walk(self.p, self.dim)
        self.fitted: dict[int, np.ndarray] = {}
        self.rendered: np.ndarray | None = None      # the row drawn last
        self.pending: np.ndarray | None = None       # the row asked for in this frame's batch
        self.asked: np.ndarray | None = None         # the row asked for last
        self.job = None                              # with every > 1: (the run beside, its row)
        self.frame = 0
        self.fade: tuple[np.ndarray, np.ndarray, int] | None = None   # from, to, frames done
        self.out["out"] = np.zeros((m.size, m.size, 3), dtype=np.float32)

    def requests(self, tick: Tick) -> list[np.ndarray]:
        inp = self.inp
        if self.walking or not len(inp["value"]):   # with nothing wired: the idle drift
            z = self.walk.step(inp, tick.dt)
        else:
            z = fit(inp["value"], self.dim, self.p.seed, self.fitted).astype(np.float32)
        row = np.append(z, np.float32(self.p.temperature))     # the runner's row: latent, temperature
        every = int(self.p.every)
        due, self.frame = self.frame % every == 0, self.frame + 1
        if self.job is not None:
            if every == 1:
                self.job = None                      # drawn at once from now: a late picture is old
            elif self.ctx.offline or self.job[0].done():
                self._collect()
        if every == 1 or self.rendered is None:      # at once, in this frame's batch
            if self.rendered is not None and np.array_equal(row, self.rendered):
                return []
            self.pending = row
            return [row]
        if due and self.job is None and not np.array_equal(row, self.asked):
            self.asked = row                         # busy: asked on the next due frame instead
            self.job = (self.model.beside(row[None]), row)
        return []

    def _collect(self) -> None:
        """The picture made beside, faded to; the generator's error is this node's fault
        (and the latent is asked for again)."""
        future, row = self.job
        self.job = None
        try:
            image = future.result()[0]
        except Exception:
            self.asked = None
            raise
        self._show(image, row)

    def _show(self, image: np.ndarray, row: np.ndarray) -> None:
        """A new picture, of latent and temperature ``row``: at once, or faded to."""
        if int(self.p.every) > 1 and self.rendered is not None:
            self.fade = (self.out["out"], image, 0)
        else:
            self.out["out"], self.fade = image, None
        self.rendered = self.asked = row
        self.out["latent"] = row[:-1]

    def deliver(self, tick: Tick, rows: np.ndarray | None) -> None:
        if rows is not None:
            self._show(rows[0], self.pending)
        if self.fade is not None:
            start, end, done = self.fade
            done += 1
            if done >= int(self.p.every):
                self.out["out"], self.fade = end, None
            else:
                self.out["out"], self.fade = start + (end - start) * np.float32(done / self.p.every), \
                    (start, end, done)

    def close(self) -> None:
        """A picture still being made beside is not shown; a failure of it is logged."""
        if self.job is not None:
            said = f"{self.type_name} '{self.id}': the generator failed on its last picture"

            def failed(future) -> None:
                if not future.cancelled() and future.exception() is not None:
                    log.warning("%s: %s", said, future.exception())
            self.job[0].add_done_callback(failed)
            self.job = None
        super().close()

    def state(self) -> dict:
        return self.walk.state()

    def restore(self, state: dict) -> None:
        self.walk.restore(state)
