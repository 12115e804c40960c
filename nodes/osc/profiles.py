"""Receiver conventions for osc.out: how each kind of peer wants its values.

============  ======  =====  =======  ==========================  =============  ========
profile       proto   port   bundles  numbers                     events         vectors
============  ======  =====  =======  ==========================  =============  ========
generic       udp     10000  yes      float                       strength (f)   floats
ola           udp     7770   no       int 0-255 (rounded)         255 (i)        uint8 blob
qlcplus       udp     7700   no       float clamped to 0-1        1.0 (f)        floats
resolume      udp     7000   yes      float                       1 (i)          floats
grandma3      udp     8000   no       float                       1 (i)          floats
eos           tcp     3037   no       float                       no arguments   floats
============  ======  =====  =======  ==========================  =============  ========

OLA: the Open Lighting Architecture daemon's OSC plugin takes ``/dmx/universe/N`` with
a blob of up to 512 channel bytes, or ``/dmx/universe/N/<slot>`` with an int 0-255.
grandMA3 refuses bundles; ETC Eos speaks OSC 1.1 over TCP with SLIP framing.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Profile:
    name: str
    protocol: str
    port: int
    bundles: bool
    number: str   # "float", "int255" or "unit"
    event: str    # "strength", "one", "int1", "full" or "none"
    vector: str   # "args" or "bytes"
    description: str


PROFILES = {p.name: p for p in (
    Profile("generic", "udp", 10000, True, "float", "strength", "args",
            "Any OSC receiver: floats, events carry their strength."),
    Profile("ola", "udp", 7770, False, "int255", "full", "bytes",
            "Open Lighting Architecture's OSC plugin: DMX values 0-255."),
    Profile("qlcplus", "udp", 7700, False, "unit", "one", "args",
            "QLC+ OSC input: floats 0-1."),
    Profile("resolume", "udp", 7000, True, "float", "int1", "args",
            "Resolume Arena/Avenue: floats for parameters, int 1 to trigger."),
    Profile("grandma3", "udp", 8000, False, "float", "int1", "args",
            "grandMA3: plain messages only (it refuses bundles)."),
    Profile("eos", "tcp", 3037, False, "float", "none", "args",
            "ETC Eos: OSC 1.1 over TCP with SLIP framing (port 3037)."),
)}
