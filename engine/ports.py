"""Port types: what flows along an edge of the graph.

============  ===============================================================
``number``    a Python float
``vector``    a 1-D ``numpy.float32`` array
``audio``     an :class:`AudioBlock`: frames x channels float32 with its media time
``event``     a tuple of :class:`Event` that fired since the consumer last ran
``image``     an H x W x C array (or a GPU texture / tensor, for GL and torch nodes)
``text``      a Python str
``any``       accepts every type (recorders, printers, OSC senders)
============  ===============================================================
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import Enum
from typing import Any, NamedTuple

import numpy as np


class PortType(str, Enum):
    NUMBER = "number"
    VECTOR = "vector"
    AUDIO = "audio"
    EVENT = "event"
    IMAGE = "image"
    TEXT = "text"
    ANY = "any"


class Event(NamedTuple):
    """Something that happened at media time ``t`` [s], with a strength ``value``."""

    t: float
    value: float = 1.0


class AudioBlock:
    """A block of samples: ``data`` is frames x channels float32, ``t`` the media time [s]
    of its first sample.  ``mono`` is the block mixed to one contiguous 1-D channel when
    the source has it at hand (analysis nodes then skip mixing); None otherwise.

    A plain slotted class rather than a named tuple: one is made every hop, and this
    is the cheapest immutable-by-convention record Python offers."""

    __slots__ = ("data", "t", "samplerate", "mono")

    def __init__(self, data: np.ndarray, t: float, samplerate: int,
                 mono: np.ndarray | None = None) -> None:
        self.data = data
        self.t = t
        self.samplerate = samplerate
        self.mono = mono

    def __repr__(self) -> str:
        return f"AudioBlock({self.data.shape[0]}x{self.data.shape[1]} at t={self.t:.6f})"


NO_EVENTS: tuple[Event, ...] = ()

_DEFAULTS: dict[PortType, Any] = {
    PortType.NUMBER: 0.0,
    PortType.VECTOR: np.zeros(0, dtype=np.float32),
    PortType.EVENT: NO_EVENTS,
    PortType.TEXT: "",
}


@dataclass(frozen=True, slots=True)
class Port:
    """A typed input or output of a node type."""

    type: PortType
    description: str = ""
    default: Any = None
    required: bool = False

    def initial(self) -> Any:
        """The value the port holds before anything is written to it."""
        if self.default is not None:
            return self.default
        return _DEFAULTS.get(self.type)


def compatible(src: PortType, dst: PortType) -> bool:
    """Whether an output of type ``src`` may feed an input of type ``dst``.

    Types must match exactly, except that ``any`` accepts everything.  There are no
    silent conversions: an event into a number input is a wiring mistake that
    ``control.envelope`` or ``control.trigger`` exists to express.
    """
    return src == dst or dst == PortType.ANY or src == PortType.ANY


def number(description: str = "", default: float | None = None, required: bool = False) -> Port:
    return Port(PortType.NUMBER, description, default, required)


def vector(description: str = "", required: bool = False) -> Port:
    return Port(PortType.VECTOR, description, None, required)


def event(description: str = "", required: bool = False) -> Port:
    return Port(PortType.EVENT, description, None, required)


def audio(description: str = "", required: bool = False) -> Port:
    return Port(PortType.AUDIO, description, None, required)


def image(description: str = "", required: bool = False) -> Port:
    return Port(PortType.IMAGE, description, None, required)


def text(description: str = "", required: bool = False) -> Port:
    return Port(PortType.TEXT, description, None, required)


def any_port(description: str = "") -> Port:
    return Port(PortType.ANY, description)
