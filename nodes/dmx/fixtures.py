"""Fixture files: the channel layout of each kind of light, and where each light sits.

A patch addresses ``front/rgb`` or ``spot/pan`` instead of channel 37::

    types:
      par:   [dimmer, red, green, blue, strobe]
      mover: [pan, pan_fine, tilt, tilt_fine, dimmer, shutter, red, green, blue]
    fixtures:
      front: {type: par, address: 1}       # DMX start address, 1-512
      spot:  {type: mover, address: 10}

Every channel name of a type is an attribute (``front/dimmer``); a channel followed by
``<name>_fine`` makes that attribute 16-bit (coarse and fine bytes); ``red``, ``green``
and ``blue`` together also answer to ``rgb`` (a vector of three), and with ``white`` to
``rgbw``.  The file is YAML, read safely, from the patch's folder, within bounds
(engine/files.py): a regular file of at most 1 MiB and :data:`MAX_VALUES` values, which
a full universe of fixtures and their types needs only a fraction of, so a file of any
size is refused or read in well under a second.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

import yaml

from tonegraph.engine.files import read_yaml

CHANNELS = 512          # channels of one DMX universe
MAX_VALUES = 20_000     # YAML values a fixture file may hold (512 fixtures take about 3,000)
NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
GROUPS = {"rgbw": ("red", "green", "blue", "white"), "rgb": ("red", "green", "blue")}


class FixtureError(ValueError):
    """A fixture file that cannot be used (one line)."""


@dataclass(frozen=True)
class Attribute:
    """Where one addressable thing lives: the 0-based channels (coarse[, fine]) of each
    of its components (one component, or three/four for a colour group)."""

    channels: tuple[tuple[int, ...], ...]

    @property
    def width(self) -> int:
        return len(self.channels)


def read(path: Path) -> dict[str, Attribute]:
    """``fixture/attribute`` -> Attribute, from a fixture file; raises FixtureError."""
    try:
        doc = read_yaml(path, "fixture file", MAX_VALUES)
    except OSError as exc:
        raise FixtureError(f"cannot read it: {exc.strerror or exc}") from None
    except yaml.YAMLError as exc:
        raise FixtureError(f"not YAML: {str(exc).splitlines()[0]}") from None
    if not isinstance(doc, dict) or not isinstance(doc.get("types"), dict) \
            or not isinstance(doc.get("fixtures"), dict):
        raise FixtureError("a fixture file has 'types' (name: [channels]) and 'fixtures' "
                           "(name: {type, address})")
    types = {}
    for tname, chans in doc["types"].items():
        if not isinstance(chans, list) or not chans or not all(isinstance(c, str) and NAME.match(c)
                                                               for c in chans):
            raise FixtureError(f"type '{tname}' needs a list of channel names")
        if len(chans) > CHANNELS:
            raise FixtureError(f"type '{tname}' has {len(chans)} channels; a universe has {CHANNELS}")
        if len(set(chans)) != len(chans):
            raise FixtureError(f"type '{tname}' names a channel twice")
        types[tname] = chans
    out: dict[str, Attribute] = {}
    used: dict[int, str] = {}
    for fname, spec in doc["fixtures"].items():
        if not isinstance(fname, str) or not NAME.match(fname):
            raise FixtureError(f"fixture name '{fname}' must be letters, digits and _")
        if not isinstance(spec, dict) or spec.get("type") not in types:
            raise FixtureError(f"fixture '{fname}' needs a 'type' from: {', '.join(map(str, types))}")
        addr = spec.get("address")
        chans = types[spec["type"]]
        if isinstance(addr, bool) or not isinstance(addr, int) or not 1 <= addr <= 513 - len(chans):
            raise FixtureError(f"fixture '{fname}': address must be 1-{513 - len(chans)} for "
                               f"its {len(chans)} channels, got {addr!r}")
        for i in range(len(chans)):
            ch = addr - 1 + i
            if ch in used:
                raise FixtureError(f"fixture '{fname}' overlaps '{used[ch]}' at channel {ch + 1}")
            used[ch] = fname
        index = {c: addr - 1 + i for i, c in enumerate(chans)}
        for c, ch in index.items():
            if c.endswith("_fine") and c[:-5] in index:
                continue
            fine = index.get(c + "_fine")
            out[f"{fname}/{c}"] = Attribute(((ch,) if fine is None else (ch, fine),))
        for group, parts in GROUPS.items():
            if all(p in index for p in parts):
                out[f"{fname}/{group}"] = Attribute(tuple(out[f"{fname}/{p}"].channels[0] for p in parts))
    return out
