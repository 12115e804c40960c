"""Drawing a chunk map for a projector (pure functions over numpy images).

The analysed song's chunks are dots coloured by their time in the song (the same
colours as ``tonegraph analyze``'s PNG, from red at the start to purple at the end),
and the live chunks leave a trail: the newest is large and nearly white, older ones
shrink and fade, joined in the order they came.  Positions are map coordinates,
about -1..1 on each axis, spread over the whole frame.
"""

from __future__ import annotations

import numpy as np

MARGIN = (0.06, 0.09)   # of the width and height, kept clear around the map


def hues(t: np.ndarray) -> np.ndarray:
    """Colours for times 0..1 along the song: red, yellow, green, blue, purple."""
    h = 0.8 * np.clip(t, 0.0, 1.0)
    k = (h[:, None] * 6.0 + np.array([0.0, 4.0, 2.0])) % 6.0
    return np.clip(np.abs(k - 3.0) - 1.0, 0.0, 1.0)


def to_pixels(xy: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    w, h = size
    mx, my = MARGIN
    x = (mx + (1 - 2 * mx) * (np.asarray(xy)[:, 0] + 1) / 2) * (w - 1)
    y = (my + (1 - 2 * my) * (1 - (np.asarray(xy)[:, 1] + 1) / 2)) * (h - 1)
    return np.stack([x, y], axis=1)


def splat(img: np.ndarray, at: np.ndarray, colour: np.ndarray, radius: float) -> None:
    """Add a soft round dot of ``colour`` at pixel ``at`` (in place)."""
    h, w = img.shape[:2]
    r = max(1, int(np.ceil(2 * radius)))
    x0, y0 = int(round(at[0])), int(round(at[1]))
    xs, ys = np.arange(max(0, x0 - r), min(w, x0 + r + 1)), np.arange(max(0, y0 - r), min(h, y0 + r + 1))
    if not len(xs) or not len(ys):
        return
    d2 = (xs[None, :] - at[0]) ** 2 + (ys[:, None] - at[1]) ** 2
    weight = np.exp(-d2 / (2 * (radius / 1.6) ** 2))[:, :, None]
    img[ys[0]:ys[-1] + 1, xs[0]:xs[-1] + 1] += weight * colour


def base_map(xy: np.ndarray, times: np.ndarray, size: tuple[int, int]) -> np.ndarray:
    """The analysed chunks as dim dots on a dark ground, H x W x 3 float32 0..1."""
    w, h = size
    yy = np.linspace(-1, 1, h)[:, None]
    xx = np.linspace(-1, 1, w)[None, :]
    glow = 0.05 * np.exp(-(xx ** 2 + yy ** 2))[:, :, None] * np.array([0.4, 0.5, 1.0])
    img = np.zeros((h, w, 3), dtype=np.float32) + glow.astype(np.float32)
    span = float(times.max() - times.min()) or 1.0
    colours = hues((times - times.min()) / span) * 0.55
    radius = max(1.5, 0.012 * w)
    for p, c in zip(to_pixels(xy, size), colours):
        splat(img, p, c, radius)
    return np.clip(img, 0.0, 1.0)


def with_trail(base: np.ndarray, trail: np.ndarray, colours: np.ndarray) -> np.ndarray:
    """``base`` with the live chunks ``trail`` (oldest first, map coordinates, their
    colours in ``colours``) drawn over it: joined in order, the newest largest."""
    img = base.copy()
    h, w = img.shape[:2]
    n = len(trail)
    if not n:
        return img
    px = to_pixels(trail, (w, h))
    radius = max(1.5, 0.012 * w)
    for i in range(n - 1):                      # the path, fading toward the oldest
        a, b = px[i], px[i + 1]
        age = (i + 1) / n
        steps = int(np.hypot(*(b - a)) / max(1.0, radius * 0.6)) + 1
        for s in np.linspace(0.0, 1.0, steps):
            splat(img, a + (b - a) * s, colours[i + 1] * 0.35 * age, radius * 0.6)
    for i, (p, c) in enumerate(zip(px, colours)):
        age = (i + 1) / n
        splat(img, p, (0.3 + 0.7 * c) * (0.4 + 0.9 * age), radius * (1.0 + 2.2 * age ** 3))
    return np.clip(img, 0.0, 1.0).astype(np.float32)
