"""Pure mapping functions shared by control nodes (no state, no I/O)."""

from __future__ import annotations

import math

CURVES = ("linear", "exponential", "logarithmic", "smoothstep")


def shape(curve: str, x: float, amount: float) -> float:
    """Shape ``x`` in 0..1 along ``curve``; 0 maps to 0 and 1 to 1.

    ``amount`` bends exponential and logarithmic curves (larger is stronger).
    """
    if curve == "linear":
        return x
    if curve == "smoothstep":
        return x * x * (3.0 - 2.0 * x)
    k = amount
    if curve == "exponential":
        return math.expm1(k * x) / math.expm1(k)
    if curve == "logarithmic":
        return math.log1p(math.expm1(k) * x) / k
    raise ValueError(curve)


def one_pole_coeff(dt: float, tau: float) -> float:
    """Fraction of the distance to the target covered in ``dt`` with time constant ``tau``."""
    if tau <= 0.0:
        return 1.0
    return 1.0 - math.exp(-dt / tau)


def quantise(y: float, lo: float, step: float, held: float | None = None,
             hysteresis: float = 0.0) -> float:
    """``y`` on the grid ``lo + k * step``.  With ``hysteresis`` h (a fraction of a step,
    0..0.5) and the level ``held`` so far, the level changes only once ``y`` is more than
    (0.5 + h) steps away from it: a value hovering at a boundary does not flicker."""
    level = lo + round((y - lo) / step) * step
    if held is None or hysteresis <= 0.0 or abs(y - held) > step * (0.5 + hysteresis):
        return level
    return held
