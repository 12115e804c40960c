"""ml.chunkmap: each new chunk of live sound placed in a map made by ``tonegraph analyze``.

Seed 003 live: the sound is cut at its onsets and each chunk described exactly as the
analysed song's chunks were (nodes/ml/chunks.py); when a chunk ends, its position is
the inverse-distance mean of the positions of its ``k`` nearest analysed chunks.

``picture`` shows it for a projector (nodes/ml/mapdraw.py): every analysed chunk as a
dot coloured by its time in the song, and the last ``trail`` live chunks over them,
joined in order, the newest largest.  It is drawn again only when a chunk ends.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.errors import NodeError, display_path
from tonegraph.engine.node import Node, Tick
from tonegraph.engine.ports import Event
from tonegraph.nodes.audio.dsp import mono


class ChunkMap(Node):
    type_name = "ml.chunkmap"
    description = "Place each new chunk of sound (cut at onsets) in a map made by 'tonegraph analyze'."
    domain = "audio"
    params = {
        "map": P.path(None, "The JSON map from 'tonegraph analyze' (relative to the patch)."),
        "k": P.integer(5, "Nearest analysed chunks to average.", min=1, max=64),
        "trail": P.integer(12, "Live chunks drawn in the picture's trail.", min=1, max=256),
        "picture_size": P.numbers([480, 270], "Width and height of 'picture'.", length=2, unit="px",
                                  min=16, max=4096, restart=True),
    }
    inputs = {"audio": ports.audio("The sound (mixed to mono).", required=True)}
    outputs = {
        "xy": ports.vector("Position of the last chunk in the 2-D map (about -1..1)."),
        "xyz": ports.vector("Position of the last chunk in the 3-D map."),
        "chunk": ports.event("Each chunk as it ends; value: the nearest analysed chunk's index."),
        "nearest": ports.number("Start [s] in the analysed song of the nearest chunk."),
        "picture": ports.image("The map with the trail of the live chunks, for a window."),
    }

    @classmethod
    def check(cls, params, wired, ctx):
        if not params.get("map"):
            return [("map", "give the JSON map written by 'tonegraph analyze SONG -o MAP'")]
        path = ctx.resolve_input(params["map"])
        if not path.is_file():
            return [("map", f"no such map file: {display_path(path)} (make one with 'tonegraph analyze')")]
        return []

    def configure(self) -> None:
        from .chunks import Chunker, load_map

        path = self.ctx.resolve_input(self.p.map)
        try:
            self.doc = load_map(path)
        except (ValueError, KeyError, OSError) as exc:
            raise NodeError(self.id, f"{display_path(path)}: {exc}") from None
        rate = int(self.doc["samplerate"])
        self.chunker = Chunker(rate)
        self.resampler = None
        if self.ctx.samplerate != rate:
            import soxr

            self.resampler = soxr.ResampleStream(self.ctx.samplerate, rate, 1, dtype="float32")
        self.fed = 0.0   # [s] of sound fed to the chunker before the current hop
        from .mapdraw import base_map, hues

        size = (int(self.p.picture_size[0]), int(self.p.picture_size[1]))
        starts = np.array([c["start"] for c in self.doc["chunks"]])
        self.base = base_map(self.doc["_xy"], starts, size)
        span = float(starts.max() - starts.min()) or 1.0
        self.colours = hues((starts - starts.min()) / span)
        self.trail: list[tuple[np.ndarray, int]] = []
        self.out["picture"] = self.base
        self.out["xy"] = np.zeros(2, np.float32)
        self.out["xyz"] = np.zeros(3, np.float32)

    def process(self, tick: Tick) -> None:
        from .chunks import place

        x = mono(self.inp["audio"], self.ctx.hop)
        if self.resampler is not None:
            x = self.resampler.resample_chunk(x)
        events = []
        for chunk in self.chunker.push(x):
            xy, xyz, nearest = place(self.doc, chunk.features, self.p.k)
            self.out["xy"] = xy.astype(np.float32)
            self.out["xyz"] = xyz.astype(np.float32)
            self.out["nearest"] = float(self.doc["chunks"][nearest]["start"])
            # Chunk times count from the chunker's start; placed relative to this hop,
            # they keep their place when media time re-anchors.
            events.append(Event(tick.t + chunk.end - self.fed, nearest))
            self.trail = (self.trail + [(xy, nearest)])[-self.p.trail:]
        self.fed += self.ctx.hop / self.ctx.samplerate
        if events:
            self.out["chunk"] = tuple(events)
            from .mapdraw import with_trail

            self.out["picture"] = with_trail(self.base, np.array([p for p, _ in self.trail]),
                                             self.colours[[i for _, i in self.trail]])

    def files(self) -> list[Path]:
        return [self.ctx.resolve_input(self.p.map)] if self.p.map else []

    def close(self) -> None:
        self.resampler = None
