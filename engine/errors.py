"""The exception hierarchy of tonegraph.

``TonegraphError`` is the root.  ``PatchError`` carries a source position so that
every problem in a patch prints as ``FILE:LINE:COL: error: MESSAGE``; ``NodeError``
names the node a runtime failure belongs to.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True, slots=True)
class Loc:
    """A 1-based position in a source file."""

    file: str
    line: int
    col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


class TonegraphError(Exception):
    """Base class of every error tonegraph raises on purpose."""


class PatchError(TonegraphError):
    """One problem in a patch, at a position in a file."""

    def __init__(self, message: str, loc: Loc | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.loc = loc

    def __str__(self) -> str:
        where = str(self.loc) if self.loc else "<patch>"
        return f"{where}: error: {self.message}"


class ParamError(TonegraphError, ValueError):
    """A param value that does not fit its declaration (no position yet)."""


class NodeError(TonegraphError):
    """A failure inside one node, named by its id."""

    def __init__(self, node_id: str, message: str) -> None:
        super().__init__(f"node '{node_id}': {message}")
        self.node_id = node_id


def display_path(path: Path) -> str:
    """A path as the user should see it: relative to the working directory when inside it."""
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def describe(exc: BaseException) -> str:
    """An exception as one line: its type and message."""
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def closest(name: str, options, cutoff: float = 0.6) -> str | None:
    """The option most like ``name`` (a mistyped param, choice, node type or command),
    if any is close enough."""
    import difflib

    found = difflib.get_close_matches(name, list(options), n=1, cutoff=cutoff)
    return found[0] if found else None


def did_you_mean(name: str, options, cutoff: float = 0.6) -> str:
    """`` (did you mean 'X'?)`` for the closest option, or nothing."""
    guess = closest(name, options, cutoff)
    return f" (did you mean '{guess}'?)" if guess else ""
