"""Turning port values into plain data for printing and recording (pure functions)."""

from __future__ import annotations

from typing import Any

import numpy as np


def plain(value: Any) -> Any:
    """A JSON-ready form of a number, vector or text value."""
    if isinstance(value, np.ndarray):
        return [float(x) for x in value.ravel()]
    if isinstance(value, (np.floating, np.integer)):
        return float(value)
    if isinstance(value, bool):
        return value
    if isinstance(value, (int, float, str)):
        return value
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    return repr(value)


def short(value: Any, width: int = 6) -> str:
    """A compact text form for the console."""
    if isinstance(value, np.ndarray):
        vals = value.ravel()
        head = " ".join(f"{float(v):.3g}" for v in vals[:width])
        more = f" …+{len(vals) - width}" if len(vals) > width else ""
        return f"[{head}{more}]"
    if isinstance(value, float):
        return f"{value:.3f}"
    return str(value)
