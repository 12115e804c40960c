"""ml.latent: a walk through a generator's latent space, driven by the music.

Two ways to move, as the best-known audio-reactive GAN tools do:

``walk``       a drift whose speed follows ``energy`` (loudness), along a direction
               that changes on every ``beat``; the point stays on the shell where a
               Gaussian latent lives (norm sqrt(dim)).
``keyframes``  seed 004's beat-synced interpolation: a keyframe every
               ``beats_per_keyframe`` beats, slerped with a smoothstep in time with the
               beat ``phase``.  With ``features`` wired (chroma, spectrum bands: what
               the music sounds like), each keyframe is made from the sound of the
               phrase before it, so every song walks its own way and a new section
               brings a new picture; otherwise ``keyframes`` fixed latents from
               ``seed`` are cycled.

On each ``onset`` a pulse pushes the point toward the current ``spectrum`` (projected
into the latent space by a fixed random matrix) and decays over ``pulse_decay``.  The
result is smoothed, mixed with an external latent ``value`` by ``blend`` and scaled by
``truncation`` (the truncation trick: < 1 keeps images typical).  Everything random
comes from ``seed``, so a run is repeatable.
"""

from __future__ import annotations

import math

import numpy as np

from tonegraph.engine import params as P
from tonegraph.engine import ports
from tonegraph.engine.node import Node, Tick


def slerp(a: np.ndarray, b: np.ndarray, t: float) -> np.ndarray:
    """Spherical interpolation between two latents (linear when nearly parallel)."""
    na, nb = np.linalg.norm(a), np.linalg.norm(b)
    cos = float(np.dot(a, b) / (na * nb)) if na and nb else 1.0
    omega = math.acos(max(-1.0, min(1.0, cos)))
    if omega < 1e-4:
        return (1 - t) * a + t * b
    s = math.sin(omega)
    return (math.sin((1 - t) * omega) / s) * a + (math.sin(t * omega) / s) * b


#: Params of the walk, shared by ml.latent and ml.gan.
WALK_PARAMS = {
    "seed": P.integer(0, "Seed of keyframes, directions and the spectrum projection.", min=0,
                      restart=True),
    "mode": P.choice("walk", ("walk", "keyframes"), "How the point moves."),
    "speed": P.number(0.6, "Walk distance per second at energy 1, in latent norms.", min=0.0),
    "idle": P.number(0.1, "Fraction of the speed kept when energy is 0.", min=0.0, max=1.0),
    "keyframes": P.integer(8, "Keyframe latents to cycle through.", min=2, max=256, restart=True),
    "beats_per_keyframe": P.integer(4, "Beats from one keyframe to the next.", min=1, max=256),
    "pulse": P.number(0.5, "How far an onset pushes toward the spectrum, in latent norms.",
                      min=0.0),
    "pulse_decay": P.number(0.25, "Time for a pulse to fade.", unit="s", min=0.001),
    "smooth": P.number(0.05, "Output smoothing time constant.", unit="s", min=0.0),
    "truncation": P.number(0.8, "Scale of the output (the truncation trick).", min=0.0, max=2.0),
    "blend": P.number(0.0, "Mix toward the external 'value' latent (0..1).", min=0.0, max=1.0),
}
#: Inputs of the walk, shared by ml.latent and ml.gan.
WALK_INPUTS = {
    "energy": ports.number("Loudness, about 0..1 (e.g. a mapped audio.level or spectrum.bass)."),
    "onset": ports.event("Onsets: each pushes the point toward the spectrum."),
    "beat": ports.event("Beats: a new walk direction, and the keyframe count."),
    "phase": ports.number("Beat phase 0..1 (audio.tempo.phase), for keyframes."),
    "spectrum": ports.vector("Band energies (audio.spectrum.bands) that onsets pulse toward."),
    "value": ports.vector("An external latent (e.g. ml.autoencoder's code) to blend in."),
    "features": ports.vector("Keyframes: what the music sounds like (e.g. audio.chroma's "
                             "vector); each keyframe is made from the phrase before it."),
}


def fit(value, dim: int, seed: int, cache: dict) -> np.ndarray:
    """An external vector as a latent of ``dim``: as it is when the length matches;
    otherwise through a fixed random projection (from ``seed``), centred on 0.5, so a
    0..1 code (ml.autoencoder's) spans the latent space at about the shell's radius."""
    v = np.asarray(value, dtype=np.float64)
    if v.size == dim:
        return v
    proj = cache.get(v.size)
    if proj is None:
        proj = cache[v.size] = (np.random.default_rng(seed + 2).standard_normal((dim, v.size))
                                * math.sqrt(12.0 / v.size))
    return proj @ (v - 0.5)


class Walk:
    """The walk's state and step; ``p`` holds the WALK_PARAMS (a node's ``self.p``)."""

    def __init__(self, p, dim: int) -> None:
        self.p = p
        self.dim = dim
        self.rng = np.random.default_rng(p.seed)
        self.radius = math.sqrt(dim)
        self.keys = self.rng.standard_normal((p.keyframes, dim))
        self.keys *= self.radius / np.linalg.norm(self.keys, axis=1, keepdims=True)
        self.projection: np.ndarray | None = None   # made when the spectrum size is known
        self.fitted: dict[int, np.ndarray] = {}
        self.z = self.keys[0].copy()
        self.direction = self._new_direction()
        self.pulse_vec = np.zeros(dim)
        self.pulse_level = 0.0
        self.beats = 0
        self.smoothed: np.ndarray | None = None
        self.travelled = 0.0
        self.span = 0                            # the keyframe span being played
        self.heard: np.ndarray | None = None     # features summed over the span
        self.heard_n = 0
        self.song_keys: dict[int, np.ndarray] = {}

    def _new_direction(self) -> np.ndarray:
        d = self.rng.standard_normal(self.dim)
        d -= np.dot(d, self.z) / np.dot(self.z, self.z) * self.z   # tangent to the shell
        return d / np.linalg.norm(d)

    def toward(self, spectrum) -> np.ndarray | None:
        """The unit direction a spectrum pulls toward (None for an empty or flat one)."""
        spec = np.asarray(spectrum, dtype=np.float64)
        if spec.size == 0:
            return None
        if self.projection is None or self.projection.shape[1] != spec.size:
            proj_rng = np.random.default_rng(self.p.seed + 1)
            self.projection = proj_rng.standard_normal((self.dim, spec.size))
        v = self.projection @ (spec - spec.mean())
        n = np.linalg.norm(v)
        return v / n if n > 1e-12 else None

    def key(self, i: int) -> np.ndarray:
        """Keyframe ``i``: made from the music when it has been, else a seeded one."""
        made = self.song_keys.get(i)
        return made if made is not None else self.keys[i % len(self.keys)]

    def _hear(self, features, span: int) -> None:
        """Sum the features of this span; at a new span, make the next keyframe from
        the phrase just heard: its features projected into the latent space (a fixed
        projection, so a sound always lands at the same place), mixed with a seeded key
        for variety, on the shell."""
        f = np.asarray(features, dtype=np.float64)
        if span != self.span:
            if self.heard is not None and self.heard_n:
                mean = self.heard / self.heard_n
                proj = self.fitted.get(("features", mean.size))
                if proj is None:
                    proj = self.fitted[("features", mean.size)] = np.random.default_rng(
                        self.p.seed + 3).standard_normal((self.dim, mean.size))
                v = proj @ ((mean - mean.mean()) / (mean.std() + 1e-9))
                v = v / (np.linalg.norm(v) + 1e-12) * self.radius
                k = 0.75 * v + 0.45 * self.keys[(span + 1) % len(self.keys)]
                self.song_keys[span + 1] = k * (self.radius / np.linalg.norm(k))
                self.song_keys.pop(span - 2, None)
            self.span, self.heard, self.heard_n = span, None, 0
        if f.size:
            self.heard = f.copy() if self.heard is None or self.heard.size != f.size else self.heard + f
            self.heard_n += 1

    def step(self, inp: dict, dt: float) -> np.ndarray:
        """Advance by ``dt`` [s] with the inputs in ``inp``; returns the latent (float32)."""
        p = self.p
        for _ in inp["beat"]:
            self.beats += 1
            if p.mode == "walk":
                self.direction = self._new_direction()
        if inp["onset"]:
            towards = self.toward(inp["spectrum"])
            if towards is not None:
                self.pulse_vec = towards * self.radius
                self.pulse_level = 1.0
        if p.mode == "walk":
            energy = min(1.0, max(0.0, inp["energy"]))
            step = p.speed * (p.idle + (1.0 - p.idle) * energy) * dt * self.radius
            if step > 0:
                self.z = self.z + self.direction * step
                self.z *= self.radius / np.linalg.norm(self.z)
                self.travelled += step
                # Keep the direction tangent as the point moves round the shell.
                self.direction -= np.dot(self.direction, self.z) / (self.radius ** 2) * self.z
                self.direction /= np.linalg.norm(self.direction)
            base = self.z
        else:
            pos = (self.beats + min(max(inp["phase"], 0.0), 1.0)) / p.beats_per_keyframe
            i = int(math.floor(pos))
            f = pos - i
            f = f * f * (3 - 2 * f)
            if len(inp.get("features", ())):
                self._hear(inp["features"], i)
            base = slerp(self.key(i), self.key(i + 1), f)
        if self.pulse_level > 0:
            self.pulse_level *= math.exp(-dt / p.pulse_decay) if dt > 0 else 1.0
            if self.pulse_level < 1e-3:
                self.pulse_level = 0.0
        target = base + self.pulse_vec * (p.pulse * self.pulse_level)
        if self.smoothed is None or p.smooth <= 0:
            self.smoothed = target
        else:
            a = 1.0 - math.exp(-dt / p.smooth) if dt > 0 else 0.0
            self.smoothed = self.smoothed + (target - self.smoothed) * a
        out = self.smoothed
        ext = inp["value"]
        if p.blend > 0 and len(ext):
            out = (1 - p.blend) * out + p.blend * fit(ext, self.dim, p.seed, self.fitted)
        return (out * p.truncation).astype(np.float32)

    def state(self) -> dict:
        return {"z": self.z.copy(), "direction": self.direction.copy(), "beats": self.beats,
                "smoothed": None if self.smoothed is None else self.smoothed.copy(),
                "span": self.span, "song_keys": dict(self.song_keys)}

    def restore(self, state: dict) -> None:
        if "z" in state and len(state["z"]) == self.dim:
            self.z, self.direction = state["z"], state["direction"]
            self.beats, self.smoothed = state["beats"], state["smoothed"]
            self.span = state.get("span", 0)
            self.song_keys = dict(state.get("song_keys", {}))


class Latent(Node):
    type_name = "ml.latent"
    description = "A latent walk driven by loudness, beats and onsets, or beat-locked keyframes."
    params = {
        "dim": P.integer(128, "Latent size (the generator's input).", min=1, max=4096, restart=True),
        **WALK_PARAMS,
    }
    inputs = WALK_INPUTS
    outputs = {"out": ports.vector("The latent, float32 of length dim.")}

    def configure(self) -> None:
        self.walk = Walk(self.p, self.p.dim)

    def process(self, tick: Tick) -> None:
        self.out["out"] = self.walk.step(self.inp, tick.dt)

    def state(self) -> dict:
        return self.walk.state()

    def restore(self, state: dict) -> None:
        self.walk.restore(state)
